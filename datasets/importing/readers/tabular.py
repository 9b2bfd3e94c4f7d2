"""CSV and XLSX: a header row, then one row per record."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

from datasets.importing.readers.base import FileError, LineTooLong, RawRow, TextSource, excerpt_of

# --- CSV -------------------------------------------------------------------------------


class _LineFeed:
    """Physical lines for csv.reader, capped in length, with a running quote parity.

    The parity (an odd number of ``"`` leaves a quoted field open) lets the reader find
    the end of a record the csv module gave up on (a cell over the size limit) without
    holding it in memory. It is exact for well-formed CSV; a stray quote inside an
    unquoted cell can only affect how such a too-long record is skipped.
    """

    def __init__(self, text: IO[str], max_line_chars: int) -> None:
        self._text = text
        self._max = max_line_chars
        self._pushed: list[str] = []
        self.line_no = 0
        self.in_quotes = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = self._pushed.pop() if self._pushed else self._text.readline(self._max)
        if not line:
            raise StopIteration
        self.line_no += 1
        if len(line) >= self._max and not line.endswith(("\n", "\r")):
            length, quotes = len(line), line.count('"')
            while more := self._text.readline(self._max):
                length += len(more)
                quotes += more.count('"')
                if more.endswith(("\n", "\r")):
                    break
            if quotes % 2:
                self.in_quotes = not self.in_quotes
            raise LineTooLong(self.line_no, length)
        if line.count('"') % 2:
            self.in_quotes = not self.in_quotes
        return line

    def push_back(self, line: str) -> None:
        """Undo one ``next()`` (used to peek at the header line)."""
        self._pushed.append(line)
        self.line_no -= 1
        if line.count('"') % 2:
            self.in_quotes = not self.in_quotes

    def skip_line(self) -> bool:
        """Consume one physical line of any length without keeping it; False at the end."""
        seen = False
        while part := self._text.readline(self._max):
            seen = True
            if part.count('"') % 2:
                self.in_quotes = not self.in_quotes
            if part.endswith(("\n", "\r")):
                break
        if seen:
            self.line_no += 1
        return seen


def _guess_delimiter(line: str) -> str:
    """Comma unless the header has none and another usual separator appears."""
    if "," in line:
        return ","
    counts = {d: line.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


class CsvReader:
    """CSV (any usual delimiter) with a header row; cells are strings."""

    def __init__(self, fh: BinaryIO, *, max_cell_chars: int, max_line_chars: int) -> None:
        self.source = TextSource(fh)
        self.max_cell_chars = max_cell_chars
        # The limit is process-wide in the csv module; every import sets the same value.
        csv.field_size_limit(max_cell_chars)
        self._feed = _LineFeed(self.source.text, max(max_line_chars, max_cell_chars + 2))
        try:
            first = next(self._feed, "")
        except UnicodeDecodeError:
            raise self.source.decode_error() from None
        except LineTooLong as exc:
            raise FileError(
                f"The first line (the header) is {exc.length:,} characters long; "
                "is this really a CSV file?"
            ) from None
        if not first.strip():
            raise FileError("The file is empty: it needs a header row and at least one row.")
        self._feed.push_back(first)
        self._reader = csv.reader(self._feed, delimiter=_guess_delimiter(first), strict=True)
        header = self._next_record(start_line=1)
        if header is None or not any(cell.strip() for cell in header):
            raise FileError("The first row (the header) is empty; it must name the columns.")
        self.columns = [cell.strip() for cell in header]
        seen: set[str] = set()
        for name in self.columns:
            if name and name in seen:
                raise FileError(
                    f"The header names the column {name!r} twice; column names must be unique."
                )
            seen.add(name)

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read

    def _next_record(self, *, start_line: int) -> list[str] | None:
        """The next record, or None at the end; file-level CSV errors become FileError."""
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise self.source.decode_error() from None
        except csv.Error as exc:
            message = str(exc)
            if "field larger than field limit" in message:
                raise
            if "unexpected end of data" in message:
                raise FileError(
                    f"Line {start_line}: a quoted field is never closed (its opening quote "
                    "runs to the end of the file). Check the quotes on that line."
                ) from None
            if "NUL" in message:
                raise FileError(
                    f"Line {self._reader.line_num} contains a NUL byte: this is not a text "
                    "CSV file (a spreadsheet saved with a .csv name?)."
                ) from None
            raise FileError(
                f"Line {self._reader.line_num}: {message}. A quote inside a quoted field "
                'must be written twice (""); fix the quoting on that line.'
            ) from None

    def _skip_open_record(self, start_line: int) -> None:
        """After an oversized cell: skip to the end of the record the csv module dropped."""
        while self._feed.in_quotes:
            if not self._feed.skip_line():
                raise FileError(
                    f"Line {start_line}: a quoted field is never closed (its opening quote "
                    "runs to the end of the file). Check the quotes on that line."
                )

    def __iter__(self) -> Iterator[RawRow]:
        width = len(self.columns)
        number = 0
        while True:
            start_line = self._feed.line_no + 1
            try:
                cells = self._next_record(start_line=start_line)
            except (csv.Error, LineTooLong) as exc:
                number += 1
                what = (
                    f"line {exc.line_no} is {exc.length:,} characters long"
                    if isinstance(exc, LineTooLong)
                    else f"a cell is longer than {self.max_cell_chars:,} characters"
                )
                yield RawRow(
                    number,
                    None,
                    problem=f"{what}, too long to read (row starts on line {start_line})",
                )
                self._skip_open_record(start_line)
                continue
            if cells is None:
                return
            number += 1
            if not cells or not any(cells):
                continue  # a blank row keeps its number but is not data
            if len(cells) != width and (len(cells) < width or any(cells[width:])):
                yield RawRow(
                    number,
                    None,
                    problem=f"has {len(cells)} cells, header has {width} (line {start_line})",
                    excerpt=excerpt_of(",".join(cells)),
                )
                continue
            yield RawRow(number, dict(zip(self.columns, cells, strict=False)))


# --- XLSX ------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    """A spreadsheet value as the text a CSV export of it would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class XlsxReader:
    """The first worksheet of an .xlsx workbook, header in its first row.

    A cell that holds a formula is a row error: the value a spreadsheet would show is not
    in the file reliably, and a formula is not data.
    """

    def __init__(self, fh: BinaryIO) -> None:
        import zipfile

        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        self._fh = fh
        head = fh.read(8)
        fh.seek(0)
        if not head:
            raise FileError("The file is empty.")
        if head.startswith(b"\xd0\xcf\x11\xe0"):
            raise FileError(
                "This is an old Excel .xls file; save it as .xlsx (Excel Workbook) or CSV UTF-8."
            )
        try:
            self._book = load_workbook(fh, read_only=True, data_only=False)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            raise FileError(
                f"This is not a readable .xlsx workbook ({exc}); save it from your spreadsheet "
                "program as Excel Workbook (.xlsx) or CSV UTF-8."
            ) from None
        if not self._book.worksheets:
            raise FileError("The workbook has no worksheet.")
        sheet = self._book.worksheets[0]
        self._first_row = sheet.min_row or 1
        self._rows = sheet.iter_rows()
        header = next(self._rows, None)
        names = [_cell_text(cell.value).strip() for cell in header or ()]
        while names and not names[-1]:
            names.pop()
        if not names:
            self.close()
            raise FileError("The first row (the header) of the first sheet is empty.")
        seen: set[str] = set()
        for name in names:
            if name and name in seen:
                self.close()
                raise FileError(
                    f"The header names the column {name!r} twice; column names must be unique."
                )
            seen.add(name)
        self.columns = names
        self._done = 0

    @property
    def bytes_read(self) -> int:
        return 0

    def close(self) -> None:
        self._book.close()

    def __iter__(self) -> Iterator[RawRow]:
        from openpyxl.utils import get_column_letter

        width = len(self.columns)
        try:
            for number, cells in enumerate(self._rows, start=1):
                sheet_row = self._first_row + number
                values: list[str] = []
                problems: list[str] = []
                for index, cell in enumerate(cells):
                    kind = getattr(cell, "data_type", "n")
                    if cell.value is None:
                        values.append("")
                        continue
                    coordinate = f"{get_column_letter(index + 1)}{sheet_row}"
                    if kind == "f":
                        problems.append(
                            f"cell {coordinate} is a formula; export values, not formulas"
                        )
                    elif kind == "e":
                        problems.append(f"cell {coordinate} holds the error {cell.value}")
                    values.append(_cell_text(cell.value))
                while len(values) > width and not values[-1]:
                    values.pop()
                if not any(values):
                    continue
                if len(values) > width:
                    problems.append(f"has {len(values)} cells, header has {width}")
                if problems:
                    yield RawRow(
                        number, None, problem="; ".join(problems), excerpt=excerpt_of(values)
                    )
                    continue
                values += [""] * (width - len(values))
                yield RawRow(number, dict(zip(self.columns, values, strict=False)))
        finally:
            self.close()
