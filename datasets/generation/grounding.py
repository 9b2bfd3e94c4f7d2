"""Passages of a source document, and where an answer sits in one."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from synthaug.engine.offline import split_sentences

# A model sees one passage, not the document: documents can be megabytes, and a passage of
# a few sentences keeps each question grounded in text the checks can show beside it.
PASSAGE_CHARS = 1500


def passages(text: str, *, max_chars: int = PASSAGE_CHARS) -> list[tuple[int, int]]:
    """(start, end) spans of consecutive sentences, each up to about ``max_chars``.

    A single sentence longer than ``max_chars`` is a passage on its own.
    """
    spans: list[tuple[int, int]] = []
    start = end = None
    for s_start, s_end in split_sentences(text):
        if start is None:
            start, end = s_start, s_end
        elif s_end - start > max_chars:
            spans.append((start, end))
            start, end = s_start, s_end
        else:
            end = s_end
    if start is not None:
        spans.append((start, end))
    return spans or ([(0, len(text))] if text.strip() else [])


def passage_for(text: str, *, pick: int, seed: int) -> tuple[int, int, int]:
    """The passage for the ``pick``-th slot given to a document, and its variant number.

    Passages come in a seeded order; once each had a slot, the order repeats and the variant
    (1, 2, ...) asks the model for another question about the same passage.
    """
    spans = passages(text)
    if not spans:
        raise ValueError("the document has no text")
    order = list(range(len(spans)))
    random.Random(seed).shuffle(order)
    start, end = spans[order[pick % len(spans)]]
    return start, end, pick // len(spans) + 1


@dataclass(frozen=True)
class Located:
    start: int  # offsets in the text searched
    end: int
    answer: str  # the text at [start:end], verbatim
    support: str  # the supporting passage as it appears in the text


def _find(needle: str, haystack: str) -> tuple[int, int] | None:
    """``needle`` in ``haystack``: verbatim, else ignoring case and runs of whitespace."""
    index = haystack.find(needle)
    if index >= 0:
        return index, index + len(needle)
    words = needle.split()
    if not words:
        return None
    # A regex keeps offsets exact, where casefold() could change the text's length.
    pattern = re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)
    match = pattern.search(haystack)
    return (match.start(), match.end()) if match else None


def locate_answer(*, answer: str, support: str, passage: str) -> Located | None:
    """Where ``answer`` is in ``passage``, preferably inside the quoted ``support``.

    The support must itself be in the passage to count; when it is not (a model paraphrased
    its quote), the answer is looked for in the whole passage and the sentence around it
    becomes the support. None: the answer is not in the passage at all (ungrounded).
    """
    # Trailing punctuation is the model's, not the span's: try without it first.
    candidates = [answer.strip().strip(" .,;:!?\"'"), answer.strip()]
    support_span = _find(support.strip(), passage) if support.strip() else None
    for candidate in dict.fromkeys(c for c in candidates if c):
        if support_span is not None:
            s_start, s_end = support_span
            inner = _find(candidate, passage[s_start:s_end])
            if inner is not None:
                start, end = s_start + inner[0], s_start + inner[1]
                return Located(start, end, passage[start:end], passage[s_start:s_end])
        found = _find(candidate, passage)
        if found is not None:
            start, end = found
            sentence = next(
                ((a, b) for a, b in split_sentences(passage) if a <= start and end <= b),
                (start, end),
            )
            return Located(start, end, passage[start:end], passage[sentence[0] : sentence[1]])
    return None
