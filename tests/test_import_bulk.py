"""The streamed engine's bulk insert into Sample on PostgreSQL: GIN upkeep, search, rollback.

Transactional tests: the import's transaction really commits (or rolls back) here, so what
it leaves behind in the indexes and in the session is what production sees.
"""

from __future__ import annotations

import threading

import orjson
import pytest
from django.db import connection
from django.urls import reverse

from datasets.importing import streamed
from datasets.models import ImportJob, ImportStagedRow, Sample
from datasets.services.imports import import_file, import_job_create, import_job_validate
from tests.test_import_support import run_job, write_jsonl

ROWS = 300
GIN_INDEXES = ("sample_text_trgm_unimported", "sample_tags_gin")


def _rows() -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "question": f"Which zebrafish gene is question number {i}?",
            "answer": "yes",
            "topic": "health",
        }
        for i in range(ROWS)
    ]


def _session_settings() -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('gin_pending_list_limit'), current_setting('work_mem'), "
            "current_setting('maintenance_work_mem')"
        )
        return cursor.fetchone()


def _pending_pages(index: str) -> int:
    """Pages still in a GIN index's pending list (merging them now returns their number)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_it_merges_its_search_entries_and_leaves_no_setting_behind(dataset, alice, tmp_path):
    assert connection.vendor == "postgresql"
    before = _session_settings()
    path = write_jsonl(tmp_path / "rows.jsonl", _rows())

    job = import_file(dataset=dataset, created_by=alice, path=path)

    assert (job.engine, job.status, job.rows_imported) == (
        ImportJob.Engine.STREAMED,
        ImportJob.Status.SUCCEEDED,
        ROWS,
    )
    # The bigger pending list and memory were for the import's transaction only.
    assert _session_settings() == before
    # Nothing waits in the pending lists for the next search or insert to merge.
    assert [_pending_pages(index) for index in GIN_INDEXES] == [0, 0]


@pytest.mark.django_db(transaction=True)
def test_the_dataset_page_finds_freshly_imported_samples_by_text(
    dataset, alice, alice_client, tmp_path
):
    path = write_jsonl(tmp_path / "rows.jsonl", _rows())
    assert import_file(dataset=dataset, created_by=alice, path=path).rows_imported == ROWS
    url = reverse("datasets:detail", args=[dataset.slug])

    html = alice_client.get(url, {"q": "ZEBRAFISH gene is question number 17?"}).content.decode()

    assert "Which zebrafish gene is question number 17?" in html
    assert "question number 170?" not in html
    assert "question number 18?" not in html
    # Text and tag search together (the trigram and the tags GIN indexes).
    tagged = alice_client.get(url, {"q": "zebrafish", "tag_topic": "health"}).content.decode()
    assert "question number 299?" in tagged
    other = alice_client.get(url, {"q": "zebrafish", "tag_topic": "law"}).content.decode()
    assert "zebrafish" not in other.replace('value="zebrafish"', "")


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_some_slices_are_inserted_leaves_nothing_behind(
    dataset, alice, tmp_path, monkeypatch
):
    before = _session_settings()
    # Three slices go in, then the last step of the transaction fails (say, the disk).
    monkeypatch.setattr(streamed, "INSERT_CHUNK_ROWS", 100)
    inserted: list[int] = []

    def merge_fails(cursor, model) -> None:
        cursor.execute("SELECT COUNT(*) FROM datasets_sample")
        inserted.append(cursor.fetchone()[0])
        raise OSError("No space left on device")

    monkeypatch.setattr(streamed, "gin_merge_pending", merge_fails)
    path = write_jsonl(tmp_path / "rows.jsonl", _rows())

    job = run_job(dataset, alice, path)

    assert inserted == [ROWS]
    assert job.status == ImportJob.Status.FAILED
    assert "nothing was imported" in job.failure_reason
    assert job.rows_imported == 0
    assert not Sample.objects.exists()
    assert not ImportStagedRow.objects.filter(job=job).exists()
    assert _session_settings() == before


# --- Checking rows while the previous chunk is written (the pipelined stager) ---------------


@pytest.fixture
def small_chunks(monkeypatch) -> list[str]:
    """Chunks of 100 rows; returns the names of the threads that wrote checked rows (to
    the staging table, or to Sample in ``import_file``'s one pass)."""
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 100)
    writers: list[str] = []
    copy = streamed._copy

    def recording_copy(model, columns, rows, *, raw=None):
        if model in (ImportStagedRow, Sample):
            writers.append(threading.current_thread().name)
        return copy(model, columns, rows, raw=raw)

    monkeypatch.setattr(streamed, "_copy", recording_copy)
    return writers


@pytest.mark.django_db(transaction=True)
def test_a_file_unreadable_after_some_chunks_leaves_nothing_behind(
    dataset, alice, tmp_path, small_chunks
):
    good = b"".join(orjson.dumps(row) + b"\n" for row in _rows() * 10)
    path = tmp_path / "rows.jsonl"
    # A Latin-1 byte after 3,000 good lines: the decoder fails long after the first chunks.
    path.write_bytes(good + b'{"question": "caf\xe9"}\n')

    job = import_file(dataset=dataset, created_by=alice, path=path)

    assert job.status == ImportJob.Status.FAILED
    assert "UTF-8" in job.file_error
    # Chunks were written, by the writer thread, before the reader gave up ...
    assert len(small_chunks) >= 10
    assert set(small_chunks) == {"import-copy_0"}
    # ... and none of them is left, nor any sample or row error.
    assert not ImportStagedRow.objects.exists()
    assert not job.row_errors.exists()
    assert not Sample.objects.exists()


def test_checking_while_writing_records_every_row_in_order(dataset, alice, tmp_path, small_chunks):
    rows = _rows()
    for i in range(0, ROWS, 7):
        rows[i] = {"id": f"r{i}", "answer": "no question", "topic": "health"}
    bad = list(range(1, ROWS + 1, 7))  # file rows count from 1
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    job = import_job_create(
        dataset=dataset, created_by=alice, file=path, file_name=path.name, enqueue=False
    )

    job = import_job_validate(job=job)

    assert job.status == ImportJob.Status.VALIDATED
    assert len(small_chunks) >= 2
    assert sorted({e.row for e in job.row_errors.all()}) == bad
    staged = list(
        ImportStagedRow.objects.filter(job=job).order_by("id").values_list("row", flat=True)
    )
    assert staged == [n for n in range(1, ROWS + 1) if n not in bad]
    assert job.rows_total == ROWS


@pytest.mark.django_db(transaction=True)
def test_the_dry_run_plans_duplicate_checks_with_the_staged_rows_counted(dataset, alice, tmp_path):
    # Statistics taken while staging is empty (between imports) say "no rows": the
    # duplicate checks were then planned as nested loops, quadratic in the file's rows.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE datasets_importstagedrow")
    path = write_jsonl(tmp_path / "rows.jsonl", _rows())
    job = import_job_create(
        dataset=dataset, created_by=alice, file=path, file_name=path.name, enqueue=False
    )

    job = import_job_validate(job=job)

    assert job.status == ImportJob.Status.VALIDATED
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'datasets_importstagedrow'::regclass"
        )
        assert cursor.fetchone()[0] == ROWS
