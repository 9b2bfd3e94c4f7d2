"""manage.py import_samples and import_documents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from datasets.models import ImportJob, Sample, SourceDocument
from tests.test_import_support import (
    HEADER,
    good_rows,
    media_root,  # noqa: F401 - autouse fixture
    write_csv,
)

XQUAD = Path(__file__).resolve().parent.parent / "datasets" / "demo_data" / "xquad.en.json"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_samples_with_a_mapping_and_a_progress_bar(dataset, alice, tmp_path, capsys):
    path = write_csv(
        tmp_path / "truthful.csv",
        [["Question", "Best Answer", "Category"], ["Is it?", "Yes", "law"], ["Was it?", "No", ""]],
    )

    out, _ = run(
        "import_samples",
        dataset.slug,
        str(path),
        "--map",
        "input.question=Question",
        "--map",
        "expected.answer = Best Answer",
        "--map",
        "tags.topic=Category",
        "--map",
        'tags.locale="en"',
        "--user",
        "alice",
    )

    job = ImportJob.objects.get()
    assert f"Imported 2 samples from truthful.csv into truthful (job #{job.pk}" in out
    assert (job.created_by, job.status) == (alice, "succeeded")
    assert [s.tags for s in Sample.objects.order_by("id")] == [
        {"topic": "law", "locale": "en"},
        {"locale": "en"},
    ]
    assert "Checking rows" in capsys.readouterr().err


def test_it_reads_a_mapping_file_as_text_or_json(dataset, tmp_path):
    path = write_csv(tmp_path / "t.csv", [["Q", "A"], ["Text?", "t"]])
    text = tmp_path / "mapping.txt"
    text.write_text("# mapping\ninput.question = Q\nexpected.answer = A\n")
    run("import_samples", dataset.slug, str(path), "--mapping-file", str(text))

    other = write_csv(tmp_path / "u.csv", [["Q", "A"], ["Json?", "j"]])
    as_json = tmp_path / "mapping.json"
    as_json.write_text(json.dumps({"input": {"question": "Q"}, "expected": {"answer": "A"}}))
    run("import_samples", dataset.slug, str(other), "--mapping-file", str(as_json))

    assert sorted(s.input["question"] for s in Sample.objects.all()) == ["Json?", "Text?"]


def test_it_fails_with_the_first_problems_and_imports_nothing(dataset, tmp_path):
    rows = [HEADER, *good_rows(), ["x1", "", "a", "", ""], ["x2", "Q?", "a", "mars", ""]]
    path = write_csv(tmp_path / "bad.csv", rows)
    err = io.StringIO()

    with pytest.raises(CommandError, match="failed, nothing imported: 2 of 5 rows have problems"):
        call_command("import_samples", dataset.slug, str(path), stdout=io.StringIO(), stderr=err)

    assert "row 4: input.question: is required" in err.getvalue()
    assert "row 5: tags.topic: 'mars' is not an allowed value" in err.getvalue()
    assert not Sample.objects.exists()


def test_it_skips_bad_rows_when_asked(dataset, tmp_path):
    rows = [HEADER, *good_rows(), ["x1", "", "a", "", ""]]
    path = write_csv(tmp_path / "bad.csv", rows)

    out, err = run("import_samples", dataset.slug, str(path), "--skip-bad-rows")

    assert "Imported 3 samples" in out
    assert "skipped 1 bad rows" in out
    assert "row 4: input.question: is required" in err
    assert Sample.objects.count() == 3


def test_a_dry_run_checks_and_imports_nothing(dataset, tmp_path):
    path = write_csv(tmp_path / "t.csv", [HEADER, *good_rows()])

    out, _ = run("import_samples", dataset.slug, str(path), "--dry-run")

    job = ImportJob.objects.get()
    assert "Dry run of t.csv" in out
    assert "3 rows checked, 3 would be imported" in out
    assert job.status == ImportJob.Status.VALIDATED
    assert not Sample.objects.exists()

    bad = write_csv(tmp_path / "bad.csv", [HEADER, ["x", "", "", "", ""], *good_rows()[:1]])
    with pytest.raises(CommandError, match="1 rows have problems"):
        run("import_samples", dataset.slug, str(bad), "--dry-run")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "x.csv"], "No dataset with the slug 'nope'"),
        (["truthful", "/does/not/exist.csv"], "is not a file"),
        (["truthful", "{csv}", "--map", "input.question"], "Bad mapping: Line 1"),
        (["truthful", "{csv}", "--user", "zed"], "No user named 'zed'"),
        (["truthful", "{txt}"], "Samples come from CSV, XLSX, JSON or JSON Lines files"),
    ],
)
def test_it_refuses_bad_arguments(dataset, tmp_path, args, message):
    csv_path = write_csv(tmp_path / "t.csv", [HEADER, *good_rows()])
    txt_path = tmp_path / "t.txt"
    txt_path.write_text("text")
    args = [a.format(csv=csv_path, txt=txt_path) for a in args]
    with pytest.raises(CommandError, match=message):
        run("import_samples", *args)
    assert not Sample.objects.exists()


def test_it_imports_squad_documents_and_questions(dataset, tmp_path):
    data = json.loads(XQUAD.read_text(encoding="utf-8"))
    data["data"] = [{**data["data"][1], "paragraphs": data["data"][1]["paragraphs"][:2]}]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    questions = sum(len(p["qas"]) for p in data["data"][0]["paragraphs"])

    out, _ = run(
        "import_documents",
        dataset.slug,
        str(path),
        "--map",
        'tags.topic="history"',
        "--map",
        "tags.locale=title",
    )

    assert f"2 new source documents, {questions} questions imported as samples" in out
    assert SourceDocument.objects.count() == 2
    assert Sample.objects.filter(source_document__isnull=False).count() == questions
    assert set(Sample.objects.values_list("tags__locale", flat=True)) == {data["data"][0]["title"]}

    out = io.StringIO()
    with pytest.raises(CommandError, match=f"{questions} rows have problems"):
        call_command(
            "import_documents",
            dataset.slug,
            str(path),
            "--format",
            "squad",
            "--dry-run",
            stdout=out,
            stderr=io.StringIO(),
        )
    assert f"{questions} rows checked, 0 would be imported" in out.getvalue()
    assert Sample.objects.count() == questions


def test_it_imports_a_markdown_document(dataset, tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("# Field guide\n\nBody.\n")

    out, _ = run("import_documents", dataset.slug, str(path))

    assert "1 new source documents" in out
    assert SourceDocument.objects.get().title == "Field guide"
