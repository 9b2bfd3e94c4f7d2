"""Whole-file reads: a text or Markdown document, a SQuAD file."""

from __future__ import annotations

import re
from typing import Any, BinaryIO

import orjson

from datasets.importing.readers.base import FileError, TextSource

# --- Whole documents -------------------------------------------------------------------


def read_text(fh: BinaryIO, *, max_chars: int, what: str = "document") -> str:
    """The whole decoded text of a small file (a document, a SQuAD file), size-capped."""
    source = TextSource(fh)
    try:
        text = source.text.read(max_chars + 1)
    except UnicodeDecodeError:
        raise source.decode_error() from None
    if len(text) > max_chars:
        raise FileError(
            f"The {what} is longer than {max_chars:,} characters; split it into smaller files."
        )
    if not text.strip():
        raise FileError("The file is empty.")
    return text


_HEADING = re.compile(r"^\s{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def markdown_title(text: str) -> str:
    """The first ATX heading of a Markdown text, or "" when it has none."""
    match = _HEADING.search(text)
    return match.group(1).strip() if match else ""


def read_squad(fh: BinaryIO, *, max_chars: int) -> list[dict[str, Any]]:
    """The articles of a SQuAD-style JSON file ({"data": [{"title", "paragraphs"}]})."""
    text = read_text(fh, max_chars=max_chars, what="SQuAD file")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FileError(f"The file is not valid JSON ({exc}).") from None
    articles = value.get("data") if isinstance(value, dict) else None
    if not isinstance(articles, list):
        raise FileError(
            'A documents JSON file must be SQuAD-style: an object with a "data" list of '
            'articles, each with a "title" and "paragraphs" (context + qas). For one '
            "document per object, use a .jsonl file."
        )
    if not articles:
        raise FileError('The SQuAD file has an empty "data" list.')
    return articles
