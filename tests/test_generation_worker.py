"""THE crash test: a real Celery worker on Redis is killed mid-batch (SIGKILL to its whole
process group, so it cannot acknowledge or reject anything), a new worker and the reaper take
over, and the batch still ends with exactly one sample per slot."""

from __future__ import annotations

import os
import signal
from io import StringIO

import pytest
from django.core.management import call_command

from datasets.models import Batch, GenerationItem, Sample
from datasets.services.generation import batch_start
from datasets.tasks import generation_reap
from synthaug.celery import app as celery_app
from tests.test_generation_support import (
    answering,
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    law_samples,
    scripted_endpoint,
)
from tests.workers import celery_worker, wait_for

COUNT = 40
LEASE = 3
WORKER_ENV = {
    "SYNTHAUG_GENERATION_LEASE_SECONDS": str(LEASE),
    "SYNTHAUG_GENERATION_STALL_SECONDS": "5",
}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_loses_nothing_and_duplicates_nothing(dataset, alice, llm_server, settings):
    settings.SYNTHAUG_GENERATION_LEASE_SECONDS = LEASE
    settings.SYNTHAUG_GENERATION_STALL_SECONDS = 5
    celery_app.control.purge()  # nothing left over from another test reaches these workers
    law_samples(dataset, 5)
    llm_server.respond_with(answering)
    llm_server.latency(0.3)
    endpoint = scripted_endpoint(llm_server, max_concurrency=2)
    batch = create(dataset, alice, generator=endpoint, requested_count=COUNT)
    items = GenerationItem.objects.filter(batch=batch)

    def done() -> int:
        return items.filter(state=GenerationItem.State.DONE).count()

    batch_start(batch=batch, user=alice)  # queued on commit: eight chunks of five

    with celery_worker(extra_env=WORKER_ENV) as worker:
        wait_for(lambda: done() >= 8, timeout=45, what="the first worker to make some items")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    done_at_kill = done()
    held_at_kill = set(
        items.filter(state=GenerationItem.State.RUNNING).values_list("seq", flat=True)
    )
    assert done_at_kill < COUNT
    assert held_at_kill, "the worker died holding claims"

    with celery_worker(extra_env=WORKER_ENV):

        def finished() -> bool:
            generation_reap()  # what beat runs every 30 s, here at every poll
            batch.refresh_from_db()
            return batch.status not in (
                Batch.Status.QUEUED,
                Batch.Status.RUNNING,
                Batch.Status.CHECKING,  # the checking stage runs on the worker too
            )

        wait_for(finished, timeout=60, what="the batch to finish after the crash")

    assert batch.status == Batch.Status.READY
    samples = Sample.objects.filter(batch=batch)
    assert samples.count() == COUNT
    assert samples.values("seq").distinct().count() == COUNT
    assert sorted(samples.values_list("seq", flat=True)) == list(range(COUNT))
    assert set(items.values_list("state", flat=True)) == {GenerationItem.State.DONE}
    assert items.exclude(sample__isnull=False).count() == 0
    # The slots the dead worker held were claimed again: their second attempt made them.
    assert all(
        attempts >= 2
        for attempts in items.filter(seq__in=held_at_kill).values_list("attempts", flat=True)
    )
    # Calls in flight when the worker died were paid for and lost; nothing else repeated.
    assert COUNT <= len(llm_server.chat_requests) <= COUNT + len(held_at_kill)
    celery_app.control.purge()


def test_the_beat_schedule_runs_the_reaper():
    schedule = celery_app.conf.beat_schedule["generation-reap"]
    assert schedule["task"] == "datasets.tasks.generation_reap"
    assert schedule["schedule"] == 30.0
    assert generation_reap.name == schedule["task"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_generate_command_follows_a_batch_run_by_a_worker(dataset, alice):
    celery_app.control.purge()
    law_samples(dataset, 3)
    out, err = StringIO(), StringIO()
    with celery_worker():
        call_command(
            "generate",
            "truthful",
            "--method=adversarial",
            "--count=12",
            "--tags",
            "topic=law",
            "--difficulty=adversarial",
            "--why=No attacks on law questions yet.",
            "--judging=The attack is of the intended kind.",
            "--poll=0.2",
            stdout=out,
            stderr=err,
        )
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.READY
    assert Sample.objects.filter(batch=batch).count() == 12
    assert f"Batch {batch.pk} is ready for review: 12 generated" in out.getvalue()
    assert "12/12" in err.getvalue()
