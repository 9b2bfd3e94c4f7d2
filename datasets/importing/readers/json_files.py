"""JSON arrays of objects (split as they stream) and JSON Lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from datasets.importing.readers.base import (
    EXCERPT_CHARS,
    FileError,
    RawRow,
    TextSource,
    excerpt_of,
)

# How much decoded text the JSON array splitter reads at a time (tests make it tiny).
_CHUNK_CHARS = 1 << 20

# --- JSON arrays -----------------------------------------------------------------------

_JSON_OUTSIDE = re.compile(r'[\[\]{}",]')
_JSON_INSIDE = re.compile(r'["\\]')
_NON_SPACE = re.compile(r"\S")


def _kind_of(value: Any) -> str:
    return {
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        type(None): "null",
    }.get(type(value), type(value).__name__)


class JsonArrayReader:
    """A JSON file holding an array of objects, split into items without loading it whole.

    The splitter only tracks strings and nesting depth to find where each top-level item
    ends; orjson parses each item. An item longer than the limit is skipped (and reported)
    without being kept in memory.
    """

    columns = None

    def __init__(self, fh: BinaryIO, *, max_item_chars: int) -> None:
        self.source = TextSource(fh)
        self.max_item_chars = max_item_chars

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read

    def __iter__(self) -> Iterator[RawRow]:
        try:
            for number, text, length in self._items():
                if text is None:
                    yield RawRow(
                        number,
                        None,
                        problem=(
                            f"item is {length:,} characters long; the longest accepted item is "
                            f"{self.max_item_chars:,} characters"
                        ),
                    )
                    continue
                if not text:
                    yield RawRow(number, None, problem="is empty (a stray comma?)")
                    continue
                try:
                    value = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    yield RawRow(
                        number, None, problem=f"is not valid JSON ({exc})", excerpt=excerpt_of(text)
                    )
                    continue
                if not isinstance(value, dict):
                    yield RawRow(
                        number,
                        None,
                        problem=f"is {_kind_of(value)}, not an object",
                        excerpt=excerpt_of(text),
                    )
                    continue
                yield RawRow(number, value)
        except UnicodeDecodeError:
            raise self.source.decode_error() from None

    def _items(self) -> Iterator[tuple[int, str | None, int]]:
        """(item number, item text or None when too long, length) for each array item."""
        read = self.source.text.read
        buf, pos = "", 0
        state = "before"  # before the '[' -> inside the array -> after the ']'
        depth, in_string = 0, False
        item_start, dropped, oversize, number = 0, 0, False, 0
        while chunk := read(_CHUNK_CHARS):
            buf += chunk
            while True:
                if state == "before":
                    match = _NON_SPACE.search(buf, pos)
                    if match is None:
                        pos = len(buf)
                        break
                    if buf[match.start()] != "[":
                        raise FileError(
                            "A JSON file of samples must hold an array of objects "
                            f"([{{...}}, {{...}}]); this one starts with {buf[match.start()]!r}. "
                            "For one object per line, use a .jsonl file."
                        )
                    state, depth = "inside", 1
                    pos = item_start = match.start() + 1
                    continue
                if state == "after":
                    if _NON_SPACE.search(buf, pos):
                        raise FileError(
                            "There is more text after the JSON array's closing bracket; "
                            "a JSON file must hold exactly one array."
                        )
                    pos = len(buf)
                    break
                if in_string:
                    match = _JSON_INSIDE.search(buf, pos)
                    if match is None:
                        pos = len(buf)
                        break
                    if buf[match.start()] == "\\":
                        if match.start() + 1 >= len(buf):
                            pos = match.start()  # the escaped character is in the next chunk
                            break
                        pos = match.start() + 2
                        continue
                    in_string, pos = False, match.start() + 1
                    continue
                match = _JSON_OUTSIDE.search(buf, pos)
                if match is None:
                    pos = len(buf)
                    break
                char, end = buf[match.start()], match.start()
                pos = end + 1
                if char == '"':
                    in_string = True
                elif char in "[{":
                    depth += 1
                elif char in "]}" and depth > 1:
                    depth -= 1
                elif char == "," and depth > 1:
                    pass
                else:  # a comma or the closing bracket of the top-level array
                    text = buf[item_start:end].strip()
                    closing = char != ","
                    if oversize or end - item_start > self.max_item_chars:
                        number += 1
                        yield number, None, dropped + end - item_start
                    elif text or not closing or number:
                        number += 1
                        yield number, text, len(text)
                    oversize, dropped, item_start = False, 0, pos
                    if closing:
                        state, depth = "after", 0
            # Keep only what is still needed: the current item (unless it is already over
            # the limit) and the unscanned tail.
            if state == "inside":
                if not oversize and pos - item_start > self.max_item_chars:
                    oversize = True
                if oversize:
                    dropped += pos - item_start
                    buf, pos, item_start = buf[pos:], 0, 0
                else:
                    buf, pos, item_start = buf[item_start:], pos - item_start, 0
            else:
                buf = buf[pos:]
                pos = 0
        if state == "before":
            raise FileError("The file is empty.")
        if state == "inside":
            raise FileError(
                f"The JSON array is never closed: the file ends inside item {number + 1}. "
                "The file may be cut short; export it again."
            )


# --- JSON Lines ------------------------------------------------------------------------


class JsonLinesReader:
    """One JSON object per line; blank lines are ignored but keep the numbering."""

    columns = None

    def __init__(self, fh: BinaryIO, *, max_line_chars: int) -> None:
        self.source = TextSource(fh)
        self.max_line_chars = max_line_chars

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read

    def __iter__(self) -> Iterator[RawRow]:
        readline = self.source.text.readline
        limit = self.max_line_chars
        loads = orjson.loads
        number = 0
        try:
            while line := readline(limit):
                number += 1
                if len(line) >= limit and not line.endswith(("\n", "\r")):
                    # Skip the rest of the line in bounded pieces: a 50 MB line costs
                    # one piece of memory, not 50 MB.
                    length = len(line)
                    while more := readline(limit):
                        length += len(more)
                        if more.endswith(("\n", "\r")):
                            break
                    yield RawRow(
                        number,
                        None,
                        problem=(
                            f"line {number} is {length:,} characters long; the longest "
                            f"accepted line is {limit:,} characters"
                        ),
                        excerpt=excerpt_of(line[:EXCERPT_CHARS]),
                    )
                    continue
                if line.isspace():
                    continue
                try:
                    value = loads(line)
                except orjson.JSONDecodeError as exc:
                    yield RawRow(
                        number,
                        None,
                        problem=f"line {number} is not valid JSON ({exc})",
                        excerpt=excerpt_of(line),
                    )
                    continue
                if not isinstance(value, dict):
                    yield RawRow(
                        number,
                        None,
                        problem=f"line {number} is {_kind_of(value)}, not an object",
                        excerpt=excerpt_of(line),
                    )
                    continue
                yield RawRow(number, value)
        except UnicodeDecodeError:
            raise self.source.decode_error() from None
