"""Reads for the import pages: a dataset's jobs, a job's errors. Queries live here."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from datasets.models import Dataset, ImportJob, ImportRowError

JOBS_SHOWN = 100
ERRORS_SHOWN = 200


def import_jobs_recent(dataset: Dataset, *, limit: int = JOBS_SHOWN) -> list[ImportJob]:
    """A dataset's most recent import jobs, newest first (one query)."""
    return list(
        ImportJob.objects.filter(dataset=dataset)
        .select_related("created_by")
        .defer("preview", "mapping")
        .order_by("-created_at", "-id")[:limit]
    )


def import_job_errors_head(job: ImportJob, *, limit: int = ERRORS_SHOWN) -> list[ImportRowError]:
    """The first row errors of a job, in row order."""
    return list(ImportRowError.objects.filter(job=job).order_by("row", "id")[:limit])


def import_job_errors_all(job: ImportJob) -> Iterator[ImportRowError]:
    """Every row error of a job in row order, streamed from the database in chunks."""
    errors: QuerySet[ImportRowError] = ImportRowError.objects.filter(job=job).order_by("row", "id")
    return errors.iterator(chunk_size=2000)


def import_job_bad_rows(job: ImportJob) -> int:
    """How many distinct rows have at least one error."""
    return ImportRowError.objects.filter(job=job).values("row").distinct().count()
