"""The import tasks are idempotent, and a conflicting write fails an import cleanly."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from datasets.models import (
    ImportJob,
    ImportRowError,
    ImportStagedRow,
    Sample,
)
from datasets.services.imports import (
    CONFLICT,
    import_job_confirm,
    import_job_create,
    import_job_validate,
)
from datasets.tasks import import_job_execute_task, import_job_validate_task
from synthaug.engine.text import content_hash, flatten
from tests.test_import_support import (
    HEADER,
    good_rows,
    media_root,  # noqa: F401 - autouse fixture
    write_csv,
    write_jsonl,
)

Status = ImportJob.Status


def pending_job(dataset, user, path) -> ImportJob:
    return import_job_create(
        dataset=dataset, created_by=user, file=path, file_name=path.name, enqueue=False
    )


def test_a_redelivered_task_does_the_work_once(dataset, alice, tmp_path):
    rows = [HEADER, *good_rows(), ["bad", "", "x", "", ""]]
    job = pending_job(dataset, alice, write_csv(tmp_path / "t.csv", rows))

    import_job_validate_task(job.pk)
    import_job_validate_task(job.pk)

    job.refresh_from_db()
    assert (job.status, job.error_count) == (Status.VALIDATED, 1)
    assert ImportRowError.objects.filter(job=job).count() == 1

    import_job_confirm(job=job, user=alice, skip_bad_rows=True, enqueue=False)
    import_job_execute_task(job.pk)
    import_job_execute_task(job.pk)
    import_job_validate_task(job.pk)

    job.refresh_from_db()
    assert (job.status, job.rows_imported) == (Status.SUCCEEDED, 3)
    assert Sample.objects.count() == 3


def test_a_task_for_a_missing_job_does_nothing(db):
    import_job_validate_task(123456)
    import_job_execute_task(123456)
    assert not ImportJob.objects.exists()


def test_a_check_abandoned_by_a_dead_worker_is_taken_over(dataset, alice, tmp_path, settings):
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": "Q?", "answer": "A"}])
    job = pending_job(dataset, alice, path)
    ImportStagedRow.objects.create(
        job=job, row=99, input={}, text="left over", content_hash="x", source_group="x"
    )
    ImportRowError.objects.create(job=job, row=99, message="left over")
    started = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(status=Status.VALIDATING, started_at=started)

    # A worker that is (as far as anyone knows) still running keeps the job.
    assert import_job_validate(job=job).status == Status.VALIDATING
    assert ImportRowError.objects.filter(job=job).count() == 1

    stale = started - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
    ImportJob.objects.filter(pk=job.pk).update(started_at=stale)
    job = import_job_validate(job=job)

    assert (job.status, job.rows_total, job.error_count) == (Status.VALIDATED, 1, 0)
    assert list(ImportStagedRow.objects.filter(job=job).values_list("row", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
def test_it_fails_cleanly_when_another_writer_lands_the_same_sample_first(dataset, alice, tmp_path):
    """A sample written (uncommitted) by another connection during the import.

    The import's re-check cannot see it, its INSERT waits on the unique index, the other
    transaction commits, and the unique constraint stops the import: FAILED, nothing of the
    file written, the staged rows cleared.
    """
    path = write_jsonl(
        tmp_path / "race.jsonl",
        [{"question": "Raced?", "answer": "A"}, {"question": "Calm?", "answer": "B"}],
    )
    job = import_job_validate(job=pending_job(dataset, alice, path))
    job = import_job_confirm(job=job, user=alice, enqueue=False)
    holding, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def other_writer() -> None:
        try:
            with transaction.atomic():
                question = {"question": "raced?"}
                Sample.objects.create(
                    dataset=dataset,
                    input=question,
                    expected={"answer": "first"},
                    text=flatten(question),
                    origin=Sample.Origin.REAL,
                    content_hash=content_hash(question),
                    source_group="sample:other",
                )
                holding.set()
                release.wait(30)
        except BaseException as exc:  # surfaced in the main thread
            failures.append(exc)
        finally:
            connections.close_all()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert holding.wait(30)

    def release_once_the_import_waits() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
            time.sleep(0.05)
        release.set()
        connections.close_all()

    releaser = threading.Thread(target=release_once_the_import_waits)
    releaser.start()
    import_job_execute_task(job.pk)
    releaser.join(30)
    writer.join(30)

    assert not failures
    job.refresh_from_db()
    assert (job.status, job.failure_reason) == (Status.FAILED, CONFLICT)
    assert list(Sample.objects.values_list("expected", flat=True)) == [{"answer": "first"}]
    assert not ImportStagedRow.objects.filter(job=job).exists()
