"""What every reader shares: the row it yields, the file error, strict decoding."""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import orjson

EXCERPT_CHARS = 200


class FileError(Exception):
    """The file as a whole cannot be read; nothing from it is imported.

    ``str(exc)`` is shown to the user as it is, so it says what is wrong and what to do.
    """


class LineTooLong(Exception):
    """Raised by the CSV line feed for a physical line over the limit (already skipped)."""

    def __init__(self, line_no: int, length: int) -> None:
        super().__init__(line_no, length)
        self.line_no = line_no
        self.length = length


@dataclass(slots=True)
class RawRow:
    """One row as read: column (or key) -> value, or the reason it could not be read."""

    row: int
    data: dict[str, Any] | None
    problem: str = ""
    excerpt: str = ""


def excerpt_of(value: Any) -> str:
    """A short, single-line rendering of a row for error reports."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=str).decode()
        except TypeError:
            text = repr(value)
    text = " ".join(text[: EXCERPT_CHARS * 2].split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


# --- Decoding --------------------------------------------------------------------------

# UTF-32 LE starts with the UTF-16 LE mark, so it is checked first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


class TextSource:
    """A strictly decoded text stream over a binary file, encoding chosen by its BOM.

    UTF-8 (with or without a BOM), UTF-16 and UTF-32 with a BOM are read; anything else
    fails with a message naming the first bad byte and its offset. ``newline=""`` keeps
    line endings as they are, which the csv module needs for quoted newlines.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        head = fh.read(4096)
        fh.seek(0)
        self.encoding, self.label = "utf-8", "UTF-8"
        for bom, encoding, label in _BOMS:
            if head.startswith(bom):
                self.encoding, self.label = encoding, label
                break
        else:
            # UTF-16 without a BOM decodes as "valid" UTF-8 full of NUL characters; say so
            # instead of failing later with a baffling CSV or JSON error.
            if len(head) >= 8 and head.count(b"\x00") * 4 > len(head):
                raise FileError(
                    "The file looks like UTF-16 without a byte-order mark (it is full of NUL "
                    "bytes); save the file as UTF-8 and upload it again."
                )
        self.text: IO[str] = io.TextIOWrapper(
            fh, encoding=self.encoding, errors="strict", newline=""
        )

    @property
    def bytes_read(self) -> int:
        """How far into the file the decoder has read (a little ahead of the rows)."""
        try:
            return self._fh.tell()
        except (OSError, ValueError):
            return 0

    def decode_error(self) -> FileError:
        """The FileError for a UnicodeDecodeError: find the first bad byte and name it.

        The text layer decodes in chunks and reports positions inside a chunk, so the
        file is decoded again from the start to find the absolute offset.
        """
        fh = self._fh
        fh.seek(0)
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        offset = 0
        head = b""
        while True:
            chunk = fh.read(1 << 20)
            if not head:
                head = chunk[:65536]
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                position = offset - pending + exc.start
                bad = exc.object[exc.start] if exc.start < len(exc.object) else None
                return FileError(self._decode_message(position, bad, head))
            if not chunk:
                break
            offset += len(chunk)
        return FileError(
            f"The file is not valid {self.label}; save the file as UTF-8 and upload it again."
        )

    def _decode_message(self, position: int, bad: int | None, head: bytes) -> str:
        byte = f"byte 0x{bad:02X} at offset {position}" if bad is not None else "at the end"
        if self.label != "UTF-8":
            return (
                f"The file starts with a {self.label} byte-order mark but is not valid "
                f"{self.label} ({byte}); save the file as UTF-8 and upload it again."
            )
        hint = ""
        try:
            head.decode("cp1252")
        except UnicodeDecodeError:
            pass
        else:
            hint = ", it looks like Windows-1252 / Latin-1"
        return (
            f"The file is not UTF-8 ({byte}{hint}); save the file as UTF-8 "
            f"(in Excel: Save As, CSV UTF-8) and upload it again."
        )
