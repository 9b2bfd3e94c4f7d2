"""Rule-based paraphrase: synonyms, contractions, clause order. Shallow by design."""

from __future__ import annotations

import random
import re

from synthaug.engine.offline.grounded import _SENTENCE_END, _SENTENCE_STARTERS

# --- paraphrase ----------------------------------------------------------------------------------

_SYNONYM_PAIRS = (
    ("big", "large"), ("begin", "start"), ("begins", "starts"), ("began", "started"),
    ("buy", "purchase"), ("buys", "purchases"), ("bought", "purchased"), ("help", "assist"),
    ("helps", "assists"), ("quick", "fast"), ("quickly", "rapidly"), ("often", "frequently"),
    ("maybe", "perhaps"), ("need", "require"), ("needs", "requires"), ("enough", "sufficient"),
    ("important", "significant"), ("whole", "entire"), ("choose", "select"),
    ("famous", "well-known"), ("mistake", "error"), ("mistakes", "errors"),
    ("difficult", "hard"), ("easy", "simple"), ("country", "nation"), ("countries", "nations"),
    ("car", "automobile"), ("cars", "automobiles"), ("main", "principal"),
    ("usually", "typically"), ("build", "construct"), ("built", "constructed"),
    ("child", "kid"), ("children", "kids"), ("answer", "reply"), ("show", "display"),
    ("shows", "displays"), ("get", "obtain"), ("gets", "obtains"), ("many", "numerous"),
    ("near", "close to"), ("largest", "biggest"), ("old", "ancient"), ("city", "town"),
    ("explain", "describe"), ("tell me", "let me know"),
)  # fmt: skip
_SYNONYMS: dict[str, str] = {}
for _a, _b in _SYNONYM_PAIRS:
    _SYNONYMS.setdefault(_a, _b)
    _SYNONYMS.setdefault(_b, _a)
_SYNONYM_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_SYNONYMS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_CONTRACTIONS = (
    ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"), ("is not", "isn't"),
    ("are not", "aren't"), ("was not", "wasn't"), ("were not", "weren't"),
    ("cannot", "can't"), ("will not", "won't"), ("would not", "wouldn't"),
    ("should not", "shouldn't"), ("have not", "haven't"), ("has not", "hasn't"),
    ("it is", "it's"), ("that is", "that's"), ("I am", "I'm"), ("you are", "you're"),
    ("we are", "we're"), ("they are", "they're"), ("what is", "what's"),
)  # fmt: skip
_QUESTION_FRAMES = ("Could you tell me: {q}", "I'd like to know: {q}", "Quick question: {q}")


def _match_case(word: str, template: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _swap_synonyms(text: str, rng: random.Random) -> str:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if rng.random() < 0.8:
            return _match_case(_SYNONYMS[found.lower()], found)
        return found

    return _fix_articles(_SYNONYM_RE.sub(replace, text))


_ARTICLE = re.compile(r"\b(a|an|A|An)\s+([A-Za-z][\w-]*)")


def _fix_articles(text: str) -> str:
    """ "a automobile" -> "an automobile", only before words the synonym table produces."""

    def replace(match: re.Match[str]) -> str:
        article, word = match.groups()
        if word.lower() not in _SYNONYMS:
            return match.group(0)
        wanted = "an" if word[0].lower() in "aeio" else "a"
        return f"{_match_case(wanted, article)} {word}"

    return _ARTICLE.sub(replace, text)


def _toggle_contractions(text: str, rng: random.Random) -> str:
    contract = rng.random() < 0.5
    for long, short in _CONTRACTIONS:
        source, target = (long, short) if contract else (short, long)
        pattern = re.compile(rf"\b{re.escape(source)}\b", re.IGNORECASE)
        text = pattern.sub(lambda m, target=target: _match_case(target, m.group(0)), text)
    return text


_REORDERS = (
    # "If A, B." -> "B if A."
    (re.compile(r"^(If|When|Once|Unless|Before|After)\s+([^,]+),\s+(.+?)([.!?]?)$"), "lead"),
    # "A because B." -> "Because B, A."
    (re.compile(r"^(.+?)\s+(because|since|although|while)\s+(.+?)([.!?]?)$"), "trail"),
)


def _reorder_clauses(text: str) -> str:
    stripped = text.strip()
    if len(_SENTENCE_END.findall(stripped)) > 1:
        return text  # one sentence only: moving clauses across sentences garbles them
    for pattern, shape in _REORDERS:
        match = pattern.match(stripped)
        if not match:
            continue
        if shape == "lead":
            word, first, second, end = match.groups()
            main = second[:1].upper() + second[1:]
            return f"{main} {word.lower()} {first}{end or '.'}"
        first, word, second, end = match.groups()
        main = first[:1].lower() + first[1:] if not _looks_like_name(first) else first
        return f"{word.capitalize()} {second}, {main}{end or '.'}"
    return text


def _looks_like_name(clause: str) -> bool:
    head = clause.split()[0] if clause.split() else ""
    return head in {"I"} or (head[:1].isupper() and head.lower() not in _SENTENCE_STARTERS)


def paraphrase(*, text: str, seed: int) -> str:
    """A rule-based rewording of `text`: synonyms, contractions, clause order, question frames.

    Returns `text` unchanged when no rule applies (a short text with no known words); callers
    should treat that as "no paraphrase", not as a new item.
    """
    rng = random.Random(seed)
    steps = [_swap_synonyms, _toggle_contractions, "reorder", "frame"]
    rng.shuffle(steps)
    result = text
    for step in steps:
        if step == "reorder":
            if rng.random() < 0.6:
                result = _reorder_clauses(result)
        elif step == "frame":
            if result.rstrip().endswith("?") and rng.random() < 0.3:
                question = result.strip()
                if not _looks_like_name(question):
                    question = question[:1].lower() + question[1:]
                result = rng.choice(_QUESTION_FRAMES).replace("{q}", question)
        else:
            result = step(result, rng)
    if result == text:
        # Nothing fired by chance: apply every rule once, deterministically.
        result = _reorder_clauses(_toggle_contractions(_swap_synonyms(text, _Always()), _Always()))
    return result


class _Always(random.Random):
    """A Random whose every draw says "yes": apply each rule wherever it can."""

    def random(self) -> float:
        return 0.0
