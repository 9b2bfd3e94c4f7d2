"""How a chunk talks to the database: claims shared by lanes, answers written in groups,
one HTTP client per endpoint per worker process. On PostgreSQL with committed data
(transactional tests), as a worker sees it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.models import Batch, GenerationItem, Sample
from datasets.services.generation import batch_chunk_run, batch_start
from datasets.services.generation.aio import process_loop
from synthaug.engine import llm
from tests.test_generation_support import (
    answering,
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    law_samples,
    scripted_endpoint,
)

pytestmark = pytest.mark.django_db(transaction=True)

State = GenerationItem.State
COUNT = 32


def started(dataset, alice, endpoint, count: int = COUNT) -> Batch:
    return batch_start(
        batch=create(dataset, alice, generator=endpoint, requested_count=count),
        user=alice,
        enqueue=False,
    )


def test_it_generates_a_chunk_in_a_few_queries_per_item(dataset, alice, llm_server):
    law_samples(dataset, 4)
    llm_server.respond_with(answering)
    llm_server.latency(0.05)
    batch = started(dataset, alice, scripted_endpoint(llm_server, max_concurrency=8))

    with CaptureQueriesContext(connection) as queries:
        outcome = batch_chunk_run(batch_id=batch.pk, seqs=list(range(COUNT)))

    assert outcome.done == COUNT
    items = GenerationItem.objects.filter(batch=batch)
    assert set(items.values_list("state", flat=True)) == {State.DONE}
    assert Sample.objects.filter(batch=batch).count() == COUNT
    # Item by item it took about ten (claim, read, lock, look-up, insert, coverage twice,
    # update, begin, commit); claims shared by lanes and grouped writes take one or two,
    # a little more on a loaded machine, where the groups come smaller.
    assert len(queries) < 4 * COUNT, [q["sql"][:60] for q in queries.captured_queries]
    # Every item's provenance and usage were written, not only its state.
    for item in items.select_related("sample"):
        assert item.sample.seq == item.seq
        assert item.sample.parent_id is not None
        assert item.sample.generation_model == batch.generator.identity
        assert item.response_id
        assert item.input_tokens > 0
        assert item.output_tokens > 0
        assert item.cost > 0
        assert item.finished_at is not None
        assert item.lease_until is None


def test_answers_of_the_same_content_in_one_group_link_to_the_first(dataset, alice, llm_server):
    law_samples(dataset, 4)
    llm_server.respond_with(lambda body: {"question": "The same question, every time."})
    batch = started(dataset, alice, scripted_endpoint(llm_server, max_concurrency=8), count=12)

    outcome = batch_chunk_run(batch_id=batch.pk, seqs=list(range(12)))

    assert outcome.done == 12
    samples = Sample.objects.filter(batch=batch)
    canonical = samples.filter(duplicate_of__isnull=True)
    assert canonical.count() == 1
    assert set(samples.exclude(pk=canonical.get().pk).values_list("duplicate_of", flat=True)) == {
        canonical.get().pk
    }


def test_answers_of_content_already_in_the_dataset_link_to_it(dataset, alice, llm_server):
    law_samples(dataset, 4)
    llm_server.respond_with(lambda body: {"question": "The same question, every time."})
    first = started(dataset, alice, scripted_endpoint(llm_server, max_concurrency=4), count=1)
    batch_chunk_run(batch_id=first.pk, seqs=[0])
    existing = Sample.objects.get(batch=first)
    second = started(dataset, alice, scripted_endpoint(llm_server, name="again"), count=6)

    batch_chunk_run(batch_id=second.pk, seqs=list(range(6)))

    linked = Sample.objects.filter(batch=second).values_list("duplicate_of", flat=True)
    assert list(linked) == [existing.pk] * 6


def test_chunks_in_one_process_share_the_endpoints_http_client(dataset, alice, llm_server):
    law_samples(dataset, 4)
    llm_server.respond_with(answering)
    endpoint = scripted_endpoint(llm_server, max_concurrency=4)
    batch = started(dataset, alice, endpoint, count=8)

    def clients() -> list:
        pools = llm._pools.get(process_loop(), {})
        return [client for key, client in pools.items() if key[0] == endpoint.base_url]

    batch_chunk_run(batch_id=batch.pk, seqs=[0, 1, 2, 3])
    after_first = clients()
    batch_chunk_run(batch_id=batch.pk, seqs=[4, 5, 6, 7])

    assert len(after_first) == 1
    assert clients() == after_first  # the same client object, its connections kept open
    assert not after_first[0].is_closed()
    assert GenerationItem.objects.filter(batch=batch, state=State.DONE).count() == 8
