"""The pure pieces of coverage beyond the matrix itself (tests/test_engine_coverage.py)."""

from __future__ import annotations

import pytest

from synthaug.engine.coverage import (
    Bucket,
    bucket_of,
    documents_cover,
    slice_key,
    slice_of,
    suggest_method,
)


@pytest.mark.parametrize(
    ("origin", "status", "review", "bucket"),
    [
        ("real", "accepted", "", Bucket.REAL),
        ("real", "accepted", "approved", Bucket.REAL),
        ("real", "accepted", "rejected", None),
        ("synthetic", "accepted", "", Bucket.SYNTHETIC_APPROVED),
        ("synthetic", "accepted", "approved", Bucket.SYNTHETIC_APPROVED),
        ("synthetic", "accepted", "rejected", None),
        ("synthetic", "pending", "", Bucket.SYNTHETIC_PENDING),
        ("synthetic", "rejected", "", None),
    ],
)
def test_it_puts_each_sample_state_in_its_bucket(origin, status, review, bucket):
    assert bucket_of(origin=origin, status=status, review_status=review) is bucket


def test_it_gives_one_key_per_slice_whatever_the_order():
    assert slice_key({"topic": "law", "locale": "de"}) == slice_key(
        {"locale": "de", "topic": "law"}
    )
    assert slice_key({"topic": "law", "locale": ""}) == slice_key({"topic": "law"})
    assert slice_key({"topic": "law"}) != slice_key({"topic": "Law"})
    assert slice_of(("law", ""), ["topic", "locale"]) == {"topic": "law"}


@pytest.mark.parametrize(
    ("difficulty", "dimensions", "documents", "method"),
    [
        ("adversarial", ["topic"], True, "adversarial"),
        ("hard", ["topic"], True, "grounded"),
        ("hard", ["topic", "locale"], False, "template"),
        ("easy", ["Entity"], False, "template"),
        ("medium", ["topic"], False, "paraphrase"),
    ],
)
def test_it_suggests_a_method_per_cell(difficulty, dimensions, documents, method):
    assert (
        suggest_method(difficulty=difficulty, dimensions=dimensions, has_documents=documents)
        == method
    )


def test_a_document_covers_a_slice_when_its_tags_match_or_are_missing():
    documents = {("law", "en"), ("health", "")}
    assert documents_cover(documents, ("law", "en"))
    assert not documents_cover(documents, ("law", "de"))
    assert documents_cover(documents, ("health", "zh"))  # no locale: any locale
    assert not documents_cover(set(), ("law", "en"))
