"""Both engines share one row spec: the same file gives the same report and the same samples."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from datasets.models import ImportJob
from tests.test_import_support import (
    HEADER,
    error_report,
    good_rows,
    media_root,  # noqa: F401 - autouse fixture
    run_job,
    stored_samples,
    write_csv,
    write_jsonl,
    write_xlsx,
)

ENGINES = [ImportJob.Engine.IMPORT_EXPORT, ImportJob.Engine.STREAMED]

# Good rows and every kind of bad row, in one file.
MIXED = [
    HEADER,
    ["g1", "Is the sky blue?", "Usually", "history", "easy"],
    ["g2", "=cmd|' /C calc'!A0", "Formula-looking text is data", "law", ""],
    ["", "What happens if you eat watermelon seeds?", "Dup of an existing sample", "", ""],
    ["g4", "IS THE   sky blue?", "Dup of row 1", "", ""],
    ["q2", "A question with an id already in the dataset?", "x", "", ""],
    ["g1", "A question whose id repeats row 1?", "x", "", ""],
    ["b7", "", "Empty question", "", ""],
    ["b8", "Bad tag?", "x", "cooking", ""],
    ["b9", "Bad difficulty?", "x", "", "extreme"],
    ["b10", "Ragged row?", "x", "", "", "surplus"],
    ["g11", "The last good row?", "Yes", "health", "medium"],
]


def _outcome(job: ImportJob) -> tuple:
    job.refresh_from_db()
    counts = (
        job.status,
        job.rows_total,
        job.rows_imported,
        job.rows_skipped,
        job.error_count,
    )
    return counts, error_report(job), stored_samples(job), job.preview


def _through_each_engine(dataset, user, path) -> dict[str, tuple]:
    """Validate and run the same file through each engine, undoing each run afterwards."""
    outcomes = {}
    for engine in ENGINES:
        with transaction.atomic():
            job = run_job(dataset, user, path, engine=engine, skip_bad_rows=True)
            assert job.engine == engine
            outcomes[engine] = _outcome(job)
            transaction.set_rollback(True)
    return outcomes


def _seed(dataset, user, tmp_path) -> None:
    job = run_job(dataset, user, write_csv(tmp_path / "seed.csv", [HEADER, *good_rows()]))
    assert job.status == ImportJob.Status.SUCCEEDED


def test_it_gives_the_same_report_and_samples_for_a_csv(dataset, alice, tmp_path):
    _seed(dataset, alice, tmp_path)
    path = write_csv(tmp_path / "mixed.csv", MIXED)

    outcomes = _through_each_engine(dataset, alice, path)

    first, second = outcomes.values()
    assert first == second
    counts, report, samples, preview = first
    assert counts == ("succeeded", 11, 3, 8, 8)
    assert [(row, field) for row, field, _ in report] == [
        (3, "input"),
        (4, "input"),
        (5, "id"),
        (6, "id"),
        (7, "input.question"),
        (8, "tags.topic"),
        (9, "difficulty"),
        (10, ""),
    ]
    assert [sample[0] for sample in samples] == ["g1", "g2", "g11"]
    assert [item["row"] for item in preview] == [1, 2, 11]


def test_it_gives_the_same_report_and_samples_for_xlsx_and_json(dataset, alice, tmp_path):
    _seed(dataset, alice, tmp_path)
    rows = [row[:5] for row in MIXED if row[1] != "Ragged row?"]
    sheet = write_xlsx(tmp_path / "mixed.xlsx", rows)
    array = tmp_path / "mixed.json"
    array.write_text(json.dumps([dict(zip(HEADER, row, strict=True)) for row in rows[1:]]))

    for path in (sheet, array):
        outcomes = _through_each_engine(dataset, alice, path)
        first, second = outcomes.values()
        assert first == second, path.name
        counts, report, _samples, _ = first
        # The XLSX writer stores "=cmd..." as a formula, which is a row error there.
        expected_imported = 2 if path is sheet else 3
        assert counts[2] == expected_imported, (path.name, report)
        assert len(report) >= 7


def test_it_streams_json_lines_with_the_same_rules(dataset, alice, tmp_path):
    """JSONL always streams; the same rows as JSON give the same report."""
    _seed(dataset, alice, tmp_path)
    rows = [dict(zip(HEADER, row[:5], strict=True)) for row in MIXED[1:] if len(row) == 5]
    lines = write_jsonl(tmp_path / "mixed.jsonl", rows)
    array = tmp_path / "mixed.json"
    array.write_text(json.dumps(rows))

    with transaction.atomic():
        streamed = _outcome(run_job(dataset, alice, lines, skip_bad_rows=True))
        transaction.set_rollback(True)
    with transaction.atomic():
        tabular = _outcome(run_job(dataset, alice, array, skip_bad_rows=True))
        transaction.set_rollback(True)

    assert streamed[0] == tabular[0]
    assert streamed[1] == tabular[1]
    # Same samples apart from the file they came from.
    strip = [sample[:11] + sample[12:] for sample in streamed[2]]
    assert strip == [sample[:11] + sample[12:] for sample in tabular[2]]


@pytest.mark.parametrize("engine", ENGINES)
def test_it_records_which_engine_ran(dataset, alice, tmp_path, engine):
    job = run_job(
        dataset, alice, write_csv(tmp_path / "t.csv", [HEADER, *good_rows()]), engine=engine
    )
    assert ImportJob.objects.get(pk=job.pk).engine == engine
