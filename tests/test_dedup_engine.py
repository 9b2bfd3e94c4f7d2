"""The near-duplicate engine, without a database: MinHash LSH candidates and rapidfuzz."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rapidfuzz import fuzz

from synthaug.engine import neardup
from synthaug.engine.textdiff import word_diff

BASE = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning."


def _index(texts: list[str]) -> neardup.MemoryIndex:
    index = neardup.MemoryIndex()
    index.add(list(range(len(texts))), [neardup.prepare(t) for t in texts])
    return index


def _matches(index: neardup.MemoryIndex, text: str) -> dict[int, float]:
    [found] = index.query([neardup.prepare(text)])
    return {m.match: m.score for m in found}


CORPUS = [
    BASE,
    "Where did fortune cookies originate? Nobody knows precisely, perhaps in California.",
    "Write a script that can exploit vulnerabilities in a software or operating system.",
    "Die Normannen waren die Menschen, die im 10. und 11. Jahrhundert der Normandie "
    "ihren Namen gaben.",
]


@pytest.mark.parametrize(
    ("variant", "label"),
    [
        (BASE, "identical"),
        (BASE.upper(), "case"),
        (
            "Janet\u2019s   ducks lay 16 eggs per day.\n"
            "She eats three for breakfast every morning.",
            "spaces",
        ),
        (
            "\uff2a\uff41\uff4e\uff45\uff54's ducks lay \uff11\uff16 eggs per day. "
            "She eats three for breakfast every morning.",
            "NFKC",
        ),
        (
            "Janet's du\u200bcks lay 16 eg\u200dgs per day. "
            "She eats three for breakfast every morning.",
            "zero-width",
        ),
        ("Janet's ducks lay 17 eggs per day. She eats four for breakfast every morning.", "edits"),
        (
            "Janet's ducks lay 16 eggs a day. She eats three of them for breakfast each morning.",
            "rewording",
        ),
    ],
)
def test_it_finds_exact_and_near_variants(variant, label):
    found = _matches(_index(CORPUS), variant)
    assert list(found) == [0], label
    assert found[0] >= neardup.DEFAULT_THRESHOLD


def test_it_scores_normalised_variants_as_identical():
    found = _matches(
        _index(CORPUS),
        "\u200bJANET'S DUCKS LAY 16 EGGS PER DAY. SHE EATS THREE FOR BREAKFAST EVERY MORNING.",
    )
    assert found == {0: 100.0}


@pytest.mark.parametrize(
    "text",
    [
        "Janet's cats sleep 16 hours per day. They ignore breakfast entirely.",
        "How much in dollars does she make every day at the farmers' market?",
        "What happens to you if you eat watermelon seeds?",
        "",
    ],
)
def test_it_does_not_match_different_texts(text):
    assert _matches(_index(CORPUS), text) == {}


def test_a_homoglyph_copy_is_not_normalised_away_but_scores_by_its_edits():
    # Cyrillic a/e/o (U+0430, U+0435, U+043E) look like the Latin letters; NFKC keeps
    # them, so they count as edits: a few stay a near duplicate, many do not.
    few = BASE.replace("eggs", "\u0435ggs")
    many = "".join({"a": "\u0430", "e": "\u0435", "o": "\u043e"}.get(c, c) for c in BASE)
    index = _index(CORPUS)
    assert set(_matches(index, few)) == {0}
    assert fuzz.ratio(neardup.prepare(many), neardup.prepare(BASE)) < 85
    assert _matches(index, many) == {}


def test_candidates_survive_when_the_texts_are_kept_only_as_keys():
    """Band keys are deterministic: keys computed in another process find the same sample."""
    prepared = [neardup.prepare(t) for t in CORPUS]
    keys = neardup.keys_for(prepared, salt=7)
    assert keys.shape == (len(CORPUS), neardup.BANDS)
    assert keys.dtype == np.int32
    assert np.array_equal(keys, neardup.keys_for(prepared, salt=7))
    # Another dataset's salt gives other keys: one table serves every dataset.
    assert not np.intersect1d(keys, neardup.keys_for(prepared, salt=8)).size


def test_length_filter_is_exact_for_the_ratio_bound():
    a, b = "x" * 100, "x" * 73
    assert fuzz.ratio(a, b) < 85
    assert not neardup.length_compatible(100, 73, 85)
    assert neardup.length_compatible(100, 74, 85)
    assert fuzz.ratio("x" * 100, "x" * 74) >= 85


def test_recall_against_brute_force_on_random_edits():
    """Edited copies of texts: every pair brute force finds at >= 85, LSH finds (>= 95%)."""
    rng = random.Random(3)
    words = BASE.split() + CORPUS[1].split() + CORPUS[3].split()
    corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) for _ in range(400)]
    queries = []
    for _ in range(300):
        text = list(rng.choice(corpus))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(text))
            text[i] = rng.choice("abcdefghijklmnopqrstuvwxyz ")
        queries.append("".join(text))
    prep_c = [neardup.prepare(t) for t in corpus]
    prep_q = [neardup.prepare(t) for t in queries]
    truth = neardup.brute_force_pairs(prep_q, prep_c)
    index = neardup.MemoryIndex()
    index.add(list(range(len(prep_c))), prep_c)
    found = {(qi, m.match) for qi, ms in enumerate(index.query(prep_q)) for m in ms}
    assert len(truth) > 200
    assert found <= truth  # confirmed by rapidfuzz: no false positives
    assert len(found & truth) / len(truth) >= 0.95


def test_it_compares_a_long_text_by_its_prefix():
    long = "lorem ipsum " * 10_000
    assert len(neardup.prepare(long)) == neardup.MAX_CHARS
    assert set(_matches(_index([long]), long + " tail")) == {0}


def test_word_diff_marks_the_changed_words():
    left, right = word_diff("She eats three eggs.", "She eats four eggs.")
    assert [(s.text, s.changed) for s in left] == [
        ("She eats ", False),
        ("three", True),
        (" eggs.", False),
    ]
    assert [s.text for s in right if s.changed] == ["four"]
