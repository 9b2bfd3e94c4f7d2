"""The readers on their own: decoding, CSV recovery, the streaming JSON splitter."""

from __future__ import annotations

import codecs
import io
import json
import random

import pytest

from datasets.importing.readers import (
    CsvReader,
    FileError,
    JsonArrayReader,
    JsonLinesReader,
    json_files,
    markdown_title,
)


def csv_rows(data: bytes, *, cell: int = 100, line: int = 1000):
    reader = CsvReader(io.BytesIO(data), max_cell_chars=cell, max_line_chars=line)
    return reader.columns, [(r.row, r.data, r.problem) for r in reader]


def test_it_recovers_after_a_cell_over_the_limit_even_across_lines():
    data = b"q,a\n1," + b"x" * 500 + b'\n2,ok\n"3","' + b"y\n" * 80 + b'",z\n4,fine\n'
    columns, rows = csv_rows(data)
    assert columns == ["q", "a"]
    assert [(row, data) for row, data, _ in rows] == [
        (1, None),
        (2, {"q": "2", "a": "ok"}),
        (3, None),
        (4, {"q": "4", "a": "fine"}),
    ]
    assert rows[2][2] == (
        "a cell is longer than 100 characters, too long to read (row starts on line 4)"
    )


def test_it_skips_a_physical_csv_line_over_the_limit_without_keeping_it():
    _, rows = csv_rows(b"q,a\n1," + b"x" * 5000 + b"\n2,ok\n", cell=100, line=1000)
    assert rows == [
        (1, None, "line 2 is 5,003 characters long, too long to read (row starts on line 2)"),
        (2, {"q": "2", "a": "ok"}, ""),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'a,b\n"1"x,2\n', "Line 2: ',' expected after '\"'"),
        (b'a,b\n1,"open\n2,3\n', "Line 2: a quoted field is never closed"),
        ("a,b\n1,é\n".encode("utf-16-le"), "looks like UTF-16 without a byte-order mark"),
        (codecs.BOM_UTF16_LE + b"a\x00,\x00b\x00\n\x00\x00\xd8", "not valid UTF-16"),
    ],
)
def test_it_turns_unreadable_csv_into_file_errors(data, message):
    with pytest.raises(FileError, match=message):
        csv_rows(data)


def test_it_reads_utf32_with_a_bom():
    data = codecs.BOM_UTF32_LE + "a,b\n1,ü\n".encode("utf-32-le")
    assert csv_rows(data) == (["a", "b"], [(1, {"a": "1", "b": "ü"}, "")])


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_the_json_splitter_agrees_with_json_loads_at_any_chunk_size(monkeypatch, chunk):
    rng = random.Random(chunk)
    items = [
        {
            "i": i,
            "s": "".join(rng.choice('ab\\"],[{}é\n\t ') for _ in range(rng.randint(0, 30))),
            "n": [1, {"x": "]"}] if i % 3 else None,
        }
        for i in range(400)
    ]
    data = json.dumps(items, indent=1 if chunk % 2 else None).encode()
    monkeypatch.setattr(json_files, "_CHUNK_CHARS", chunk)

    got = [row.data for row in JsonArrayReader(io.BytesIO(data), max_item_chars=10_000)]

    assert got == items


def test_the_json_splitter_skips_an_item_over_the_limit(monkeypatch):
    monkeypatch.setattr(json_files, "_CHUNK_CHARS", 16)
    data = b'[{"a": 1}, {"big": "' + b"z" * 300 + b'"}, {"b": 2}]'

    rows = list(JsonArrayReader(io.BytesIO(data), max_item_chars=100))

    assert [(r.row, r.data) for r in rows] == [(1, {"a": 1}), (2, None), (3, {"b": 2})]
    assert rows[1].problem == (
        "item is 312 characters long; the longest accepted item is 100 characters"
    )


def test_json_lines_keep_physical_line_numbers():
    data = b'{"a": 1}\r\n\n  \n{"b": 2}\n{"c": "\\u2028 stays on its line"}\n'
    rows = list(JsonLinesReader(io.BytesIO(data), max_line_chars=1000))
    assert [(r.row, r.data) for r in rows] == [
        (1, {"a": 1}),
        (4, {"b": 2}),
        (5, {"c": "\u2028 stays on its line"}),
    ]


def test_markdown_titles():
    assert markdown_title("text\n# Title #\n## Later") == "Title"
    assert markdown_title("   ### Deep heading  \nbody") == "Deep heading"
    assert markdown_title("#hashtag is not a heading") == ""
