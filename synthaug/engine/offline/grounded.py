"""Extractive, source-grounded Q&A: answers are exact spans of the passage."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from synthaug.engine.offline.items import (
    GroundedItem,
)
from synthaug.engine.text import normalise

# --- extractive, source-grounded Q&A -------------------------------------------------------------

_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "mt", "jr", "sr",
    "no", "nos", "approx", "ca", "cf", "al", "fig", "inc", "ltd", "co", "corp", "gen", "col",
    "lt", "sgt", "rev", "est", "dept", "univ", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)")
_PARAGRAPH = re.compile(r"\n\s*\n")

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?)"
)
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\s+\d{{3,4}}"
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{3,4}}"
    rf"|{_MONTH}\s+\d{{4}})\b"
)
_NUMBER = re.compile(
    r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\w|[.,]\d)"
    r"|(?<![\w.,])\d+(?:\.\d+)?(?!\w|[.,]\d)"
)
_SCALE = re.compile(r"\s+(?:million|billion|thousand|hundred|trillion)\b")
_PERCENT = re.compile(r"\s?%|\s+(?:percent|per cent)\b")
_FOLLOWING_WORD = re.compile(r"\s+([a-z][a-z²³/-]*)")
_YEAR_PREPOSITIONS = {
    "in", "since", "until", "till", "by", "from", "before", "after", "around", "circa", "of",
    "to", "and", "c.", "year", "during", "between",
}  # fmt: skip
_NOT_UNITS = {
    "and", "or", "to", "the", "a", "an", "of", "in", "on", "at", "by", "for", "with", "is",
    "was", "were", "are", "when", "which", "that", "as", "but", "from", "than", "it", "he",
    "she", "they", "its", "his", "her", "their",
}  # fmt: skip
_WORD = re.compile(r"[^\W\d_][\w'\u2019\-]*")
_NAME_AND_BEFORE = re.compile(r"[A-Z][\w\u2019'-]*\s+and\s+$")
_NAME_AND_AFTER = re.compile(r"\s+and\s+[A-Z]")
_CONNECTORS = {"of", "the", "de", "von", "van", "der", "den", "la", "le", "del", "da", "di"}
_SENTENCE_STARTERS = {
    "the", "a", "an", "in", "on", "at", "it", "its", "this", "that", "these", "those", "he",
    "she", "they", "we", "i", "you", "there", "here", "after", "before", "during", "since",
    "when", "while", "although", "though", "however", "many", "most", "some", "today", "as",
    "by", "for", "from", "with", "his", "her", "their", "our", "one", "both", "each", "every",
    "other", "another", "such", "if", "but", "and", "or", "so", "because", "until", "once",
    "also", "later", "then", "now", "all", "only", "what", "who", "where", "why", "how",
}  # fmt: skip
_TITLES = {
    "king", "queen", "saint", "st", "pope", "president", "prince", "princess", "sir", "dr",
    "general", "emperor", "duke", "count", "mr", "mrs", "ms", "professor", "prof", "lord", "lady",
}  # fmt: skip
_PERSON_CUES = re.compile(
    r"^(?:\s*,?\s*(?:who|was born|\(born|wrote|composed|founded|painted|said|discovered|"
    r"invented|ruled|reigned|died))",
)


@dataclass(frozen=True)
class _Candidate:
    start: int  # the answer span, in passage coordinates
    end: int
    replace_start: int  # the part of the sentence the wh-phrase replaces
    replace_end: int
    wh: str
    answer_type: str


def split_sentences(passage: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `passage`, trimmed of surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    paragraph_start = 0
    paragraphs = [*_PARAGRAPH.finditer(passage), None]
    for gap in paragraphs:
        paragraph_end = gap.start() if gap is not None else len(passage)
        start = paragraph_start
        for match in _SENTENCE_END.finditer(passage, paragraph_start, paragraph_end):
            before = passage[start : match.start()].split()
            last = before[-1].lower().rstrip(".") if before else ""
            if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                continue  # "St. Anne", "J. Smith"
            following = passage[match.end() : paragraph_end].lstrip()
            if following and not (following[0].isupper() or following[0].isdigit()):
                continue
            spans.append((start, match.end()))
            start = match.end()
        spans.append((start, paragraph_end))
        paragraph_start = gap.end() if gap is not None else len(passage)
    trimmed = []
    for start, end in spans:
        text = passage[start:end]
        left = len(text) - len(text.lstrip())
        right = len(text.rstrip())
        if right > left:
            trimmed.append((start + left, start + right))
    return trimmed


def _number_candidates(sentence: str, offset: int) -> Iterator[_Candidate]:
    dates = [(m.start(), m.end()) for m in _DATE.finditer(sentence)]
    for start, end in dates:
        yield _Candidate(offset + start, offset + end, start, end, "what date", "date")
    for match in _NUMBER.finditer(sentence):
        start, end = match.span()
        if any(ds <= start < de for ds, de in dates):
            continue
        value = match.group(0)
        rest = sentence[end:]
        previous = sentence[:start].split()[-1:] or [""]
        previous_word = previous[0].lower()
        percent = _PERCENT.match(rest)
        if percent:
            end += percent.end()
            yield _Candidate(
                offset + start, offset + end, start, end, "what percentage", "percentage"
            )
            continue
        scale = _SCALE.match(rest)
        if scale:
            end += scale.end()
            rest = sentence[end:]
        unit = _FOLLOWING_WORD.match(rest)
        unit_word = unit.group(1) if unit else ""
        is_year = (
            not scale
            and len(value) == 4
            and value.isdigit()
            and 1000 <= int(value) <= 2099
            and (previous_word in _YEAR_PREPOSITIONS or not unit_word or unit_word in _NOT_UNITS)
        )
        if is_year:
            yield _Candidate(offset + start, offset + end, start, end, "what year", "year")
        elif unit_word and unit_word not in _NOT_UNITS:
            yield _Candidate(offset + start, offset + end, start, end, "how many", "number")
        elif scale or len(value.replace(",", "")) > 1:
            yield _Candidate(offset + start, offset + end, start, end, "what number", "number")


def _entity_candidates(sentence: str, offset: int, capitalised: set[str]) -> Iterator[_Candidate]:
    words = list(_WORD.finditer(sentence))
    i = 0
    while i < len(words):
        word = words[i]
        if not word.group(0)[0].isupper():
            i += 1
            continue
        if word.start() == 0 and word.group(0).lower() in _SENTENCE_STARTERS:
            i += 1
            continue
        # Grow the phrase over capitalised words, and connectors followed by one.
        j = i
        while j + 1 < len(words):
            gap = sentence[words[j].end() : words[j + 1].start()]
            following = words[j + 1].group(0)
            if gap == " " and following[0].isupper():
                j += 1
            elif (
                gap == " "
                and following in _CONNECTORS
                and j + 2 < len(words)
                and sentence[words[j + 1].end() : words[j + 2].start()] == " "
                and words[j + 2].group(0)[0].isupper()
            ):
                j += 2
            else:
                break
        start, end = word.start(), words[j].end()
        i = j + 1
        phrase = sentence[start:end]
        if start == 0 and " " not in phrase and phrase not in capitalised:
            continue  # a lone capitalised first word is only a name if it is one elsewhere too
        if _NAME_AND_BEFORE.search(sentence[:start]) or _NAME_AND_AFTER.match(sentence[end:]):
            continue  # half of "Palace of Culture and Science": asking for it would garble both
        replace_start = start
        article = re.search(r"(?:^|\s)([Tt]he)\s$", sentence[:start])
        if article:
            replace_start = article.start(1)
        first = phrase.split()[0].lower().rstrip(".")
        person = (
            first in _TITLES
            or bool(_PERSON_CUES.match(sentence[end:]))
            or sentence[:start].rstrip().lower().endswith(" by")
        )
        wh = "who" if person else "what"
        yield _Candidate(
            offset + start,
            offset + end,
            replace_start,
            end,
            wh,
            "person" if person else "entity",
        )


_CLAUSE_BREAK = re.compile(r",\s+(?:and|but|while|whereas)\s+|;\s+")
_APPOSITIVE = re.compile(r"^,\s+(?:who|which)\b[^,]*,")


def _question(sentence: str, candidate: _Candidate) -> str:
    """The sentence as a question: the clause holding the answer, with a wh-phrase in its place."""
    start, end = candidate.replace_start, candidate.replace_end
    clause_start, clause_end = 0, len(sentence)
    for brk in _CLAUSE_BREAK.finditer(sentence):
        if brk.end() <= start:
            clause_start = brk.end()
        elif brk.start() >= end:
            clause_end = brk.start()
            break
    before = sentence[clause_start:start]
    after = _APPOSITIVE.sub("", sentence[end:clause_end])
    text = " ".join((before + candidate.wh + after).split())
    text = re.sub(r"[\s.!?;:,]+$", "", text)
    # "In what year, the court moved" reads better without the comma.
    text = re.sub(r"^(\w+ what (?:year|date)),", r"\1", text, flags=re.IGNORECASE)
    return text[:1].upper() + text[1:] + "?"


def grounded_qa(*, passage: str, count: int, seed: int) -> list[GroundedItem]:
    """Up to `count` extractive Q&A pairs from `passage`, deterministic from `seed`.

    Answers are dates, years, quantities, percentages and capitalised names found by pattern;
    each question is the containing sentence with the answer replaced by a wh-phrase ("in what
    year", "how many", "who", "what"). Invariant: `passage[item.start:item.end] == item.answer`.
    No two items share an answer; a question that still contains its answer is dropped. Spread
    over sentences: every sentence gives one item before any gives a second.
    """
    capitalised = {
        m.group(0) for m in _WORD.finditer(passage) if m.group(0)[0].isupper() and m.start() > 0
    }
    # Non-initial capitalised words (a name seen mid-sentence somewhere).
    capitalised = {
        word
        for word in capitalised
        if re.search(rf"[^.!?\s]\s+{re.escape(word)}\b", passage) is not None
    }
    by_sentence: list[list[tuple[_Candidate, int, int]]] = []
    for sentence_start, sentence_end in split_sentences(passage):
        sentence = passage[sentence_start:sentence_end]
        found = [
            *_number_candidates(sentence, sentence_start),
            *_entity_candidates(sentence, sentence_start, capitalised),
        ]
        # A span inside a longer one (the year of a full date) would make a muddled question.
        found = [
            c
            for c in found
            if not any(
                o is not c
                and o.start <= c.start
                and c.end <= o.end
                and (o.end - o.start) > (c.end - c.start)
                for o in found
            )
        ]
        found.sort(key=lambda c: (c.start, c.end))
        by_sentence.append([(c, sentence_start, sentence_end) for c in found])

    rng = random.Random(seed)
    for group in by_sentence:
        rng.shuffle(group)
    order = list(range(len(by_sentence)))
    rng.shuffle(order)
    ranked: list[tuple[_Candidate, int, int]] = []
    depth = max((len(group) for group in by_sentence), default=0)
    for rank in range(depth):
        ranked.extend(by_sentence[i][rank] for i in order if rank < len(by_sentence[i]))

    items: list[GroundedItem] = []
    answers: set[str] = set()
    for candidate, sentence_start, sentence_end in ranked:
        if len(items) >= count:
            break
        answer = passage[candidate.start : candidate.end]
        key = normalise(answer)
        if key in answers:
            continue
        sentence = passage[sentence_start:sentence_end]
        question = _question(sentence, candidate)
        if key in normalise(question):
            continue
        answers.add(key)
        items.append(
            GroundedItem(
                question=question,
                answer=answer,
                start=candidate.start,
                end=candidate.end,
                sentence=sentence,
                sentence_start=sentence_start,
                sentence_end=sentence_end,
                answer_type=candidate.answer_type,
            )
        )
    return items
