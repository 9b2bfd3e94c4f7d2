"""Claims on PostgreSQL with real concurrency: threads with their own connections, committed
data (transactional tests), so the database's locking is what is tested."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from datasets.models import GenerationItem, Sample
from datasets.services.generation import batch_chunk_run, batch_start
from synthaug.engine.text import content_hash, flatten
from tests.test_generation_support import (
    TEMPLATE_PARAMS,
    answering,
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    law_samples,
    scripted_endpoint,
)

pytestmark = pytest.mark.django_db(transaction=True)


def in_threads(*targets) -> list:
    """Run each target in its own thread (and connection); return what they returned."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)
    failures: list[BaseException] = []

    def run(index, target):
        try:
            barrier.wait(10)
            results[index] = target()
        except BaseException as exc:  # surfaced in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    return results


def test_two_workers_never_generate_the_same_slot(dataset, alice, llm_server):
    law_samples(dataset, 3)
    llm_server.respond_with(answering)
    llm_server.latency(0.05)
    endpoint = scripted_endpoint(llm_server, max_concurrency=3)
    batch = batch_start(
        batch=create(dataset, alice, generator=endpoint, requested_count=30),
        user=alice,
        enqueue=False,
    )
    seqs = list(range(30))

    first, second = in_threads(
        lambda: batch_chunk_run(batch_id=batch.pk, seqs=seqs, worker="one"),
        lambda: batch_chunk_run(batch_id=batch.pk, seqs=seqs[::-1], worker="two"),
    )

    # Both really worked (they started at opposite ends), and together exactly once per slot.
    assert first.claimed > 0
    assert second.claimed > 0
    assert first.claimed + second.claimed == 30
    assert len(llm_server.chat_requests) == 30
    samples = Sample.objects.filter(batch=batch)
    assert samples.count() == 30
    assert samples.values("seq").distinct().count() == 30
    items = GenerationItem.objects.filter(batch=batch)
    assert set(items.values_list("state", "attempts")) == {(GenerationItem.State.DONE, 1)}


def test_two_workers_together_keep_the_endpoints_concurrency_limit(dataset, alice, llm_server):
    """Each chunk run bounds its own calls; the shared slots (Redis) bound them together."""
    law_samples(dataset, 3)
    llm_server.respond_with(answering)
    llm_server.latency(0.15)
    endpoint = scripted_endpoint(llm_server, max_concurrency=3)
    batch = batch_start(
        batch=create(dataset, alice, generator=endpoint, requested_count=24),
        user=alice,
        enqueue=False,
    )
    seqs = list(range(24))
    first, second = in_threads(
        lambda: batch_chunk_run(batch_id=batch.pk, seqs=seqs[:12], worker="one"),
        lambda: batch_chunk_run(batch_id=batch.pk, seqs=seqs[12:], worker="two"),
    )
    assert first.claimed == second.claimed == 12
    assert len(llm_server.chat_requests) == 24
    # Two runs of three each would reach six at once without the shared bound.
    assert llm_server.max_in_flight == 3


def test_a_duplicated_task_makes_nothing_twice(dataset, alice):
    law_samples(dataset, 2)
    batch = batch_start(batch=create(dataset, alice, requested_count=20), user=alice, enqueue=False)
    seqs = list(range(20))
    outcomes = in_threads(
        *[lambda: batch_chunk_run(batch_id=batch.pk, seqs=seqs, worker="w") for _ in range(4)]
    )
    assert sum(o.claimed for o in outcomes) == 20
    assert Sample.objects.filter(batch=batch).values("seq").distinct().count() == 20
    assert Sample.objects.filter(batch=batch).count() == 20


def test_a_sample_written_meanwhile_elsewhere_becomes_the_canonical_one(dataset, alice, caplog):
    """Another writer holds an uncommitted sample with the same content.

    The item's insert waits on the unique index, fails once the other commits, looks the
    canonical sample up again and links to it: the generated sample is kept, as a duplicate.
    """
    params = {**TEMPLATE_PARAMS, "slots": {"country": ["Chile"], "subject": ["tenancy"]}}
    batch = batch_start(
        batch=create(dataset, alice, method="template", requested_count=1, params=params),
        user=alice,
        enqueue=False,
    )
    question = {"question": "What does Chile law say about tenancy?"}
    holding, release = threading.Event(), threading.Event()
    other: list[Sample] = []

    def other_writer():
        with transaction.atomic():
            other.append(
                Sample.objects.create(
                    dataset=dataset,
                    input=question,
                    text=flatten(question),
                    origin=Sample.Origin.REAL,
                    content_hash=content_hash(question),
                    source_group="sample:other",
                )
            )
            holding.set()
            release.wait(30)
        return True

    def release_once_the_insert_waits():
        holding.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
            time.sleep(0.05)
        release.set()
        return True

    def generate():
        holding.wait(30)
        return batch_chunk_run(batch_id=batch.pk, seqs=[0])

    with caplog.at_level("INFO", logger="datasets.services.generation.runner"):
        _, _, outcome = in_threads(other_writer, release_once_the_insert_waits, generate)

    assert "written elsewhere meanwhile" in caplog.text  # the insert really raced

    assert outcome.done == 1
    sample = Sample.objects.get(batch=batch)
    assert sample.duplicate_of_id == other[0].pk
    assert GenerationItem.objects.get(batch=batch).state == GenerationItem.State.DONE
