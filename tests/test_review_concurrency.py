"""50 reviewers drain a 5,000-item queue at once on PostgreSQL: real threads, each with its
own connection, committed data (a transactional test), so SKIP LOCKED is what is tested."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from review.models import Decision, ReviewItem, ReviewSettings
from review.services import decision_record, item_claim_next, queue_build
from tests.review_support import checked_batch, verdict

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = 5000
REVIEWERS = 50


def test_fifty_claimers_drain_five_thousand_items_exactly_once(dataset):
    assert connection.vendor == "postgresql"
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=ITEMS)
    queue, _ = queue_build(batch=batch, seed=11)
    assert queue.items.count() == ITEMS
    # Services take the user; no password hashing needed for 50 of them.
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"reviewer{n}") for n in range(REVIEWERS)]
    )
    claimed, failures = _drain(queue, users)

    assert not failures, failures[:3]
    every_claim = Counter(pk for claims in claimed for pk in claims)
    assert len(every_claim) == ITEMS  # zero left unclaimed
    assert max(every_claim.values()) == 1  # zero claimed twice
    assert sum(1 for claims in claimed if claims) > REVIEWERS // 2  # really concurrent
    assert Decision.objects.filter(queue=queue).count() == ITEMS
    per_item = Counter(Decision.objects.filter(queue=queue).values_list("item_id", flat=True))
    assert set(per_item.values()) == {1}  # exactly one decision each
    assert set(queue.items.values_list("state", "claim_seq").distinct()) == {
        (ReviewItem.State.DONE, 1)
    }


def _guarded(failures: list[BaseException]):
    """A thread's work: what it raises is kept for the test's thread to surface, and its
    database connections are closed when it ends."""

    def wrap(work):
        @functools.wraps(work)
        def run(*args) -> None:
            try:
                work(*args)
            except BaseException as exc:
                failures.append(exc)
            finally:
                connections.close_all()

        return run

    return wrap


def _drain(queue, users) -> tuple[list[list[int]], list[BaseException]]:
    """Every user claims and approves at once until nothing is left for them."""
    barrier = threading.Barrier(len(users))
    claimed: list[list[int]] = [[] for _ in users]
    failures: list[BaseException] = []

    @_guarded(failures)
    def review(index: int) -> None:
        user = users[index]
        barrier.wait(30)
        while (item := item_claim_next(queue=queue, user=user)) is not None:
            claimed[index].append(item.pk)
            decision_record(
                item_id=item.pk,
                user=user,
                action="approve",
                claim_seq=item.claim_seq,
                idempotency_key=f"{user.pk}-{item.pk}",
            )

    threads = [threading.Thread(target=review, args=(n,)) for n in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return claimed, failures


def test_expired_leases_are_taken_once_each_by_concurrent_claimers(dataset):
    """A reviewer who left holds 300 items whose leases ran out; 20 others drain the queue
    at once. With expiry in the claim's condition (no sweep), each of those items is still
    claimed exactly once, and the one who left can no longer decide any of them."""
    assert connection.vendor == "postgresql"
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=1000)
    queue, _ = queue_build(batch=batch, seed=12)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"reviewer{n}") for n in range(21)]
    )
    gone, users = users[0], users[1:]
    held = [item_claim_next(queue=queue, user=gone) for _ in range(300)]
    ReviewItem.objects.filter(pk__in=[i.pk for i in held]).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    claimed, failures = _drain(queue, users)

    assert not failures, failures[:3]
    every_claim = Counter(pk for claims in claimed for pk in claims)
    assert len(every_claim) == 1000
    assert max(every_claim.values()) == 1
    per_item = Counter(Decision.objects.filter(queue=queue).values_list("item_id", flat=True))
    assert len(per_item) == 1000
    assert set(per_item.values()) == {1}
    assert not Decision.objects.filter(reviewer=gone).exists()
    assert set(
        queue.items.filter(pk__in=[i.pk for i in held]).values_list("claim_seq", flat=True)
    ) == {2}


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_only_a_claim_that_is_its_own_transaction_skips_the_log_flush(dataset, bob):
    """A claim alone commits without waiting for the log (a lease: a crash loses what an
    expiry would), and the setting ends with it: the decision after it, and a claim made
    inside a caller's transaction, keep the synchronous commit."""
    assert connection.vendor == "postgresql"
    assert _synchronous_commit() == "on"
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch, seed=13)

    with CaptureQueriesContext(connection) as alone:
        item = item_claim_next(queue=queue, user=bob)
    assert "set_config('synchronous_commit', 'off', true)" in alone.captured_queries[0]["sql"]
    assert _synchronous_commit() == "on"  # local to the claim's own transaction
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == bob
    decision_record(
        item_id=item.pk, user=bob, action="approve", claim_seq=item.claim_seq, idempotency_key="a"
    )
    assert _synchronous_commit() == "on"

    with transaction.atomic(), CaptureQueriesContext(connection) as inside:
        inner = item_claim_next(queue=queue, user=bob)
        assert _synchronous_commit() == "on"
    assert inner is not None
    assert "synchronous_commit" not in inside.captured_queries[0]["sql"]


def test_folds_while_reviewers_decide_count_each_decision_once(dataset):
    """Eight reviewers approve, reject and undo on an overlapping queue while the figures
    task folds their changes in a loop: each fold reads and deletes the change rows in one
    snapshot, so after the last fold the figures (agreement and progress) equal a count
    from scratch, without one having been made."""
    from review.models import AgreementChange, ProgressChange
    from review.selectors import agreement_figures, queue_tally
    from review.services import decision_undo
    from review.services.figures import figures_recount

    assert connection.vendor == "postgresql"
    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=0.5
    )
    batch, _ = checked_batch(dataset, count=300)
    queue, _ = queue_build(batch=batch, seed=14)
    counted_at = figures_recount(queue_id=queue.pk, kind="agreement").counted_at
    progress_counted_at = figures_recount(queue_id=queue.pk, kind="progress").counted_at
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"reviewer{n}") for n in range(8)]
    )
    deciding = threading.Event()
    deciding.set()
    failures: list[BaseException] = []
    folds = []

    @_guarded(failures)
    def review(index: int) -> None:
        user = users[index]
        while (item := item_claim_next(queue=queue, user=user)) is not None:
            approve = (item.pk + index) % 3 != 0
            verdict(user, item, approve, reason="other")
            if item.pk % 7 == 0:  # undone, then decided the other way
                decision_undo(queue=queue, user=user, idempotency_key=f"undo-{item.pk}")
                verdict(user, ReviewItem.objects.get(pk=item.pk), not approve, reason="other")

    @_guarded(failures)
    def fold() -> None:
        while deciding.is_set():
            folds.append(figures_recount(queue_id=queue.pk, kind="agreement").version)
            figures_recount(queue_id=queue.pk, kind="progress")

    folder = threading.Thread(target=fold)
    folder.start()
    threads = [threading.Thread(target=review, args=(n,)) for n in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    deciding.clear()
    folder.join(60)

    assert not failures, failures[:3]
    assert queue.items.exclude(state="done").count() == 0
    assert Decision.objects.filter(queue=queue, action="undo").count() > 10
    assert len(set(folds)) > 10  # folds landed between decisions
    row = figures_recount(queue_id=queue.pk, kind="agreement")
    assert row.counted_at == counted_at  # every fold folded; none counted from scratch
    assert not AgreementChange.objects.filter(queue=queue).exists()
    assert (row.value, row.detail) == agreement_figures(queue=queue)
    assert row.value["people"]["n"] > 50
    progress = figures_recount(queue_id=queue.pk, kind="progress")
    assert progress.counted_at == progress_counted_at
    assert not ProgressChange.objects.filter(queue=queue).exists()
    assert progress.value == queue_tally(queue=queue)[0]
    assert progress.value["done"] == queue.items.count() > 300  # overlap: two items each
    assert len(progress.value["decided"]) == 8
