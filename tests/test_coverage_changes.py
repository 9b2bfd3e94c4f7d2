"""Review decisions move the kept coverage counts as they are made (``CoverageChange``),
with no rebuild of the dataset's counts for each one; a rebuild takes the changes in."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from datasets.models import CoverageChange, CoverageState, Sample
from datasets.selectors.coverage import kept_counts
from datasets.services.coverage import COVERAGE_FOLD_DELAY, coverage_counts_refresh
from review.models import ReviewItem, ReviewSettings
from review.services import bulk_decide, decision_record, decision_undo, queue_build
from synthaug.engine.coverage import bucket_of
from tests.review_support import checked_batch, verdict
from tests.test_review_concurrency import _guarded

DIMENSIONS = ("topic",)
TOPICS = ("law", "health", "history")


def _kept(dataset) -> Counter:
    """What the coverage page reads: kept counts plus the changes since the last rebuild."""
    return Counter(
        {
            (tuple(sorted(kept.tags.items())), kept.difficulty, kept.bucket): kept.n
            for kept in kept_counts(dataset=dataset, dimensions=DIMENSIONS)
        }
    )


def _oracle(dataset) -> Counter:
    """The same figures straight from the samples, in Python."""
    found = Counter()
    for sample in Sample.objects.filter(dataset=dataset, duplicate_of__isnull=True):
        bucket = bucket_of(
            origin=sample.origin, status=sample.status, review_status=sample.review_status
        )
        if bucket is not None:
            tags = tuple((dim, sample.tags[dim]) for dim in DIMENSIONS if sample.tags.get(dim))
            found[(tags, sample.difficulty, bucket)] += 1
    return found


def _tagged_queue(dataset, *, count: int, seed: int = 5, overlap: float = 0.0):
    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=overlap
    )
    batch, samples = checked_batch(dataset, count=count)
    for n, sample in enumerate(samples):
        sample.tags = {"topic": TOPICS[n % len(TOPICS)], "locale": "en"} if n % 5 else {}
    Sample.objects.bulk_update(samples, ["tags"])
    queue, _ = queue_build(batch=batch, seed=seed)
    return queue


def _claim(queue, user) -> ReviewItem:
    from review.services import item_claim_next

    return item_claim_next(queue=queue, user=user)


@pytest.mark.django_db
def test_each_decision_moves_the_counts_at_once_and_a_rebuild_takes_the_changes_in(
    dataset, alice, bob
):
    queue = _tagged_queue(dataset, count=30)
    coverage_counts_refresh(dataset_id=dataset.pk)
    refreshed_at = CoverageState.objects.get(dataset=dataset).refreshed_at
    assert _kept(dataset) == _oracle(dataset)

    steps = []
    item = _claim(queue, bob)
    verdict(bob, item, approve=True)
    steps.append("approve")
    item = _claim(queue, bob)
    decision_record(
        item_id=item.pk,
        user=bob,
        action="reject",
        reason="wrong_difficulty",
        difficulty="hard",
        claim_seq=item.claim_seq,
        idempotency_key="reject-hard",
    )
    steps.append("reject as hard")
    item = _claim(queue, bob)
    decision_record(
        item_id=item.pk,
        user=bob,
        action="retag",
        difficulty="adversarial",
        claim_seq=item.claim_seq,
        idempotency_key="retag",
    )
    steps.append("re-tag")
    verdict(bob, ReviewItem.objects.get(pk=item.pk), approve=False)
    steps.append("reject the re-tagged")
    decision_undo(queue=queue, user=bob, idempotency_key="undo-1")
    steps.append("undo the reject")
    verdict(bob, ReviewItem.objects.get(pk=item.pk), approve=True)
    steps.append("approve it instead")
    undecided = queue.items.exclude(state="done").values_list("pk", flat=True)
    bulk_decide(
        queue=queue, item_ids=list(undecided[:10]), by=alice, action="reject", reason="other"
    )
    steps.append("a lead's bulk reject")

    assert _kept(dataset) == _oracle(dataset), steps
    state = CoverageState.objects.get(dataset=dataset)
    assert state.refreshed_at == refreshed_at  # no rebuild was needed to show them
    assert CoverageChange.objects.filter(dataset=dataset).count() == 2 * (
        1 + 1 + 1 + 1 + 1 + 1 + 10
    )
    rejected = Sample.objects.filter(dataset=dataset, review_status="rejected").count()
    assert rejected == 11
    # Rejected samples left their column: the page shows fewer than before.
    assert sum(_kept(dataset).values()) == 30 - rejected

    coverage_counts_refresh(dataset_id=dataset.pk)
    assert not CoverageChange.objects.filter(dataset=dataset).exists()
    assert _kept(dataset) == _oracle(dataset)


@pytest.mark.django_db
def test_a_decision_asks_for_a_rebuild_only_once_committed_and_a_fold_delay_later(
    dataset, bob, django_capture_on_commit_callbacks
):
    queue = _tagged_queue(dataset, count=6)
    coverage_counts_refresh(dataset_id=dataset.pk)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        item = _claim(queue, bob)
        decision_record(
            item_id=item.pk,
            user=bob,
            action="skip",
            claim_seq=item.claim_seq,
            idempotency_key="skip",
        )
    assert not CoverageChange.objects.exists()  # a skip moves nothing and asks nothing
    assert CoverageState.objects.get(dataset=dataset).queued_at is None
    assert len(callbacks) == 0

    with django_capture_on_commit_callbacks() as callbacks:
        verdict(bob, _claim(queue, bob), approve=False)
        assert CoverageState.objects.get(dataset=dataset).queued_at is None
    assert CoverageChange.objects.count() == 2
    asked = [c for c in callbacks if "coverage_refresh_request" in repr(c.__code__.co_names)]
    assert len(asked) == 1
    asked[0]()
    state = CoverageState.objects.get(dataset=dataset)
    assert state.queued_at is not None
    # The page shows the change at once; the rebuild is housekeeping, not a refresh.
    from datasets.services.coverage import coverage_refresh_delay

    assert coverage_refresh_delay(state, state.queued_at, delay=COVERAGE_FOLD_DELAY) >= 120


@pytest.mark.django_db
def test_a_duplicate_is_in_no_count_so_its_decision_records_nothing(dataset, bob):
    queue = _tagged_queue(dataset, count=3)
    original = Sample.objects.filter(dataset=dataset).order_by("pk").first()
    Sample.objects.filter(dataset=dataset).exclude(pk=original.pk).update(duplicate_of=original)
    coverage_counts_refresh(dataset_id=dataset.pk)
    while (item := _claim(queue, bob)) is not None:
        verdict(bob, item, approve=False)
    assert CoverageChange.objects.count() == 2  # the original's reject only
    assert _kept(dataset) == _oracle(dataset)


@pytest.mark.django_db(transaction=True)
def test_rebuilds_while_reviewers_decide_count_each_decision_once(dataset):
    """Six reviewers approve, reject, re-tag and undo while rebuilds run in a loop: each
    rebuild counts the samples and deletes the change rows in one snapshot, so what the
    page reads (counts plus changes) equals the samples throughout and at the end."""
    assert connection.vendor == "postgresql"
    queue = _tagged_queue(dataset, count=240, seed=9, overlap=0.3)
    coverage_counts_refresh(dataset_id=dataset.pk)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"reviewer{n}") for n in range(6)]
    )
    deciding = threading.Event()
    deciding.set()
    failures: list[BaseException] = []
    rebuilds, checks = [], []

    @_guarded(failures)
    def review(index: int) -> None:
        user = users[index]
        while (item := _claim(queue, user)) is not None:
            approve = (item.pk + index) % 3 != 0
            if item.pk % 5 == 0:
                decision_record(
                    item_id=item.pk,
                    user=user,
                    action="retag",
                    difficulty="hard",
                    claim_seq=item.claim_seq,
                    idempotency_key=f"retag-{item.pk}-{index}",
                )
                item = ReviewItem.objects.get(pk=item.pk)
            verdict(user, item, approve, reason="other")
            if item.pk % 7 == 0:  # undone, then decided the other way
                decision_undo(queue=queue, user=user, idempotency_key=f"undo-{item.pk}")
                verdict(user, ReviewItem.objects.get(pk=item.pk), not approve, reason="other")

    @_guarded(failures)
    def rebuild() -> None:
        while deciding.is_set():
            rebuilds.append(coverage_counts_refresh(dataset_id=dataset.pk).refreshed_at)
            # What the page reads equals the samples in any one snapshot, between rebuilds
            # as well: a change a rebuild dropped would show here until the next one.
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                checks.append(_kept(dataset) == _oracle(dataset))

    rebuilder = threading.Thread(target=rebuild)
    rebuilder.start()
    threads = [threading.Thread(target=review, args=(n,)) for n in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    deciding.clear()
    rebuilder.join(60)

    assert not failures, failures[:3]
    assert queue.items.exclude(state="done").count() == 0
    assert len(set(rebuilds)) > 10  # rebuilds landed between decisions
    assert len(checks) > 10
    assert all(checks), checks
    assert Sample.objects.filter(dataset=dataset, review_status="rejected").count() > 40
    assert Sample.objects.filter(dataset=dataset, difficulty="hard").count() > 20
    assert _kept(dataset) == _oracle(dataset)
    coverage_counts_refresh(dataset_id=dataset.pk)
    assert not CoverageChange.objects.exists()
    assert _kept(dataset) == _oracle(dataset)
