"""Kept coverage counts: the rebuild, the coalesced requests, and the signals that ask."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from datasets import signals
from datasets.models import Batch, CoverageCount, CoverageState, Sample
from datasets.selectors.coverage import coverage_view
from datasets.services.coverage import (
    COVERAGE_PATIENCE_MAX,
    COVERAGE_REQUEST_STALE,
    COVERAGE_STALE_FACTOR,
    coverage_counts_refresh,
    coverage_refresh_delay,
    coverage_refresh_request,
    coverage_refresh_started,
)
from tests.factories import make_sample, make_samples
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.django_db


def _cell(dataset, row, difficulty, dims=("topic",)):
    return coverage_view(dataset=dataset, dimensions=dims).matrix.cell(row, difficulty)


def test_it_counts_each_state_in_its_bucket_and_leaves_out_duplicates(dataset):
    law = {"topic": "law", "locale": "de"}
    make_samples(dataset, 3, tags=law, difficulty="hard")
    batch = Batch.objects.create(dataset=dataset, method="paraphrase", requested_count=9)
    for status, review in [
        ("accepted", ""),
        ("accepted", "approved"),
        ("accepted", "rejected"),
        ("pending", ""),
        ("rejected", ""),
    ]:
        make_sample(
            dataset,
            origin="synthetic",
            batch=batch,
            tags=law,
            difficulty="hard",
            status=status,
            review_status=review,
        )
    original = make_sample(dataset, tags=law, difficulty="hard")
    make_sample(
        dataset,
        tags=law,
        difficulty="hard",
        duplicate_of=original,
        content_hash=original.content_hash,
    )

    state = coverage_counts_refresh(dataset_id=dataset.pk)

    assert state.refreshed_at is not None
    assert state.samples_counted == 4 + 5  # the duplicate is not counted
    cell = _cell(dataset, ("law",), "hard")
    assert (cell.real, cell.synthetic_approved, cell.synthetic_pending) == (4, 2, 1)
    assert cell.gap == dataset.coverage_default_target - 6


def test_it_rebuilds_from_scratch_so_a_second_refresh_does_not_double(dataset):
    make_samples(dataset, 5, tags={"topic": "law"}, difficulty="easy")
    coverage_counts_refresh(dataset_id=dataset.pk)
    rows = CoverageCount.objects.filter(dataset=dataset).count()
    Sample.objects.filter(dataset=dataset).update(difficulty="medium")
    coverage_counts_refresh(dataset_id=dataset.pk)
    assert CoverageCount.objects.filter(dataset=dataset).count() == rows
    assert _cell(dataset, ("law",), "easy").real == 0
    assert _cell(dataset, ("law",), "medium").real == 5


def test_it_keys_counts_by_the_declared_dimensions_only(dataset):
    make_samples(dataset, 2, tags={"topic": "law", "colour": "red"}, difficulty="easy")
    make_samples(dataset, 3, tags={"topic": "law", "colour": "blue"}, difficulty="easy")
    coverage_counts_refresh(dataset_id=dataset.pk)
    # "colour" is not a dimension of the dataset: one combination, not two.
    assert list(CoverageCount.objects.filter(dataset=dataset).values_list("tags", "n")) == [
        ({"topic": "law"}, 5)
    ]


def test_requests_in_a_burst_queue_one_refresh(
    dataset, django_capture_on_commit_callbacks, django_assert_num_queries
):
    with django_capture_on_commit_callbacks() as callbacks:
        first = coverage_refresh_request(dataset_id=dataset.pk)
        # Every review decision asks: while one is queued, asking is one read.
        with django_assert_num_queries(5):
            again = [coverage_refresh_request(dataset_id=dataset.pk) for _ in range(5)]
    assert first is True
    assert again == [False] * 5
    assert len(callbacks) == 1  # one task sent, after commit
    assert CoverageState.objects.get(dataset=dataset).queued_at is not None


def test_a_rebuild_waits_in_proportion_to_the_last_ones_cost():
    now = timezone.now()
    # A million samples took 1.5 s to count just now: the next count waits 20 x 1.5 s.
    state = CoverageState(refreshed_at=now, refresh_seconds=1.5)
    assert coverage_refresh_delay(state, now, delay=3) == pytest.approx(1.5 * COVERAGE_STALE_FACTOR)
    later = now + timedelta(seconds=25)
    assert coverage_refresh_delay(state, later, delay=3) == pytest.approx(5.0)
    # Cheap counts (a small dataset) and old ones wait only the requested delay.
    assert coverage_refresh_delay(state, now + timedelta(minutes=5), delay=3) == 3
    small = CoverageState(refreshed_at=now, refresh_seconds=0.01)
    assert coverage_refresh_delay(small, now, delay=3) == 3
    assert coverage_refresh_delay(None, now, delay=10) == 10
    slow = CoverageState(refreshed_at=now, refresh_seconds=60)
    assert coverage_refresh_delay(slow, now, delay=3) == COVERAGE_PATIENCE_MAX


def test_a_change_during_a_rebuild_queues_the_next_after_it(dataset):
    """Changes keep coming while a slow rebuild runs: the one queued meanwhile is due its
    turn after the running rebuild started, not 3 s later because the stored count is old."""
    long_ago = timezone.now() - timedelta(minutes=10)
    CoverageState.objects.create(dataset=dataset, refreshed_at=long_ago, refresh_seconds=1.5)
    coverage_refresh_started(dataset_id=dataset.pk)  # the task begins to count
    state = CoverageState.objects.only(
        "queued_at", "refreshed_at", "refresh_seconds", "started_at"
    ).get(dataset=dataset)
    assert state.queued_at is None  # a change from now on queues the next rebuild ...
    due = coverage_refresh_delay(state, timezone.now(), delay=3)
    assert due == pytest.approx(1.5 * COVERAGE_STALE_FACTOR, abs=2)  # ... after this one


def test_a_request_lost_long_ago_is_queued_again(dataset, django_capture_on_commit_callbacks):
    CoverageState.objects.create(
        dataset=dataset, queued_at=timezone.now() - COVERAGE_REQUEST_STALE * 2
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert coverage_refresh_request(dataset_id=dataset.pk) is True
    assert len(callbacks) == 1


def test_the_pipeline_signals_ask_for_a_refresh(dataset, django_capture_on_commit_callbacks):
    batch = Batch.objects.create(dataset=dataset, method="paraphrase", requested_count=1)
    for send in (
        lambda: signals.samples_added.send(sender=None, dataset_id=dataset.pk, sample_ids=[1]),
        lambda: signals.samples_changed.send(sender=None, dataset_id=dataset.pk, sample_ids=[1]),
        lambda: signals.batch_checks_finished.send(sender=Batch, batch=batch),
    ):
        CoverageState.objects.filter(dataset=dataset).update(queued_at=None)
        with django_capture_on_commit_callbacks() as callbacks:
            send()
        # One refresh per signal (other apps may react to the same signal too).
        ours = [
            c for c in callbacks if "coverage_refresh_request" in getattr(c, "__qualname__", "")
        ]
        assert len(ours) == 1
        assert CoverageState.objects.get(dataset=dataset).queued_at is not None


def test_changes_a_sender_recorded_itself_ask_for_nothing(
    dataset, django_capture_on_commit_callbacks
):
    """Review decisions pass their ``changes`` and record how they move the counts in their
    own transaction (tests/test_coverage_changes.py): no rebuild for each one."""
    change = ({"review_status": ""}, {"review_status": "rejected"})
    with django_capture_on_commit_callbacks(execute=True):
        signals.samples_changed.send(
            sender=None, dataset_id=dataset.pk, sample_ids=[1], changes={1: change}
        )
    assert not CoverageState.objects.filter(dataset=dataset, queued_at__isnull=False).exists()


def test_a_generated_sample_asks_for_a_refresh_once_committed(
    dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        make_sample(dataset, origin="synthetic", status="pending", tags={"topic": "law"})
        make_sample(dataset, tags={"topic": "law"})  # real: imports announce themselves
    assert len(callbacks) == 1
    assert not CoverageState.objects.filter(dataset=dataset).exists()  # nothing before commit
    callbacks[0]()
    assert CoverageState.objects.get(dataset=dataset).queued_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_refreshes_the_counts_after_a_review_signal(alice, bob):
    from datasets.services.datasets import dataset_create

    dataset = dataset_create(
        name="Worker", slug="worker", created_by=alice, tag_dimensions={"topic": ["law"]}
    )
    make_samples(dataset, 4, tags={"topic": "law"}, difficulty="easy")
    assert connection.in_atomic_block is False
    with celery_worker():
        signals.samples_changed.send(sender=None, dataset_id=dataset.pk, sample_ids=[])
        wait_for(
            lambda: CoverageState.objects.filter(
                dataset=dataset, refreshed_at__isnull=False
            ).exists(),
            timeout=30,
            what="the worker to refresh the counts",
        )
    state = CoverageState.objects.get(dataset=dataset)
    assert state.queued_at is None
    assert state.samples_counted == 4
    assert _cell(dataset, ("law",), "easy").real == 4


def test_a_count_older_than_the_stored_one_is_dropped(dataset):
    make_samples(dataset, 2, tags={"topic": "law"}, difficulty="easy")
    coverage_counts_refresh(dataset_id=dataset.pk)
    # A count that started later (here: in the future) is already in; this one is older.
    later = timezone.now() + COVERAGE_REQUEST_STALE
    CoverageState.objects.filter(dataset=dataset).update(refreshed_at=later)
    make_samples(dataset, 3, tags={"topic": "law"}, difficulty="easy")
    state = coverage_counts_refresh(dataset_id=dataset.pk)
    assert state.refreshed_at == later
    assert _cell(dataset, ("law",), "easy").real == 2
