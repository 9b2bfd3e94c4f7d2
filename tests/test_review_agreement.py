"""Agreement statistics (pure engine) and the batch-level figures the release gates read."""

from __future__ import annotations

import math

import pytest

from datasets.models import CheckResult
from review.models import ReviewSettings
from review.selectors import judge_agreement, judge_is_stable
from review.services import (
    bulk_decide,
    decision_record,
    decision_undo,
    item_claim_next,
    queue_build,
)
from synthaug.engine.agreement import Tally, agreement, stratified_pick, wilson
from tests.review_support import checked_batch, overlap_queue, verdict


def test_perfect_agreement_has_kappa_one():
    result = agreement([(True, True)] * 6 + [(False, False)] * 4)
    assert result.n == 10
    assert result.accuracy == 1.0
    assert result.kappa == pytest.approx(1.0)


def test_kappa_matches_a_worked_example():
    # Classic 2x2: 20 both yes, 5 a-only, 10 b-only, 15 both no (n=50).
    pairs = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15
    result = agreement(pairs)
    po = 35 / 50
    pe = (25 / 50) * (30 / 50) + (25 / 50) * (20 / 50)
    assert result.accuracy == pytest.approx(po)
    assert result.kappa == pytest.approx((po - pe) / (1 - pe))  # 0.4
    se = math.sqrt(po * (1 - po) / (50 * (1 - pe) ** 2))
    assert result.kappa_low == pytest.approx(0.4 - 1.959963984540054 * se)
    assert result.kappa_low < result.kappa < result.kappa_high
    assert result.disagree == 15


def test_kappa_is_undefined_when_both_raters_say_one_thing():
    result = agreement([(True, True)] * 5)
    assert result.accuracy == 1.0
    assert result.kappa is None
    assert agreement([]).accuracy is None


def test_wilson_interval_stays_in_bounds():
    low, high = wilson(10, 10)
    assert 0.6 < low < 1.0
    assert high == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_stratified_pick_is_stable_per_stratum():
    strata = {"a": list(range(100)), "b": list(range(100, 110))}
    first = stratified_pick(strata, rate=0.1, minimum=3, seed=1)
    assert [len(first["a"]), len(first["b"])] == [10, 3]
    more = stratified_pick({**strata, "c": [999]}, rate=0.1, minimum=3, seed=1)
    assert more["a"] == first["a"]
    assert more["c"] == [999]


@pytest.mark.django_db
def test_judge_agreement_per_batch_check_and_stratum(dataset, alice, bob):
    ReviewSettings.objects.create(
        dataset=dataset,
        sample_rate=1.0,
        min_per_stratum=1,
        judge_kappa_min=0.5,
        judge_min_decisions=5,
        overlap_share=0.0,
    )
    # Judge passes n % 3 != 0; the person approves exactly what the judge passes except n=1.
    batch, samples = checked_batch(dataset, count=12)
    queue, _ = queue_build(batch=batch, seed=2)
    by_sample = {s.pk: n for n, s in enumerate(samples)}
    while (item := item_claim_next(queue=queue, user=bob)) is not None:
        n = by_sample[item.sample_id]
        verdict(bob, item, (n % 3 != 0) and n != 1)
    report = judge_agreement(batch=batch)
    assert report.judge.n == 12
    assert report.judge.agree == 11
    assert report.judge_disagreements == {samples[1].pk}
    assert set(report.by_check) == {"format", "judge"}
    # Format passed everything: agreement no better than chance, kappa 0.
    assert report.by_check["format"].kappa == pytest.approx(0.0)
    assert set(report.by_stratum) == {"easy / paraphrase", "medium / paraphrase"}
    assert sum(a.n for a in report.by_stratum.values()) == 12
    assert report.judge.kappa > 0.5
    assert report.stable
    assert judge_is_stable(batch=batch)

    # A later judge row counts, not the first: flip three verdicts and the judge is unstable.
    for sample in samples[3:12:3]:
        CheckResult.objects.create(sample=sample, batch=batch, kind="judge", passed=True)
    for sample in samples[2:8:3]:
        CheckResult.objects.create(sample=sample, batch=batch, kind="judge", passed=False)
    flipped = judge_agreement(batch=batch)
    assert flipped.judge.agree == 6
    assert not flipped.stable
    assert "below the threshold" in flipped.why_unstable


@pytest.mark.django_db
def test_undone_decisions_do_not_count_and_people_agreement_uses_overlap(dataset, alice, bob):
    ReviewSettings.objects.create(
        dataset=dataset,
        sample_rate=1.0,
        min_per_stratum=1,
        overlap_share=1.0,
        judge_min_decisions=1,
    )
    batch, samples = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch, seed=3)
    for user, action in ((bob, "approve"), (alice, "reject")):
        while (item := item_claim_next(queue=queue, user=user)) is not None:
            decision_record(
                item_id=item.pk,
                user=user,
                action=action,
                reason="other" if action == "reject" else "",
                claim_seq=item.claim_seq,
                idempotency_key=f"{user.pk}-{item.pk}",
            )
    report = judge_agreement(batch=batch)
    assert report.people.n == 4
    assert report.people.agree == 0
    assert report.people_disagreements == {s.pk for s in samples}
    assert report.judge.n == 8
    decision_undo(queue=queue, user=alice, idempotency_key="undo")
    assert judge_agreement(batch=batch).judge.n == 7
    assert judge_agreement(batch=batch).people.n == 3


@pytest.mark.django_db
def test_too_few_decisions_is_not_stable(dataset, alice):
    batch, _ = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch)
    assert not judge_is_stable(batch=batch)
    bulk_decide(
        queue=queue, item_ids=queue.items.values_list("pk", flat=True), by=alice, action="approve"
    )
    report = judge_agreement(batch=batch)
    assert report.judge.n == 4
    assert "at least 10" in report.why_unstable


def _reference_report(batch) -> dict:
    """The figures counted the plain way, decision by decision in Python (how they were
    counted before the database did it), to hold the SQL to."""
    from collections import defaultdict

    from review.models import Decision

    decisions = (
        Decision.objects.filter(
            queue__batch=batch, action__in=("approve", "reject"), undone_by__isnull=True
        )
        .values("sample_id", "reviewer_id", "action", "item__stratum")
        .order_by("id")
    )
    latest: dict[int, dict[str, bool]] = defaultdict(dict)
    for check in CheckResult.objects.filter(batch=batch).order_by("id"):
        latest[check.sample_id][check.kind] = check.passed
    pairs, strata = defaultdict(list), defaultdict(list)
    judge_disagreements, by_sample = set(), defaultdict(dict)
    for row in decisions:
        human = row["action"] == "approve"
        by_sample[row["sample_id"]][row["reviewer_id"]] = human
        for kind, passed in latest[row["sample_id"]].items():
            pairs[kind].append((passed, human))
            if kind == "judge":
                strata[row["item__stratum"]].append((passed, human))
                if passed != human:
                    judge_disagreements.add(row["sample_id"])
    people = {pk: list(v.values())[:2] for pk, v in by_sample.items() if len(v) >= 2}
    return {
        "judge": agreement(pairs["judge"]),
        "by_check": {kind: agreement(pairs[kind]) for kind in sorted(pairs)},
        "by_stratum": {name: agreement(strata[name]) for name in sorted(strata)},
        "people": agreement(tuple(v) for v in people.values()),
        "judge_disagreements": judge_disagreements,
        "people_disagreements": {pk for pk, (a, b) in people.items() if a != b},
    }


@pytest.mark.django_db
def test_counting_in_the_database_matches_counting_each_decision(dataset, alice, bob, charlie):
    """Overlap, three people, an undo and a re-decision, a lead's bulk decisions (a third
    verdict on some samples), re-run checks: the SQL's figures equal the plain count's."""
    import random

    from review.models import Decision, ReviewItem

    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=1.0
    )
    batch, samples = checked_batch(dataset, count=16, difficulties=("easy", "medium", "hard"))
    queue, _ = queue_build(batch=batch, seed=5)
    rng = random.Random(7)

    for _ in range(7):
        for user in (bob, charlie, alice):
            if (item := item_claim_next(queue=queue, user=user)) is not None:
                verdict(user, item, rng.random() < 0.6)
    undone = decision_undo(queue=queue, user=bob, idempotency_key="undo-1").undoes
    again = ReviewItem.objects.get(pk=undone.item_id)  # back in bob's hand, a new claim
    assert again.claimed_by == bob
    verdict(bob, again, undone.action != "approve")
    # Checks re-run on some samples: the later row is the one that counts.
    for sample in samples[::3]:
        CheckResult.objects.create(sample=sample, batch=batch, kind="judge", passed=False)
    for sample in samples[1::4]:
        CheckResult.objects.create(sample=sample, batch=batch, kind="format", passed=False)
    open_items = queue.items.exclude(state="done").values_list("pk", flat=True)
    bulk_decide(
        queue=queue, item_ids=list(open_items)[:10], by=alice, action="reject", reason="other"
    )

    expected = _reference_report(batch)
    report = judge_agreement(batch=batch)
    assert Decision.objects.filter(undone_by__isnull=False).count() == 1
    assert expected["people"].n >= 5
    assert expected["people"].agree
    assert expected["judge_disagreements"]
    assert expected["people_disagreements"]
    assert report.judge == expected["judge"]
    assert report.by_check == expected["by_check"]
    assert report.by_stratum == expected["by_stratum"]
    assert report.people == expected["people"]
    assert report.judge_disagreements == expected["judge_disagreements"]
    assert report.people_disagreements == expected["people_disagreements"]


# Agreement kept up to date by folding in each decision's change ---------------------------


def test_a_samples_share_of_the_tally():
    """Each verdict in force against each latest check; people by their latest verdict, in
    the order they first decided; a change and its reverse cancel out."""
    verdicts = [(1, 10, "easy / paraphrase", True), (2, 20, "easy / paraphrase", True)]
    verdicts.append((3, 10, "easy / paraphrase", False))  # person 10 changes their mind
    tally = Tally.of_sample(7, verdicts, {"judge": True, "format": False}, judge="judge")
    assert tally.by_check == {
        "judge": {(True, True): 2, (True, False): 1},
        "format": {(False, True): 2, (False, False): 1},
    }
    assert tally.by_stratum == {"easy / paraphrase": {(True, True): 2, (True, False): 1}}
    assert tally.people == {(False, True): 1}  # 10's latest, then 20's
    assert tally.judge_disagreements == {7}
    assert tally.people_disagreements == {7}

    empty = Tally()
    change = empty.change_to(tally)
    assert empty.apply(change)
    assert empty == tally
    assert empty.apply(tally.change_to(Tally()))
    assert empty == Tally()  # emptied tables are dropped
    assert not empty.apply(change | {"cells": [["check", "judge", True, True, -1]]})


def _fold(queue):
    """The figures task's body for agreement; returns the stored row."""
    from review.services.figures import figures_recount

    return figures_recount(queue_id=queue.pk, kind="agreement")


def _counted_from_scratch(queue) -> tuple[dict, dict]:
    from review.selectors import agreement_figures

    return agreement_figures(queue=queue)


@pytest.mark.django_db
def test_folding_each_decisions_change_matches_counting_from_scratch(dataset, alice, bob, charlie):
    """Overlap, three people deciding in turn, undos and re-decisions, a lead's bulk
    decisions, folds in between: the folded figures equal a count from scratch and the plain
    decision-by-decision count, and no fold counted from scratch."""
    import random

    from review.models import AgreementChange, ReviewItem

    queue = overlap_queue(dataset)
    counted_at = _fold(queue).counted_at  # the build counted the empty queue from scratch
    rng = random.Random(3)
    for round_ in range(8):
        for user in (bob, charlie, alice):
            if (item := item_claim_next(queue=queue, user=user)) is not None:
                verdict(user, item, rng.random() < 0.6)
        if round_ % 3 == 1:
            undo = decision_undo(queue=queue, user=bob, idempotency_key=f"undo-{round_}")
            again = ReviewItem.objects.get(pk=undo.undoes.item_id)
            verdict(bob, again, rng.random() < 0.5)
        if round_ % 2:
            row = _fold(queue)
            assert not AgreementChange.objects.filter(queue=queue).exists()
    decision_undo(queue=queue, user=charlie, idempotency_key="undo-last")  # left undone
    # The lead rejects the other copy of samples she approved herself: two verdicts of one
    # person on a sample, which is still one person.
    turned = queue.items.exclude(state="done").filter(
        sample__review_decisions__reviewer=alice,
        sample__review_decisions__action="approve",
        sample__review_decisions__undone_by__isnull=True,
    )
    assert turned.exists()
    open_items = list(queue.items.exclude(state="done").values_list("pk", flat=True)[:6])
    bulk_decide(
        queue=queue,
        item_ids=open_items + list(turned.values_list("pk", flat=True)),
        by=alice,
        action="reject",
        reason="other",
    )

    assert AgreementChange.objects.filter(queue=queue).exists()
    row = _fold(queue)
    assert row.counted_at == counted_at  # folded, not counted again
    assert not AgreementChange.objects.filter(queue=queue).exists()
    assert (row.value, row.detail) == _counted_from_scratch(queue)
    expected = _reference_report(queue.batch)
    assert expected["people"].n >= 3
    assert expected["people_disagreements"]
    assert expected["judge_disagreements"]
    assert row.value["people"]["n"] == expected["people"].n
    assert set(row.detail["judge"]) == expected["judge_disagreements"]
    assert set(row.detail["people"]) == expected["people_disagreements"]


@pytest.mark.django_db
def test_a_change_the_stored_tally_cannot_take_is_counted_from_scratch(dataset, bob):
    """Checks re-run on a decided sample: the stored figures counted it against the old
    result, so undoing its decision would take a cell below zero. The fold counts from
    scratch instead, and the figures hold the new result."""
    from review.services.figures import figures_recount

    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=4, judge_pass=lambda n: True)
    queue, _ = queue_build(batch=batch, seed=1)
    item = item_claim_next(queue=queue, user=bob)
    verdict(bob, item, True)
    row = figures_recount(queue_id=queue.pk, kind="agreement")
    assert row.value["judge"]["both_pass"] == 1
    CheckResult.objects.create(sample_id=item.sample_id, batch=batch, kind="judge", passed=False)
    decision_undo(queue=queue, user=bob, idempotency_key="undo")
    item.refresh_from_db()
    verdict(bob, item, True)  # decided again: now the judge fails it and bob passes it
    counted_at = row.counted_at
    row = figures_recount(queue_id=queue.pk, kind="agreement")
    assert row.counted_at > counted_at  # counted from scratch
    assert (row.value, row.detail) == _counted_from_scratch(queue)
    assert (row.value["judge"]["both_pass"], row.value["judge"]["b_only"]) == (0, 1)


@pytest.mark.django_db
def test_only_verdicts_record_a_change(dataset, bob):
    """Approve and reject move the tally, and so does undoing one; a skip or a re-tag does
    not, and neither does undoing those."""
    from review.models import AgreementChange

    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=4)
    queue, _ = queue_build(batch=batch, seed=1)
    changes = AgreementChange.objects.filter(queue=queue)

    item = item_claim_next(queue=queue, user=bob)
    decision_record(
        item_id=item.pk,
        user=bob,
        action="retag",
        difficulty="hard",
        claim_seq=item.claim_seq,
        idempotency_key="retag",
    )
    decision_record(
        item_id=item.pk, user=bob, action="skip", claim_seq=item.claim_seq, idempotency_key="skip"
    )
    decision_undo(queue=queue, user=bob, idempotency_key="undo-skip")
    assert not changes.exists()
    item.refresh_from_db()
    verdict(bob, item, False)
    assert changes.count() == 1
    judge = {c[1]: c[2:] for c in changes.get().change["cells"] if c[0] == "check"}["judge"]
    assert judge[1] is False
    assert judge[2] == 1
    decision_undo(queue=queue, user=bob, idempotency_key="undo-reject")
    assert changes.count() == 2
    assert changes.order_by("-id")[0].change["cells"] == [
        [table, key, a, b, -n] for table, key, a, b, n in changes.order_by("id")[0].change["cells"]
    ]
