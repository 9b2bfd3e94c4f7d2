"""A queue's settled figures (progress, agreement), kept in ``QueueFigures`` and recounted
by a task, so no page request pays for counting them.

While reviewers work the queue's version (its newest audit entry) moves with every
decision. A page reads the stored figures (one query, with the version) and:

* fresh (counted at the current version, within ``FIGURES_MAX_AGE``): shows them;
* quick to count (the last count took under ``SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS``, e.g.
  a small queue): recounts them inline and stores them, so small queues stay exact;
* slow: shows the stored ones with their time and asks for a recount (coalesced: one
  pending task per queue and kind), which runs no sooner than ``STALE_FACTOR`` times its
  last cost after the last count, so recounting takes at most about a twentieth of a
  worker's time however busy the queue is;
* none stored (a queue built before the figures were kept): shows "counting" and asks.
  The page answers at once and the figures follow a few seconds later, rather than every
  reviewer opening a big queue waiting seconds for the same count at the same time.

``queue_build`` counts a new queue's figures itself (nothing is decided yet, so it is
cheap), so a new queue's first page is exact.

Neither kind is counted from scratch on every recount: decisions record how they moved
the figures, and a recount folds those records in (review/services/agreement.py and
progress.py), due ``FOLD_EVERY`` after the last one started. They are counted from
scratch every ``FIGURES_MAX_AGE`` (agreement: for checks re-run on decided samples, which
no decision records). ``seconds`` is the cost of the last count from scratch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from review import selectors
from review.models import QueueFigures, ReviewQueue
from review.services.agreement import agreement_count, agreement_fold
from review.services.progress import progress_count, progress_fold

STALE_FACTOR = 20
STALE_MAX_SECONDS = 120
# Figures also depend on what the queue's version does not track (re-run checks change the
# agreement): counted at the current version, they are still recounted after this long.
FIGURES_MAX_AGE = timedelta(minutes=5)
# A request not started after this long is taken as lost (a broker restart) and asked again.
REQUEST_LOST = timedelta(seconds=STALE_MAX_SECONDS) + timedelta(minutes=10)

# How often agreement figures fold in the decisions' changes under steady deciding.
FOLD_EVERY = timedelta(seconds=1)

Kind = QueueFigures.Kind


@dataclass(frozen=True)
class Shown:
    """One kind of figures as a page shows them: ``value`` None while not counted yet,
    ``as_of`` set when they are older than what the queue holds now."""

    value: dict | None
    detail: dict
    as_of: datetime | None = None


def queue_figures(*, queue: ReviewQueue, detail: bool = False) -> dict[str, Shown]:
    """Both kinds of the queue's figures for a page (see the module docstring).

    One query when the figures are fresh or a recount is already asked for, one more on
    the view that asks (once per recount, whichever kinds it asks for); a recount inline
    only for quick figures.
    """
    rows = selectors.stored_figures(queue=queue, detail=detail)
    now = timezone.now()
    shown, asks = {}, {}
    for kind in Kind.values:
        row = rows.get(kind)
        if row is None or row.computed_at is None:  # never counted: asked for once
            asks[kind] = row
            shown[kind] = Shown(None, {})
        elif _fresh(row, now):
            shown[kind] = Shown(row.value, row.detail if detail else {})
        elif row.seconds < settings.SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS:
            # Counted from scratch, not folded: each inline count measures the cost again,
            # so a queue that grows past quick goes to the task.
            value, more = _update(queue, kind, fold=False)
            shown[kind] = Shown(value, more if detail else {})
        else:
            asks[kind] = row
            shown[kind] = Shown(row.value, row.detail if detail else {}, as_of=row.computed_at)
    figures_request(queue_id=queue.pk, rows=asks, now=now)
    return shown


def _fresh(row: QueueFigures, now: datetime) -> bool:
    return _counted_lately(row, now) and row.version >= (row.current or 0)


def _counted_lately(row: QueueFigures, now: datetime) -> bool:
    """Counted from scratch within ``FIGURES_MAX_AGE``."""
    return row.counted_at is not None and row.counted_at > now - FIGURES_MAX_AGE


def figures_request(
    *, queue_id: int, rows: dict[str, QueueFigures | None], now: datetime | None = None
) -> list[str]:
    """Ask for recounts of a queue's figures, ``{kind: the row as read, or None}``; returns
    the kinds this call queued.

    Coalesced: while a recount is asked for and not started, further requests do nothing
    (the page saw ``requested_at`` in the row it read: no query; else one conditional
    UPDATE for every kind asked). Rate-bounded: each task is due ``STALE_FACTOR`` times its
    last count's cost after that count. Sent after the surrounding transaction commits.
    """
    from review.tasks import queue_figures_task

    now = now or timezone.now()
    rows = {
        kind: row
        for kind, row in rows.items()
        if row is None or row.requested_at is None or row.requested_at <= now - REQUEST_LOST
    }
    if not rows:
        return []
    if None in rows.values():
        QueueFigures.objects.bulk_create(
            [QueueFigures(queue_id=queue_id, kind=kind) for kind, row in rows.items() if not row],
            ignore_conflicts=True,
        )
    claimed = (
        QueueFigures.objects.filter(queue_id=queue_id, kind__in=list(rows))
        .filter(Q(requested_at__isnull=True) | Q(requested_at__lte=now - REQUEST_LOST))
        .update(requested_at=now)
    )
    if not claimed:
        return []
    # Fewer claimed than asked: another view asked for some of them at the same instant.
    # Which ones is not known here, so all are sent; a second recount of one is harmless.
    for kind, row in rows.items():
        delay = recount_delay(row, now) if row is not None else 0.0
        transaction.on_commit(
            lambda kind=kind, delay=delay: queue_figures_task.apply_async(
                (queue_id, kind), countdown=delay
            )
        )
    return list(rows)


def recount_delay(row: QueueFigures, now: datetime) -> float:
    """Seconds until a recount is due: ``STALE_FACTOR`` times the last count's cost after
    the last count started (at most ``STALE_MAX_SECONDS``), so recounting takes at most
    about a twentieth of a worker's time. The last count started is the one running, if
    any: a page that asks while a slow recount runs queues the next one its turn after it,
    not a second one at once. Figures counted from scratch lately are folded instead,
    ``FOLD_EVERY`` after the last recount started."""
    started = [at for at in (row.computed_at, row.started_at) if at]
    if not started:
        return 0.0
    patience = min(STALE_MAX_SECONDS, row.seconds * STALE_FACTOR)
    if _counted_lately(row, now):
        patience = FOLD_EVERY.total_seconds()
    return max(0.0, patience - (now - max(started)).total_seconds())


def figures_recount(*, queue_id: int, kind: str) -> QueueFigures | None:
    """Recount one kind of a queue's figures and store them (the task's body).

    Clears the request mark first, so a decision made while counting asks for the next
    recount, and notes when it started, so that one is due after this one's turn.
    Idempotent: figures already counted at the queue's version (a redelivered task) are not
    counted again unless they are older than ``FIGURES_MAX_AGE``.
    """
    recount_started(queue_id=queue_id, kind=kind)
    queue = ReviewQueue.objects.select_related("batch__dataset").filter(pk=queue_id).first()
    if queue is None:
        return None
    row = selectors.stored_figures(queue=queue).get(kind)
    if row is not None and _fresh(row, timezone.now()):
        return row
    _update(queue, kind)
    return QueueFigures.objects.get(queue_id=queue_id, kind=kind)


def recount_started(*, queue_id: int, kind: str) -> None:
    """A recount task is starting: clear the request mark (a decision from now on asks for
    the next recount) and note the start (that recount is due after this one's turn)."""
    QueueFigures.objects.filter(queue_id=queue_id, kind=kind).update(
        requested_at=None, started_at=timezone.now()
    )


def _update(queue: ReviewQueue, kind: str, *, fold: bool = True) -> tuple[dict, dict]:
    """Bring one kind of figures up to date and store them, holding the figures row's lock
    (one count at a time per queue and kind): figures counted from scratch lately fold in
    the decisions' changes (with ``fold``), others are counted from scratch. The figures
    are "as of" when the count started: what was decided after that may be missing."""
    with transaction.atomic():
        row = _locked_row(queue, kind)
        started, start = timezone.now(), time.monotonic()
        if fold and _counted_lately(row, started):
            folded = _FOLDS[kind](queue=queue, row=row)
            if folded is not None:
                row.value, row.detail, row.version = folded
                row.computed_at = started
                row.save(update_fields=["value", "detail", "version", "computed_at"])
                return row.value, row.detail
        value, detail, version = _COUNTS[kind](queue=queue)
        if version < row.version:  # never replace a count made at a newer version
            transaction.set_rollback(True)  # nor drop the change rows it would delete
            return row.value, row.detail
        row.value, row.detail, row.version = value, detail, version
        row.computed_at = row.counted_at = started
        row.seconds = time.monotonic() - start
        row.save(
            update_fields=["value", "detail", "version", "computed_at", "counted_at", "seconds"]
        )
        return value, detail


_FOLDS = {Kind.AGREEMENT: agreement_fold, Kind.PROGRESS: progress_fold}
_COUNTS = {Kind.AGREEMENT: agreement_count, Kind.PROGRESS: progress_count}


def _locked_row(queue: ReviewQueue, kind: str) -> QueueFigures:
    rows = QueueFigures.objects.select_for_update().filter(queue=queue, kind=kind)
    row = rows.first()
    if row is None:
        QueueFigures.objects.bulk_create(
            [QueueFigures(queue=queue, kind=kind)], ignore_conflicts=True
        )
        row = rows.get()
    return row


def figures_count_new(*, queue: ReviewQueue) -> None:
    """Count a just-built queue's figures (cheap: nothing is decided yet), so its first page
    is exact. Call inside the build's transaction, after its audit entry."""
    for kind in Kind.values:
        _update(queue, kind)
