"""A queue's progress figures kept up to date decision by decision, like its agreement
(review/services/agreement.py).

Counting progress from scratch groups every item and every decision of the queue: a
tenth of a second or more on a big queue, every few seconds while reviewers work it. So
each verdict, undo of one, lead's bulk action and add of items records how it moved the
counts (a ``ProgressChange``: items and decided items per stratum, items per reason,
verdicts per reviewer), and the figures task folds those rows into the stored figures.
A count from scratch still comes every ``FIGURES_MAX_AGE``, and whenever a change would
take a count below zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth import get_user_model

from review import selectors
from review.models import ProgressChange, QueueFigures, ReviewQueue
from review.services.changes import changes_gone, changes_take


def progress_change(
    *,
    queue: ReviewQueue,
    decided: Iterable[str] = (),
    verdicts: Iterable[tuple[int, bool]] = (),
    added: Iterable[tuple[str, str]] = (),
    sign: int = 1,
) -> ProgressChange | None:
    """Record how what was just written moved the queue's progress; call in its transaction.

    ``decided``: the strata of items that became decided (``sign`` 1) or undecided again
    (-1); ``verdicts``: ``(reviewer id, approved)`` of verdicts that came into force (1) or
    went out of it (-1); ``added``: ``(reason, stratum)`` of new items. One insert, none
    when nothing moved.
    """
    strata: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[str, int] = defaultdict(int)
    reviewers: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for stratum in decided:
        strata[stratum][1] += sign
    for reviewer, approved in verdicts:
        counts = reviewers[str(reviewer)]
        counts[0] += sign
        counts[1 if approved else 2] += sign
    for reason, stratum in added:
        strata[stratum][0] += 1
        reasons[reason] += 1
    if not (strata or reasons or reviewers):
        return None
    change = {"strata": dict(strata), "reasons": dict(reasons), "reviewers": dict(reviewers)}
    return ProgressChange.objects.create(queue=queue, change=change)


def progress_count(*, queue: ReviewQueue) -> tuple[dict, dict, int]:
    """Count the queue's progress from scratch and delete its change rows, in one snapshot:
    ``(value, detail, version)``. Call holding the figures row's lock."""
    value, version = selectors.queue_tally(queue=queue, gone=changes_gone(ProgressChange, queue))
    return value, {}, version


def progress_fold(*, queue: ReviewQueue, row: QueueFigures) -> tuple[dict, dict, int] | None:
    """The stored figures with the queue's change rows folded in (the rows deleted and read
    in one statement), ``(value, detail, version)``; None when only a count from scratch is
    right (nothing stored yet, or a change the stored counts cannot take). Call holding the
    figures row's lock, ``row`` as read under it."""
    if "by_stratum" not in (row.value or {}):
        return None
    changes, version = changes_take(ProgressChange, queue)
    value = progress_apply(row.value, changes, usernames=_usernames(row.value, changes))
    if value is None:
        return None
    return value, {}, version


def progress_apply(value: dict, changes: list[dict], *, usernames: dict[int, str]) -> dict | None:
    """Stored progress figures with ``changes`` applied, in the order a count from scratch
    gives them; None if a count would go below zero (the stored figures were off)."""
    by_reason = dict(value["by_reason"])
    by_stratum = {name: dict(cell) for name, cell in value["by_stratum"].items()}
    people = {row["reviewer"]: dict(row) for row in value["decided"]}
    for change in changes:
        for reason, n in change["reasons"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
        for stratum, (total, done) in change["strata"].items():
            cell = by_stratum.setdefault(stratum, {"total": 0, "done": 0})
            cell["total"] += total
            cell["done"] += done
        for key, (n, approved, rejected) in change["reviewers"].items():
            reviewer = int(key)
            person = people.setdefault(
                reviewer,
                {
                    "reviewer": reviewer,
                    "reviewer__username": usernames.get(reviewer),
                    "n": 0,
                    "approved": 0,
                    "rejected": 0,
                },
            )
            person["n"] += n
            person["approved"] += approved
            person["rejected"] += rejected
    cells = [*by_reason.values(), *(n for cell in by_stratum.values() for n in cell.values())]
    counts = [n for person in people.values() for n in (person["approved"], person["rejected"])]
    if min([*cells, *counts], default=0) < 0:
        return None
    if any(cell["done"] > cell["total"] for cell in by_stratum.values()):
        return None
    # A count from scratch lists only reviewers with a verdict in force.
    decided = [person for person in people.values() if person["n"]]
    return selectors.settled_value(by_reason, by_stratum, decided)


def _usernames(value: dict, changes: list[dict]) -> dict[int, str]:
    """The names of reviewers the changes bring in that the stored figures do not list."""
    known = {row["reviewer"] for row in value["decided"]}
    new = {int(key) for change in changes for key in change["reviewers"]} - known
    if not new:
        return {}
    user = get_user_model()
    return dict(user.objects.filter(pk__in=new).values_list("pk", user.USERNAME_FIELD))
