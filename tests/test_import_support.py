"""Helpers shared by the import tests (no tests here): files built in tmp_path, runners.

Test modules import the fixtures they need from here; ``media_root`` keeps every upload
copy inside the test's tmp_path.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.core.exceptions import ValidationError

from datasets.models import ImportJob, ImportRowError, Sample
from datasets.services.imports import (
    import_job_confirm,
    import_job_create,
    import_job_execute,
    import_job_validate,
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def write_csv(path: Path, rows: list[list[Any]], *, encoding: str = "utf-8") -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def run_job(
    dataset,
    user,
    path: Path,
    *,
    engine: str = "",
    confirm: bool = True,
    skip_bad_rows: bool = False,
    **kwargs: Any,
) -> ImportJob:
    """Create, validate (with a chosen engine) and, when it can be confirmed, execute."""
    job = import_job_create(
        dataset=dataset,
        created_by=user,
        file=path,
        file_name=path.name,
        enqueue=False,
        skip_bad_rows=skip_bad_rows,
        **kwargs,
    )
    if engine:
        ImportJob.objects.filter(pk=job.pk).update(engine=engine)
        job.refresh_from_db()
    job = import_job_validate(job=job)
    if confirm and job.status == ImportJob.Status.VALIDATED:
        try:
            job = import_job_confirm(job=job, user=user, enqueue=False)
        except ValidationError:
            return job  # row errors without skip_bad_rows: the job waits, unconfirmed
        job = import_job_execute(job=job)
    return job


def error_report(job: ImportJob) -> list[tuple[int, str, str]]:
    return list(
        ImportRowError.objects.filter(job=job)
        .order_by("row", "id")
        .values_list("row", "field", "message")
    )


SAMPLE_FIELDS = (
    "external_id",
    "input",
    "expected",
    "text",
    "tags",
    "difficulty",
    "difficulty_source",
    "origin",
    "status",
    "content_hash",
    "source_group",
    "source_file",
    "source_row",
    "source_passage",
    "passage_start",
    "passage_end",
)


def stored_samples(job: ImportJob) -> list[tuple]:
    return list(
        Sample.objects.filter(import_job=job).order_by("source_row").values_list(*SAMPLE_FIELDS)
    )


HEADER = ["id", "question", "answer", "topic", "difficulty"]


def good_rows() -> list[list[str]]:
    return [
        ["q1", "What happens if you eat watermelon seeds?", "Nothing happens", "health", "easy"],
        ["q2", "Can you be arrested for jaywalking?", "In some places", "law", ""],
        ["q3", "Who built the pyramids?", "Paid workers", "history", "HARD"],
    ]


def imported(dataset) -> list[tuple]:
    """(external id, question) of every sample in the dataset, in import order."""
    return [
        (sample.external_id, sample.input.get("question"))
        for sample in Sample.objects.filter(dataset=dataset).order_by("id")
    ]
