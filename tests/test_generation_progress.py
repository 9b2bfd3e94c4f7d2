"""Progress from the items, the list selectors, and the reaper that returns lost work."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from datasets.models import Batch, GenerationItem, ModelEndpoint
from datasets.selectors.generation import (
    batch_list,
    batch_progress,
    endpoint_list,
    prompt_versions,
)
from datasets.services.generation import (
    batch_cancel,
    batch_chunk_run,
    batch_start,
    generation_items_reap,
    offline_endpoints,
    prompt_default,
)
from datasets.tasks import generation_reap
from tests.test_generation_support import (
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    law_samples,
)

State = GenerationItem.State


@pytest.fixture
def started(dataset, alice):
    law_samples(dataset, 2)
    return batch_start(batch=create(dataset, alice, requested_count=8), user=alice, enqueue=False)


def set_state(batch, seqs, state, **fields):
    GenerationItem.objects.filter(batch=batch, seq__in=seqs).update(state=state, **fields)


# --- progress ------------------------------------------------------------------------------


def test_progress_adds_up_the_items_in_one_query(started, django_assert_num_queries):
    now = timezone.now()
    Batch.objects.filter(pk=started.pk).update(
        status=Batch.Status.RUNNING, started_at=now - timedelta(seconds=10)
    )
    started.refresh_from_db()
    done = {"finished_at": now, "input_tokens": 100, "output_tokens": 20, "cost": Decimal("0.25")}
    set_state(started, [0, 1], State.DONE, **done)
    set_state(
        started, [2, 3], State.FAILED, finished_at=now, error_reason="ungrounded", error_detail="x"
    )
    set_state(started, [4], State.CANCELLED, finished_at=now, error_reason="budget")
    set_state(started, [5], State.RUNNING)

    with django_assert_num_queries(1):
        progress = batch_progress(batch=started)

    assert progress.counts == {
        "pending": 2,
        "running": 1,
        "done": 2,
        "failed": 2,
        "cancelled": 1,
    }
    assert (progress.total, progress.settled) == (8, 5)
    assert progress.done_fraction == 5 / 8
    assert (progress.input_tokens, progress.output_tokens) == (200, 40)
    assert progress.cost == Decimal("0.5")
    assert progress.errors_by_reason == [("ungrounded", 2, "x"), ("budget", 1, "")]
    assert progress.is_running
    # Five settled in ten seconds, three to go: about six seconds.
    assert progress.eta_seconds == pytest.approx(6, abs=0.5)


def test_a_batch_that_is_not_running_has_no_eta(started):
    set_state(started, range(8), State.DONE, finished_at=timezone.now())
    Batch.objects.filter(pk=started.pk).update(status=Batch.Status.READY)
    started.refresh_from_db()
    progress = batch_progress(batch=started)
    assert (progress.is_running, progress.eta_seconds, progress.done_fraction) == (False, None, 1)


def test_the_lists_join_what_they_show(dataset, alice, started, django_assert_num_queries):
    create(dataset, alice, name="second")
    with django_assert_num_queries(1):
        rows = [
            (b.name, b.generator.name, b.judge.name, b.prompt_version.label, b.created_by.username)
            for b in batch_list(dataset=dataset)
        ]
    assert rows[0][0] == "second"
    assert rows[1][1:] == ("offline-generator", "offline-judge", "default-paraphrase@v1", "alice")

    ModelEndpoint.objects.create(name="off", base_url="http://x/v1", model="m", is_active=False)
    assert "off" not in {e.name for e in endpoint_list()}
    assert {e.name for e in endpoint_list()} >= {"offline-generator", "offline-judge"}

    prompt_default(purpose="grounded")
    with django_assert_num_queries(1):
        purposes = {v.template.purpose for v in prompt_versions(purpose="grounded")}
    assert purposes == {"grounded"}
    assert len({v.template.purpose for v in prompt_versions()}) >= 2


# --- the reaper ------------------------------------------------------------------------------


def test_it_returns_an_expired_claim_and_queues_the_batch_again(
    started, django_capture_on_commit_callbacks
):
    now = timezone.now()
    set_state(started, [0], State.RUNNING, attempts=1, lease_until=now - timedelta(seconds=1))
    set_state(started, [1], State.RUNNING, attempts=1, lease_until=now + timedelta(seconds=60))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = generation_items_reap(now=now)

    assert outcome.expired == 1
    assert outcome.requeued_batches == [started.pk]
    assert outcome.requeued_items == 7  # every pending slot, the returned one included
    assert len(callbacks) == 1
    item = started.items.get(seq=0)
    assert (item.state, item.attempts, item.error_reason) == (State.PENDING, 1, "lease_expired")
    assert started.items.get(seq=1).state == State.RUNNING  # its worker is alive

    # Idempotent: nothing expired now, and the batch just showed a sign of life.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = generation_items_reap(now=now)
    assert (again.expired, again.requeued_batches, len(callbacks)) == (0, [], 0)


def test_it_queues_a_batch_that_stopped_moving(
    started, settings, django_capture_on_commit_callbacks
):
    settings.SYNTHAUG_GENERATION_STALL_SECONDS = 60
    soon = timezone.now() + timedelta(seconds=30)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert generation_items_reap(now=soon).requeued_batches == []
    assert not callbacks

    later = timezone.now() + timedelta(seconds=120)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert generation_items_reap(now=later).requeued_batches == [started.pk]
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert generation_items_reap(now=later).requeued_batches == []
    assert not callbacks


def test_an_item_out_of_attempts_gives_up_instead_of_looping(started, settings):
    settings.SYNTHAUG_GENERATION_MAX_ATTEMPTS = 2
    now = timezone.now()
    set_state(
        started,
        [0],
        State.RUNNING,
        attempts=2,
        lease_until=now - timedelta(seconds=1),
        error_detail="[timeout] request timed out",
    )
    generation_items_reap(now=now)
    batch_chunk_run(batch_id=started.pk, seqs=[0])

    item = started.items.get(seq=0)
    assert (item.state, item.error_reason) == (State.FAILED, "gave_up")
    assert item.error_detail.startswith("gave up after 2 attempts")


def test_a_cancelled_batch_does_not_get_its_lost_items_back(started, alice):
    now = timezone.now()
    set_state(started, [0], State.RUNNING, attempts=1, lease_until=now - timedelta(seconds=1))
    batch_cancel(batch=started, user=alice)
    outcome = generation_items_reap(now=now)
    assert outcome.requeued_batches == []
    assert started.items.get(seq=0).state == State.CANCELLED


def test_it_settles_a_batch_whose_items_all_finished(started, django_capture_on_commit_callbacks):
    set_state(started, range(8), State.DONE, finished_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        generation_reap()  # the periodic task itself
    started.refresh_from_db()
    # Generation is over; the checking stage takes it from here.
    assert started.status == Batch.Status.CHECKING
    assert started.finished_at is not None
    assert started.checks_started_at is not None


def test_offline_endpoints_are_there_even_after_a_flush(db):
    from datasets.models import ModelEndpoint as Endpoint

    Endpoint.objects.all().delete()
    generator, judge = offline_endpoints()
    assert (generator.kind, generator.model) == ("offline", "synthaug-offline")
    assert (judge.kind, judge.model) == ("offline", "synthaug-offline-rules")
    assert offline_endpoints() == (generator, judge)
