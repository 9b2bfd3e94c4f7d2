"""Rule-based checks for the judge role: format, grounding, leakage, safety, attacks."""

from __future__ import annotations

import difflib
import re

from synthaug.engine.offline.adversarial import ATTACKS
from synthaug.engine.offline.grounded import _NOT_UNITS, _SENTENCE_STARTERS
from synthaug.engine.offline.items import (
    CheckResult,
)
from synthaug.engine.text import normalise

# --- rule-based checks ---------------------------------------------------------------------------

GROUNDING_THRESHOLD = 0.8
PARENT_OVERLAP_THRESHOLD = 0.5
MAX_LENGTH = 20_000

_SLURS = re.compile(
    # A deliberately small placeholder list; a deployment should supply a proper lexicon.
    r"\b(?:n[i1!]gg(?:er|a)s?|f[a@]gg?[o0]ts?|k[i1]kes?|sp[i1]cs?|tr[a@]nn(?:y|ies)|"
    r"r[e3]t[a@]rds?|wetbacks?)\b",
    re.IGNORECASE,
)
_VIOLENCE = re.compile(
    r"\bhow\s+(?:to|do\s+i|can\s+i)\s+(?:make|build|assemble|synthesi[sz]e)\s+(?:a\s+)?"
    r"(?:bomb|pipe\s*bomb|explosives?|nerve\s+agent|bioweapon|chemical\s+weapon|ricin|napalm)"
    r"|\b(?:kill|murder|stab|shoot|poison|strangle)\s+(?:him|her|them|yourself|your\s+\w+)\b"
    r"|\bstep[- ]by[- ]step\s+(?:instructions\s+)?(?:to|for)\s+(?:making|building)\s+(?:a\s+)?"
    r"(?:bomb|weapon|gun)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\d[\d\s().-]{7,}\d(?!\w)")
_YEAR_RUN = re.compile(r"(?:1\d{3}|20\d{2})(?:\D+(?:1\d{3}|20\d{2}))*")  # "1596-1611", not a phone
_CARD_CANDIDATE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")

_ATTACK_MARKERS: dict[str, re.Pattern[str]] = {
    "injection": re.compile(
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:your\s+|the\s+)?"
        r"(?:previous|prior|above|earlier)?\s*(?:instructions|directions|question|rules)\b"
        r"|note to the assistant|print your system prompt",
        re.IGNORECASE,
    ),
    "jailbreak": re.compile(
        r"\bDAN\b|\bno\s+(?:rules|filters|restrictions)\b|stay\s+in\s+character|developer\s+mode"
        r"|\bpretend\s+(?:you\s+are|to\s+be)\b|unrestricted\s+AI",
        re.IGNORECASE,
    ),
    "manipulation": re.compile(
        r"^\s*\[?system\]?\s*:|<\|im_start\|>|#+\s*system\b|priority\s+override"
        r"|maintenance\s+mode|guidelines\s+are\s+disabled",
        re.IGNORECASE | re.MULTILINE,
    ),
}
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/])")
_LEET_WORD = re.compile(r"\b\w*[a-z][013457]\w*[a-z0-9]\b|\b[013457][a-z]\w*\b", re.IGNORECASE)
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_CLOSING_ROLE_TAG = re.compile(r"</(?:user|assistant|system)>|<\|im_(?:start|end)\|>")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _pii(text: str) -> list[str]:
    found = []
    if _EMAIL.search(text):
        found.append("pii:email")
    for match in _PHONE_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 9 <= len(digits) <= 15 and not _YEAR_RUN.fullmatch(match.group(0).strip()):
            found.append("pii:phone")
            break
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append("pii:card")
            break
    return found


def _mixed_script_words(text: str) -> int:
    count = 0
    for word in re.findall(r"\w{2,}", text):
        latin = any("a" <= ch.lower() <= "z" for ch in word)
        other = any("\u0370" <= ch <= "\u03ff" or "\u0400" <= ch <= "\u04ff" for ch in word)
        count += latin and other
    return count


def attack_markers(text: str) -> set[str]:
    """Attack categories whose markers appear in `text`."""
    found = {name for name, pattern in _ATTACK_MARKERS.items() if pattern.search(text)}
    if _format_problems(text):
        found.add("format_breaking")
    leet_words = [w for w in _LEET_WORD.findall(text) if not w.isdigit()]
    if (
        _BASE64_RUN.search(text)
        or _INVISIBLE.search(text)
        or _mixed_script_words(text)
        or len(leet_words) >= 2
    ):
        found.add("encoding")
    return found


def _format_problems(text: str) -> list[str]:
    problems = []
    if text.count("```") % 2:
        problems.append("unbalanced code fence")
    if _CLOSING_ROLE_TAG.search(text):
        problems.append("chat-role markup")
    depth_curly = text.count("{") - text.count("}")
    depth_square = text.count("[") - text.count("]")
    if depth_curly or depth_square:
        problems.append("unbalanced brackets")
    return problems


def grounding_score(expected: str, passage: str) -> float:
    """Best partial match of `expected` in `passage`, 0..1 (1: it occurs there verbatim).

    Compares the normalised answer with every window of about its length (in words) in the
    normalised passage, by difflib's ratio.
    """
    answer = normalise(expected).strip(" .,;:!?\"'")
    text = normalise(passage)
    if not answer:
        return 0.0
    if answer in text:
        return 1.0
    answer_words = answer.split()
    words = text.split()
    best = 0.0
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(answer)
    for size in {max(1, len(answer_words) - 1), len(answer_words), len(answer_words) + 1}:
        for i in range(max(1, len(words) - size + 1)):
            matcher.set_seq1(" ".join(words[i : i + size]))
            if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
                continue
            best = max(best, matcher.ratio())
    return round(best, 4)


def _content_words(text: str) -> set[str]:
    return {
        word.rstrip("s")
        for word in re.findall(r"\w+", normalise(text))
        if len(word) > 2 and word not in _NOT_UNITS and word not in _SENTENCE_STARTERS
    }


def rule_checks(
    *,
    item_text: str,
    expected: str | None,
    passage: str | None,
    parent_text: str | None,
    expected_attack: str | None = None,
) -> list[CheckResult]:
    """Deterministic checks of one generated item, each its own result.

    Always: "format", "safety", "attack_markers". With `expected` and `passage`: "grounding"
    (the expected answer's best partial match in the passage) and "answer_leak" (the question
    must not contain its answer). With `parent_text` and no passage: "grounding" against the
    parent (share of the parent's content words kept).

    `expected_attack` (an adversarial kind or attack category) turns "attack_markers" around:
    the item must show the intended attack, and "format" tolerates what format breaking needs.
    Slurs, violent instructions and PII fail "safety" whatever the attack.
    """
    intended = ATTACKS[expected_attack][0] if expected_attack in ATTACKS else expected_attack
    results: list[CheckResult] = []

    problems = []
    stripped = item_text.strip()
    if len(stripped) < 3:
        problems.append("empty or too short")
    if len(item_text) > MAX_LENGTH:
        problems.append(f"longer than {MAX_LENGTH} characters")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", item_text):
        problems.append("control characters")
    if not intended:
        # Attacks wrap text in markup and broken structure on purpose; "attack_markers" judges
        # them. Anything else must be structurally sound.
        problems.extend(_format_problems(item_text))
    results.append(
        CheckResult("format", not problems, 0.0 if problems else 1.0, "; ".join(problems))
    )

    if expected is not None and passage:
        score = grounding_score(expected, passage)
        results.append(
            CheckResult(
                "grounding",
                score >= GROUNDING_THRESHOLD,
                score,
                f"best match of the expected answer in the passage: {score:.2f}",
            )
        )
        answer = normalise(expected).strip(" .,;:!?\"'")
        leaked = len(answer) >= 3 and answer in normalise(item_text)
        results.append(
            CheckResult(
                "answer_leak",
                not leaked,
                0.0 if leaked else 1.0,
                "the item contains its own answer" if leaked else "",
            )
        )
    elif parent_text:
        parent_words = _content_words(parent_text)
        kept = parent_words & _content_words(item_text)
        score = round(len(kept) / len(parent_words), 4) if parent_words else 1.0
        results.append(
            CheckResult(
                "grounding",
                score >= PARENT_OVERLAP_THRESHOLD,
                score,
                f"share of the parent's content words kept: {score:.2f}",
            )
        )

    harms = []
    if _SLURS.search(item_text):
        harms.append("slur")
    if _VIOLENCE.search(item_text):
        harms.append("violent_instructions")
    harms.extend(_pii(item_text))
    results.append(
        CheckResult("safety", not harms, 0.0 if harms else 1.0, ", ".join(sorted(set(harms))))
    )

    markers = attack_markers(item_text)
    if intended:
        ok = intended in markers
        detail = f"intended {intended}; found {', '.join(sorted(markers)) or 'none'}"
    else:
        ok = not markers
        detail = f"found {', '.join(sorted(markers))}" if markers else ""
    results.append(CheckResult("attack_markers", ok, 1.0 if ok else 0.0, detail))
    return results
