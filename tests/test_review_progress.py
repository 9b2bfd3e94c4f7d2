"""A queue's progress kept decision by decision: each verdict, undo of one, lead's bulk
action and add of items records how it moved the counts, and the figures task folds those
records in rather than recounting every item of the queue."""

from __future__ import annotations

import random

import pytest
from django.db.models import Count, Q

from review.models import Decision, ProgressChange, QueueFigures, ReviewItem, ReviewSettings
from review.selectors import queue_tally
from review.services import (
    bulk_decide,
    decision_record,
    decision_undo,
    item_claim_next,
    queue_add_samples,
    queue_build,
)
from review.services.figures import figures_recount
from review.services.progress import progress_apply
from tests.factories import make_samples
from tests.review_support import checked_batch, overlap_queue, verdict

pytestmark = pytest.mark.django_db


def _fold(queue) -> QueueFigures:
    """The figures task's body for progress; returns the stored row."""
    return figures_recount(queue_id=queue.pk, kind="progress")


def _oracle(queue) -> dict:
    """The progress figures straight from the items and decisions, through the ORM."""
    by_reason, by_stratum = {}, {}
    for item in ReviewItem.objects.filter(queue=queue):
        by_reason[item.reason] = by_reason.get(item.reason, 0) + 1
        cell = by_stratum.setdefault(item.stratum, {"total": 0, "done": 0})
        cell["total"] += 1
        cell["done"] += item.state == ReviewItem.State.DONE
    decided = list(
        Decision.objects.filter(queue=queue, action__in=("approve", "reject"))
        .filter(undone_by__isnull=True)
        .values("reviewer", "reviewer__username")
        .annotate(
            n=Count("pk"),
            approved=Count("pk", filter=Q(action="approve")),
            rejected=Count("pk", filter=Q(action="reject")),
        )
        .order_by("reviewer__username")
    )
    return {
        "total": sum(by_reason.values()),
        "done": sum(cell["done"] for cell in by_stratum.values()),
        "by_reason": dict(sorted(by_reason.items())),
        "by_stratum": dict(sorted(by_stratum.items())),
        "decided": decided,
    }


def test_folding_each_change_matches_counting_from_scratch(dataset, alice, bob, charlie):
    """Overlap, three people deciding in turn, skips, re-tags, undos of each and decisions
    again, a lead's bulk decisions and added items, folds in between: the folded figures
    equal a count from scratch and the ORM's, and no fold counted from scratch."""
    queue = overlap_queue(dataset)
    counted_at = _fold(queue).counted_at  # the build counted the empty queue from scratch
    rng = random.Random(4)
    folds = 0
    for round_ in range(9):
        for user in (bob, charlie):
            if (item := item_claim_next(queue=queue, user=user)) is None:
                continue
            action = rng.choice(["approve", "reject", "skip", "retag"])
            if action in ("approve", "reject"):
                verdict(user, item, action == "approve")
            else:
                decision_record(
                    item_id=item.pk,
                    user=user,
                    action=action,
                    difficulty="hard" if action == "retag" else "",
                    claim_seq=item.claim_seq,
                    idempotency_key=f"{action}-{round_}-{user.pk}",
                )
        if round_ % 3 == 1:
            undo = decision_undo(queue=queue, user=bob, idempotency_key=f"undo-{round_}")
            if undo is not None and undo.undoes.action in ("approve", "reject"):
                again = ReviewItem.objects.get(pk=undo.undoes.item_id)
                verdict(bob, again, rng.random() < 0.5)
        if round_ % 2:
            assert _fold(queue).value == _oracle(queue)
            assert not ProgressChange.objects.filter(queue=queue).exists()
            folds += 1
    decision_undo(queue=queue, user=charlie, idempotency_key="undo-last")  # left undone
    extra = make_samples(dataset, 3)
    assert queue_add_samples(queue=queue, sample_ids=[s.pk for s in extra], by=alice) == 3
    undecided = list(queue.items.exclude(state="done").values_list("pk", flat=True)[:5])
    assert bulk_decide(queue=queue, item_ids=undecided, by=alice, action="reject", reason="other")

    assert ProgressChange.objects.filter(queue=queue).exists()
    row = _fold(queue)
    assert folds >= 4
    assert row.counted_at == counted_at  # folded, not counted again
    assert not ProgressChange.objects.filter(queue=queue).exists()
    assert row.value == _oracle(queue) == queue_tally(queue=queue)[0]
    assert row.value["by_reason"]["added"] == 3
    assert {person["reviewer__username"] for person in row.value["decided"]} == {
        "alice",
        "bob",
        "charlie",
    }
    assert row.value["done"] >= 10


def test_only_verdicts_undos_of_them_and_added_items_record_a_change(dataset, alice, bob):
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch, seed=1)
    changes = ProgressChange.objects.filter(queue=queue)
    item = item_claim_next(queue=queue, user=bob)
    for action in ("retag", "skip"):
        decision_record(
            item_id=item.pk,
            user=bob,
            action=action,
            difficulty="hard",
            claim_seq=item.claim_seq,
            idempotency_key=action,
        )
        item.refresh_from_db()
    decision_undo(queue=queue, user=bob, idempotency_key="undo-skip")
    assert not changes.exists()
    item.refresh_from_db()
    verdict(bob, item, approve=False)
    decision_undo(queue=queue, user=bob, idempotency_key="undo-reject")
    moved = [change.change for change in changes.order_by("pk")]
    stratum = item.stratum
    assert moved == [
        {"strata": {stratum: [0, 1]}, "reasons": {}, "reviewers": {str(bob.pk): [1, 0, 1]}},
        {"strata": {stratum: [0, -1]}, "reasons": {}, "reviewers": {str(bob.pk): [-1, 0, -1]}},
    ]
    assert queue_add_samples(queue=queue, sample_ids=[item.sample_id], by=alice) == 0
    assert changes.count() == 2  # already in the queue: nothing added


def test_figures_a_change_cannot_take_are_counted_from_scratch(dataset, bob):
    """Stored figures that are off (here: one decided item too few) would go below zero
    when an undo takes a decided item out: the fold counts from scratch instead."""
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch, seed=1)
    verdict(bob, item_claim_next(queue=queue, user=bob), approve=True)
    row = _fold(queue)
    off = {
        **row.value,
        "by_stratum": {k: {**v, "done": 0} for k, v in row.value["by_stratum"].items()},
    }
    QueueFigures.objects.filter(pk=row.pk).update(value=off)
    decision_undo(queue=queue, user=bob, idempotency_key="undo")
    again = _fold(queue)
    assert again.counted_at > row.counted_at  # counted from scratch
    assert again.value == _oracle(queue)
    assert not ProgressChange.objects.filter(queue=queue).exists()


def test_applying_changes_drops_a_reviewer_left_with_no_verdict_and_refuses_below_zero():
    stored = {
        "total": 2,
        "done": 1,
        "by_reason": {"sampled": 2},
        "by_stratum": {"easy/paraphrase": {"total": 2, "done": 1}},
        "decided": [
            {"reviewer": 7, "reviewer__username": "zoe", "n": 1, "approved": 1, "rejected": 0}
        ],
    }
    undo = {"strata": {"easy/paraphrase": [0, -1]}, "reasons": {}, "reviewers": {"7": [-1, -1, 0]}}
    new = {
        "strata": {"hard/adversarial": [1, 1]},
        "reasons": {"added": 1},
        "reviewers": {"3": [1, 0, 1]},
    }
    value = progress_apply(stored, [undo, new], usernames={3: "ann"})
    assert value == {
        "total": 3,
        "done": 1,
        "by_reason": {"added": 1, "sampled": 2},
        "by_stratum": {
            "easy/paraphrase": {"total": 2, "done": 0},
            "hard/adversarial": {"total": 1, "done": 1},
        },
        "decided": [
            {"reviewer": 3, "reviewer__username": "ann", "n": 1, "approved": 0, "rejected": 1}
        ],
    }
    assert stored["decided"][0]["n"] == 1  # the stored figures are not changed in place
    assert progress_apply(stored, [undo, undo], usernames={}) is None
    done_more = {"strata": {"easy/paraphrase": [0, 2]}, "reasons": {}, "reviewers": {}}
    assert progress_apply(stored, [done_more], usernames={}) is None  # more done than items
