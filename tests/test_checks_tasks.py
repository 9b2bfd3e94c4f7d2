"""The checking task: one chunk per task, the next queued on commit; a judge that is down is
tried again later with a growing delay, and recorded as failed at the last attempt."""

from __future__ import annotations

import pytest

from datasets.models import Batch, Sample
from datasets.tasks import CHECK_ATTEMPTS, batch_check_chunk
from tests.test_checks_support import checking_batch, grounded, honest_judge, results
from tests.test_generation_support import (
    fast_generation,  # noqa: F401 - autouse fixture
    scripted_endpoint,
)


@pytest.fixture
def sent(monkeypatch) -> list:
    """Check tasks queued (recorded, not sent: the test runs each one itself)."""
    calls: list = []
    monkeypatch.setattr(
        batch_check_chunk, "apply_async", lambda args, kwargs, **options: calls.append(
            (args, kwargs, options)
        )
    )  # fmt: skip
    return calls


def test_each_task_checks_one_chunk_and_queues_the_next(
    dataset, settings, sent, django_capture_on_commit_callbacks
):
    settings.SYNTHAUG_CHECKS_CHUNK_SIZE = 1
    batch = checking_batch(dataset)
    grounded(batch, 0, "Which region, one?", "Normandy")
    grounded(batch, 1, "Which region, two?", "Normandy")

    with django_capture_on_commit_callbacks(execute=True):
        batch_check_chunk(batch.pk)
    assert sent == [((batch.pk,), {"attempt": 1}, {"countdown": None})]
    assert Sample.objects.filter(batch=batch, status=Sample.Status.PENDING).count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        batch_check_chunk(batch.pk)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.READY
    assert len(sent) == 1  # finished: nothing more queued


def test_a_judge_that_is_down_is_tried_again_later_then_fails_the_check(
    dataset, llm_server, settings, sent, django_capture_on_commit_callbacks
):
    settings.SYNTHAUG_GENERATION_HTTP_ATTEMPTS = 1
    settings.SYNTHAUG_GENERATION_RETRY_DELAY_SECONDS = 2
    settings.SYNTHAUG_GENERATION_RETRY_DELAY_MAX_SECONDS = 60
    llm_server.respond_with(honest_judge)
    judge = scripted_endpoint(llm_server, name="judge", model="judge-model")
    batch = checking_batch(dataset, judge=judge)
    sample = grounded(batch, 0, "Which region did the Normans name?", "Normandy")
    for _ in range(CHECK_ATTEMPTS):
        llm_server.status(503)

    for attempt in range(1, CHECK_ATTEMPTS):
        with django_capture_on_commit_callbacks(execute=True):
            batch_check_chunk(batch.pk, attempt=attempt)
        args, kwargs, options = sent[-1]
        assert args == (batch.pk,)
        assert kwargs == {"attempt": attempt + 1}
        assert options["countdown"] == 2 * 2 ** (attempt - 1)
        assert Sample.objects.get(pk=sample.pk).status == Sample.Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        batch_check_chunk(batch.pk, attempt=CHECK_ATTEMPTS)
    assert "unavailable after every retry" in results(sample)["judge"].detail
    batch.refresh_from_db()
    assert batch.status == Batch.Status.READY
    assert len(llm_server.chat_requests) == CHECK_ATTEMPTS
