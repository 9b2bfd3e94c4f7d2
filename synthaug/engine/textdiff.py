"""Side-by-side line diffs as plain data; templates only format (and escape) them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from itertools import zip_longest


@dataclass(frozen=True)
class DiffRow:
    """One line of a side-by-side diff: ``kind`` is same, changed, removed or added."""

    kind: str
    left_number: int | None
    left: str
    right_number: int | None
    right: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    rows: list[DiffRow]
    added: int
    removed: int
    changed: int

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_lines(left: str, right: str) -> list[DiffRow]:
    """Side-by-side rows of a line diff (difflib). Plain text: the template escapes it."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                DiffRow("same", i + 1, a[i], j + 1, b[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        for i, j in zip_longest(range(i1, i2), range(j1, j2)):
            if i is not None and j is not None:
                rows.append(DiffRow("changed", i + 1, a[i], j + 1, b[j]))
            elif i is not None:
                rows.append(DiffRow("removed", i + 1, a[i], None, ""))
            else:
                rows.append(DiffRow("added", None, "", j + 1, b[j]))
    return rows


def field_diff(name: str, left: str, right: str) -> FieldDiff:
    rows = diff_lines(left, right)
    return FieldDiff(
        name=name,
        rows=rows,
        added=sum(row.kind == "added" for row in rows),
        removed=sum(row.kind == "removed" for row in rows),
        changed=sum(row.kind == "changed" for row in rows),
    )


@dataclass(frozen=True)
class Span:
    """A run of text in a word diff; ``changed`` marks what the other side lacks."""

    text: str
    changed: bool


_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def word_diff(left: str, right: str) -> tuple[list[Span], list[Span]]:
    """Both texts cut into spans, with the words (and punctuation) that differ marked.

    For one-line texts (most samples) a line diff marks everything; this shows which
    words an edited copy changed. Plain text: the template escapes it.
    """
    a, b = _TOKENS.findall(left), _TOKENS.findall(right)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    left_spans: list[Span] = []
    right_spans: list[Span] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        same = tag == "equal"
        if i2 > i1:
            left_spans.append(Span("".join(a[i1:i2]), not same))
        if j2 > j1:
            right_spans.append(Span("".join(b[j1:j2]), not same))
    return left_spans, right_spans
