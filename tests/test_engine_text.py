from __future__ import annotations

import pytest

from synthaug.engine.text import canonical_json, content_hash, flatten, normalise, text_hash


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello\tWORLD \n", "hello world"),
        ("\uff26\uff35\uff2c\uff2c width", "full width"),  # NFKC folds compatibility forms
        ("zero\u200bwidth\u200d joiner", "zerowidth joiner"),
        ("bidi \u202eoverride\u202c", "bidi override"),
        ("\ufeffBOM", "bom"),
        ("Straße", "strasse"),  # case folding, not lower()
        ("ascii only, nothing to strip", "ascii only, nothing to strip"),
    ],
)
def test_it_normalises_text(raw, expected):
    assert normalise(raw) == expected


def test_it_hashes_variants_of_one_text_alike_and_different_texts_apart():
    base = content_hash({"question": "What is the capital of France?"})
    assert content_hash({"question": "what is the  capital of\u200b France?"}) == base
    assert content_hash({"question": "What is the capital of Spain?"}) != base
    assert len(base) == 64


@pytest.mark.parametrize(
    "value", [{"question": "Why?\u202e", "context": ["a", 1, None]}, "plain", ["x", {"y": 2}]]
)
def test_hashing_a_flattened_value_gives_its_content_hash(value):
    # The importer hashes the text it already flattened; it must match content_hash.
    assert text_hash(flatten(value)) == content_hash(value)


def test_it_flattens_objects_by_sorted_key():
    assert flatten({"b": "second", "a": ["first", 1, None]}) == "first\n1\n\nsecond"
    assert flatten("plain") == "plain"


def test_it_serialises_canonically():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
