"""Coverage writes: the kept counts behind the coverage page, and the lead's targets.

The page never scans the samples. ``coverage_counts_refresh`` rebuilds a dataset's
``CoverageCount`` rows with one GROUP BY; the pipeline signals ask for a rebuild through
``coverage_refresh_request``, which coalesces a burst of requests into one queued task.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from datasets import signals
from datasets.models import CoverageCount, CoverageState, CoverageTarget, Dataset, Sample
from synthaug.engine.coverage import slice_key

# Wait this long before counting, so that the rest of a burst of changes (a batch writing
# its samples one by one, a reviewer clearing a queue) lands in the same rebuild.
COVERAGE_REFRESH_DELAY = 3
# A running batch writes samples for minutes: recount its pending items at a calmer pace.
COVERAGE_GENERATION_DELAY = 10
# A rebuild is due no sooner than this many times the last one's cost after it (at most
# COVERAGE_PATIENCE_MAX seconds): while reviewers or a batch change samples non-stop, the
# counts of a million samples (about a second to rebuild) are then rebuilt about every 20
# seconds, a twentieth of a worker, instead of every few seconds beside the web requests.
COVERAGE_STALE_FACTOR = 20
COVERAGE_PATIENCE_MAX = 120
# A request still marked queued after this long was lost (the broker restarted): queue again.
COVERAGE_REQUEST_STALE = timedelta(seconds=COVERAGE_PATIENCE_MAX) + timedelta(minutes=10)
MAX_DIMENSIONS = 2


def _tags_key(values: tuple, dimensions: list[str]) -> str:
    return slice_key({dim: value for dim, value in zip(dimensions, values, strict=True)})


def coverage_counts_refresh(*, dataset_id: int) -> CoverageState | None:
    """Rebuild the dataset's kept counts from its samples (one GROUP BY); None if it is gone.

    The count runs without a lock (it takes seconds at a million samples); only the swap of
    the rows takes the dataset's ``CoverageState`` row lock, for milliseconds, so refresh
    requests never wait behind a count. ``refreshed_at`` is when the count started: it
    saw every sample committed before then. A count that started before the one already
    stored is dropped, so an older count never overwrites a newer one. Exact duplicates
    (``duplicate_of`` set) are left out: a copy covers nothing new.
    """
    dataset = Dataset.objects.filter(pk=dataset_id).only("pk", "tag_dimensions").first()
    if dataset is None:
        return None
    dimensions = sorted(dataset.tag_dimensions or {})
    CoverageState.objects.bulk_create([CoverageState(dataset_id=dataset_id)], ignore_conflicts=True)
    started_at = timezone.now()
    started = time.perf_counter()
    projected = {f"t{i}": KeyTextTransform(dim, "tags") for i, dim in enumerate(dimensions)}
    grouped = (
        Sample.objects.filter(dataset_id=dataset_id, duplicate_of__isnull=True)
        .annotate(**projected)
        .values(*projected, "difficulty", "origin", "status", "review_status", "batch_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    merged: dict[tuple, int] = {}
    for row in grouped:
        values = tuple(row[name] or "" for name in projected)
        key = (
            _tags_key(values, dimensions),
            row["difficulty"],
            row["origin"],
            row["status"],
            row["review_status"],
            row["batch_id"],
        )
        merged[key] = merged.get(key, 0) + row["n"]
    with transaction.atomic():
        state = CoverageState.objects.select_for_update().get(dataset_id=dataset_id)
        if state.refreshed_at is not None and state.refreshed_at > started_at:
            return state  # a later count is already in
        CoverageCount.objects.filter(dataset_id=dataset_id).delete()
        CoverageCount.objects.bulk_create(
            [
                CoverageCount(
                    dataset_id=dataset_id,
                    tags=json.loads(tags_key),
                    difficulty=difficulty,
                    origin=origin,
                    status=status,
                    review_status=review_status,
                    batch_id=batch_id,
                    n=n,
                )
                for (tags_key, difficulty, origin, status, review_status, batch_id), n in (
                    merged.items()
                )
            ],
            batch_size=1000,
        )
        state.refreshed_at = started_at
        state.refresh_seconds = time.perf_counter() - started
        state.samples_counted = sum(merged.values())
        state.save(update_fields=["refreshed_at", "refresh_seconds", "samples_counted"])
    return state


def coverage_refresh_request(*, dataset_id: int, delay: float = COVERAGE_REFRESH_DELAY) -> bool:
    """Ask for a rebuild of the dataset's counts; True when this call queued the task.

    Coalesced: while a rebuild is queued and not started, further requests do nothing
    but read that (one query each: every review decision asks). The first request of a
    burst claims the request with a conditional UPDATE. Rate-bounded: the task waits
    ``delay`` seconds, or longer when the last rebuild was recent and costly
    (``coverage_refresh_delay``). It is sent after the surrounding transaction commits,
    so it never counts before the change that asked for it is visible.
    """
    from datasets.tasks import coverage_refresh_task

    now = timezone.now()
    stale = now - COVERAGE_REQUEST_STALE
    last = (
        CoverageState.objects.filter(dataset_id=dataset_id)
        .only("queued_at", "refreshed_at", "refresh_seconds", "started_at")
        .first()
    )
    # Queued and not started: the task clears the mark before it counts, so it will see
    # the change that asks now (committed before this read).
    if last is not None and last.queued_at is not None and last.queued_at >= stale:
        return False
    if last is None:
        CoverageState.objects.bulk_create(
            [CoverageState(dataset_id=dataset_id)], ignore_conflicts=True
        )
    claimed = (
        CoverageState.objects.filter(dataset_id=dataset_id)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=stale))
        .update(queued_at=now)
    )
    if claimed:
        due = coverage_refresh_delay(last, now, delay=delay)
        transaction.on_commit(
            lambda: coverage_refresh_task.apply_async((dataset_id,), countdown=due)
        )
    return bool(claimed)


def coverage_refresh_delay(state: CoverageState | None, now, *, delay: float) -> float:
    """Seconds until a requested rebuild runs: ``delay``, or until ``COVERAGE_STALE_FACTOR``
    times the last rebuild's cost has passed since the last one started, if that is later.

    The last one started is the one running, if any: a change made during a rebuild waits
    its turn after it, rather than after the rebuild stored before it (long ago, under
    steady changes), which queued the next rebuild a few seconds after each one began.
    """
    started = [at for at in (state.refreshed_at, state.started_at) if at] if state else []
    if not started:
        return delay
    patience = min(COVERAGE_PATIENCE_MAX, state.refresh_seconds * COVERAGE_STALE_FACTOR)
    return max(delay, patience - (now - max(started)).total_seconds())


def coverage_refresh_started(*, dataset_id: int) -> None:
    """Clear the queued mark (the task is running): a change from now on queues another,
    due after this one's start (``coverage_refresh_delay``)."""
    CoverageState.objects.filter(dataset_id=dataset_id).update(
        queued_at=None, started_at=timezone.now()
    )


def coverage_settings_update(
    *,
    dataset: Dataset,
    dimensions: list[str],
    default_target: int,
    ceiling: float,
) -> Dataset:
    """Set the matrix's default dimensions, the default cell target and the ceiling."""
    dataset.coverage_dimensions = list(dimensions)[:MAX_DIMENSIONS]
    dataset.coverage_default_target = default_target
    dataset.synthetic_ceiling = ceiling
    dataset.save(
        update_fields=["coverage_dimensions", "coverage_default_target", "synthetic_ceiling"]
    )
    return dataset


def coverage_targets_set(
    *,
    dataset: Dataset,
    targets: dict[tuple[str, str], int | None],
    user=None,
) -> int:
    """Set or clear per-cell targets: ``{(slice_key, difficulty): target or None}``.

    None removes the cell's own target (the dataset's default applies again). Returns how
    many cells were written. One transaction: a form's targets land together or not at all.
    """
    written = 0
    with transaction.atomic():
        for (key, difficulty), target in targets.items():
            cell = CoverageTarget.objects.filter(
                dataset=dataset, slice_key=key, difficulty=difficulty
            )
            if target is None:
                written += cell.delete()[0]
                continue
            CoverageTarget.objects.update_or_create(
                dataset=dataset,
                slice_key=key,
                difficulty=difficulty,
                defaults={"target": target, "updated_by": user},
            )
            written += 1
    return written


# --- what asks for a rebuild --------------------------------------------------------------
# Connected in DatasetsConfig.ready(). Every receiver only asks; the task counts.


@receiver(signals.samples_added, dispatch_uid="coverage_on_samples_added")
def _on_samples(sender, *, dataset_id: int, **kwargs) -> None:
    coverage_refresh_request(dataset_id=dataset_id)


@receiver(signals.samples_changed, dispatch_uid="coverage_on_samples_changed")
def _on_samples_changed(sender, *, dataset_id: int, changes=None, **kwargs) -> None:
    """Changes that move no sample between cells or columns of the matrix ask for nothing:
    every approval would otherwise rebuild a million samples' counts to count them the same.
    """
    if changes is not None and not any(_moves(b, a) for b, a in changes.values()):
        return
    coverage_refresh_request(dataset_id=dataset_id)


def _moves(before: dict, after: dict) -> bool:
    """Whether a change can move a sample in the kept counts as the page reads them: its
    difficulty, its tags or status, or whether it is rejected (``bucket_of``: an approved
    and an unreviewed sample count in the same column). The stored ``review_status`` of a
    count row may then lag (unreviewed for approved) until the next rebuild; nothing reads
    it but ``bucket_of``."""

    def rejected(fields: dict) -> bool:
        return fields.get("review_status") == Sample.ReviewStatus.REJECTED

    if rejected(before) != rejected(after):
        return True
    return any(before.get(name) != after.get(name) for name in ("difficulty", "tags", "status"))


@receiver(signals.batch_checks_finished, dispatch_uid="coverage_on_batch_checks_finished")
def _on_batch_checked(sender, *, batch, **kwargs) -> None:
    coverage_refresh_request(dataset_id=batch.dataset_id)


@receiver(post_save, sender=Sample, dispatch_uid="coverage_on_synthetic_sample")
def _on_sample_generated(sender, *, instance: Sample, created: bool, **kwargs) -> None:
    """A batch saves each generated sample on its own: count it as pending once committed.

    Hooked here so the generation code needs no change; bulk inserts (imports) send no
    post_save and announce themselves with ``samples_added`` instead.
    """
    if created and instance.origin == Sample.Origin.SYNTHETIC:
        dataset_id = instance.dataset_id
        transaction.on_commit(
            lambda: coverage_refresh_request(dataset_id=dataset_id, delay=COVERAGE_GENERATION_DELAY)
        )
