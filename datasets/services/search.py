"""Text search upkeep: imported samples' text copied into SampleSearch after their commit.

Why the copy exists is on ``SampleSearch``. The selector (``datasets.selectors.browse``)
reads a job's samples from Sample until the job's ``search_indexed_at`` is set, and from
SampleSearch after: both change in one transaction here, so search is complete throughout.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from datasets.importing.streamed import gin_bulk_settings, gin_merge_pending
from datasets.models import ImportJob, Sample, SampleSearch

logger = logging.getLogger(__name__)


def _pending_jobs():
    return ImportJob.objects.filter(
        status=ImportJob.Status.SUCCEEDED, search_indexed_at__isnull=True
    )


def _index_job(job_id: int) -> int | None:
    """Copy one job's sample texts and mark it, in one transaction; None if not ours.

    The job row is taken FOR NO KEY UPDATE SKIP LOCKED (no conflict with the key-share
    locks of foreign-key checks): a second task running at the same time skips it rather
    than copying it twice, and a job another task marked meanwhile no longer matches.
    """
    quote = connection.ops.quote_name
    with transaction.atomic():
        claimed = list(
            _pending_jobs()
            .filter(pk=job_id)
            .select_for_update(no_key=True, skip_locked=True)
            .values_list("pk", flat=True)
        )
        if not claimed:
            return None
        with connection.cursor() as cursor:
            gin_bulk_settings(cursor)
            cursor.execute(
                f"""
                INSERT INTO {quote(SampleSearch._meta.db_table)} (sample_id, dataset_id, text)
                SELECT id, dataset_id, text FROM {quote(Sample._meta.db_table)}
                WHERE import_job_id = %s
                ON CONFLICT (sample_id) DO NOTHING
                """,  # noqa: S608 - names from model meta, the value is a parameter
                [job_id],
            )
            copied = max(int(cursor.rowcount), 0)
            gin_merge_pending(cursor, SampleSearch)
        ImportJob.objects.filter(pk=job_id).update(search_indexed_at=timezone.now())
    return copied


def search_index_pending(*, dataset_id: int | None = None) -> int:
    """Copy into SampleSearch the samples of every import not copied yet; how many.

    Idempotent and coalescing: one run covers all of a dataset's waiting imports (every
    dataset's when ``dataset_id`` is None), so the tasks that several imports queue leave
    the later ones nothing to do; jobs another run holds are skipped, not waited for.
    """
    jobs = _pending_jobs()
    if dataset_id is not None:
        jobs = jobs.filter(dataset_id=dataset_id)
    copied = 0
    for job_id in jobs.order_by("pk").values_list("pk", flat=True):
        count = _index_job(job_id)
        if count is not None:
            copied += count
            logger.info("search index: %d samples of import job %s copied", count, job_id)
    return copied


def search_index_reap(*, older_than: timedelta) -> list[int]:
    """Queue indexing for datasets with imports still waiting after ``older_than``.

    For the periodic reaper: a queued task lost with the broker leaves search complete but
    slower (those samples are read from Sample), until this queues it again.
    """
    from datasets.tasks import search_index_task

    stale = timezone.now() - older_than
    dataset_ids = sorted(
        set(_pending_jobs().filter(finished_at__lt=stale).values_list("dataset_id", flat=True))
    )
    for dataset_id in dataset_ids:
        search_index_task.delay(dataset_id)
    return dataset_ids
