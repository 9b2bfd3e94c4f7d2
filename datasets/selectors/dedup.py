"""Reads for near-duplicate control: a sample's family and a duplicate side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models.functions import Substr

from datasets.models import Sample
from datasets.selectors.browse import capped_count
from synthaug.engine.textdiff import Span, word_diff

FAMILY_SHOWN = 50
FAMILY_COUNT_CAP = 1000
TEXT_HEAD_CHARS = 160
# The side-by-side view diffs at most this much of each text (a word diff is quadratic in
# the worst case); longer texts say that they were cut.
DIFF_CHARS = 20_000


def sample_family(*, sample: Sample) -> dict[str, Any]:
    """The other members of the sample's near-duplicate family, oldest first (capped).

    Two queries at most, whatever the family's size (index ``sample_family``).
    """
    if sample.family is None:
        return {"members": [], "members_count": 0, "members_shown": FAMILY_SHOWN}
    members = (
        Sample.objects.filter(dataset_id=sample.dataset_id, family=sample.family)
        .exclude(pk=sample.pk)
        .order_by("pk")
    )
    rows = list(
        members.only(
            "id", "origin", "status", "split", "near_duplicate_of_id", "near_duplicate_score"
        ).annotate(text_head=Substr("text", 1, TEXT_HEAD_CHARS + 1))[:FAMILY_SHOWN]
    )
    count = len(rows) if len(rows) < FAMILY_SHOWN else capped_count(members, cap=FAMILY_COUNT_CAP)
    return {
        "members": rows,
        "members_count": count,
        "members_shown": FAMILY_SHOWN,
        "members_capped": count > FAMILY_COUNT_CAP,
    }


@dataclass(frozen=True)
class SideBySide:
    original: Sample
    score: float
    exact: bool
    left: list[Span]
    right: list[Span]
    cut: bool


def duplicate_side_by_side(*, sample: Sample) -> SideBySide | None:
    """The sample next to what it duplicates (near link first, else the exact link), with
    the differing words marked. ``None`` when the sample duplicates nothing."""
    if sample.near_duplicate_of_id is not None:
        original_id, score = sample.near_duplicate_of_id, sample.near_duplicate_score or 0.0
        exact = sample.duplicate_of_id == original_id
    elif sample.duplicate_of_id is not None:
        original_id, score, exact = sample.duplicate_of_id, 100.0, True
    else:
        return None
    original = Sample.objects.only("id", "text", "origin", "split", "status").get(
        pk=original_id, dataset_id=sample.dataset_id
    )
    cut = len(original.text) > DIFF_CHARS or len(sample.text) > DIFF_CHARS
    left, right = word_diff(original.text[:DIFF_CHARS], sample.text[:DIFF_CHARS])
    return SideBySide(original, score, exact, left, right, cut)
