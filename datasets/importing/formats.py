"""django-import-export formats for the admin, built on synthaug's own readers.

The admin's import reads the uploaded file through these, so it gets the same decoding
(BOMs, clear encoding errors), the same CSV/XLSX/JSON handling and the same row envelope
as the app's own import; ``SampleResource`` then applies the shared row spec. Export goes
through tablib as usual, with formula-looking cells neutralised in CSV and XLSX.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import tablib
from django.conf import settings
from import_export.formats import base_formats

from datasets.importing.readers import CsvReader, JsonArrayReader, XlsxReader
from datasets.importing.tabular import envelope_dataset

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _ReaderFormat(base_formats.Format):
    """An import-only format whose dataset comes from a synthaug reader."""

    name = ""
    extension = ""

    def __init__(self, encoding: str | None = None) -> None:
        self.encoding = encoding

    def get_title(self) -> str:
        return self.name

    def get_extension(self) -> str:
        return self.extension

    def is_binary(self) -> bool:
        # The reader decodes (and sniffs the BOM) itself.
        return True

    def get_read_mode(self) -> str:
        return "rb"

    def can_import(self) -> bool:
        return True

    def can_export(self) -> bool:
        return False

    def reader(self, fh: io.BytesIO) -> Any:
        raise NotImplementedError

    def create_dataset(self, in_stream: bytes | str, **kwargs: Any) -> tablib.Dataset:
        data = in_stream.encode("utf-8") if isinstance(in_stream, str) else in_stream
        reader = self.reader(io.BytesIO(data))
        dataset = envelope_dataset(reader, columns=reader.columns, title=self.name)
        dataset.synthaug_size = len(data)
        dataset.synthaug_sha256 = hashlib.sha256(data).hexdigest()
        return dataset


def _line_limit() -> int:
    return 8 * settings.SYNTHAUG_MAX_FIELD_CHARS + 65536


class CsvImport(_ReaderFormat):
    name, extension = "csv", "csv"

    def reader(self, fh: io.BytesIO) -> CsvReader:
        return CsvReader(fh, max_cell_chars=_line_limit(), max_line_chars=_line_limit())


class XlsxImport(_ReaderFormat):
    name, extension = "xlsx", "xlsx"

    def reader(self, fh: io.BytesIO) -> XlsxReader:
        return XlsxReader(fh)


class JsonImport(_ReaderFormat):
    name, extension = "json", "json"

    def reader(self, fh: io.BytesIO) -> JsonArrayReader:
        return JsonArrayReader(fh, max_item_chars=_line_limit())


def _neutralise(dataset: tablib.Dataset) -> tablib.Dataset:
    """Prefix cells a spreadsheet would run as a formula with a quote."""
    safe = tablib.Dataset(headers=dataset.headers)
    for row in dataset:
        safe.append(
            [
                "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell
                for cell in row
            ]
        )
    return safe


class SafeCSV(base_formats.CSV):
    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> str:
        return super().export_data(_neutralise(dataset), **kwargs)


class SafeXLSX(base_formats.XLSX):
    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> bytes:
        return super().export_data(_neutralise(dataset), **kwargs)
