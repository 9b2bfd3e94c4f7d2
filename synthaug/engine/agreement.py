"""Agreement statistics and reproducible stratified sampling: plain inputs, plain outputs.

Agreement between two raters who each say pass/fail (the judge and a person, or two
people) is reported as accuracy (share of items where they agree) with a Wilson score
interval, and Cohen's kappa with an *analytic* large-sample interval: the standard error
``sqrt(po * (1 - po) / (n * (1 - pe) ** 2))`` (Cohen 1960), at 95 % (z = 1.96). Kappa is
undefined when chance agreement is 1 (both raters said the same thing about every item);
it is then ``None`` and the pages say so instead of showing a number.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Agreement:
    n: int
    agree: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    # Cells of the 2x2 table: (rater a, rater b) -> count, both pass, a only, b only, neither.
    both_pass: int = 0
    a_only: int = 0
    b_only: int = 0
    both_fail: int = 0

    @property
    def disagree(self) -> int:
        return self.n - self.agree


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (well-behaved at 0, 1 and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def agreement(pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """Accuracy and Cohen's kappa of two raters' pass/fail verdicts on the same items."""
    return agreement_of(Counter((bool(a), bool(b)) for a, b in pairs))


def agreement_of(cells: Mapping[tuple[bool, bool], int]) -> Agreement:
    """``agreement`` from the 2x2 table already counted: ``{(a, b): how many}``."""
    both_pass = cells.get((True, True), 0)
    a_only = cells.get((True, False), 0)
    b_only = cells.get((False, True), 0)
    both_fail = cells.get((False, False), 0)
    n = both_pass + a_only + b_only + both_fail
    agree = both_pass + both_fail
    if n == 0:
        return Agreement(0, 0, None, None, None, None, None, None)
    po = agree / n
    a_pass = (both_pass + a_only) / n
    b_pass = (both_pass + b_only) / n
    pe = a_pass * b_pass + (1 - a_pass) * (1 - b_pass)
    low, high = wilson(agree, n)
    kappa = kappa_low = kappa_high = None
    if pe < 1:
        kappa = (po - pe) / (1 - pe)
        se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
        kappa_low = max(-1.0, kappa - Z95 * se)
        kappa_high = min(1.0, kappa + Z95 * se)
    return Agreement(
        n=n,
        agree=agree,
        accuracy=po,
        accuracy_low=low,
        accuracy_high=high,
        kappa=kappa,
        kappa_low=kappa_low,
        kappa_high=kappa_high,
        both_pass=both_pass,
        a_only=a_only,
        b_only=b_only,
        both_fail=both_fail,
    )


def stratified_pick(
    strata: Mapping[str, Sequence[int]], *, rate: float, minimum: int, seed: int
) -> dict[str, list[int]]:
    """A reproducible random sample of each stratum: ``max(ceil(rate * size), minimum)``
    ids (all of them when the stratum is smaller), chosen by a generator seeded with
    ``seed`` and the stratum's name, so adding a stratum does not change the others' picks.

    The ids of each stratum are sorted first: the result depends on the set of ids, not on
    the order the database returned them in.
    """
    picked: dict[str, list[int]] = {}
    for name in sorted(strata):
        ids = sorted(strata[name])
        want = min(len(ids), max(math.ceil(rate * len(ids)), minimum))
        rng = random.Random(f"{seed}:{name}")
        picked[name] = sorted(rng.sample(ids, want))
    return picked


def shuffled_positions(ids: Sequence[int], *, seed: int) -> dict[int, int]:
    """A reproducible queue order: id -> position 0..n-1 (a seeded shuffle of sorted ids)."""
    order = sorted(ids)
    random.Random(f"{seed}:order").shuffle(order)
    return {pk: position for position, pk in enumerate(order)}


def overlap_pick(ids: Sequence[int], *, share: float, seed: int) -> set[int]:
    """The ids (a seeded ``share`` of them) that a second reviewer also sees."""
    if share <= 0 or not ids:
        return set()
    order = sorted(ids)
    count = min(len(order), math.ceil(share * len(order)))
    return set(random.Random(f"{seed}:overlap").sample(order, count))


# A spot check's agreement tables, kept up to date decision by decision ---------------------

Cells = Counter  # (rater a passes, rater b passes) -> how many


@dataclass
class Tally:
    """The 2x2 tables behind a spot check's agreement figures, before any statistics.

    ``by_check[kind]`` pairs each human verdict in force (approve = pass) with the latest
    result of each check of its sample (a = the check, b = the person); ``by_stratum``
    splits the judge's pairs by the item's stratum; ``people`` pairs the first two people to
    decide a sample, each by their latest verdict. The disagreement sets hold sample ids.

    A tally of the whole batch is counted in the database; ``of_sample`` counts one
    sample's share from its verdicts, so a decision can record how it moved the tables
    (``change_to``) and a fold can add that to the stored tally (``apply``) without
    counting every decision again.
    """

    by_check: dict[str, Cells] = field(default_factory=dict)
    by_stratum: dict[str, Cells] = field(default_factory=dict)
    people: Cells = field(default_factory=Counter)
    judge_disagreements: set[int] = field(default_factory=set)
    people_disagreements: set[int] = field(default_factory=set)

    @classmethod
    def of_sample(
        cls,
        sample_id: int,
        verdicts: Iterable[tuple[int, int | None, str, bool]],
        checks: Mapping[str, bool],
        *,
        judge: str,
    ) -> Tally:
        """One sample's share: ``verdicts`` are its human verdicts in force as
        ``(decision id, reviewer id, stratum, approved)``, ``checks`` the latest result of
        each of its checks."""
        tally = cls()
        people: dict[int | None, list] = {}  # reviewer -> [first decision id, latest verdict]
        for pk, reviewer, stratum, human in sorted(verdicts):
            for kind, passed in checks.items():
                tally.by_check.setdefault(kind, Counter())[(passed, human)] += 1
                if kind == judge:
                    tally.by_stratum.setdefault(stratum, Counter())[(passed, human)] += 1
                    if passed != human:
                        tally.judge_disagreements.add(sample_id)
            people.setdefault(reviewer, [pk, human])[1] = human
        if len(people) >= 2:
            (_, first), (_, second), *_ = sorted(people.values())
            tally.people[(first, second)] += 1
            if first != second:
                tally.people_disagreements.add(sample_id)
        return tally

    def change_to(self, other: Tally) -> dict:
        """What turns this tally into ``other``, as JSON: ``cells`` as ``[table, key, a, b,
        n]`` rows (table "check", "stratum" or "people"), and the samples that join (+1) or
        leave (-1) each disagreement set."""
        cells = []
        for table, mine, theirs in (
            ("check", self.by_check, other.by_check),
            ("stratum", self.by_stratum, other.by_stratum),
            ("people", {"": self.people}, {"": other.people}),
        ):
            for key in sorted(mine.keys() | theirs.keys()):
                before, after = mine.get(key, Counter()), theirs.get(key, Counter())
                for a, b in sorted(before.keys() | after.keys()):
                    if n := after[(a, b)] - before[(a, b)]:
                        cells.append([table, key, a, b, n])

        def moves(before: set[int], after: set[int]) -> list[list[int]]:
            return [[pk, 1] for pk in sorted(after - before)] + [
                [pk, -1] for pk in sorted(before - after)
            ]

        return {
            "cells": cells,
            "judge": moves(self.judge_disagreements, other.judge_disagreements),
            "people": moves(self.people_disagreements, other.people_disagreements),
        }

    def apply(self, change: Mapping) -> bool:
        """Add a ``change_to`` result. False when a cell would fall below zero: the tally
        was counted against check results that have changed since, so only a count from
        scratch is right (the tally is then left part-way)."""
        for table, key, a, b, n in change["cells"]:
            if table == "people":
                cells = self.people
            else:
                tables = self.by_check if table == "check" else self.by_stratum
                cells = tables.setdefault(key, Counter())
            cells[(a, b)] += n
            if cells[(a, b)] < 0:
                return False
            if not +cells and table != "people":  # an emptied table is not shown
                del tables[key]
        for moves, found in (
            (change["judge"], self.judge_disagreements),
            (change["people"], self.people_disagreements),
        ):
            for pk, sign in moves:
                (found.add if sign > 0 else found.discard)(pk)
        return True
