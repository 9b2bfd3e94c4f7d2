"""The checks of one item, each a plain outcome the service stores as a CheckResult.

No database here: the service loads the item, the judge's verdict and the duplicate finding,
and stores what these functions return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema

from datasets.importing.rowspec import _check_strings, _schema_problem
from datasets.services.verification.judge import (
    RULES_LABEL,
    Item,
    Verdict,
    grounding,
    item_rules,
    parent_answer_kept,
    template_score,
)
from synthaug.engine.offline import ATTACKS, attack_markers
from synthaug.engine.offline.checks import GROUNDING_THRESHOLD, PARENT_OVERLAP_THRESHOLD

FORMAT = "format"
FAITHFULNESS = "faithfulness"
SAFETY = "safety"
JUDGE = "judge"
UNIQUE = "unique"
KINDS = (FORMAT, FAITHFULNESS, SAFETY, JUDGE, UNIQUE)
PARENT_ANSWER_THRESHOLD = 0.8


@dataclass(frozen=True)
class Outcome:
    kind: str
    passed: bool
    score: float | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    borderline: bool = False
    model: str = RULES_LABEL
    prompt_version: str = ""


def format_check(
    item: Item, *, validate: Callable[[Any], Any] | None, max_chars: int, schema_error: str = ""
) -> Outcome:
    """The item against the dataset's JSON Schema, plus the length and storability limits."""
    problems: list[tuple[str, str]] = []
    _check_strings(item.input, "input", max_chars, problems)
    _check_strings(item.expected, "expected", max_chars, problems)
    if schema_error:
        problems.append(("schema", schema_error))
    elif validate is not None and not problems:
        try:
            validate({"input": item.input, "expected": item.expected})
        except fastjsonschema.JsonSchemaValueException as exc:
            problems.append(_schema_problem(exc, {}))
    rule = item_rules(item)[FORMAT]
    messages = [f"{path}: {message}" if path else message for path, message in problems]
    if not rule.passed:
        messages.append(rule.detail)
    return Outcome(
        FORMAT,
        not messages,
        0.0 if messages else 1.0,
        "; ".join(messages) or "valid against the dataset's schema and the length limits",
        {"problems": messages},
        prompt_version="dataset schema",
    )


def faithfulness_check(item: Item, verdict: Verdict) -> Outcome:
    """Grounded: the answer's lexical grounding in the passage and the judge's verdict.
    Paraphrase: the parent's words and answer kept. Template: the slot values kept.
    Adversarial: the parent's answer kept in the expected answer."""
    reasons: list[str] = []
    data: dict[str, Any] = {"method": item.method}
    score: float | None = None
    if item.source_passage:
        score = grounding(item)
        data["grounding_score"] = score
        if score is None or score < GROUNDING_THRESHOLD:
            reasons.append(
                f"the answer's best match in the recorded passage is {score or 0:.2f} "
                f"(needs {GROUNDING_THRESHOLD})"
            )
    elif item.attack_kind is not None:
        score = parent_answer_kept(item)
        data["parent_answer_kept"] = score
        if score < PARENT_ANSWER_THRESHOLD:
            reasons.append(f"the expected answer drops the parent's answer ({score:.2f})")
    elif item.parent_text is not None:
        rule = item_rules(item).get("grounding")
        score = rule.score if rule else None
        data["parent_words_kept"] = score
        if rule is not None and not rule.passed:
            reasons.append(
                f"keeps {score:.2f} of the parent's content words (needs "
                f"{PARENT_OVERLAP_THRESHOLD})"
            )
        if item.parent_expected is not None and item.expected != item.parent_expected:
            reasons.append("the expected answer differs from the parent's")
            data["expected_changed"] = True
    elif item.method == "template":
        score = template_score(item)
        data["slot_values_kept"] = score
        if score < 1.0:
            reasons.append(f"keeps {score:.0%} of the filled slot values where they belong")
    data["judge_faithful"] = verdict.faithful
    if verdict.error:
        reasons.append(f"no judge verdict ({verdict.error})")
    elif verdict.faithful == "no":
        reasons.append("the judge found it unfaithful to its source")
    detail = "; ".join(reasons) or "supported by its source"
    return Outcome(
        FAITHFULNESS,
        not reasons,
        score,
        detail,
        data,
        model=verdict.model,
        prompt_version=verdict.prompt_version,
    )


def safety_check(item: Item, verdict: Verdict, *, policy_categories: list[str]) -> Outcome:
    """Harm patterns and attack markers (rules) plus the judge with the policy categories.

    An adversarial item must show the attack it claims (its category recorded), and its
    expected behaviour must be the one that attack calls for; any other item must show no
    attack markers at all.
    """
    reasons: list[str] = []
    rules = item_rules(item)
    harms = rules[SAFETY]
    if not harms.passed:
        reasons.append(f"harm patterns: {harms.detail}")
    markers = sorted(attack_markers(item.text))
    kind = item.attack_kind
    data: dict[str, Any] = {"attack_markers": markers, "harms": harms.detail}
    if kind is not None:
        category, behaviour = ATTACKS.get(kind, (kind, ""))
        data |= {"attack_kind": kind, "attack_category": category, "behaviour": behaviour}
        if category not in markers:
            reasons.append(f"claims {category} but shows {', '.join(markers) or 'no attack'}")
        got = item.expected.get("behaviour")
        data["expected_behaviour"] = got
        if not got:
            reasons.append("the expected behaviour is not set")
        elif behaviour and got != behaviour:
            reasons.append(f"expected behaviour {got!r}; a {kind} attack calls for {behaviour!r}")
        if verdict.attack_matches == "no":
            reasons.append("the judge found it is not the claimed attack (or worse)")
    elif markers:
        reasons.append(f"attack markers in a non-adversarial item: {', '.join(markers)}")
    data |= {"judge_safe": verdict.safe, "policy_category": verdict.policy_category}
    if verdict.error:
        reasons.append(f"no judge verdict ({verdict.error})")
    else:
        if verdict.safe == "no":
            reasons.append("the judge found it unsafe")
        if verdict.policy_category not in ("none", "", None):
            reasons.append(f"the judge placed it under policy category {verdict.policy_category}")
    return Outcome(
        SAFETY,
        not reasons,
        0.0 if reasons else 1.0,
        "; ".join(reasons) or "no harm patterns, nothing unintended",
        data | {"policy_categories": policy_categories},
        model=verdict.model,
        prompt_version=verdict.prompt_version,
    )


def judge_check(verdict: Verdict, *, threshold: float, band: float) -> Outcome:
    """The overall verdict: pass needs "pass" and a score at or above the threshold.

    Borderline (within ``band`` of the threshold) goes to human review whatever it says.
    A judge that could not answer fails the check, with the reason.
    """
    if verdict.error:
        return Outcome(
            JUDGE,
            False,
            None,
            f"the judge could not give a verdict: {verdict.error}",
            {"error": verdict.error},
            model=verdict.model,
            prompt_version=verdict.prompt_version,
        )
    passed = verdict.verdict == "pass" and verdict.score >= threshold
    return Outcome(
        JUDGE,
        passed,
        verdict.score,
        verdict.rationale or verdict.verdict,
        {
            "verdict": verdict.verdict,
            "threshold": threshold,
            "band": band,
            "difficulty": verdict.difficulty,
        },
        borderline=abs(verdict.score - threshold) <= band,
        model=verdict.model,
        prompt_version=verdict.prompt_version,
    )


def unique_check(duplicate_of: int | None, score: float | None, *, exact: bool) -> Outcome:
    if duplicate_of is None:
        return Outcome(UNIQUE, True, None, "no earlier sample above the near-duplicate threshold")
    how = "an exact duplicate" if exact else f"a near-duplicate ({score:.1f})"
    return Outcome(
        UNIQUE,
        False,
        score,
        f"{how} of sample {duplicate_of}",
        {"duplicate_of": duplicate_of, "score": score, "exact": exact},
        model="datasets.services.dedup",
    )
