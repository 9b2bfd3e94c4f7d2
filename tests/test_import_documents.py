"""Importing source documents: text, Markdown, JSON Lines and SQuAD-style JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from datasets.models import ImportJob, ImportStagedDocument, ImportStagedRow, Sample, SourceDocument
from synthaug.engine.text import content_hash
from tests.test_import_support import (
    error_report,
    media_root,  # noqa: F401 - autouse fixture
    run_job,
    write_jsonl,
)

XQUAD = Path(__file__).resolve().parent.parent / "datasets" / "demo_data" / "xquad.en.json"
DOCS = ImportJob.Kind.DOCUMENTS
Status = ImportJob.Status


def squad_slice(tmp_path: Path, *, articles: int = 2, paragraphs: int = 2) -> tuple[Path, dict]:
    """A SQuAD file with the first paragraphs of the first articles of XQuAD-en."""
    data = json.loads(XQUAD.read_text(encoding="utf-8"))
    sliced = {
        "version": data["version"],
        "data": [
            {"title": article["title"], "paragraphs": article["paragraphs"][:paragraphs]}
            for article in data["data"][:articles]
        ],
    }
    path = tmp_path / "xquad-slice.json"
    path.write_text(json.dumps(sliced, ensure_ascii=False), encoding="utf-8")
    return path, sliced


def test_it_imports_a_text_file_as_one_document(dataset, alice, tmp_path):
    path = tmp_path / "field-guide.txt"
    path.write_text("Mushrooms are fungi.\n\nSome are poisonous.\n", encoding="utf-8")

    job = run_job(dataset, alice, path, kind=DOCS, mapping={"tags": {"topic": {"const": "health"}}})

    assert (job.status, job.format, job.engine) == ("succeeded", "text", "streamed")
    assert (job.documents_imported, job.documents_reused, job.rows_imported) == (1, 0, 1)
    document = SourceDocument.objects.get(dataset=dataset)
    assert document.title == "field-guide"
    assert document.text == "Mushrooms are fungi.\n\nSome are poisonous.\n"
    assert document.content_hash == content_hash(document.text)
    assert (document.origin, document.import_job, document.tags) == (
        "field-guide.txt",
        job,
        {"topic": "health"},
    )
    assert not Sample.objects.exists()


def test_it_titles_markdown_by_its_first_heading_and_reuses_identical_documents(
    dataset, alice, tmp_path
):
    path = tmp_path / "notes.md"
    path.write_text("Intro line\n\n## The Treaty of Westphalia ##\n\nSigned in 1648.\n")

    first = run_job(dataset, alice, path, kind=DOCS)
    again = run_job(dataset, alice, path, kind=DOCS)

    assert first.documents_imported == 1
    assert SourceDocument.objects.get().title == "The Treaty of Westphalia"
    assert (again.status, again.documents_imported, again.documents_reused) == ("succeeded", 0, 1)
    assert SourceDocument.objects.count() == 1
    assert not ImportStagedDocument.objects.exists()


def test_it_imports_json_lines_documents_and_reports_bad_lines(dataset, alice, tmp_path):
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"title": "Alpha", "text": "First document.", "id": "d-1", "tags": {"topic": "law"}},
            {"title": "No text"},
            {"title": "Bad tag", "text": "Body.", "tags": {"topic": "cooking"}},
            {"title": "Beta", "text": "Second document."},
        ],
    )

    strict = run_job(dataset, alice, path, kind=DOCS)
    assert (strict.status, strict.error_count) == (Status.VALIDATED, 2)
    assert not SourceDocument.objects.exists()

    job = run_job(dataset, alice, path, kind=DOCS, skip_bad_rows=True)

    assert (job.status, job.documents_imported, job.rows_skipped) == ("succeeded", 2, 2)
    assert error_report(job) == [
        (2, "text", "is required (the document has no text)"),
        (3, "tags.topic", "'cooking' is not an allowed value (allowed: health, law, history)"),
    ]
    alpha = SourceDocument.objects.get(title="Alpha")
    assert (alpha.external_id, alpha.tags, alpha.origin) == ("d-1", {"topic": "law"}, "docs.jsonl")
    assert list(SourceDocument.objects.order_by("id").values_list("title", flat=True)) == [
        "Alpha",
        "Beta",
    ]


def test_it_turns_squad_paragraphs_into_documents_and_questions_into_samples(
    dataset, alice, tmp_path
):
    path, data = squad_slice(tmp_path)
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    questions = [qa for p in paragraphs for qa in p["qas"]]
    mapping = {"tags": {"topic": {"const": "history"}, "locale": "title"}}

    job = run_job(dataset, alice, path, kind=DOCS, mapping=mapping, skip_bad_rows=True)

    assert (job.status, job.format) == ("succeeded", "squad")
    # XQuAD repeats one question of Super_Bowl_50 word for word: a reported duplicate.
    assert error_report(job) == [(22, "input", "same content as row 17")]
    assert job.documents_imported == len(paragraphs) == SourceDocument.objects.count()
    assert job.rows_total == len(questions)
    assert job.rows_imported == len(questions) - 1 == Sample.objects.count()
    first_qa = questions[0]
    sample = Sample.objects.get(external_id=first_qa["id"])
    answer = first_qa["answers"][0]
    document = sample.source_document
    assert sample.input == {"question": first_qa["question"]}
    assert sample.expected == {"answer": answer["text"], "answer_start": answer["answer_start"]}
    assert (sample.origin, sample.status, sample.source_row) == ("real", "accepted", 1)
    assert sample.source_passage == paragraphs[0]["context"] == document.text
    assert sample.source_passage[sample.passage_start : sample.passage_end] == answer["text"]
    assert sample.source_group == f"doc:{document.content_hash[:16]}"
    assert sample.tags == {"topic": "history", "locale": "Super_Bowl_50"}
    assert document.title == "Super_Bowl_50 (paragraph 1)"
    assert document.origin == "xquad-slice.json · Super_Bowl_50"
    assert not ImportStagedRow.objects.exists()


def test_it_reuses_squad_passages_and_reports_questions_already_imported(dataset, alice, tmp_path):
    path, _ = squad_slice(tmp_path, articles=1, paragraphs=1)
    first = run_job(dataset, alice, path, kind=DOCS)
    assert first.status == Status.SUCCEEDED

    again = run_job(dataset, alice, path, kind=DOCS)

    assert again.status == Status.VALIDATED
    known = Sample.objects.order_by("id").first()
    assert error_report(again)[:2] == [
        (1, "input", f"same content as sample #{known.pk} (id {known.external_id})"),
        (1, "id", f'id "{known.external_id}" is already used by sample #{known.pk}'),
    ]
    assert SourceDocument.objects.count() == 1
    assert Sample.objects.count() == first.rows_imported


def test_it_checks_answers_of_squad_questions(dataset, alice, tmp_path):
    context = "The treaty was signed in 1648 in Münster."
    squad = {
        "data": [
            {
                "title": "Peace",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": "ok",
                                "question": "When was it signed?",
                                "answers": [{"text": "1648", "answer_start": 25}],
                            },
                            {
                                "id": "off",
                                "question": "Where was it signed?",
                                "answers": [{"text": "Münster", "answer_start": 3}],
                            },
                            {
                                "id": "none",
                                "question": "Who?",
                                "answers": [],
                                "is_impossible": True,
                            },
                        ],
                    },
                    {"context": "", "qas": [{"id": "e", "question": "Empty?", "answers": []}]},
                ],
            }
        ]
    }
    path = tmp_path / "peace.json"
    path.write_text(json.dumps(squad), encoding="utf-8")

    job = run_job(dataset, alice, path, kind=DOCS, skip_bad_rows=True)

    assert error_report(job) == [
        (
            2,
            "expected.answer_start",
            "answer_start 3 does not point at the answer 'Münster' in the passage",
        ),
        (
            3,
            "expected.answer",
            "has no answer (an unanswerable SQuAD 2.0 question cannot be a sample)",
        ),
        (4, "context", "passage text: is required (the document has no text)"),
    ]
    sample = Sample.objects.get()
    assert (sample.external_id, sample.passage_start, sample.passage_end) == ("ok", 25, 29)
    assert SourceDocument.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list.json", b'[{"title": "x", "text": "y"}]', "must be SQuAD-style"),
        ("cut.json", b'{"data": [{"title": "x"', "not valid JSON"),
        ("blank.md", b"   \n", "The file is empty."),
        ("latin.txt", "Café".encode("cp1252"), "not UTF-8 (byte 0xE9 at offset 3"),
    ],
)
def test_it_fails_unreadable_document_files(dataset, alice, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)

    job = run_job(dataset, alice, path, kind=DOCS)

    assert job.status == Status.FAILED
    assert message in job.file_error
    assert not SourceDocument.objects.exists()


def test_it_refuses_formats_and_mappings_that_do_not_fit_documents(dataset, alice, tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("Body")
    with pytest.raises(ValidationError, match="can only set tags"):
        run_job(dataset, alice, text, kind=DOCS, mapping={"input": {"question": "x"}})
    table = tmp_path / "a.csv"
    table.write_text("a,b\n1,2\n")
    with pytest.raises(ValidationError, match="Source documents come from"):
        run_job(dataset, alice, table, kind=DOCS)
    with pytest.raises(ValidationError, match="Samples come from"):
        run_job(dataset, alice, text)
    assert not ImportJob.objects.exists()


def test_it_keeps_one_question_asked_of_two_passages_and_rejects_it_twice_of_one(
    dataset, alice, tmp_path
):
    def paragraph(context: str, qid: str) -> dict:
        return {
            "context": context,
            "qas": [
                {
                    "id": qid,
                    "question": "When was it founded?",
                    "answers": [{"text": "1386", "answer_start": context.index("1386")}],
                }
            ],
        }

    squad = {
        "data": [
            {
                "title": "Founding",
                "paragraphs": [
                    paragraph("Heidelberg University was founded in 1386.", "a"),
                    paragraph("The Lithuanian union was founded in 1386 at Kreva.", "b"),
                    paragraph("The Lithuanian union was founded in 1386 at Kreva.", "c"),
                ],
            }
        ]
    }
    path = tmp_path / "founding.json"
    path.write_text(json.dumps(squad), encoding="utf-8")

    job = run_job(dataset, alice, path, kind=DOCS, skip_bad_rows=True)

    assert job.status == Status.SUCCEEDED
    assert sorted(Sample.objects.values_list("external_id", flat=True)) == ["a", "b"]
    assert error_report(job) == [(3, "input", "same content as row 2")]
