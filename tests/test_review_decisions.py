"""Claims and decisions: leases, stale submits, double submits, undo, derived sample state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from datasets.models import Sample
from datasets.signals import samples_changed
from review.models import AuditEntry, Decision, ReviewItem, ReviewSettings
from review.services import (
    DecisionRefused,
    StaleClaim,
    bulk_decide,
    decision_record,
    decision_undo,
    item_claim_next,
    queue_build,
    queue_reassign,
    review_hand,
)
from tests.factories import make_samples
from tests.review_support import checked_batch, full_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(dataset):
    return full_queue(dataset, count=6)


def _decide(item, user, action="approve", key=None, **kw):
    return decision_record(
        item_id=item.pk,
        user=user,
        action=action,
        claim_seq=item.claim_seq,
        idempotency_key=key or f"k-{item.pk}-{item.claim_seq}-{action}",
        **kw,
    )


def test_it_claims_in_queue_order_and_never_twice(queue, alice, bob):
    first = item_claim_next(queue=queue, user=alice)
    second = item_claim_next(queue=queue, user=bob)
    ordered = list(queue.items.order_by("position").values_list("pk", flat=True))
    assert [first.pk, second.pk] == ordered[:2]
    stored = ReviewItem.objects.get(pk=first.pk)
    assert stored.state == "claimed"
    assert stored.claimed_by == alice
    assert stored.claim_seq == first.claim_seq == 1


def test_an_approval_is_recorded_once_and_derives_the_sample_state(queue, bob):
    item = item_claim_next(queue=queue, user=bob)
    decision, created = _decide(item, bob, key="same-key")
    again, created_again = _decide(item, bob, key="same-key")  # the double submit
    assert created
    assert not created_again
    assert again.pk == decision.pk
    assert Decision.objects.filter(item=item).count() == 1
    assert AuditEntry.objects.filter(decision=decision).count() == 1
    sample = Sample.objects.get(pk=item.sample_id)
    assert sample.review_status == "approved"
    assert ReviewItem.objects.get(pk=item.pk).state == "done"
    assert decision.before["review_status"] == ""
    assert decision.after["review_status"] == "approved"


def test_a_decision_reads_the_review_fields_not_the_sample_text(queue, bob):
    """A sample may be megabytes of text: deciding on it locks and reads its review fields."""
    item = item_claim_next(queue=queue, user=bob)
    with CaptureQueriesContext(connection) as ctx:
        _decide(item, bob, action="retag", difficulty="hard", rationale="long")
    reads = [q["sql"] for q in ctx.captured_queries if 'FROM "datasets_sample"' in q["sql"]]
    assert len(reads) == 1
    assert "FOR UPDATE" in reads[0]
    assert '"datasets_sample"."difficulty"' in reads[0]
    assert not any(f'"datasets_sample"."{name}"' in reads[0] for name in ("input", "text"))
    assert Sample.objects.get(pk=item.sample_id).difficulty == "hard"


def test_signal_after_commit(queue, bob, django_capture_on_commit_callbacks):
    item = item_claim_next(queue=queue, user=bob)
    got: list[dict] = []

    def listener(sender, **kwargs):
        got.append(kwargs)

    samples_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _decide(item, bob, "reject", reason="unfaithful")
    finally:
        samples_changed.disconnect(listener)
    assert len(got) == 1
    assert got[0]["dataset_id"] == queue.dataset_id
    assert got[0]["sample_ids"] == [item.sample_id]
    before, after = got[0]["changes"][item.sample_id]
    assert (before["review_status"], after["review_status"]) == ("", "rejected")


def test_each_decision_that_moves_a_sample_records_its_move_in_the_coverage_counts(queue, bob):
    """Approve, reject, undo and re-tag each move the sample from one kept count to another:
    one row out and one in, written with the decision. A skip moves nothing."""
    from datasets.models import CoverageChange

    def moves() -> list[tuple[int, str, str]]:
        rows = CoverageChange.objects.order_by("pk").values_list("n", "review_status", "difficulty")
        found = list(rows)
        CoverageChange.objects.all().delete()
        return found

    item = item_claim_next(queue=queue, user=bob)
    level = Sample.objects.get(pk=item.sample_id).difficulty
    _decide(item, bob, "approve")
    assert moves() == [(-1, "", level), (1, "approved", level)]
    item = item_claim_next(queue=queue, user=bob)
    level = Sample.objects.get(pk=item.sample_id).difficulty
    _decide(item, bob, "reject", reason="unfaithful")
    assert moves() == [(-1, "", level), (1, "rejected", level)]
    decision_undo(queue=queue, user=bob, idempotency_key="undo-reject")
    assert moves() == [(-1, "rejected", level), (1, "", level)]
    held = review_hand(queue=queue, user=bob)[0]  # the undone item, back in hand
    _decide(held, bob, "retag", difficulty="hard", rationale="needs two steps")
    assert moves() == [(-1, "", level), (1, "", "hard")]
    _decide(ReviewItem.objects.get(pk=held.pk), bob, "skip")
    assert moves() == []


def test_a_reject_needs_a_reason_and_a_retag_a_level(queue, bob):
    item = item_claim_next(queue=queue, user=bob)
    with pytest.raises(DecisionRefused, match="reason"):
        _decide(item, bob, "reject")
    with pytest.raises(DecisionRefused, match="difficulty"):
        _decide(item, bob, "retag")
    assert not Decision.objects.exists()


def test_an_expired_lease_returns_the_item_and_a_stale_submit_is_refused(queue, alice, bob):
    item = item_claim_next(queue=queue, user=bob)
    later = timezone.now() + timedelta(seconds=queue.lease_seconds + 1)
    # Nobody else took it yet: bob may still decide... but here alice claims it first.
    taken = item_claim_next(queue=queue, user=alice, now=later)
    assert taken.pk == item.pk
    assert taken.claim_seq == item.claim_seq + 1
    with pytest.raises(StaleClaim, match="went to someone else"):
        _decide(item, bob)
    decision, _ = _decide(taken, alice)
    assert decision.reviewer == alice
    assert Decision.objects.filter(item=item).count() == 1


def test_a_claim_is_one_statement_on_postgresql(queue, dataset, alice, bob):
    assert connection.vendor == "postgresql"
    with CaptureQueriesContext(connection) as ctx:
        item = item_claim_next(queue=queue, user=bob)
    assert len(ctx.captured_queries) == 1
    assert "FOR UPDATE SKIP LOCKED" in ctx.captured_queries[0]["sql"]
    stored = ReviewItem.objects.get(pk=item.pk)
    assert (stored.state, stored.claimed_by, stored.claim_seq) == ("claimed", bob, 1)
    assert (stored.claimed_at, stored.lease_until) == (item.claimed_at, item.lease_until)
    assert item.sample_id == stored.sample_id
    assert item.position == stored.position


def test_the_item_table_is_vacuumed_often_on_postgresql():
    """Claims and decisions leave dead rows at the front of ``reviewitem_next``; a fixed
    autovacuum threshold (migration 0003) clears them long before the default 20 %."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'review_reviewitem'")
        options = cursor.fetchone()[0]
    assert "autovacuum_vacuum_threshold=2000" in options
    assert "autovacuum_vacuum_scale_factor=0.0" in options


def _sample_updates() -> tuple[int, int]:
    """This transaction's updates of the samples table so far: (all, heap-only)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE relname = 'datasets_sample'"
        )
        return cursor.fetchone()


def test_a_review_status_update_touches_no_index_on_postgresql(dataset):
    """Samples' pages keep room (fillfactor 85, migration datasets 0015), so the update a
    decision makes, spread over the table as a queue spreads it, is heap-only: none of the
    table's nineteen indexes is written. On full pages none would be."""
    samples = make_samples(dataset, 200)
    before = _sample_updates()
    decided = samples[::10]
    for sample in decided:
        sample.review_status = Sample.ReviewStatus.APPROVED
        sample.save(update_fields=["review_status"])
    updated, hot = (after - was for after, was in zip(_sample_updates(), before, strict=True))
    assert updated == hot == len(decided) == 20


def test_expired_leases_are_claimed_first_and_renewal_spares_them(queue, alice, bob):
    first, second = review_hand(queue=queue, user=bob, size=2)
    now = timezone.now()
    ReviewItem.objects.filter(pk=second.pk).update(lease_until=now - timedelta(seconds=1))
    # No sweep ran: the item is still stored as bob's, and still goes to alice before any
    # open item (all of which come earlier in no order that matters here).
    assert ReviewItem.objects.get(pk=second.pk).state == "claimed"
    taken = item_claim_next(queue=queue, user=alice, now=now)
    assert taken.pk == second.pk
    assert taken.claim_seq == second.claim_seq + 1
    # bob's page renews what is still his, and leaves alice's new lease alone.
    later = now + timedelta(seconds=30)
    held = review_hand(queue=queue, user=bob, size=1, now=later)
    assert [i.pk for i in held] == [first.pk]
    assert ReviewItem.objects.get(pk=first.pk).lease_until == later + timedelta(
        seconds=queue.lease_seconds
    )
    assert ReviewItem.objects.get(pk=second.pk).lease_until == taken.lease_until
    with pytest.raises(StaleClaim):
        _decide(second, bob)


def test_assigned_and_overlapping_items_in_the_one_statement(dataset, alice, bob):
    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=1.0
    )
    batch, _ = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch)
    copies = list(queue.items.order_by("position"))
    reserved = copies[0]
    queue_reassign(queue=queue, item_ids=[reserved.pk], to=alice, by=alice)
    # bob decides everything he may take: never the item reserved for alice, never both
    # copies of a sample, even once his lease on one copy ran out and alice took it.
    later = timezone.now()
    mine = []
    while (item := item_claim_next(queue=queue, user=bob, now=later)) is not None:
        mine.append(item)
        later += timedelta(seconds=1)
    assert reserved.pk not in {i.pk for i in mine}
    assert len({i.sample_id for i in mine}) == len(mine) == 4
    expired = later + timedelta(seconds=queue.lease_seconds + 1)
    theirs = []
    while (item := item_claim_next(queue=queue, user=alice, now=expired)) is not None:
        theirs.append(item)
    # Her own lease on nothing, bob's leases run out: alice still gets one copy of each
    # sample, never two, whichever copies (bob's expired ones come first).
    assert len(theirs) == 4
    assert {i.sample_id for i in theirs} == {i.sample_id for i in copies}
    assert {i.claimed_by for i in theirs} == {alice}


def test_an_expired_lease_nobody_took_can_still_be_decided(queue, bob):
    item = item_claim_next(queue=queue, user=bob)
    ReviewItem.objects.filter(pk=item.pk).update(lease_until=timezone.now() - timedelta(1))
    decision, created = _decide(item, bob)
    assert created
    assert decision.item_id == item.pk


def test_a_hand_prefetches_and_keeps_its_items(queue, bob):
    hand = review_hand(queue=queue, user=bob)
    assert len(hand) == 3
    assert [i.pk for i in review_hand(queue=queue, user=bob)] == [i.pk for i in hand]
    _decide(hand[0], bob)
    after = review_hand(queue=queue, user=bob)
    assert [i.pk for i in after[:2]] == [hand[1].pk, hand[2].pk]
    assert len(after) == 3


def test_retag_keeps_the_automatic_tag_and_undo_restores(queue, bob):
    item = item_claim_next(queue=queue, user=bob)
    sample = Sample.objects.get(pk=item.sample_id)
    auto = sample.difficulty_auto
    _decide(item, bob, "retag", difficulty="hard", rationale="three constraints")
    sample.refresh_from_db()
    assert sample.difficulty == "hard"
    assert sample.difficulty_source == "human"
    assert sample.difficulty_set_by == bob
    assert sample.difficulty_rationale == "three constraints"
    assert sample.difficulty_auto == auto
    # The item stays in hand after a re-tag; the verdict comes next.
    assert ReviewItem.objects.get(pk=item.pk).state == "claimed"
    _decide(item, bob, "approve")
    sample.refresh_from_db()
    assert sample.review_status == "approved"

    undo = decision_undo(queue=queue, user=bob, idempotency_key="undo-1")
    sample.refresh_from_db()
    assert undo.undoes.action == "approve"
    assert sample.review_status == ""
    assert sample.difficulty == "hard"  # the re-tag is still in force
    back = ReviewItem.objects.get(pk=item.pk)
    assert back.state == "claimed"
    assert back.claimed_by == bob
    assert review_hand(queue=queue, user=bob)[0].pk == item.pk  # first again

    decision_undo(queue=queue, user=bob, idempotency_key="undo-2")
    sample.refresh_from_db()
    assert sample.difficulty == auto
    assert sample.difficulty_source == "auto"
    assert sample.difficulty_set_by is None
    # Append-only: four rows, none edited away.
    assert list(Decision.objects.order_by("id").values_list("action", flat=True)) == [
        "retag",
        "approve",
        "undo",
        "undo",
    ]
    assert decision_undo(queue=queue, user=bob, idempotency_key="undo-2").pk == (
        Decision.objects.get(idempotency_key="undo-2").pk
    )


def test_skip_moves_the_item_to_the_back(queue, bob, alice):
    item = item_claim_next(queue=queue, user=bob)
    _decide(item, bob, "skip")
    stored = ReviewItem.objects.get(pk=item.pk)
    assert stored.state == "open"
    last = queue.items.order_by("-position").first()
    assert last.pk == item.pk
    assert item_claim_next(queue=queue, user=alice).pk != item.pk


def test_overlap_copies_go_to_two_people(dataset, alice, bob):
    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=1.0
    )
    batch, _ = checked_batch(dataset, count=3)
    queue, _ = queue_build(batch=batch)
    mine = []
    while (item := item_claim_next(queue=queue, user=bob)) is not None:
        mine.append(item.sample_id)
    assert sorted(mine) == sorted(set(mine))  # never both copies of one sample
    assert len(mine) == 3
    theirs = []
    while (item := item_claim_next(queue=queue, user=alice)) is not None:
        theirs.append(item.sample_id)
    assert sorted(theirs) == sorted(mine)


def test_reassign_releases_a_claim_and_bulk_decides_with_audit(queue, alice, bob):
    item = item_claim_next(queue=queue, user=bob)
    assert queue_reassign(queue=queue, item_ids=[item.pk], to=alice, by=alice) == 1
    with pytest.raises(StaleClaim):
        _decide(item, bob)
    stored = ReviewItem.objects.get(pk=item.pk)
    assert stored.assigned_to == alice
    # Assigned items only go to their assignee.
    others = {i.pk for i in iter(lambda: item_claim_next(queue=queue, user=bob), None)}
    assert item.pk not in others

    count = bulk_decide(
        queue=queue,
        item_ids=queue.items.values_list("pk", flat=True),
        by=alice,
        action="reject",
        reason="low_quality",
    )
    assert count == 6
    assert Sample.objects.filter(review_status="rejected").count() == 6
    assert Decision.objects.filter(via="bulk").count() == 6
    assert AuditEntry.objects.filter(action="bulk").count() == 1
    assert AuditEntry.objects.filter(action="decision").count() == 6
    assert bulk_decide(queue=queue, item_ids=[item.pk], by=alice, action="approve") == 0
