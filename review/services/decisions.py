"""Recording decisions: approve, reject, re-tag, skip, undo, and a lead's bulk decisions.

Decisions are append-only. A sample's ``review_status`` and human difficulty are derived
from its decisions that were not undone; the automatic difficulty (``difficulty_auto*``) is
never touched. How a decision moves its sample in the kept coverage counts, the queue's
agreement tally and its progress is recorded in its transaction; ``samples_changed`` is
sent after each commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from datasets.models import Sample
from datasets.services.coverage import COVERAGE_FIELDS, coverage_changes_record
from datasets.signals import samples_changed
from review.models import AuditEntry, Decision, ReviewItem, ReviewQueue
from review.services.agreement import agreement_change
from review.services.progress import progress_change
from review.services.queues import SKIP_OFFSET

Action = Decision.Action
_SAMPLE_FIELDS = (
    "review_status",
    "difficulty",
    "difficulty_source",
    "difficulty_set_by_id",
    "difficulty_rationale",
)


class DecisionRefused(Exception):
    """A decision that cannot be recorded; ``str(exc)`` says why, for the reviewer."""

    status = 400


class StaleClaim(DecisionRefused):
    """The claim the decision was made under is no longer the reviewer's (HTTP 409)."""

    status = 409


def _locked_samples():
    """Samples with their row locked, their review fields and what places them in the
    coverage counts loaded: not their text, which may be megabytes."""
    return Sample.objects.select_for_update().only("pk", *_SAMPLE_FIELDS, *COVERAGE_FIELDS)


def _locked_sample(pk: int) -> Sample:
    return _locked_samples().get(pk=pk)


def _snapshot(sample: Sample) -> dict:
    return {name: getattr(sample, name) for name in _SAMPLE_FIELDS}


def _changed(sample: Sample, after: dict) -> list[str]:
    fields = [name for name, value in after.items() if getattr(sample, name) != value]
    for name in fields:
        setattr(sample, name, after[name])
    return [name.removesuffix("_id") if name.endswith("_id") else name for name in fields]


def _announce(dataset_id: int, moves: list[tuple[Sample, dict, dict]]) -> None:
    """Record how the samples moved in the coverage counts, and send ``samples_changed``
    after commit with each sample's review fields before and after."""
    coverage_changes_record(dataset_id=dataset_id, moves=moves)
    changes = {sample.pk: (before, after) for sample, before, after in moves}
    transaction.on_commit(
        lambda: samples_changed.send(
            sender=Decision, dataset_id=dataset_id, sample_ids=sorted(changes), changes=changes
        )
    )


def _audit(decision: Decision, queue: ReviewQueue) -> AuditEntry:
    what = decision.get_action_display().lower()
    detail = f" ({decision.get_reason_display().lower()})" if decision.reason else ""
    level = f" to {decision.difficulty}" if decision.action == Action.RETAG else ""
    return AuditEntry(
        dataset_id=queue.dataset_id,
        queue=queue,
        decision=decision,
        actor_id=decision.reviewer_id,
        action=AuditEntry.Action.DECISION,
        summary=f"{what.capitalize()}{level}{detail}: sample {decision.sample_id}"[:300],
        before=decision.before,
        after=decision.after,
    )


def _after(sample: Sample, *, action: str, user, difficulty: str, rationale: str) -> dict:
    after = _snapshot(sample)
    if action == Action.APPROVE:
        after["review_status"] = Sample.ReviewStatus.APPROVED
    elif action == Action.REJECT:
        after["review_status"] = Sample.ReviewStatus.REJECTED
    if difficulty and action in (Action.RETAG, Action.REJECT):
        after.update(
            difficulty=difficulty,
            difficulty_source=Sample.DifficultySource.HUMAN,
            difficulty_set_by_id=user.pk,
            difficulty_rationale=rationale,
        )
    return after


def decision_record(
    *,
    item_id: int,
    user,
    action: str,
    claim_seq: int,
    idempotency_key: str,
    reason: str = "",
    comment: str = "",
    difficulty: str = "",
    rationale: str = "",
    now=None,
) -> tuple[Decision, bool]:
    """Record ``user``'s decision on the item they claimed: ``(decision, created)``.

    ``claim_seq`` is the claim the form was shown under. The same ``idempotency_key``
    twice returns the first decision (``created`` False): a double submit is recorded once.
    Raises StaleClaim when the item is no longer theirs under that claim (it expired and
    went to someone else, or a lead reassigned it), DecisionRefused when the decision is
    incomplete (a reject without a reason, a re-tag without a level).
    """
    if action not in (Action.APPROVE, Action.REJECT, Action.RETAG, Action.SKIP):
        raise DecisionRefused("Unknown action.")
    if action == Action.REJECT and not reason:
        raise DecisionRefused("Say why you reject it: choose a reason.")
    if action == Action.RETAG and not difficulty:
        raise DecisionRefused("Choose the difficulty to re-tag it with.")
    now = now or timezone.now()
    with transaction.atomic():
        # Lock the item first: a concurrent duplicate submit waits here, then finds the
        # first one's row by its key.
        item = (
            # of=self: locking the joined queue row too would serialise every reviewer.
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("queue")
            .filter(pk=item_id)
            .first()
        )
        if item is None:
            raise StaleClaim("This item is no longer in the queue.")
        existing = Decision.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
        if item.claimed_by_id != user.pk or item.claim_seq != claim_seq:
            raise StaleClaim(
                "Your claim on this item expired and it went to someone else, so this "
                "decision was not recorded. Take the next item."
            )
        if item.state == ReviewItem.State.DONE:
            raise StaleClaim("This item was already decided; nothing was recorded twice.")
        queue = item.queue
        sample = _locked_sample(item.sample_id)
        before = _snapshot(sample)
        after = _after(sample, action=action, user=user, difficulty=difficulty, rationale=rationale)
        decision = Decision.objects.create(
            queue=queue,
            item=item,
            sample_id=sample.pk,
            reviewer=user,
            action=action,
            reason=reason if action == Action.REJECT else "",
            comment=comment,
            difficulty=difficulty if action in (Action.RETAG, Action.REJECT) else "",
            claim_seq=claim_seq,
            idempotency_key=idempotency_key,
            before=before,
            after=after,
        )
        _audit(decision, queue).save()
        changed = _changed(sample, after)
        if changed:
            sample.save(update_fields=changed)
        if action in (Action.APPROVE, Action.REJECT):
            ReviewItem.objects.filter(pk=item.pk).update(
                state=ReviewItem.State.DONE, decided_at=now, lease_until=None
            )
            agreement_change(queue=queue, sample_ids=[sample.pk], added=[decision.pk])
            progress_change(
                queue=queue, decided=[item.stratum], verdicts=[(user.pk, action == Action.APPROVE)]
            )
        elif action == Action.SKIP:
            ReviewItem.objects.filter(pk=item.pk).update(
                state=ReviewItem.State.OPEN,
                lease_until=None,
                position=F("position") + SKIP_OFFSET,
            )
        else:  # a re-tag keeps the item in hand: approve or reject comes next
            ReviewItem.objects.filter(pk=item.pk).update(
                lease_until=now + timedelta(seconds=queue.lease_seconds)
            )
        if changed:
            _announce(queue.dataset_id, [(sample, before, after)])
    return decision, True


def _derived(sample: Sample, undone: Decision) -> dict:
    """The sample's review fields from its decisions still in force, after ``undone`` goes."""
    after = _snapshot(sample)
    live = Decision.objects.filter(sample=sample, undone_by__isnull=True).exclude(pk=undone.pk)
    verdict = live.filter(action__in=(Action.APPROVE, Action.REJECT)).order_by("-id").first()
    after["review_status"] = (
        Sample.ReviewStatus.APPROVED
        if verdict and verdict.action == Action.APPROVE
        else Sample.ReviewStatus.REJECTED
        if verdict
        else Sample.ReviewStatus.UNREVIEWED
    )
    if undone.difficulty:
        retag = live.exclude(difficulty="").order_by("-id").first()
        if retag is not None:
            after.update(
                difficulty=retag.difficulty,
                difficulty_source=Sample.DifficultySource.HUMAN,
                difficulty_set_by_id=retag.reviewer_id,
                difficulty_rationale=retag.after.get("difficulty_rationale", ""),
            )
        else:
            # No person's level left: back to what the sample had before the undone one.
            after.update({name: undone.before[name] for name in _SAMPLE_FIELDS[1:]})
    return after


def decision_undo(*, queue: ReviewQueue, user, idempotency_key: str, now=None) -> Decision | None:
    """Undo ``user``'s last decision in ``queue`` that is still in force; None if none.

    The undo is a new decision pointing at the one it undoes. The item comes back to the
    reviewer's hand, first, under a new claim, so they can decide it again.
    """
    now = now or timezone.now()
    with transaction.atomic():
        existing = Decision.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        last = (
            Decision.objects.filter(
                queue=queue, reviewer=user, via=Decision.Via.REVIEW, undone_by__isnull=True
            )
            .exclude(action=Action.UNDO)
            .order_by("-id")
            .first()
        )
        if last is None:
            return None
        item = ReviewItem.objects.select_for_update().get(pk=last.item_id)
        if item.state == ReviewItem.State.CLAIMED and item.claimed_by_id != user.pk:
            raise StaleClaim("Someone else is reviewing that item now; it cannot be undone.")
        if item.state == ReviewItem.State.OPEN and item.claim_seq != last.claim_seq:
            raise StaleClaim("That item went to someone else since; it cannot be undone.")
        sample = _locked_sample(last.sample_id)
        before = _snapshot(sample)
        after = _derived(sample, last)
        undo = Decision.objects.create(
            queue=queue,
            item=item,
            sample=sample,
            reviewer=user,
            action=Action.UNDO,
            undoes=last,
            claim_seq=item.claim_seq + 1,
            idempotency_key=idempotency_key,
            before=before,
            after=after,
        )
        _audit(undo, queue).save()
        changed = _changed(sample, after)
        if changed:
            sample.save(update_fields=changed)
        if last.action in (Action.APPROVE, Action.REJECT):
            verdict = (last.pk, last.reviewer_id, item.stratum, last.action == Action.APPROVE)
            agreement_change(queue=queue, sample_ids=[sample.pk], removed=[(sample.pk, verdict)])
            progress_change(
                queue=queue,
                decided=[item.stratum] if item.state == ReviewItem.State.DONE else [],
                verdicts=[(last.reviewer_id, last.action == Action.APPROVE)],
                sign=-1,
            )
        first_held = (
            ReviewItem.objects.filter(queue=queue, claimed_by=user, state=ReviewItem.State.CLAIMED)
            .exclude(pk=item.pk)
            .order_by("claimed_at")
            .values_list("claimed_at", flat=True)
            .first()
        )
        ReviewItem.objects.filter(pk=item.pk).update(
            state=ReviewItem.State.CLAIMED,
            claimed_by=user,
            claimed_at=min(now, first_held - timedelta(microseconds=1)) if first_held else now,
            lease_until=now + timedelta(seconds=queue.lease_seconds),
            claim_seq=F("claim_seq") + 1,
            decided_at=None,
            position=item.position % SKIP_OFFSET if last.action == Action.SKIP else item.position,
        )
        if changed:
            _announce(queue.dataset_id, [(sample, before, after)])
    return undo


def bulk_decide(
    *,
    queue: ReviewQueue,
    item_ids: Iterable[int],
    by,
    action: str,
    reason: str = "",
    comment: str = "",
    now=None,
) -> int:
    """A lead approves or rejects undecided items at once (after confirming on the page).

    Each item gets its own decision row (via "bulk") and audit entry, plus one audit entry
    for the whole action. Items someone is reviewing right now are released (their claim
    moves on). Returns how many items were decided.
    """
    if action not in (Action.APPROVE, Action.REJECT):
        raise DecisionRefused("Bulk actions approve or reject.")
    if action == Action.REJECT and not reason:
        raise DecisionRefused("Say why you reject them: choose a reason.")
    now = now or timezone.now()
    key = uuid.uuid4().hex
    with transaction.atomic():
        items = list(
            ReviewItem.objects.select_for_update()
            .filter(queue=queue, pk__in=list(item_ids))
            .exclude(state=ReviewItem.State.DONE)
            .order_by("pk")
        )
        if not items:
            return 0
        samples = {
            sample.pk: sample
            for sample in _locked_samples().filter(pk__in={item.sample_id for item in items})
        }
        decisions = []
        for item in items:
            sample = samples[item.sample_id]
            before = _snapshot(sample)
            after = _after(sample, action=action, user=by, difficulty="", rationale="")
            _changed(sample, after)
            decisions.append(
                Decision(
                    queue=queue,
                    item=item,
                    sample_id=sample.pk,
                    reviewer=by,
                    action=action,
                    reason=reason if action == Action.REJECT else "",
                    comment=comment,
                    via=Decision.Via.BULK,
                    claim_seq=item.claim_seq,
                    idempotency_key=f"bulk-{key}-{item.pk}",
                    before=before,
                    after=after,
                )
            )
        Decision.objects.bulk_create(decisions)
        AuditEntry.objects.bulk_create([_audit(decision, queue) for decision in decisions])
        Sample.objects.bulk_update(samples.values(), ["review_status"], batch_size=1000)
        agreement_change(queue=queue, sample_ids=samples, added=[d.pk for d in decisions])
        progress_change(
            queue=queue,
            decided=[item.stratum for item in items],
            verdicts=[(by.pk, action == Action.APPROVE)] * len(items),
        )
        ReviewItem.objects.filter(pk__in=[item.pk for item in items]).update(
            state=ReviewItem.State.DONE,
            claimed_by=by,
            decided_at=now,
            lease_until=None,
            claim_seq=F("claim_seq") + 1,
        )
        AuditEntry.objects.create(
            dataset_id=queue.dataset_id,
            queue=queue,
            actor=by,
            action=AuditEntry.Action.BULK,
            summary=f"Bulk {action}: {len(items)} items"[:300],
            before={"items": [item.pk for item in items][:1000]},
            after={"action": action, "reason": reason, "comment": comment, "count": len(items)},
        )
        _announce(queue.dataset_id, [(samples[d.sample_id], d.before, d.after) for d in decisions])
    return len(items)
