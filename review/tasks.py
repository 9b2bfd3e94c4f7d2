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


@shared_task
def queue_figures_task(queue_id: int, kind: str) -> None:
    """Recount one kind of a queue's settled figures (idempotent: a recount from scratch)."""
    from review.services.figures import figures_recount

    figures_recount(queue_id=queue_id, kind=kind)
