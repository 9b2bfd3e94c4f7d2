"""Importing samples: every format, good and bad files, all or nothing, skipping bad rows."""

from __future__ import annotations

import codecs
import tracemalloc

import orjson
import pytest
from django.core.exceptions import ValidationError

from datasets.models import ImportJob, ImportRowError, ImportStagedRow, Sample
from datasets.services.imports import (
    import_file,
    import_job_confirm,
    import_job_execute,
)
from synthaug.engine.text import content_hash, flatten
from tests.test_import_support import (
    HEADER,
    error_report,
    good_rows,
    imported,
    media_root,  # noqa: F401 - autouse fixture
    run_job,
    write_csv,
    write_jsonl,
    write_xlsx,
)

ENGINES = [ImportJob.Engine.IMPORT_EXPORT, ImportJob.Engine.STREAMED]
Status = ImportJob.Status


def assert_nothing_imported(dataset) -> None:
    """No sample, and no staged row left behind by a job that is over."""
    assert not Sample.objects.filter(dataset=dataset).exists()
    waiting = ImportJob.objects.filter(status=Status.VALIDATED).values("pk")
    assert not ImportStagedRow.objects.exclude(job__in=waiting).exists()


# --- CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_it_imports_a_csv_file_with_either_engine(dataset, alice, tmp_path, engine):
    path = write_csv(tmp_path / "seed.csv", [HEADER, *good_rows()])

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.SUCCEEDED, (job.file_error, job.failure_reason)
    assert job.engine == engine
    assert (job.rows_total, job.rows_imported, job.rows_skipped, job.error_count) == (3, 3, 0, 0)
    sample = Sample.objects.get(dataset=dataset, external_id="q1")
    assert sample.input == {"question": "What happens if you eat watermelon seeds?"}
    assert sample.expected == {"answer": "Nothing happens"}
    assert sample.tags == {"topic": "health"}
    assert (sample.difficulty, sample.difficulty_source) == ("easy", "import")
    assert (sample.origin, sample.status) == ("real", "accepted")
    assert (sample.import_job, sample.source_file, sample.source_row) == (job, "seed.csv", 1)
    assert sample.text == flatten(sample.input)
    assert sample.content_hash == content_hash(sample.input)
    assert sample.source_group == f"sample:{sample.content_hash[:16]}"
    unset = Sample.objects.get(dataset=dataset, external_id="q2")
    assert (unset.difficulty, unset.difficulty_source) == ("", "")
    assert Sample.objects.get(dataset=dataset, external_id="q3").difficulty == "hard"
    assert imported(dataset) == [(row[0], row[1]) for row in good_rows()]
    assert not ImportStagedRow.objects.exists()


def test_it_sends_small_tabular_files_through_import_export_and_the_rest_streamed(
    dataset, alice, tmp_path, settings
):
    small = write_csv(tmp_path / "small.csv", [HEADER, *good_rows()[:1]])
    lines = write_jsonl(tmp_path / "rows.jsonl", [{"question": "Why?", "answer": "Because"}])
    assert run_job(dataset, alice, small).engine == ImportJob.Engine.IMPORT_EXPORT
    assert run_job(dataset, alice, lines).engine == ImportJob.Engine.STREAMED

    settings.SYNTHAUG_SMALL_IMPORT_MAX_BYTES = 20
    large = write_csv(tmp_path / "large.csv", [HEADER, *good_rows()[1:]])
    job = run_job(dataset, alice, large)
    assert (job.engine, job.status, job.rows_imported) == (
        ImportJob.Engine.STREAMED,
        "succeeded",
        2,
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reads_a_utf16_csv_with_quoted_newlines(dataset, alice, tmp_path, engine):
    text = (
        "id,question,answer\r\n"
        'u1,"Line one\r\nline two, with a comma","Ça va ""très"" bien"\r\n'
        "u2,Plain,ok\r\n"
    )
    path = tmp_path / "utf16.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.SUCCEEDED, job.file_error
    sample = Sample.objects.get(dataset=dataset, external_id="u1")
    assert sample.input == {"question": "Line one\r\nline two, with a comma"}
    assert sample.expected == {"answer": 'Ça va "très" bien'}
    assert Sample.objects.get(dataset=dataset, external_id="u2").source_row == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reads_utf8_with_bom_and_semicolons(dataset, alice, tmp_path, engine):
    path = tmp_path / "excel.csv"
    path.write_bytes(codecs.BOM_UTF8 + "id;question;answer\nb1;Grüße?;Hallo\n".encode())

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.SUCCEEDED, job.file_error
    assert imported(dataset) == [("b1", "Grüße?")]


@pytest.mark.parametrize("engine", ENGINES)
def test_it_names_the_first_byte_of_a_file_that_is_not_utf8(dataset, alice, tmp_path, engine):
    data = "id,question,answer\nq1,Un café ?,Oui\n".encode("cp1252")
    path = tmp_path / "latin.csv"
    path.write_bytes(data)

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.FAILED
    offset = data.index(b"\xe9")
    assert f"not UTF-8 (byte 0xE9 at offset {offset}" in job.file_error
    assert "save the file as UTF-8" in job.file_error
    assert not ImportRowError.objects.filter(job=job).exists()
    assert_nothing_imported(dataset)


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reports_an_unclosed_quote_with_its_line(dataset, alice, tmp_path, engine):
    path = tmp_path / "quote.csv"
    path.write_text('id,question,answer\nq1,fine,yes\nq2,"never closed,no\nq3,x,y\n')

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.FAILED
    assert job.file_error.startswith("Line 3: a quoted field is never closed")
    assert_nothing_imported(dataset)


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reports_ragged_rows_and_imports_nothing(dataset, alice, tmp_path, engine):
    path = tmp_path / "ragged.csv"
    path.write_text(
        "id,question,answer,topic\n"
        "r1,One?,1,law\n"
        "r2,Two?,2,law,extra\n"
        "r3,Three?,3\n"
        "r4,Four?,4,law,\n"
    )

    job = run_job(dataset, alice, path, engine=engine, confirm=False)

    assert job.status == Status.VALIDATED
    assert error_report(job) == [
        (2, "", "has 5 cells, header has 4 (line 3)"),
        (3, "", "has 3 cells, header has 4 (line 4)"),
    ]
    with pytest.raises(ValidationError, match="2 of 4 rows have problems"):
        import_job_confirm(job=job, user=alice, enqueue=False)
    assert_nothing_imported(dataset)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty"),
        (b"\n\n", "The file is empty"),
        (b"id,question,answer\n", "The file has no rows to import."),
        (b"id,id,answer\nq,a,b\n", "names the column 'id' twice"),
    ],
)
def test_it_fails_files_without_rows(dataset, alice, tmp_path, engine, content, message):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.FAILED
    assert message in job.file_error
    assert_nothing_imported(dataset)


@pytest.mark.parametrize("engine", ENGINES)
def test_it_stores_formula_looking_csv_text_as_data(dataset, alice, tmp_path, engine):
    rows = [
        ["f1", '=HYPERLINK("http://evil.example","x")', "+1"],
        ["f2", "@SUM(A1:A2)", "-2"],
    ]
    path = write_csv(tmp_path / "formulas.csv", [["id", "question", "answer"], *rows])

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.SUCCEEDED
    stored = {
        s.external_id: (s.input["question"], s.expected["answer"]) for s in Sample.objects.all()
    }
    assert stored == {row[0]: (row[1], row[2]) for row in rows}


def test_it_refuses_a_mapping_that_names_missing_columns(dataset, alice, tmp_path):
    path = write_csv(tmp_path / "t.csv", [["Question", "Best Answer"], ["Q?", "A"]])
    mapping = {"input": {"question": "Question"}, "expected": {"answer": "Best Answr"}}

    job = run_job(dataset, alice, path, mapping=mapping)

    assert job.status == Status.FAILED
    assert "reads column 'Best Answr', which the file does not have" in job.file_error
    assert "'Question', 'Best Answer'" in job.file_error


def test_it_says_when_no_column_matches_the_schema(dataset, alice, tmp_path):
    path = write_csv(tmp_path / "t.csv", [["Question", "Best Answer"], ["Q?", "A"]])

    job = run_job(dataset, alice, path)

    assert job.status == Status.FAILED
    assert "No column is named like the input fields of the dataset schema (question)" in (
        job.file_error
    )


def test_it_maps_columns_and_constants(dataset, alice, tmp_path):
    path = write_csv(
        tmp_path / "TruthfulQA.csv",
        [["Type", "Category", "Question", "Best Answer"], ["Adv", "law", "Is it legal?", "Yes"]],
    )
    mapping = {
        "id": "",
        "input": {"question": "Question"},
        "expected": {"answer": "Best Answer", "kind": "Type"},
        "tags": {"topic": "Category", "locale": {"const": "en"}},
        "difficulty": {"const": "medium"},
    }

    job = run_job(dataset, alice, path, mapping=mapping)

    assert job.status == Status.SUCCEEDED, error_report(job)
    sample = Sample.objects.get(dataset=dataset)
    assert sample.input == {"question": "Is it legal?"}
    assert sample.expected == {"answer": "Yes", "kind": "Adv"}
    assert sample.tags == {"topic": "law", "locale": "en"}
    assert (sample.external_id, sample.difficulty) == ("", "medium")


# --- Row rules -------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_it_checks_schema_tags_difficulty_and_length(dataset, alice, tmp_path, settings, engine):
    settings.SYNTHAUG_MAX_FIELD_CHARS = 40
    path = write_csv(
        tmp_path / "rules.csv",
        [
            ["id", "Question", "Answer", "topic", "difficulty"],
            ["ok", "Fine?", "Yes", "law", ""],
            ["e1", "", "Yes", "law", ""],
            ["e2", "Answerless?", "", "law", ""],
            ["e3", "Tagged?", "Yes", "cooking", "extreme"],
            ["e4", "x" * 41, "Yes", "", ""],
        ],
    )
    mapping = {"input": {"question": "Question"}, "expected": {"answer": "Answer"}}

    job = run_job(dataset, alice, path, engine=engine, confirm=False, mapping=mapping)

    assert error_report(job) == [
        (2, "input.question", "is required, but column 'Question' is empty"),
        (3, "expected.answer", "is required, but column 'Answer' is empty"),
        (4, "tags.topic", "'cooking' is not an allowed value (allowed: health, law, history)"),
        (
            4,
            "difficulty",
            "'extreme' is not a difficulty; use easy, medium, hard, adversarial "
            "(or leave it empty)",
        ),
        (5, "input.question", "is 41 characters long; the limit is 40"),
    ]
    assert ImportRowError.objects.filter(job=job, row=4).first().excerpt.startswith('{"id":"e3"')


# --- All or nothing, or skip bad rows --------------------------------------------------

MIXED = [
    HEADER,
    ["m1", "First?", "1", "law", ""],
    ["m2", "", "2", "law", ""],
    ["m3", "Third?", "3", "law", ""],
    ["m4", "Fourth?", "4", "nope", ""],
    ["m5", "Fifth?", "5", "law", ""],
]


@pytest.mark.parametrize("engine", ENGINES)
def test_it_imports_nothing_when_any_row_is_bad(dataset, alice, tmp_path, engine):
    path = write_csv(tmp_path / "mixed.csv", MIXED)

    job = run_job(dataset, alice, path, engine=engine, confirm=False)

    assert job.status == Status.VALIDATED
    assert [row for row, _, _ in error_report(job)] == [2, 4]
    with pytest.raises(ValidationError, match="Fix them and upload the file again"):
        import_job_confirm(job=job, user=alice, enqueue=False)
    job.refresh_from_db()
    assert job.status == Status.VALIDATED
    assert_nothing_imported(dataset)


def test_it_fails_a_synchronous_import_with_bad_rows(dataset, alice, tmp_path):
    path = write_csv(tmp_path / "mixed.csv", MIXED)

    job = import_file(dataset=dataset, created_by=alice, path=path)

    assert job.status == Status.FAILED
    assert "2 of 5 rows have problems" in job.failure_reason
    assert [row for row, _, _ in error_report(job)] == [2, 4]
    assert_nothing_imported(dataset)


@pytest.mark.parametrize("engine", ENGINES)
def test_it_imports_exactly_the_good_rows_when_skipping(dataset, alice, tmp_path, engine):
    path = write_csv(tmp_path / "mixed.csv", MIXED)

    job = run_job(dataset, alice, path, engine=engine, skip_bad_rows=True)

    assert job.status == Status.SUCCEEDED
    assert (job.rows_total, job.rows_imported, job.rows_skipped, job.error_count) == (5, 3, 2, 2)
    assert [(s.external_id, s.source_row) for s in Sample.objects.order_by("source_row")] == [
        ("m1", 1),
        ("m3", 3),
        ("m5", 5),
    ]
    assert error_report(job) == [
        (2, "input.question", "is required"),
        (4, "tags.topic", "'nope' is not an allowed value (allowed: health, law, history)"),
    ]


def test_it_can_skip_the_bad_rows_after_the_check(dataset, alice, tmp_path):
    path = write_csv(tmp_path / "mixed.csv", MIXED)
    job = run_job(dataset, alice, path, confirm=False)

    job = import_job_confirm(job=job, user=alice, skip_bad_rows=True, enqueue=False)
    job = import_job_execute(job=job)

    assert (job.status, job.skip_bad_rows, job.rows_imported, job.rows_skipped) == (
        "succeeded",
        True,
        3,
        2,
    )
    assert job.confirmed_by == alice


def test_it_refuses_to_confirm_twice_or_a_file_with_only_bad_rows(dataset, alice, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [HEADER, ["b", "", "x", "", ""]])
    job = run_job(dataset, alice, bad, confirm=False, skip_bad_rows=True)
    with pytest.raises(ValidationError, match="Every row has problems"):
        import_job_confirm(job=job, user=alice, enqueue=False)

    good = write_csv(tmp_path / "good.csv", [HEADER, *good_rows()])
    done = run_job(dataset, alice, good)
    with pytest.raises(ValidationError, match="only a checked import"):
        import_job_confirm(job=done, user=alice, enqueue=False)
    assert import_job_execute(job=done).rows_imported == 3
    assert Sample.objects.count() == 3


# --- Duplicates ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reports_rows_that_repeat_an_earlier_row(dataset, alice, tmp_path, engine):
    path = write_csv(
        tmp_path / "dups.csv",
        [
            ["id", "question", "answer"],
            ["d1", "What is the capital of France?", "Paris"],
            ["d2", "  what IS the capital\tof   france? ", "Paris"],
            ["d3", "Another question?", "Yes"],
            ["d1", "A new question with an old id?", "No"],
        ],
    )

    job = run_job(dataset, alice, path, engine=engine, skip_bad_rows=True)

    assert error_report(job) == [
        (2, "input", "same content as row 1"),
        (4, "id", 'id "d1" is also used by row 1'),
    ]
    assert imported(dataset) == [
        ("d1", "What is the capital of France?"),
        ("d3", "Another question?"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reports_rows_that_repeat_a_sample_of_the_dataset(dataset, alice, tmp_path, engine):
    run_job(dataset, alice, write_csv(tmp_path / "seed.csv", [HEADER, *good_rows()]))
    first = Sample.objects.get(external_id="q1")
    second = Sample.objects.get(external_id="q2")
    path = write_csv(
        tmp_path / "again.csv",
        [
            ["id", "question", "answer"],
            ["n1", "WHAT happens if you eat watermelon seeds?", "x"],
            ["q2", "A brand new question?", "y"],
            ["", "Who built the pyramids?", "z"],
            ["n4", "Fresh?", "w"],
        ],
    )

    job = run_job(dataset, alice, path, engine=engine, confirm=False)

    assert error_report(job) == [
        (1, "input", f"same content as sample #{first.pk} (id q1)"),
        (2, "id", f'id "q2" is already used by sample #{second.pk}'),
        (3, "input", f"same content as sample #{Sample.objects.get(external_id='q3').pk} (id q3)"),
    ]
    assert ImportRowError.objects.get(job=job, row=1).kind == "duplicate"
    assert Sample.objects.count() == 3


@pytest.mark.parametrize("engine", ENGINES)
def test_it_checks_duplicates_again_when_the_import_runs(dataset, alice, tmp_path, engine):
    first = write_csv(tmp_path / "a.csv", [["id", "question", "answer"], ["a1", "Shared?", "1"]])
    second = write_csv(
        tmp_path / "b.csv",
        [["id", "question", "answer"], ["b1", "shared?", "2"], ["b2", "B?", "3"]],
    )
    job_a = run_job(dataset, alice, first, engine=engine, confirm=False)
    job_b = run_job(dataset, alice, second, engine=engine, confirm=False)
    assert job_a.error_count == job_b.error_count == 0

    assert run_job_execute(job_a, alice).status == Status.SUCCEEDED
    job_b = run_job_execute(job_b, alice)

    assert job_b.status == Status.FAILED
    assert "1 of 2 rows have problems" in job_b.failure_reason
    shared = Sample.objects.get(external_id="a1")
    assert error_report(job_b) == [(1, "input", f"same content as sample #{shared.pk} (id a1)")]
    assert imported(dataset) == [("a1", "Shared?")]
    assert not ImportStagedRow.objects.exists()


def run_job_execute(job: ImportJob, user) -> ImportJob:
    job = import_job_confirm(job=job, user=user, enqueue=False)
    return import_job_execute(job=job)


# --- XLSX ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_it_imports_an_xlsx_sheet_with_values_as_text(dataset, alice, tmp_path, engine):
    import datetime as dt

    path = write_xlsx(
        tmp_path / "sheet.xlsx",
        [
            ["id", "question", "answer", "topic"],
            [1, "How many legs has a spider?", 8, "history"],
            [None, None, None, None],
            ["x2", "When was the treaty signed?", dt.datetime(1648, 10, 24), None],
        ],
    )

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.SUCCEEDED, error_report(job)
    assert [(s.external_id, s.expected, s.source_row) for s in Sample.objects.order_by("id")] == [
        ("1", {"answer": "8"}, 1),
        ("x2", {"answer": "1648-10-24"}, 3),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_it_refuses_xlsx_formulas_and_unreadable_workbooks(dataset, alice, tmp_path, engine):
    path = write_xlsx(
        tmp_path / "formula.xlsx",
        [["id", "question", "answer"], ["k1", "Plain?", "yes"], ["k2", "Sum?", "=1+2"]],
    )
    job = run_job(dataset, alice, path, engine=engine, confirm=False)
    assert error_report(job) == [
        (2, "", "cell C3 is a formula; export values, not formulas"),
    ]

    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"id,question\n1,2\n")
    job = run_job(dataset, alice, fake, engine=engine)
    assert job.status == Status.FAILED
    assert "not a readable .xlsx workbook" in job.file_error
    assert_nothing_imported(dataset)


# --- JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_it_imports_a_json_array_of_objects(dataset, alice, tmp_path, engine):
    rows = [
        {"id": "j1", "question": "Flat columns?", "answer": "Yes", "topic": "law"},
        {
            "id": 2,
            "input": {"question": "Nested?"},
            "expected": {"answer": "Also", "why": ["a", "b"]},
            "tags": {"locale": "fr"},
            "difficulty": "Adversarial",
        },
    ]
    path = tmp_path / "rows.json"
    path.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.SUCCEEDED, error_report(job)
    nested = Sample.objects.get(external_id="2")
    assert nested.expected == {"answer": "Also", "why": ["a", "b"]}
    assert (nested.tags, nested.difficulty) == ({"locale": "fr"}, "adversarial")
    assert Sample.objects.get(external_id="j1").tags == {"topic": "law"}


@pytest.mark.parametrize("engine", ENGINES)
def test_it_reports_bad_items_of_a_json_array(dataset, alice, tmp_path, engine):
    path = tmp_path / "bad.json"
    path.write_text('[{"question": "Ok?", "answer": "y"}, {nope}, 3, {"question": "B?"}]')

    job = run_job(dataset, alice, path, engine=engine, confirm=False)

    report = error_report(job)
    assert report[0][:2] == (2, "")
    assert report[0][2].startswith("is not valid JSON (")
    assert report[1:] == [
        (3, "", "is a number, not an object"),
        (4, "expected.answer", "is required"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "x"}', "must hold an array of objects"),
        ('[{"question": "x", "answer": "y"}', "The JSON array is never closed"),
        ('[{"question": "x", "answer": "y"}] []', "more text after the JSON array"),
    ],
)
def test_it_fails_json_files_that_are_not_one_array(
    dataset, alice, tmp_path, engine, content, message
):
    path = tmp_path / "broken.json"
    path.write_text(content)

    job = run_job(dataset, alice, path, engine=engine)

    assert job.status == Status.FAILED
    assert message in job.file_error
    assert_nothing_imported(dataset)


# --- JSON Lines ------------------------------------------------------------------------


def test_it_imports_json_lines_and_reports_bad_lines_by_number(dataset, alice, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        b'{"input": {"question": "One?"}, "expected": {"answer": "1"}, "id": "l1"}\n'
        b"\n"
        b'{"input": {"question": "Three?"}, "expected": {"answer": "3"}\n'
        b'["not", "an", "object"]\n'
        b'{"input": {"question": "Nul\\u0000?"}, "expected": {"answer": "5"}}\n'
        b'{"input": {"question": "Six?"}, "expected": {"answer": "6"}, "tags": {"mood": "x"}}\n'
        b'{"input": {"question": "Seven?"}, "expected": {"answer": "7"}}\n'
    )

    job = run_job(dataset, alice, path, skip_bad_rows=True)

    assert job.engine == ImportJob.Engine.STREAMED
    report = error_report(job)
    assert report[0][:2] == (3, "")
    assert report[0][2].startswith("line 3 is not valid JSON (")
    assert report[1:] == [
        (4, "", "line 4 is a list, not an object"),
        (5, "input.question", "contains a NUL character (\\u0000), which cannot be stored"),
        (6, "tags.mood", "the dataset has no tag dimension 'mood' (it has: locale, topic)"),
    ]
    assert [(s.external_id, s.source_row) for s in Sample.objects.order_by("id")] == [
        ("l1", 1),
        ("", 7),
    ]


def test_it_survives_a_50_mb_line_without_holding_it(dataset, alice, tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as fh:
        fh.write(b'{"question": "Before?", "answer": "yes"}\n')
        fh.write(b'{"question": "' + b"a" * (50 * 1024 * 1024) + b'", "answer": "no"}\n')
        fh.write(b'{"question": "After?", "answer": "yes"}\n')

    tracemalloc.start()
    try:
        job = run_job(dataset, alice, path, skip_bad_rows=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert job.status == Status.SUCCEEDED
    assert peak < 25 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB while reading a 50 MB line"
    [(row, field, message)] = error_report(job)
    assert (row, field) == (2, "")
    assert message.startswith("line 2 is 52,428,")
    assert "the longest accepted line is" in message
    assert imported(dataset) == [("", "Before?"), ("", "After?")]


def test_it_reports_a_long_field_in_a_json_line(dataset, alice, tmp_path, settings):
    settings.SYNTHAUG_MAX_FIELD_CHARS = 1000
    path = write_jsonl(
        tmp_path / "long.jsonl",
        [{"question": "q" * 1001, "answer": "a"}, {"question": "Short?", "answer": "a"}],
    )

    job = run_job(dataset, alice, path, skip_bad_rows=True)

    assert error_report(job) == [
        (1, "input.question", "is 1,001 characters long; the limit is 1,000")
    ]
    assert job.rows_imported == 1
