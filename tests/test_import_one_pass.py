"""``import_file``'s one pass: a good all-or-nothing sample file is checked and COPY'd into
Sample in one pass; any problem sends it through the two steps, which report everything.

On PostgreSQL (the pass copies from a second thread). What the one pass stores must be what
the two steps store, field for field, and a bad file must end exactly as it does in two
steps: same status, same row errors, nothing imported.
"""

from __future__ import annotations

import threading

import orjson
import pytest
from django.db import connection
from django.urls import reverse

from datasets.importing import streamed
from datasets.models import Dataset, ImportJob, ImportStagedRow, Sample
from datasets.services.datasets import dataset_create
from datasets.services.imports import import_file
from tests.test_import_support import (
    error_report,
    media_root,  # noqa: F401 - autouse fixture
    run_job,
    write_csv,
    write_jsonl,
)

ROWS = 450
Status = ImportJob.Status
# Every stored field but the ones that differ between two imports of one file.
COMPARED = [
    f.attname
    for f in Sample._meta.concrete_fields
    if f.attname not in {"id", "dataset_id", "import_job_id", "created_at"}
]


@pytest.fixture
def copies(monkeypatch) -> list[tuple[str, str]]:
    """Chunks of 100 rows; records (table, thread) of every COPY an import makes."""
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 100)
    made: list[tuple[str, str]] = []
    copy = streamed._copy

    def recording_copy(model, columns, rows, *, raw=None):
        made.append((model._meta.db_table, threading.current_thread().name))
        return copy(model, columns, rows, raw=raw)

    monkeypatch.setattr(streamed, "_copy", recording_copy)
    return made


def _rows() -> list[dict]:
    difficulties = ["", "easy", "hard", "adversarial"]
    topics = ["health", "law", "history", ""]
    return [
        {
            "id": f"r{i}" if i % 5 else "",
            "question": f"Row {i}: is <b>this</b> the \u202eright\u202c question?",
            "answer": f"answer {i}\u200b" if i % 3 == 0 else f"answer {i}",
            "topic": topics[i % 4],
            "difficulty": difficulties[i % 4],
        }
        for i in range(ROWS)
    ]


def _twin(dataset: Dataset, alice) -> Dataset:
    return dataset_create(
        name=f"{dataset.name} twin",
        slug=f"{dataset.slug}-twin",
        created_by=alice,
        tag_dimensions=dataset.tag_dimensions,
    )


def _stored(job: ImportJob) -> list[tuple]:
    return list(Sample.objects.filter(import_job=job).order_by("id").values_list(*COMPARED))


def _tables(copies: list[tuple[str, str]]) -> set[str]:
    return {table for table, _thread in copies}


def test_a_good_file_is_stored_as_the_two_steps_store_it(dataset, alice, tmp_path, copies):
    assert connection.vendor == "postgresql"
    path = write_jsonl(tmp_path / "rows.jsonl", _rows())
    twin = _twin(dataset, alice)

    job = import_file(dataset=dataset, created_by=alice, path=path)

    assert (job.status, job.engine) == (Status.SUCCEEDED, ImportJob.Engine.STREAMED)
    assert (job.rows_total, job.rows_imported, job.rows_skipped, job.error_count) == (
        ROWS,
        ROWS,
        0,
        0,
    )
    # One pass: straight into Sample, chunk by chunk from the writer thread, nothing staged.
    assert _tables(copies) == {Sample._meta.db_table}
    assert len(copies) == ROWS // 100 + 1
    assert {thread for _table, thread in copies} == {"import-copy_0"}
    assert job.confirmed_by == alice
    assert job.finished_at is not None
    assert [row["row"] for row in job.preview] == list(range(1, 21))

    copies.clear()
    two_steps = run_job(twin, alice, path)

    assert two_steps.status == Status.SUCCEEDED
    assert ImportStagedRow._meta.db_table in _tables(copies)
    assert _stored(job) == _stored(two_steps)
    assert len(_stored(job)) == ROWS
    assert job.preview == two_steps.preview
    # Ids follow the file's rows, as with the two steps.
    rows = list(Sample.objects.filter(import_job=job).order_by("id").values_list("source_row"))
    assert rows == [(n,) for n in range(1, ROWS + 1)]


def _report_both_ways(dataset, alice, tmp_path, rows: list[dict]):
    """(one-pass job, two-step job) for the same bad file, into two like datasets."""
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    job = import_file(dataset=dataset, created_by=alice, path=path)
    twin = _twin(dataset, alice)
    return job, run_job(twin, alice, path)


@pytest.mark.parametrize(
    ("spoil", "bad_row"),
    [
        # A row the spec refuses, after several chunks went into Sample.
        (lambda rows: rows.__setitem__(430, {"id": "x", "answer": "no question"}), 431),
        # A line that is not JSON.
        (lambda rows: rows.__setitem__(420, "not json"), 421),
        # Content repeating a row of an earlier chunk: the unique constraint refuses it.
        (lambda rows: rows.__setitem__(440, {**rows[7], "id": "fresh"}), 441),
        # The same in the second chunk, with the later chunks queued behind it.
        (lambda rows: rows.__setitem__(150, {**rows[7], "id": "fresh"}), 151),
        # An id repeating a row of an earlier chunk.
        (lambda rows: rows.__setitem__(441, {**rows[441], "id": rows[8]["id"]}), 442),
    ],
    ids=["invalid row", "unreadable line", "repeated content", "early repeat", "repeated id"],
)
def test_a_bad_file_ends_as_in_two_steps_with_nothing_imported(
    dataset, alice, tmp_path, copies, spoil, bad_row
):
    rows = _rows()
    spoil(rows)

    job, two_steps = _report_both_ways(dataset, alice, tmp_path, rows)

    # The pass got some chunks into Sample before it met the problem ...
    assert (Sample._meta.db_table, "import-copy_0") in copies
    # ... and rolled them back: the job then went through the two steps, whose report is
    # the one an upload gets (there it waits for a decision; here it fails).
    assert (job.status, two_steps.status) == (Status.FAILED, Status.VALIDATED)
    assert (job.rows_total, job.rows_imported) == (ROWS, 0)
    assert job.error_count == two_steps.error_count == 1
    assert f"1 of {ROWS} rows have problems" in job.failure_reason
    report = error_report(job)
    assert report == error_report(two_steps)
    assert [row for row, _field, _message in report] == [bad_row]
    assert not Sample.objects.filter(import_job=job).exists()
    assert not ImportStagedRow.objects.filter(job=job).exists()


def test_a_duplicate_of_an_existing_sample_is_reported_by_sample(dataset, alice, tmp_path):
    rows = _rows()
    seed = import_file(
        dataset=dataset, created_by=alice, path=write_jsonl(tmp_path / "a.jsonl", rows[:3])
    )
    assert seed.status == Status.SUCCEEDED
    existing = Sample.objects.get(import_job=seed, source_row=2)

    job = import_file(
        dataset=dataset,
        created_by=alice,
        path=write_jsonl(tmp_path / "b.jsonl", [{**rows[1], "id": "new"}, *rows[3:]]),
    )

    assert job.status == Status.FAILED
    assert error_report(job) == [(1, "input", f"same content as sample #{existing.pk} (id r1)")]
    assert Sample.objects.filter(dataset=dataset).count() == 3


def test_skipping_bad_rows_and_small_files_keep_the_two_steps(dataset, alice, tmp_path, copies):
    rows = _rows()
    rows[5] = {"id": "x", "answer": "no question"}
    path = write_jsonl(tmp_path / "rows.jsonl", rows)

    job = import_file(dataset=dataset, created_by=alice, path=path, skip_bad_rows=True)

    assert (job.status, job.rows_imported, job.rows_skipped) == (Status.SUCCEEDED, ROWS - 1, 1)
    assert ImportStagedRow._meta.db_table in _tables(copies)

    copies.clear()
    small = write_csv(tmp_path / "small.csv", [["question", "answer"], ["Small?", "Yes"]])
    job = import_file(dataset=dataset, created_by=alice, path=small)

    assert (job.status, job.engine) == (Status.SUCCEEDED, ImportJob.Engine.IMPORT_EXPORT)
    assert Sample._meta.db_table not in _tables(copies)


@pytest.mark.django_db(transaction=True)
def test_a_failure_at_the_end_of_the_pass_leaves_nothing_behind(
    dataset, alice, tmp_path, monkeypatch
):
    def merge_fails(cursor, model) -> None:
        cursor.execute("SELECT COUNT(*) FROM datasets_sample")
        assert cursor.fetchone()[0] == ROWS
        raise OSError("No space left on device")

    monkeypatch.setattr(streamed, "gin_merge_pending", merge_fails)
    path = write_jsonl(tmp_path / "rows.jsonl", _rows())

    job = import_file(dataset=dataset, created_by=alice, path=path)

    assert job.status == Status.FAILED
    assert "nothing was imported" in job.failure_reason
    assert job.rows_imported == 0
    assert not Sample.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('gin_pending_list_limit')")
        assert cursor.fetchone()[0] == "4MB"


@pytest.mark.django_db(transaction=True)
def test_a_committed_pass_is_visible_and_searchable(dataset, alice, alice_client, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in _rows()))

    job = import_file(dataset=dataset, created_by=alice, path=path)

    assert job.status == Status.SUCCEEDED
    job.refresh_from_db()
    assert (job.status, job.rows_imported) == (Status.SUCCEEDED, ROWS)
    assert Sample.objects.filter(dataset=dataset).count() == ROWS
    url = reverse("datasets:detail", args=[dataset.slug])
    html = alice_client.get(url, {"q": "Row 417: is"}).content.decode()
    assert "Row 417: is &lt;b&gt;this&lt;/b&gt;" in html
    assert "Row 416:" not in html
