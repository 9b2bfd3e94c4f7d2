"""Celery tasks: thin wrappers that fetch a row by id and call a service.

Tasks are idempotent (the services check the job's status first), which is what lets the
settings acknowledge late and reject on a lost worker: a redelivered task does nothing
more than the first delivery did.
"""

from __future__ import annotations

from datetime import timedelta

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


# An import's search indexing normally starts seconds after its commit.
SEARCH_INDEX_STALE = timedelta(minutes=10)


@shared_task
def generation_reap() -> None:
    """Periodic (beat): expired claims back to pending, lost work queued again,
    CHECKING batches whose checks stalled queued again, and imports whose search
    indexing task was lost queued again."""
    generation_items_reap()
    from datasets.services.search import search_index_reap
    from datasets.services.verification.queue import checks_reap

    checks_reap()
    search_index_reap(older_than=SEARCH_INDEX_STALE)


# --- checking (issue 4) ---------------------------------------------------------------------
from datasets.services.generation.queue import conf as generation_conf  # noqa: E402
from datasets.services.verification import batch_checks_chunk  # noqa: E402
from datasets.services.verification.queue import enqueue_checks  # noqa: E402

CHECK_ATTEMPTS = 3


@shared_task
def batch_check_chunk(batch_id: int, attempt: int = 1) -> None:
    """Check the next chunk of a CHECKING batch's unchecked samples, then queue the next.

    One chunk per task, so a task stays short (acks late, redelivery after a lost worker is
    cheap) and progress is stored as it goes. Idempotent: a chunk writes only samples still
    unchecked, under their row locks. A judge transiently unavailable (after the LLM seam's
    retries) is tried again with a growing delay; at the last attempt its items fail the
    judge check with the reason.
    """
    outcome = batch_checks_chunk(batch_id=batch_id, final_attempt=attempt >= CHECK_ATTEMPTS)
    if outcome.stopped or outcome.finished:
        return
    if outcome.unavailable:
        settings_ = generation_conf()
        delay = min(
            settings_.retry_delay_seconds * 2 ** (attempt - 1), settings_.retry_delay_max_seconds
        )
        enqueue_checks(batch_id, countdown=delay, attempt=attempt + 1)
        return
    enqueue_checks(batch_id)


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


# --- near-duplicate index of imported samples ---------------------------------------------
from datasets.services.dedup import near_dup_index_add  # noqa: E402


@shared_task
def near_dup_index_task(dataset_id: int, import_job_id: int) -> None:
    """Add an import's samples to the near-duplicate index (queued after its commit).

    Idempotent: samples already indexed are skipped, and each chunk commits on its own, so
    a redelivered task only does what is left.
    """
    near_dup_index_add(dataset_id=dataset_id, import_job_id=import_job_id)


# --- text search of imported samples ------------------------------------------------------
from datasets.services.search import search_index_pending  # noqa: E402


@shared_task
def search_index_task(dataset_id: int) -> None:
    """Copy a dataset's newly imported samples into the search table (queued after commit).

    Idempotent and coalescing (``search_index_pending``): a redelivered task, or one of
    several queued by back-to-back imports, finds nothing left to do.
    """
    search_index_pending(dataset_id=dataset_id)
