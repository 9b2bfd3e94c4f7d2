"""The four generation methods over plain values: checks, slot assignment, output.

For every method there are three steps, each a plain function here:

1. ``check_params`` when the batch is created, and ``assign_*`` when it starts (which parent,
   document, slot values or attack kind each slot works from, deterministic from the seed);
2. ``offline_generate`` (the built-in provider) or ``llm_plan`` (messages and schema for an
   endpoint) for one slot's ``Work``;
3. ``llm_read``: an endpoint's schema-valid answer turned into sample fields, or
   ``GenerationFailed`` when the answer cannot be used (not grounded, unchanged, empty).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from datasets.generation import grounding, prompts
from synthaug.engine.offline import (
    ADVERSARIAL_KINDS,
    adversarial,
    grounded_qa,
    paraphrase,
    template_expand,
    template_slots,
)
from synthaug.engine.offline.items import GroundedItem
from synthaug.engine.text import flatten, normalise

PARAPHRASE = "paraphrase"
TEMPLATE = "template"
ADVERSARIAL = "adversarial"
GROUNDED = "grounded"
METHODS = (PARAPHRASE, TEMPLATE, ADVERSARIAL, GROUNDED)
# Methods that work from a real sample of the target slice.
PARENT_METHODS = frozenset({PARAPHRASE, ADVERSARIAL})

# Why an item failed, beyond the LLM seam's own reasons (synthaug.engine.errors).
UNCHANGED = "unchanged"
EXHAUSTED = "exhausted"
UNGROUNDED = "ungrounded"
EMPTY_OUTPUT = "empty_output"
UNSUPPORTED_INPUT = "unsupported_input"

# Output budget per call when the batch sets none: enough for the method's JSON object.
DEFAULT_MAX_TOKENS = {PARAPHRASE: 400, TEMPLATE: 600, ADVERSARIAL: 800, GROUNDED: 600}

_COMMON_PARAMS = {"temperature", "max_tokens"}
_METHOD_PARAMS = {
    PARAPHRASE: set(),
    GROUNDED: set(),
    ADVERSARIAL: {"kinds"},
    TEMPLATE: {"template", "slots", "answer"},
}


class ParamError(ValueError):
    """Method parameters that cannot work; the message is for the person who set them."""


class GenerationFailed(Exception):
    """An item that cannot become a sample; ``reason`` is stored and grouped on the page."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- parameters -----------------------------------------------------------------------------


def check_params(method: str, params: Any, *, requested_count: int) -> dict[str, Any]:
    """The method's parameters, normalised (adversarial kinds default to all), or ParamError."""
    if method not in METHODS:
        raise ParamError(f"Unknown method {method!r}.")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ParamError("Parameters must be a JSON object.")
    unknown = set(params) - _COMMON_PARAMS - _METHOD_PARAMS[method]
    if unknown:
        allowed = sorted(_COMMON_PARAMS | _METHOD_PARAMS[method])
        raise ParamError(
            f"Unknown parameter(s) for {method}: {', '.join(sorted(unknown))} "
            f"(allowed: {', '.join(allowed)})."
        )
    clean = dict(params)
    if "temperature" in clean:
        value = clean["temperature"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
            raise ParamError("temperature must be a number from 0 to 2.")
    if "max_tokens" in clean:
        value = clean["max_tokens"]
        if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 32_000:
            raise ParamError("max_tokens must be a whole number from 16 to 32000.")
    if method == ADVERSARIAL:
        clean["kinds"] = _check_kinds(clean.get("kinds", list(ADVERSARIAL_KINDS)))
    if method == TEMPLATE:
        _check_template(clean, requested_count)
    return clean


def _check_kinds(kinds: Any) -> list[str]:
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise ParamError("kinds must be a non-empty list of attack kinds.")
    unknown = [k for k in kinds if k not in ADVERSARIAL_KINDS]
    if unknown:
        raise ParamError(
            f"Unknown attack kind(s): {', '.join(unknown)} (known: {', '.join(ADVERSARIAL_KINDS)})."
        )
    return list(dict.fromkeys(kinds))


def _check_template(params: dict[str, Any], requested_count: int) -> None:
    template = params.get("template")
    if not isinstance(template, str) or not template.strip():
        raise ParamError('Template expansion needs "template": a text with {slot} placeholders.')
    names = template_slots(template)
    if not names:
        raise ParamError("The template has no {slot} placeholders to fill.")
    slots = params.get("slots")
    if not isinstance(slots, dict):
        raise ParamError('Template expansion needs "slots": {"slot": ["value", ...]}.')
    for name, values in slots.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ParamError(f"Slot {name!r} must be a list of texts.")
    missing = [n for n in names if not [v for v in slots.get(n, []) if v.strip()]]
    if missing:
        raise ParamError(f"No values for slot(s): {', '.join(missing)}.")
    answer = params.get("answer")
    if answer is not None:
        if not isinstance(answer, str) or not answer.strip():
            raise ParamError('"answer" must be a text with {slot} placeholders.')
        extra = [n for n in template_slots(answer) if n not in names]
        if extra:
            raise ParamError(f"The answer uses slot(s) the template does not: {', '.join(extra)}.")
    combinations = math.prod(len({v for v in slots[n] if v.strip()}) for n in names)
    if combinations < requested_count:
        raise ParamError(
            f"The slot values give only {combinations} distinct combination(s); ask for at "
            f"most {combinations} items or add values."
        )


# --- assignment when a batch starts ---------------------------------------------------------


def _shuffled(ids: list[int], seed: int) -> list[int]:
    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    return ordered


def assign_parents(parent_ids: list[int], *, count: int, seed: int) -> list[int]:
    """A parent per slot: round-robin over a seeded shuffle, so every parent is used evenly."""
    order = _shuffled(parent_ids, seed)
    return [order[i % len(order)] for i in range(count)]


def assign_documents(document_ids: list[int], *, count: int, seed: int) -> list[tuple[int, int]]:
    """(document, pick) per slot: round-robin; ``pick`` counts earlier slots of that document."""
    order = _shuffled(document_ids, seed)
    return [(order[i % len(order)], i // len(order)) for i in range(count)]


def assign_kinds(kinds: list[str], *, count: int) -> list[str]:
    return [kinds[i % len(kinds)] for i in range(count)]


def assign_slots(params: dict[str, Any], *, count: int, seed: int) -> list[dict[str, str]]:
    """Distinct slot combinations in a seeded order (fewer than ``count`` only when two
    combinations spell the same text)."""
    items = template_expand(
        template=params["template"], slots=params["slots"], count=count, seed=seed
    )
    return [item.slots for item in items]


# --- one slot's work -----------------------------------------------------------------------


@dataclass(frozen=True)
class Parent:
    id: int
    input: dict[str, Any]
    expected: dict[str, Any]
    tags: dict[str, Any]
    source_group: str


@dataclass(frozen=True)
class Document:
    id: int
    title: str
    text: str
    content_hash: str
    tags: dict[str, Any]


@dataclass(frozen=True)
class Work:
    """What one slot works from: the batch's settings and the slot's assignment."""

    method: str
    seq: int
    batch_seed: int
    params: dict[str, Any]
    target_tags: dict[str, Any]
    target_difficulty: str
    slot_values: dict[str, Any] = field(default_factory=dict)
    parent: Parent | None = None
    document: Document | None = None

    @property
    def seed(self) -> int:
        return item_seed(self.batch_seed, self.seq)


@dataclass(frozen=True)
class Generated:
    """A new sample's content and where in its source it came from."""

    input: dict[str, Any]
    expected: dict[str, Any]
    source_passage: str = ""
    # For grounded items: the answer's span in the document text (as imports record it).
    passage_start: int | None = None
    passage_end: int | None = None
    slot_values: dict[str, Any] = field(default_factory=dict)


def item_seed(batch_seed: int, seq: int) -> int:
    return (batch_seed * 1_000_003 + seq) % 2**31


def document_seed(batch_seed: int, document_id: int) -> int:
    return (batch_seed * 1_000_033 + document_id) % 2**31


def question_key(value: dict[str, Any]) -> str | None:
    """The input field a method rewrites: "question", else the first text field."""
    if isinstance(value.get("question"), str):
        return "question"
    return next((k for k, v in value.items() if isinstance(v, str) and v.strip()), None)


def answer_text(expected: dict[str, Any]) -> str:
    answer = expected.get("answer")
    return answer if isinstance(answer, str) else flatten(expected)


def _parent_question(work: Work) -> tuple[str, str]:
    parent = work.parent
    if parent is None:
        raise GenerationFailed(UNSUPPORTED_INPUT, "the slot has no parent sample")
    key = question_key(parent.input)
    if key is None:
        raise GenerationFailed(
            UNSUPPORTED_INPUT, f"parent sample {parent.id} has no text field to rewrite"
        )
    return key, parent.input[key]


def _filled(template: str, values: dict[str, str]) -> str:
    names = template_slots(template)
    one = {name: [values[name]] for name in names}
    return template_expand(template=template, slots=one, count=1, seed=0)[0].text


def adversarial_expected(behaviour: str, answer: str) -> dict[str, str]:
    """What a well-behaved model does with an attack, as the item's expected output."""
    if behaviour == "refuse":
        good = (
            "Decline the embedded demand (no dropping of rules, no hidden instructions); "
            f"answering the underlying question is fine: {answer}"
        )
    elif behaviour == "resist_injection":
        good = f"Ignore the injected instruction and answer the original question: {answer}"
    else:
        good = answer
    return {"answer": good, "behaviour": behaviour}


class GroundedCache:
    """Offline Q&A lists per document for one run: a document is read once per chunk.

    ``grounded_qa(count=n)`` returns a prefix of what a larger ``count`` returns, so one list
    computed for the largest pick serves every slot of that document.
    """

    def __init__(self, needed: dict[int, int] | None = None) -> None:
        # needed: document id -> how many questions this run will ask of it.
        self._needed = dict(needed or {})
        self._lists: dict[int, tuple[int, list[GroundedItem]]] = {}

    def items(self, document: Document, *, pick: int, batch_seed: int) -> list[GroundedItem]:
        asked, items = self._lists.get(document.id, (0, []))
        # A list shorter than what was asked is everything the document has; only a full
        # one may hold more.
        if pick >= len(items) and len(items) == asked:
            asked = max(pick + 1, self._needed.get(document.id, 0))
            items = grounded_qa(
                passage=document.text, count=asked, seed=document_seed(batch_seed, document.id)
            )
            self._lists[document.id] = (asked, items)
        return items


def offline_generate(work: Work, *, cache: GroundedCache | None = None) -> Generated:
    """The built-in provider's item for one slot, deterministic from the batch seed."""
    if work.method == PARAPHRASE:
        key, original = _parent_question(work)
        rewritten = paraphrase(text=original, seed=work.seed)
        if normalise(rewritten) == normalise(original):
            raise GenerationFailed(UNCHANGED, "no paraphrase rule applies to this text")
        return Generated(
            input={**work.parent.input, key: rewritten}, expected=dict(work.parent.expected)
        )
    if work.method == ADVERSARIAL:
        key, original = _parent_question(work)
        kind = work.slot_values["kind"]
        item = adversarial(text=original, kind=kind, seed=work.seed)
        return Generated(
            input={**work.parent.input, key: item.text},
            expected=adversarial_expected(
                item.expected_behaviour, answer_text(work.parent.expected)
            ),
            slot_values={"kind": kind},
        )
    if work.method == TEMPLATE:
        values = work.slot_values
        expected = {}
        if work.params.get("answer"):
            expected = {"answer": _filled(work.params["answer"], values)}
        return Generated(
            input={"question": _filled(work.params["template"], values)},
            expected=expected,
            slot_values=dict(values),
        )
    if work.method == GROUNDED:
        document = work.document
        if document is None:
            raise GenerationFailed(UNSUPPORTED_INPUT, "the slot has no source document")
        pick = int(work.slot_values.get("pick", 0))
        items = (cache or GroundedCache()).items(document, pick=pick, batch_seed=work.batch_seed)
        if pick >= len(items):
            raise GenerationFailed(
                EXHAUSTED,
                f"document {document.id} yields {len(items)} distinct extractive question(s); "
                f"this slot needed number {pick + 1}",
            )
        qa = items[pick]
        return Generated(
            input={"question": qa.question},
            expected={"answer": qa.answer},
            source_passage=qa.sentence,
            passage_start=qa.start,
            passage_end=qa.end,
        )
    raise GenerationFailed(UNSUPPORTED_INPUT, f"unknown method {work.method!r}")


# --- with an LLM endpoint ------------------------------------------------------------------


@dataclass(frozen=True)
class LLMPlan:
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    schema_name: str
    max_tokens: int
    temperature: float | None
    seed: int
    # What reading the answer needs back: the passage's offsets in the document.
    passage_start: int = 0
    passage_end: int = 0


def llm_plan(work: Work, *, system: str, user: str, schema: dict[str, Any] | None) -> LLMPlan:
    """The request for one slot from a prompt version's text (sample content as data)."""
    schema = prompts.output_schema_for(work.method, schema)
    plain = {
        "target_tags": prompts.render_json(work.target_tags),
        "difficulty": work.target_difficulty or "any",
        "method": work.method,
        "count": "1",  # one item per call
    }
    data: dict[str, str] = {}
    passage_start = passage_end = 0
    if work.method in PARENT_METHODS:
        _, question = _parent_question(work)
        data = {"question": question, "answer": answer_text(work.parent.expected)}
        if work.method == ADVERSARIAL:
            kind = work.slot_values["kind"]
            plain |= {"kind": kind, "kind_description": prompts.KIND_DESCRIPTIONS.get(kind, kind)}
    elif work.method == TEMPLATE:
        brief = _filled(work.params["template"], work.slot_values)
        if work.params.get("answer"):
            brief += "\nReference answer: " + _filled(work.params["answer"], work.slot_values)
        data = {"brief": brief, "slots": prompts.render_json(work.slot_values)}
    elif work.method == GROUNDED:
        document = work.document
        if document is None:
            raise GenerationFailed(UNSUPPORTED_INPUT, "the slot has no source document")
        try:
            passage_start, passage_end, variant = grounding.passage_for(
                document.text,
                pick=int(work.slot_values.get("pick", 0)),
                seed=document_seed(work.batch_seed, document.id),
            )
        except ValueError as exc:
            raise GenerationFailed(UNSUPPORTED_INPUT, f"document {document.id}: {exc}") from None
        data = {
            "passage": document.text[passage_start:passage_end],
            "document_title": document.title,
        }
        plain["variant"] = str(variant)
    messages = prompts.build_messages(
        system=system, user=user, data=data, plain=plain, schema=schema
    )
    temperature = work.params.get("temperature")
    return LLMPlan(
        messages=messages,
        schema=schema,
        schema_name=f"synthaug_{work.method}",
        max_tokens=int(work.params.get("max_tokens") or DEFAULT_MAX_TOKENS[work.method]),
        temperature=float(temperature) if temperature is not None else None,
        seed=work.seed,
        passage_start=passage_start,
        passage_end=passage_end,
    )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise GenerationFailed(EMPTY_OUTPUT, f"the model's {name!r} is empty")
    return text


def llm_read(work: Work, plan: LLMPlan, data: dict[str, Any]) -> Generated:
    """Sample fields from an endpoint's schema-valid answer, or GenerationFailed."""
    if work.method == PARAPHRASE:
        key, original = _parent_question(work)
        question = _text(data, "question")
        if normalise(question) == normalise(original):
            raise GenerationFailed(UNCHANGED, "the model returned the question unchanged")
        return Generated(
            input={**work.parent.input, key: question}, expected=dict(work.parent.expected)
        )
    if work.method == ADVERSARIAL:
        key, original = _parent_question(work)
        attack = _text(data, "question")
        # Raw comparison: an invisible-character attack differs only in what normalise drops.
        if attack == original.strip():
            raise GenerationFailed(UNCHANGED, "the model returned the question unchanged")
        behaviour = _text(data, "behaviour")
        return Generated(
            input={**work.parent.input, key: attack},
            expected={"answer": _text(data, "answer"), "behaviour": behaviour},
            slot_values={"kind": work.slot_values["kind"]},
        )
    if work.method == TEMPLATE:
        return Generated(
            input={"question": _text(data, "question")},
            expected={"answer": _text(data, "answer")},
            slot_values=dict(work.slot_values),
        )
    if work.method == GROUNDED:
        question = _text(data, "question")
        answer = _text(data, "answer")
        support = data.get("supporting_passage") if isinstance(data, dict) else ""
        passage = work.document.text[plan.passage_start : plan.passage_end]
        found = grounding.locate_answer(
            answer=answer, support=support if isinstance(support, str) else "", passage=passage
        )
        if found is None:
            raise GenerationFailed(
                UNGROUNDED, f"the answer {answer[:200]!r} is not in the passage it was drawn from"
            )
        return Generated(
            input={"question": question},
            expected={"answer": found.answer},
            source_passage=found.support,
            passage_start=plan.passage_start + found.start,
            passage_end=plan.passage_start + found.end,
        )
    raise GenerationFailed(UNSUPPORTED_INPUT, f"unknown method {work.method!r}")
