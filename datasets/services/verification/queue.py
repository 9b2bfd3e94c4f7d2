"""Sending the checking stage's task, and finding CHECKING batches whose task was lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from datasets.models import Batch, CheckResult
from datasets.services.generation.queue import conf

log = logging.getLogger(__name__)


def enqueue_checks(batch_id: int, *, countdown: float = 0, attempt: int = 1) -> None:
    """Queue ``batch_check_chunk`` for a batch once the current transaction commits.

    A broker that is down is logged, not raised: the batch stays CHECKING with unchecked
    samples in the database, and ``checks_reap`` queues it again.
    """
    from datasets.tasks import batch_check_chunk

    def send() -> None:
        try:
            batch_check_chunk.apply_async(
                (batch_id,), {"attempt": attempt}, countdown=countdown if countdown > 0 else None
            )
        except BrokerError:
            log.exception("Could not queue the checks of batch %s; the reaper will", batch_id)

    transaction.on_commit(send)


def checks_reap() -> list[int]:
    """Queue again the CHECKING batches that made no progress for the stall timeout.

    Progress is the newest CheckResult of the batch, or when the stage started. A batch
    whose task is merely slow gets a second task; both are safe (see ``batch_checks_chunk``).
    """
    cutoff = timezone.now() - timedelta(seconds=conf().stall_seconds)
    stalled = []
    batches = Batch.objects.filter(status=Batch.Status.CHECKING).values_list(
        "pk", "checks_started_at"
    )
    for pk, started in batches:
        latest = CheckResult.objects.filter(batch_id=pk).aggregate(t=Max("created_at"))["t"]
        last = max(t for t in (started, latest) if t is not None) if (started or latest) else None
        if last is None or last < cutoff:
            stalled.append(pk)
            Batch.objects.filter(pk=pk, status=Batch.Status.CHECKING).update(
                checks_started_at=timezone.now()
            )
            enqueue_checks(pk)
    return stalled
