"""Celery tasks: thin wrappers that fetch a row by id and call a service.

Tasks are idempotent (the services check the job's status first), which is what lets the
settings acknowledge late and reject on a lost worker: a redelivered task does nothing
more than the first delivery did.
"""

from __future__ import annotations

from celery import shared_task

from datasets.models import ImportJob
from datasets.services.imports import import_job_execute, import_job_validate


@shared_task
def import_job_validate_task(job_id: int) -> None:
    """Check the rows of a PENDING import job (the dry run)."""
    job = ImportJob.objects.select_related("dataset").filter(pk=job_id).first()
    if job is None or job.status not in (ImportJob.Status.PENDING, ImportJob.Status.VALIDATING):
        return
    import_job_validate(job=job)


@shared_task
def import_job_execute_task(job_id: int) -> None:
    """Import a confirmed (IMPORTING) job."""
    job = ImportJob.objects.select_related("dataset").filter(pk=job_id).first()
    if job is None or job.status != ImportJob.Status.IMPORTING:
        return
    import_job_execute(job=job)


# --- generation ---------------------------------------------------------------------------
# Imported here rather than at the top: this section is appended to the import tasks'
# module and keeps their part untouched.
from datasets.services.generation import (  # noqa: E402
    batch_chunk_run,
    generation_items_reap,
)
from datasets.services.generation.queue import enqueue_seqs  # noqa: E402


@shared_task
def batch_generate_chunk(batch_id: int, seqs: list[int]) -> None:
    """Generate the pending items among ``seqs`` of a batch.

    Idempotent: each item is claimed with a conditional update, so a redelivered, duplicated
    or late task only finds items that are no longer pending. Items that failed transiently
    (after the LLM seam's own retries) are queued again here, with a delay: this task never
    retries HTTP itself.
    """
    outcome = batch_chunk_run(batch_id=batch_id, seqs=seqs)
    if outcome.retry_seqs:
        enqueue_seqs(batch_id, outcome.retry_seqs, countdown=outcome.retry_delay)


@shared_task
def generation_reap() -> None:
    """Periodic (beat): expired claims back to pending, lost work queued again."""
    generation_items_reap()


# --- coverage -----------------------------------------------------------------------------
from datasets.services.coverage import (  # noqa: E402
    coverage_counts_refresh,
    coverage_refresh_started,
)


@shared_task
def coverage_refresh_task(dataset_id: int) -> None:
    """Rebuild a dataset's kept coverage counts. Idempotent: a rebuild from scratch."""
    coverage_refresh_started(dataset_id=dataset_id)
    coverage_counts_refresh(dataset_id=dataset_id)
