"""Returning lost work to the queue. Run periodically (``generation_reap``, Celery beat).

The database holds the truth about every item, the broker only holds reminders. Work is lost
in two ways, and both are found from the database alone:

- a worker died holding items: their lease expired while RUNNING. They go back to PENDING
  (their attempt stays counted) and their batch's pending items are queued again; the dead
  worker's own task message only comes back after the broker's visibility timeout, hours
  later, and then finds nothing to do;
- task messages vanished (Redis restarted without persistence, a broker outage when the
  batch was queued): a QUEUED or RUNNING batch has pending items and no sign of life for
  ``SYNTHAUG_GENERATION_STALL_SECONDS`` (no item started, finished or was queued), so its
  pending items are queued again.

Queueing an item twice is harmless (the second claim finds it taken), so the reaper may
overlap with a live worker; it only ever costs an empty task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from datasets.models import Batch, GenerationItem
from datasets.services.generation.lifecycle import batch_finish_if_complete
from datasets.services.generation.queue import conf, enqueue_seqs

State = GenerationItem.State
Status = Batch.Status
LEASE_EXPIRED = "lease_expired"


@dataclass
class ReapOutcome:
    expired: int = 0
    requeued_items: int = 0
    requeued_batches: list[int] = field(default_factory=list)
    finished_batches: list[int] = field(default_factory=list)


def generation_items_reap(*, now: datetime | None = None) -> ReapOutcome:
    """Return expired claims to PENDING, queue lost work again, settle finished batches.

    Idempotent: a second run right after the first finds nothing expired, and the batches it
    queued show a fresh sign of life.
    """
    now = now or timezone.now()
    settings = conf()
    outcome = ReapOutcome()

    expired = GenerationItem.objects.filter(state=State.RUNNING, lease_until__lt=now)
    expired_batches = set(expired.order_by().values_list("batch_id", flat=True).distinct())
    # A cancelled batch no longer wants the items its dead worker held.
    expired.filter(batch__status=Status.CANCELLED).update(
        state=State.CANCELLED,
        error_reason="cancelled",
        error_detail="its worker stopped answering after the batch was cancelled",
        finished_at=now,
        lease_until=None,
        worker="",
    )
    outcome.expired = GenerationItem.objects.filter(
        state=State.RUNNING, lease_until__lt=now
    ).update(
        state=State.PENDING,
        lease_until=now,  # queued again below
        worker="",
        error_reason=LEASE_EXPIRED,
        error_detail="its worker stopped answering before the lease ended; queued again",
    )

    stalled_before = now - timedelta(seconds=settings.stall_seconds)
    rows = (
        GenerationItem.objects.filter(batch__status__in=(Status.QUEUED, Status.RUNNING))
        .order_by()
        .values("batch_id")
        .annotate(
            pending=Count("pk", filter=Q(state=State.PENDING)),
            unsettled=Count("pk", filter=Q(state__in=(State.PENDING, State.RUNNING))),
            last_started=Max("started_at"),
            last_finished=Max("finished_at"),
            last_queued=Max("lease_until"),
        )
    )
    for row in rows:
        batch_id = row["batch_id"]
        if not row["unsettled"]:
            outcome.finished_batches.append(batch_id)
            continue
        if not row["pending"]:
            continue
        signs = [row[k] for k in ("last_started", "last_finished", "last_queued") if row[k]]
        if batch_id in expired_batches or not signs or max(signs) < stalled_before:
            outcome.requeued_batches.append(batch_id)

    for batch_id in outcome.requeued_batches:
        with transaction.atomic():
            pending = GenerationItem.objects.filter(batch_id=batch_id, state=State.PENDING)
            seqs = list(pending.values_list("seq", flat=True))
            pending.update(lease_until=now)
            enqueue_seqs(batch_id, seqs)
        outcome.requeued_items += len(seqs)
    outcome.finished_batches = [
        batch_id
        for batch_id in outcome.finished_batches
        if batch_finish_if_complete(batch_id=batch_id) is not None
    ]
    return outcome
