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
