"""From the bytes of an uploaded file to rows: one place for every format's quirks.

Every reader works on an open binary file, streams it (memory stays flat whatever the file
size, apart from one row at a time), and reports two kinds of trouble:

* a row it cannot make sense of (a ragged CSV row, a JSON line that does not parse, an
  XLSX formula, a line far over the size limit) is yielded as a ``RawRow`` with a
  ``problem``: that row is bad, the rest of the file is fine;
* a file it cannot read at all (wrong encoding, unclosed quote, not JSON, empty) raises
  ``FileError`` with a message written for the person who made the file.

Rows are numbered as the user sees them: CSV and XLSX count data rows after the header
(blank rows included, so the numbers stay put), JSON arrays count items, JSON Lines count
physical lines.
"""

from __future__ import annotations

from datasets.importing.readers.base import (
    EXCERPT_CHARS,
    FileError,
    LineTooLong,
    RawRow,
    TextSource,
    excerpt_of,
)
from datasets.importing.readers.documents import markdown_title, read_squad, read_text
from datasets.importing.readers.json_files import JsonArrayReader, JsonLinesReader
from datasets.importing.readers.tabular import CsvReader, XlsxReader

__all__ = [
    "EXCERPT_CHARS",
    "CsvReader",
    "FileError",
    "JsonArrayReader",
    "JsonLinesReader",
    "LineTooLong",
    "RawRow",
    "TextSource",
    "XlsxReader",
    "excerpt_of",
    "markdown_title",
    "read_squad",
    "read_text",
]
