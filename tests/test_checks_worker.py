"""A real Celery worker takes a batch from generation through the checking stage to READY,
with an endpoint judge on the scripted server, in chained chunk tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from datasets.models import Batch, CheckResult, Sample
from datasets.services.generation import batch_start
from datasets.services.verification.queue import checks_reap
from synthaug.celery import app as celery_app
from tests.test_checks_support import honest_judge
from tests.test_generation_support import (
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    make_documents,
    scripted_endpoint,
)
from tests.workers import celery_worker, wait_for

COUNT = 12


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_generates_checks_and_readies_a_batch(dataset, alice, llm_server):
    celery_app.control.purge()
    make_documents(dataset, 2)
    llm_server.respond_with(honest_judge)
    judge = scripted_endpoint(llm_server, name="judge", model="judge-model")
    batch = create(
        dataset,
        alice,
        method="grounded",
        requested_count=COUNT,
        target_tags={"topic": "history"},
        judge=judge,
    )
    batch_start(batch=batch, user=alice)  # generation queued on commit; checks follow

    with celery_worker(extra_env={"SYNTHAUG_CHECKS_CHUNK_SIZE": "5"}):

        def ready() -> bool:
            batch.refresh_from_db()
            return batch.status not in (
                Batch.Status.QUEUED,
                Batch.Status.RUNNING,
                Batch.Status.CHECKING,
            )

        wait_for(ready, timeout=90, what="the batch to be generated and checked")

    assert batch.status == Batch.Status.READY
    assert batch.checks_finished_at >= batch.checks_started_at
    samples = Sample.objects.filter(batch=batch)
    made = samples.count()
    assert made >= 1
    assert not samples.filter(status=Sample.Status.PENDING).exists()
    assert CheckResult.objects.filter(batch=batch).count() == made * 5
    # Every judge call went to the endpoint, once per sample, item text inside data blocks.
    assert len(llm_server.chat_requests) == made
    judged = CheckResult.objects.filter(batch=batch, kind="judge")
    assert set(judged.values_list("model", flat=True)) == {"judge / judge-model"}
    assert set(judged.values_list("prompt_version", flat=True)) == {"default-judge-checks@v1"}
    assert batch.diversity["items"] == made
    celery_app.control.purge()


def test_the_reaper_queues_a_checking_batch_whose_task_was_lost(
    dataset, settings, django_capture_on_commit_callbacks
):
    settings.SYNTHAUG_GENERATION_STALL_SECONDS = 60
    stalled = create(dataset, None, method="template", params={
        "template": "Q {a}?", "slots": {"a": ["x", "y"]}}, requested_count=1)  # fmt: skip
    fresh = create(dataset, None, method="template", params={
        "template": "Q {a}?", "slots": {"a": ["x", "y"]}}, requested_count=1)  # fmt: skip
    long_ago = timezone.now() - timedelta(minutes=5)
    Batch.objects.filter(pk=stalled.pk).update(
        status=Batch.Status.CHECKING, checks_started_at=long_ago
    )
    Batch.objects.filter(pk=fresh.pk).update(
        status=Batch.Status.CHECKING, checks_started_at=timezone.now()
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        requeued = checks_reap()

    assert requeued == [stalled.pk]
    assert len(callbacks) == 1
    stalled.refresh_from_db()
    assert stalled.checks_started_at > long_ago  # not queued again at the next sweep
