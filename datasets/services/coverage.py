"""Coverage writes: the kept counts behind the coverage page, and the lead's targets.

The page never scans the samples. ``coverage_counts_refresh`` rebuilds a dataset's
``CoverageCount`` rows with one GROUP BY; the pipeline signals ask for a rebuild through
``coverage_refresh_request``, which coalesces a burst of requests into one queued task.
Review decisions do not wait for a rebuild: ``coverage_changes_record`` writes how each
moved its sample (``CoverageChange``) in the decision's transaction, the page adds those
rows to the counts, and a rebuild, due ``COVERAGE_FOLD_DELAY`` later, takes them in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from datasets import signals
from datasets.models import (
    CoverageChange,
    CoverageCount,
    CoverageState,
    CoverageTarget,
    Dataset,
    Sample,
)
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
# Review decisions' moves are on the page at once (``CoverageChange``); a rebuild takes them
# into the counts this long after the first, so the rows to add stay few.
COVERAGE_FOLD_DELAY = COVERAGE_PATIENCE_MAX
MAX_DIMENSIONS = 2
# The sample fields a decision must have loaded to record how it moved the sample.
COVERAGE_FIELDS = ("tags", "origin", "status", "batch_id", "duplicate_of_id")
# Serialises rebuilds of one dataset on PostgreSQL (pg_advisory_xact_lock(space, dataset)).
_REBUILD_LOCK_SPACE = 0x5C0E


def _tags_key(values: tuple, dimensions: list[str]) -> str:
    return slice_key({dim: value for dim, value in zip(dimensions, values, strict=True)})


def coverage_counts_refresh(*, dataset_id: int) -> CoverageState | None:
    """Rebuild the dataset's kept counts from its samples (one GROUP BY); None if it is gone.

    The count takes in the decisions' ``CoverageChange`` rows: the counting statement
    deletes the rows it has seen (on PostgreSQL in a data-modifying CTE, so both share one
    snapshot; SQLite's IMMEDIATE transaction holds the write lock throughout), and the
    counts are swapped in the same transaction. Rebuilds of one dataset take turns (an
    advisory lock on PostgreSQL); the ``CoverageState`` row is locked only for the swap,
    for milliseconds, so refresh requests never wait behind a count. ``refreshed_at`` is
    when the count started: it saw every sample committed before then. A count that
    started before the one already stored is dropped, so an older count never overwrites a
    newer one. Exact duplicates (``duplicate_of`` set) are left out: a copy covers nothing
    new.
    """
    dataset = Dataset.objects.filter(pk=dataset_id).only("pk", "tag_dimensions").first()
    if dataset is None:
        return None
    dimensions = sorted(dataset.tag_dimensions or {})
    CoverageState.objects.bulk_create([CoverageState(dataset_id=dataset_id)], ignore_conflicts=True)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [_REBUILD_LOCK_SPACE, dataset_id]
                )
        started_at = timezone.now()
        started = time.perf_counter()
        merged = _count(dataset_id, dimensions)
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


def _count(dataset_id: int, dimensions: list[str]) -> dict[tuple, int]:
    """The samples grouped by count key, deleting the change rows the count has seen
    (call in the rebuild's transaction)."""
    projected = {f"t{i}": KeyTextTransform(dim, "tags") for i, dim in enumerate(dimensions)}
    grouped = (
        Sample.objects.filter(dataset_id=dataset_id, duplicate_of__isnull=True)
        .annotate(**projected)
        .values(*projected, "difficulty", "origin", "status", "review_status", "batch_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    if connection.vendor == "postgresql":
        sql, params = grouped.query.sql_with_params()
        changes = CoverageChange._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH gone AS (DELETE FROM {changes} WHERE dataset_id = %s) {sql}",  # noqa: S608
                [dataset_id, *params],
            )
            names = [column.name for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    else:  # SQLite: the transaction already holds the write lock, nothing commits between
        CoverageChange.objects.filter(dataset_id=dataset_id).delete()
        rows = list(grouped)
    merged: dict[tuple, int] = {}
    for row in rows:
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
    return merged


def coverage_changes_record(*, dataset_id: int, moves: Iterable[tuple[Sample, dict, dict]]) -> int:
    """Record how review decisions moved samples between kept counts; returns the rows
    written. Call inside the decisions' transaction, with each sample (its
    ``COVERAGE_FIELDS`` loaded) and its review fields before and after.

    A sample whose review status or difficulty changed leaves its count (-1) and enters
    another (+1); an exact duplicate is in no count. Asks (after commit) for a rebuild, due
    ``COVERAGE_FOLD_DELAY`` later, to take the rows into the counts.
    """
    rows = []
    for sample, before, after in moves:
        if sample.duplicate_of_id is not None:
            continue
        if all(before[name] == after[name] for name in ("review_status", "difficulty")):
            continue
        tags = json.loads(slice_key(sample.tags or {}))
        rows += [
            CoverageChange(
                dataset_id=dataset_id,
                tags=tags,
                difficulty=fields["difficulty"] or "",
                origin=sample.origin,
                status=sample.status,
                review_status=fields["review_status"] or "",
                batch_id=sample.batch_id,
                n=n,
            )
            for n, fields in ((-1, before), (1, after))
        ]
    if rows:
        CoverageChange.objects.bulk_create(rows, batch_size=1000)
        # After commit: a request made in the transaction would hold the state row's lock
        # (its conditional UPDATE) until then, and the next reviewer's request would wait.
        transaction.on_commit(
            lambda: coverage_refresh_request(dataset_id=dataset_id, delay=COVERAGE_FOLD_DELAY)
        )
    return len(rows)


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
    """A sender that passes its ``changes`` (review decisions) recorded how they move the
    counts itself (``coverage_changes_record``): nothing to rebuild for them now."""
    if changes is not None:
        return
    coverage_refresh_request(dataset_id=dataset_id)


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
