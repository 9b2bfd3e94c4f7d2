"""Celery tasks of the review app: thin, by id, idempotent."""

from __future__ import annotations

from celery import shared_task

from datasets.models import Batch


@shared_task
def queue_build_task(batch_id: int) -> None:
    """Build the spot-check queue of a batch whose checks finished (once: idempotent)."""
    from review.services.queues import queue_build

    batch = Batch.objects.select_related("dataset").filter(pk=batch_id).first()
    if batch is None:
        return
    queue_build(batch=batch)
