"""Difficulty tagging from measurable features plus, when there is one, the judge's rubric.

The levels follow the spec: *easy* (standard format and expression), *medium* (paraphrase,
light ambiguity), *hard* (several constraints, long context, edge case), *adversarial*
(injection, manipulation, format breaking, encodings). Pure: plain text in, plain values out.

The features are deliberately simple and visible, so a person reading the rationale can see
why an item got its tag, and disagree with it on the review screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

EASY = "easy"
MEDIUM = "medium"
HARD = "hard"
ADVERSARIAL = "adversarial"
LEVELS = (EASY, MEDIUM, HARD, ADVERSARIAL)
_RANK = {level: rank for rank, level in enumerate(LEVELS)}

# Thresholds, in one place so the rationale can quote them.
LONG_WORDS = 60  # an input this long (in words) is hard to take in at once
MEDIUM_WORDS = 25
LONG_CONTEXT_CHARS = 1500  # a passage this long is "long context"
HARD_CONSTRAINTS = 3
HARD_AMBIGUITY = 3

# Words and phrases that add a condition the answer must meet.
_CONSTRAINTS = re.compile(
    r"\b(?:must|only|exactly|at\s+least|at\s+most|no\s+more\s+than|fewer\s+than|more\s+than|"
    r"without|unless|except|if|when|before|after|between|both|neither|nor|each|every|all|"
    r"within|under|over|not)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
# Vague referents and hedges: the reader must choose an interpretation.
_AMBIGUITY = re.compile(
    r"\b(?:some|several|maybe|perhaps|might|could|possibly|probably|usually|often|it|they|"
    r"this|that|those|these|thing|stuff|kind\s+of|sort\s+of|or)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Assessment:
    """A difficulty, why, and the features it was read from (stored on the sample)."""

    level: str
    rationale: str
    features: dict[str, Any] = field(default_factory=dict)


def features(
    *,
    text: str,
    context: str = "",
    attack_markers: Iterable[str] = (),
    method: str = "",
) -> dict[str, Any]:
    """The measurable features of one item's input (``text``) and its context passage."""
    words = _WORD.findall(text)
    constraints = len(_CONSTRAINTS.findall(text)) + min(3, len(_NUMBER.findall(text)))
    ambiguity = len(_AMBIGUITY.findall(text)) + max(0, text.count("?") - 1)
    return {
        "chars": len(text),
        "words": len(words),
        "constraints": constraints,
        "context_chars": len(context),
        "attack_markers": sorted(set(attack_markers)),
        "ambiguity": ambiguity,
        "method": method,
    }


def heuristic_level(f: dict[str, Any]) -> tuple[str, list[str]]:
    """The level the features alone give, and the reasons, strongest first."""
    if f.get("attack_markers"):
        return ADVERSARIAL, [f"attack markers: {', '.join(f['attack_markers'])}"]
    if f.get("method") == "adversarial":
        return ADVERSARIAL, ["generated as an attack"]
    hard = []
    if f["constraints"] >= HARD_CONSTRAINTS:
        hard.append(f"{f['constraints']} constraints (>= {HARD_CONSTRAINTS})")
    if f["context_chars"] >= LONG_CONTEXT_CHARS:
        hard.append(f"long context ({f['context_chars']} characters)")
    if f["words"] >= LONG_WORDS:
        hard.append(f"long input ({f['words']} words)")
    if f["ambiguity"] >= HARD_AMBIGUITY:
        hard.append(f"ambiguous ({f['ambiguity']} vague words)")
    if hard:
        return HARD, hard
    medium = []
    if f["constraints"]:
        medium.append(f"{f['constraints']} constraint(s)")
    if f["ambiguity"]:
        medium.append(f"some ambiguity ({f['ambiguity']} vague word(s))")
    if f["words"] >= MEDIUM_WORDS:
        medium.append(f"{f['words']} words")
    if f.get("method") == "paraphrase":
        medium.append("a paraphrase")
    if medium:
        return MEDIUM, medium
    return EASY, ["short, one plain condition, standard wording"]


def assess(f: dict[str, Any], *, judge_level: str | None = None) -> Assessment:
    """Combine the heuristic level with the judge's rubric answer.

    The features decide *adversarial* alone (an item cannot talk a judge into or out of being
    an attack). Otherwise the judge may move the level one step either way; a bigger
    disagreement keeps the heuristic level and says so, for a person to settle.
    """
    level, reasons = heuristic_level(f)
    rationale = f"features: {'; '.join(reasons)}"
    if judge_level not in LEVELS or level == ADVERSARIAL:
        if judge_level in LEVELS:
            rationale += f"; judge said {judge_level}"
        return Assessment(level, rationale, dict(f))
    if judge_level == ADVERSARIAL:
        rationale += "; judge said adversarial, but no attack markers were found"
        return Assessment(level, rationale, dict(f))
    gap = _RANK[judge_level] - _RANK[level]
    if gap == 0:
        rationale += f"; judge agrees ({judge_level})"
    elif abs(gap) == 1:
        rationale += f"; judge said {judge_level}, which is taken"
        level = judge_level
    else:
        rationale += f"; judge said {judge_level}, too far from the features to take"
    return Assessment(level, rationale, dict(f))
