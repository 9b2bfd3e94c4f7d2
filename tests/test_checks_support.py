"""Shared helpers for the checking-stage tests (no tests of its own).

``checking_batch`` builds a batch already in CHECKING with hand-written synthetic samples, so
a test controls exactly what each check sees.
"""

from __future__ import annotations

import re
from typing import Any

from datasets.models import Batch, CheckResult, Sample
from datasets.services.generation import offline_endpoints
from synthaug.engine.text import content_hash, flatten
from tests.factories import make_sample

PASSAGE = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France. They were descended from Norse raiders and pirates."
)


def checking_batch(
    dataset, *, method: str = "grounded", judge=None, params: dict | None = None
) -> Batch:
    generator, offline_judge = offline_endpoints()
    return Batch.objects.create(
        dataset=dataset,
        method=method,
        requested_count=1,
        status=Batch.Status.CHECKING,
        generator=generator,
        judge=judge or offline_judge,
        params=params or {},
    )


def candidate(batch: Batch, seq: int, question: str, answer: str, **fields: Any) -> Sample:
    """A PENDING synthetic sample of ``batch`` with this question and answer."""
    value = fields.pop("input", {"question": question})
    expected = fields.pop("expected", {"answer": answer})
    duplicate_of = (
        Sample.objects.filter(
            dataset=batch.dataset, content_hash=content_hash(value), duplicate_of__isnull=True
        )
        .values_list("pk", flat=True)
        .first()
    )
    return make_sample(
        batch.dataset,
        origin=Sample.Origin.SYNTHETIC,
        batch=batch,
        seq=seq,
        input=value,
        text=flatten(value),
        expected=expected,
        status=Sample.Status.PENDING,
        method=batch.method,
        duplicate_of_id=duplicate_of,
        **fields,
    )


def grounded(batch: Batch, seq: int, question: str, answer: str, **fields: Any) -> Sample:
    return candidate(batch, seq, question, answer, source_passage=PASSAGE, **fields)


def results(sample: Sample) -> dict[str, CheckResult]:
    """The sample's check results by kind (exactly one each)."""
    rows = list(CheckResult.objects.filter(sample=sample))
    kinds = [row.kind for row in rows]
    assert len(kinds) == len(set(kinds)), f"more than one result per check: {kinds}"
    return {row.kind: row for row in rows}


_DATA = re.compile(r'<data name="(\w+)">\n(.*?)\n</data>', re.DOTALL)


def split_messages(body: dict) -> tuple[dict[str, str], str]:
    """(data blocks by name, everything outside them) of a chat request."""
    text = "\n".join(m["content"] for m in body["messages"])
    blocks = dict(_DATA.findall(text))
    outside = _DATA.sub("<data/>", text)
    return blocks, outside


def honest_judge(body: dict) -> dict:
    """A judge that reads the item only from its data blocks and judges it on the merits:
    the answer must occur in the source. It ignores whatever else the item says."""
    blocks, _ = split_messages(body)
    answer = blocks.get("answer", "").strip().lower()
    source = blocks.get("source", "").lower()
    good = bool(answer) and answer in source
    return {
        "verdict": "pass" if good else "fail",
        "score": 0.9 if good else 0.1,
        "faithful": "yes" if good else "no",
        "safe": "yes",
        "policy_category": "none",
        "attack_matches": "not_applicable",
        "difficulty": "easy",
        "rationale": "the answer is in the source" if good else "the answer is not supported",
    }
