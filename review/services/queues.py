"""Building a batch's spot-check queue, adding to it, reassigning its items."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import F, Max

from datasets.models import Batch, CheckResult, Dataset, Sample
from review.models import AuditEntry, ReviewItem, ReviewQueue, ReviewSettings
from synthaug.engine.agreement import overlap_pick, shuffled_positions, stratified_pick

# A skip moves an item behind every item that was never skipped.
SKIP_OFFSET = 1 << 40


def review_settings_for(*, dataset: Dataset) -> ReviewSettings:
    """The dataset's review settings, or the defaults (unsaved) when it has none."""
    found = ReviewSettings.objects.filter(dataset=dataset).first()
    return found or ReviewSettings(dataset=dataset)


def stratum_of(difficulty: str, method: str) -> str:
    return f"{difficulty or 'unset'} / {method or 'real'}"


def _latest_borderline(batch: Batch) -> set[int]:
    """Samples whose latest judge result is borderline (one pass over the batch's judge rows)."""
    latest: dict[int, bool] = {}
    rows = (
        CheckResult.objects.filter(batch=batch, kind=CheckResult.Check.JUDGE)
        .order_by("sample_id", "id")
        .values_list("sample_id", "borderline")
    )
    for sample_id, borderline in rows.iterator(chunk_size=5000):
        latest[sample_id] = borderline
    return {pk for pk, borderline in latest.items() if borderline}


def queue_build(
    *, batch: Batch, created_by=None, seed: int | None = None
) -> tuple[ReviewQueue, bool]:
    """The batch's spot-check queue, built once: ``(queue, created)``.

    Idempotent: a second call (a redelivered task, the demo, a lead) returns the existing
    queue untouched. The queue holds a stratified random sample of the batch's samples
    (strata: difficulty x method; ``sample_rate`` of each, at least ``min_per_stratum``),
    every sample whose latest judge result is borderline, and every adversarial sample.
    The pick and the order come from ``seed`` (stored), so they can be reproduced.
    """
    existing = ReviewQueue.objects.filter(batch=batch).first()
    if existing is not None:
        return existing, False
    policy = review_settings_for(dataset=batch.dataset)
    seed = secrets.randbits(48) if seed is None else seed

    strata: dict[str, list[int]] = {}
    adversarial: set[int] = set()
    rows = Sample.objects.filter(batch=batch).values_list("pk", "difficulty", "method")
    for pk, difficulty, method in rows.iterator(chunk_size=5000):
        strata.setdefault(stratum_of(difficulty, method), []).append(pk)
        if method == Batch.Method.ADVERSARIAL or difficulty == Sample.Difficulty.ADVERSARIAL:
            adversarial.add(pk)
    stratum_by_id = {pk: name for name, ids in strata.items() for pk in ids}
    borderline = _latest_borderline(batch) & stratum_by_id.keys()
    picked = stratified_pick(
        strata, rate=policy.sample_rate, minimum=policy.min_per_stratum, seed=seed
    )

    reasons: dict[int, str] = {}
    for ids in picked.values():
        reasons.update(dict.fromkeys(ids, ReviewItem.Reason.STRATIFIED))
    # Stronger reasons win: a borderline adversarial item is listed as borderline.
    reasons.update(dict.fromkeys(adversarial, ReviewItem.Reason.ADVERSARIAL))
    reasons.update(dict.fromkeys(borderline, ReviewItem.Reason.BORDERLINE))
    positions = shuffled_positions(list(reasons), seed=seed)
    overlap = overlap_pick(list(reasons), share=policy.overlap_share, seed=seed)

    composition = {
        "strata": {
            name: {"population": len(strata[name]), "sampled": len(picked[name])}
            for name in sorted(strata)
        },
        "borderline": len(borderline),
        "adversarial": len(adversarial),
        "overlap": len(overlap),
        "items": len(reasons) + len(overlap),
    }
    try:
        with transaction.atomic():
            queue = ReviewQueue.objects.create(
                dataset=batch.dataset,
                batch=batch,
                seed=seed,
                sample_rate=policy.sample_rate,
                min_per_stratum=policy.min_per_stratum,
                overlap_share=policy.overlap_share,
                lease_seconds=policy.lease_seconds,
                composition=composition,
                created_by=created_by,
            )
            items = [
                ReviewItem(
                    queue=queue,
                    sample_id=pk,
                    copy=copy,
                    reason=reason,
                    stratum=stratum_by_id[pk],
                    # The second copy comes up later in the queue, for somebody else.
                    position=positions[pk] + copy * len(positions),
                )
                for pk, reason in reasons.items()
                for copy in ((0, 1) if pk in overlap else (0,))
            ]
            ReviewItem.objects.bulk_create(items, batch_size=5000)
            queue.item_count = len(items)
            queue.save(update_fields=["item_count"])
            AuditEntry.objects.create(
                dataset=batch.dataset,
                queue=queue,
                actor=created_by,
                action=AuditEntry.Action.QUEUE_BUILT,
                summary=f"Built the spot-check queue of {batch}: {len(items)} items",
                after={"seed": seed, **composition},
            )
            from review.services.figures import figures_count_new

            figures_count_new(queue=queue)
    except IntegrityError:
        # Another task built it between our look and our insert (one queue per batch).
        return ReviewQueue.objects.get(batch=batch), False
    return queue, True


def queue_add_samples(*, queue: ReviewQueue, sample_ids: Iterable[int], by) -> int:
    """Add samples of the queue's dataset to the queue (reason "added"); returns how many
    were new. Samples already in the queue are left as they are."""
    wanted = set(sample_ids)
    samples = Sample.objects.filter(dataset_id=queue.dataset_id, pk__in=wanted).values_list(
        "pk", "difficulty", "method"
    )
    with transaction.atomic():
        # Adds to one queue take turns, so the count below sees every add before it.
        ReviewQueue.objects.select_for_update().filter(pk=queue.pk).first()
        present = set(
            ReviewItem.objects.filter(queue=queue, sample_id__in=wanted).values_list(
                "sample_id", flat=True
            )
        )
        start = (
            ReviewItem.objects.filter(queue=queue, position__lt=SKIP_OFFSET).aggregate(
                top=Max("position")
            )["top"]
            or 0
        ) + 1
        new = [
            ReviewItem(
                queue=queue,
                sample_id=pk,
                reason=ReviewItem.Reason.ADDED,
                stratum=stratum_of(difficulty, method),
                position=start + offset,
            )
            for offset, (pk, difficulty, method) in enumerate(sorted(samples))
            if pk not in present
        ]
        ReviewItem.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
        if new:
            # Here, not at the top: the progress service reads through review.selectors,
            # which imports this module.
            from review.services.progress import progress_change

            progress_change(queue=queue, added=[(item.reason, item.stratum) for item in new])
            queue.item_count = ReviewItem.objects.filter(queue=queue).count()
            ReviewQueue.objects.filter(pk=queue.pk).update(item_count=queue.item_count)
            AuditEntry.objects.create(
                dataset_id=queue.dataset_id,
                queue=queue,
                actor=by,
                action=AuditEntry.Action.ITEMS_ADDED,
                summary=f"Added {len(new)} samples to the queue",
                after={"sample_ids": [item.sample_id for item in new][:1000], "count": len(new)},
            )
    return len(new)


def queue_reassign(*, queue: ReviewQueue, item_ids: Iterable[int], to, by) -> int:
    """Give undecided items to ``to`` (or to anyone, when ``to`` is None).

    A claimed item is released: its claim number moves on, so a decision its previous
    claimer sends afterwards is refused as stale. Returns the number of items moved.
    """
    ids = list(item_ids)
    with transaction.atomic():
        items = ReviewItem.objects.filter(queue=queue, pk__in=ids).exclude(
            state=ReviewItem.State.DONE
        )
        before = list(items.values("pk", "assigned_to", "claimed_by", "state"))
        moved = items.update(
            assigned_to=to,
            state=ReviewItem.State.OPEN,
            lease_until=None,
            claim_seq=F("claim_seq") + 1,
        )
        if moved:
            AuditEntry.objects.create(
                dataset_id=queue.dataset_id,
                queue=queue,
                actor=by,
                action=AuditEntry.Action.REASSIGN,
                summary=(f"Reassigned {moved} items to {to.get_username() if to else 'anyone'}"),
                before={"items": before[:1000]},
                after={"assigned_to": to.pk if to else None, "count": moved},
            )
    return moved
