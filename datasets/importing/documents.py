"""Source documents: text and Markdown files, JSON Lines, and SQuAD-style JSON.

Documents (and, for SQuAD, their questions as real samples) are staged through the
streamed engine's ``Stager`` and moved into the dataset by its execution step, so they
share its chunked writes, its duplicate checks and its all-or-nothing transaction.

* text / Markdown: the whole file is one document; its title is the first Markdown
  heading, else the file name.
* JSON Lines: one document per line, ``{"title", "text", "id"?, "tags"?}``.
* SQuAD: every paragraph becomes a document (title: the article title and the paragraph
  number), every question a real sample tied to it: ``input {"question"}``, ``expected
  {"answer", "answer_start"}``, the passage and the answer span, ``source_group`` of the
  document. The questions pass the same RowSpec and duplicate rules as any sample.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, BinaryIO

from datasets.importing.readers import (
    FileError,
    JsonLinesReader,
    excerpt_of,
    markdown_title,
    read_squad,
    read_text,
)
from datasets.importing.rowspec import CleanDocument, DocSpec, RowError, RowSpec
from datasets.importing.streamed import Stager
from datasets.models import ImportJob, ImportRowError
from synthaug.engine.text import content_hash

# The columns a SQuAD question offers to the mapping, and how they map by default.
SQUAD_COLUMNS = ["id", "question", "answer", "answer_start", "title", "context"]
SQUAD_MAPPING = {
    "id": "id",
    "input": {"question": "question"},
    "expected": {"answer": "answer", "answer_start": "answer_start"},
}


def squad_mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    """The job's mapping over the SQuAD defaults: the job's own targets win."""
    return {**SQUAD_MAPPING, **mapping}


def _mapped_tags(mapping: dict[str, Any], data: dict[str, Any]) -> dict[str, Any] | None:
    """Tags a mapping assigns from a row (constants or columns), or None when it has none."""
    if "tags" not in mapping:
        return None
    tags = {}
    for name, source in mapping["tags"].items():
        value = source["const"] if isinstance(source, dict) else data.get(source)
        if value not in (None, ""):
            tags[name] = value
    return tags


def stage_text_document(
    stager: Stager, *, fh: BinaryIO, job: ImportJob, spec: DocSpec, max_chars: int
) -> None:
    """One text or Markdown file as one document (row 1)."""
    text = read_text(fh, max_chars=max_chars)
    stem = PurePath(job.file_name).stem or job.file_name
    title = ""
    if job.format == ImportJob.Format.MARKDOWN:
        title = markdown_title(text)
    title = title or stem
    stager.counted()
    outcome = spec.clean(
        1,
        title=title[:500],
        text=text,
        origin=job.file_name,
        tags=_mapped_tags(job.mapping, {"title": title}),
    )
    _stage_document(stager, outcome)
    stager.flush()
    stager.report()


def _stage_document(stager: Stager, outcome: CleanDocument | list[RowError]) -> None:
    if isinstance(outcome, list):
        stager.add_errors(outcome)
    else:
        stager.add_document(outcome)


def stage_jsonl_documents(
    stager: Stager, *, fh: BinaryIO, job: ImportJob, spec: DocSpec, max_line_chars: int
) -> None:
    """One document per JSON line: title, text, optional id and tags."""
    reader = JsonLinesReader(fh, max_line_chars=max_line_chars)
    stager.bytes_read = lambda: reader.bytes_read
    unreadable = ImportRowError.Kind.UNREADABLE
    for raw in reader:
        stager.counted()
        if raw.data is None:
            stager.add_errors([RowError(raw.row, "", raw.problem, raw.excerpt, unreadable)])
            continue
        data = raw.data
        tags = _mapped_tags(job.mapping, data)
        outcome = spec.clean(
            raw.row,
            title=data.get("title"),
            text=data.get("text"),
            origin=job.file_name,
            external_id=data.get("id"),
            tags=data.get("tags") if tags is None else tags,
            excerpt_from=data,
        )
        _stage_document(stager, outcome)
    if stager.rows_total == 0:
        raise FileError("The file has no documents (it is empty or only blank lines).")
    stager.flush()
    stager.report()


def _answer(qa: dict[str, Any]) -> tuple[str, Any] | None:
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
        return None
    return answers[0].get("text"), answers[0].get("answer_start")


def stage_squad(
    stager: Stager,
    *,
    fh: BinaryIO,
    job: ImportJob,
    doc_spec: DocSpec,
    row_spec: RowSpec,
    max_chars: int,
) -> None:
    """Paragraphs as documents, questions as samples tied to them.

    Questions are numbered 1.. through the file (the row of their errors); paragraphs get
    their own numbers as staged documents. A paragraph that fails its checks fails each of
    its questions, naming the passage problem.
    """
    articles = read_squad(fh, max_chars=max_chars)
    row_spec.check_columns(SQUAD_COLUMNS)
    question_no = 0
    paragraph_no = 0
    for article_no, article in enumerate(articles, start=1):
        if not isinstance(article, dict):
            raise FileError(f'Article {article_no} in "data" is not an object.')
        title = article.get("title")
        if not isinstance(title, str) or not title.strip():
            title = f"Article {article_no}"
        title = title.strip()
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise FileError(f'Article {article_no} ({title}) has no "paragraphs" list.')
        for index, paragraph in enumerate(paragraphs, start=1):
            paragraph_no += 1
            if not isinstance(paragraph, dict):
                raise FileError(f"Paragraph {index} of article {title!r} is not an object.")
            context = paragraph.get("context")
            document = doc_spec.clean(
                paragraph_no,
                title=f"{title} (paragraph {index})",
                text=context,
                origin=f"{job.file_name} · {title}",
                tags=_mapped_tags(job.mapping, {"title": title}),
            )
            if isinstance(document, CleanDocument):
                stager.add_document(document)
            qas = paragraph.get("qas") or []
            if not isinstance(qas, list):
                raise FileError(f'Paragraph {index} of article {title!r}: "qas" is not a list.')
            for qa in qas:
                question_no += 1
                stager.counted()
                _stage_question(
                    stager,
                    row_spec,
                    question_no,
                    qa,
                    title=title,
                    context=context,
                    document=document,
                )
    if question_no == 0 and paragraph_no == 0:
        raise FileError("The SQuAD file has no paragraphs.")
    stager.flush()
    stager.report()


def _stage_question(
    stager: Stager,
    spec: RowSpec,
    number: int,
    qa: Any,
    *,
    title: str,
    context: Any,
    document: CleanDocument | list[RowError],
) -> None:
    if not isinstance(qa, dict):
        stager.add_errors([RowError(number, "", "is not an object", excerpt_of(qa))])
        return
    excerpt = excerpt_of(qa.get("question") or qa)
    if isinstance(document, list):
        stager.add_errors(
            [
                RowError(number, "context", f"passage {error.field}: {error.message}", excerpt)
                for error in document
            ]
        )
        return
    answer = _answer(qa)
    if answer is None:
        stager.add_errors(
            [
                RowError(
                    number,
                    "expected.answer",
                    "has no answer (an unanswerable SQuAD 2.0 question cannot be a sample)",
                    excerpt,
                )
            ]
        )
        return
    text, start = answer
    if (
        not isinstance(text, str)
        or isinstance(start, bool)
        or not isinstance(start, int)
        or context[start : start + len(text)] != text
    ):
        stager.add_errors(
            [
                RowError(
                    number,
                    "expected.answer_start",
                    f"answer_start {start!r} does not point at the answer {text!r} in the passage",
                    excerpt,
                )
            ]
        )
        return
    data = {
        "id": qa.get("id"),
        "question": qa.get("question"),
        "answer": text,
        "answer_start": start,
        "title": title,
        "context": context,
    }
    outcome = spec.clean(number, data)
    if isinstance(outcome, list):
        stager.add_errors(outcome)
        return
    outcome.document_hash = document.content_hash
    # A grounded question is the same sample only when asked of the same passage: "When
    # was it founded?" about two documents is two samples, about one document a duplicate.
    outcome.content_hash = content_hash([outcome.input, document.content_hash])
    outcome.source_group = f"doc:{document.content_hash[:16]}"
    outcome.source_passage = context
    outcome.passage_start = start
    outcome.passage_end = start + len(text)
    stager.add_row(outcome)
