"""Difficulty heuristics and batch diversity: pure functions, no database."""

from __future__ import annotations

from synthaug.engine import difficulty, diversity
from synthaug.engine.offline import adversarial, attack_markers


def level_of(text: str, **kwargs) -> difficulty.Assessment:
    found = difficulty.features(text=text, attack_markers=attack_markers(text), **kwargs)
    return difficulty.assess(found, judge_level=kwargs.pop("judge", None))


def test_it_calls_a_short_plain_question_easy():
    assessed = level_of("What is the capital of Peru?")
    assert assessed.level == "easy"
    assert assessed.features["words"] == 6
    assert assessed.features["constraints"] == 0
    assert "standard wording" in assessed.rationale


def test_it_calls_a_question_with_a_condition_or_a_paraphrase_medium():
    assert level_of("Which river is longer, the Nile or the Amazon?").level == "medium"
    assert level_of("What is the capital of Peru?", method="paraphrase").level == "medium"


def test_it_calls_several_constraints_long_context_or_long_input_hard():
    many = "Name exactly three rivers in Peru that are longer than 500 km, without tributaries."
    assessed = level_of(many)
    assert assessed.level == "hard"
    assert assessed.features["constraints"] >= 3
    assert "constraints" in assessed.rationale
    long_context = level_of("Who built it?", context="x " * 1000)
    assert long_context.level == "hard"
    assert "long context" in long_context.rationale
    assert level_of(" ".join(["word"] * 70)).level == "hard"


def test_it_calls_anything_with_attack_markers_adversarial_whatever_the_judge_says():
    attack = adversarial(text="What is the capital of Peru?", kind="fake_system", seed=1).text
    found = difficulty.features(text=attack, attack_markers=attack_markers(attack))
    assessed = difficulty.assess(found, judge_level="easy")
    assert assessed.level == "adversarial"
    assert "manipulation" in assessed.rationale
    assert "judge said easy" in assessed.rationale


def test_the_judge_moves_the_level_one_step_but_not_two():
    found = difficulty.features(text="What is the capital of Peru?")
    assert difficulty.assess(found, judge_level="medium").level == "medium"
    far = difficulty.assess(found, judge_level="hard")
    assert far.level == "easy"
    assert "too far" in far.rationale
    # The judge cannot make an item an attack: that needs markers.
    assert difficulty.assess(found, judge_level="adversarial").level == "easy"
    # An unknown answer is ignored.
    assert difficulty.assess(found, judge_level="impossible").level == "easy"


def test_diversity_flags_a_batch_of_near_copies_as_low_information():
    parent = "Is it important to buy a big car before moving to the city?"
    pairs = [(parent + "!", parent), (parent.replace("big", "large"), parent), ("Why?", parent)]
    figures = diversity.batch_diversity(pairs, method="paraphrase")
    assert figures["with_parent"] == 3
    assert figures["near_copies"] == 2
    assert figures["near_copy_share"] == round(2 / 3, 4)
    assert figures["flags"] == ["low_information", "paraphrase_only"]
    assert sum(figures["parent_similarity"]["counts"]) == 3
    assert figures["parent_similarity"]["counts"][-1] >= 1  # the "!" copy scores 95+


def test_diversity_of_fresh_items_has_no_flags_and_counts_distinct_ngrams():
    pairs = [("alpha beta gamma", "one two three"), ("delta epsilon zeta", "four five six")]
    figures = diversity.batch_diversity(pairs, method="template")
    assert figures["flags"] == []
    assert figures["near_copy_share"] == 0.0
    assert figures["distinct_1grams"] == 1.0
    assert figures["distinct_2grams"] == 1.0
    repeated = diversity.batch_diversity([("a b a b", None), ("a b", None)])
    assert repeated["distinct_2grams"] == round(2 / 4, 4)  # (a,b) (b,a) of 4 pairs
    assert repeated["with_parent"] == 0
    assert repeated["near_copy_share"] is None
    assert repeated["flags"] == []


def test_a_release_is_paraphrase_only_when_every_batch_is_a_paraphrase():
    assert diversity.release_paraphrase_only(["paraphrase", "paraphrase"])
    assert not diversity.release_paraphrase_only(["paraphrase", "grounded"])
    assert not diversity.release_paraphrase_only([])
