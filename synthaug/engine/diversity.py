"""How much a batch adds: similarity to parents, distinct n-grams, near-copies.

A batch that mostly restates its parents is "low_information" (it looks like growth and is
not); a batch made only by paraphrase is "paraphrase_only". Pure: texts in, figures out.

rapidfuzz is used here as well as in the dedup module: this is a per-batch figure over
(item, parent) pairs, not a search, and needs no index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from rapidfuzz import fuzz

from synthaug.engine.text import normalise

# fuzz.ratio (0-100) at or above which an item is a near-copy of its parent.
NEAR_COPY_RATIO = 90.0
# Share of near-copies above which the batch is low-information.
LOW_INFORMATION_SHARE = 0.5
BINS = (0, 50, 70, 80, 90, 95, 101)  # similarity histogram edges (the last is exclusive)

LOW_INFORMATION = "low_information"
PARAPHRASE_ONLY = "paraphrase_only"

_WORD = re.compile(r"\w+", re.UNICODE)


def _distinct_ratio(texts: Iterable[str], n: int) -> float | None:
    total = 0
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        words = _WORD.findall(normalise(text))
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return round(len(seen) / total, 4) if total else None


def batch_diversity(pairs: Sequence[tuple[str, str | None]], *, method: str = "") -> dict[str, Any]:
    """Figures for a batch from ``(item text, parent text or None)`` pairs.

    ``parent_similarity`` holds the histogram (``bins`` edges, ``counts``), mean and median
    of ``fuzz.ratio`` between each item and its parent, over items that have one.
    """
    similarities = sorted(
        fuzz.ratio(normalise(text), normalise(parent)) for text, parent in pairs if parent
    )
    counts = [0] * (len(BINS) - 1)
    for value in similarities:
        for i in range(len(BINS) - 1):
            if BINS[i] <= value < BINS[i + 1]:
                counts[i] += 1
                break
    near = sum(1 for value in similarities if value >= NEAR_COPY_RATIO)
    share = round(near / len(similarities), 4) if similarities else None
    flags = []
    if share is not None and share > LOW_INFORMATION_SHARE:
        flags.append(LOW_INFORMATION)
    if method == "paraphrase":
        flags.append(PARAPHRASE_ONLY)
    texts = [text for text, _ in pairs]
    middle = len(similarities) // 2
    return {
        "items": len(pairs),
        "with_parent": len(similarities),
        "parent_similarity": {
            "bins": [*BINS[:-1], 100],
            "counts": counts,
            "mean": round(sum(similarities) / len(similarities), 2) if similarities else None,
            "median": (
                round(
                    similarities[middle]
                    if len(similarities) % 2
                    else (similarities[middle - 1] + similarities[middle]) / 2,
                    2,
                )
                if similarities
                else None
            ),
        },
        "near_copy_ratio": NEAR_COPY_RATIO,
        "near_copies": near,
        "near_copy_share": share,
        "distinct_1grams": _distinct_ratio(texts, 1),
        "distinct_2grams": _distinct_ratio(texts, 2),
        "flags": flags,
    }


def release_paraphrase_only(methods: Iterable[str]) -> bool:
    """Whether a release built from batches of these methods holds nothing but paraphrases."""
    seen = set(methods)
    return bool(seen) and seen == {"paraphrase"}
