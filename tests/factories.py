"""Factories for tests: valid rows with the fewest fields a test has to spell out."""

from __future__ import annotations

import itertools
import re
from typing import Any

from datasets.models import Batch, Dataset, Sample
from synthaug.engine.text import content_hash

_seq = itertools.count(1)


def sample_fields(dataset: Dataset, *, text: str | None = None, **fields: Any) -> dict:
    """The fields of a valid sample: unique text unless given, a batch when synthetic."""
    n = next(_seq)
    text = f"question number {n}" if text is None else text
    value = fields.pop("input", {"question": text})
    origin = fields.pop("origin", Sample.Origin.REAL)
    if origin == Sample.Origin.SYNTHETIC and "batch" not in fields:
        fields["batch"] = Batch.objects.create(
            dataset=dataset, method=Batch.Method.PARAPHRASE, requested_count=1
        )
    if origin == Sample.Origin.SYNTHETIC and "seq" not in fields:
        fields["seq"] = n
    return {
        "dataset": dataset,
        "input": value,
        "text": text,
        "expected": {"answer": f"answer {n}"},
        "origin": origin,
        "content_hash": content_hash(value),
        "source_group": f"group-{n}",
        "status": Sample.Status.ACCEPTED,
        **fields,
    }


def make_sample(dataset: Dataset, **fields: Any) -> Sample:
    return Sample.objects.create(**sample_fields(dataset, **fields))


def make_samples(dataset: Dataset, count: int, **fields: Any) -> list[Sample]:
    """``count`` real samples in one INSERT (synthetic ones need make_sample per batch)."""
    return Sample.objects.bulk_create(
        [Sample(**sample_fields(dataset, **fields)) for _ in range(count)]
    )


def row_ids(response) -> list[int]:
    """The sample ids of the table rows in a rendered page, in order."""
    return [int(pk) for pk in re.findall(r'<tr id="sample-(\d+)"', response.content.decode())]
