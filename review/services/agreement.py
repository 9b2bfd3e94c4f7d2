"""A queue's agreement figures kept up to date decision by decision.

Counting agreement from scratch probes the latest check results of every decided sample:
seconds once a queue holds tens of thousands of decisions, and while it runs it takes a
core the pages need. So each decision also records how it moved the queue's tally (an
``AgreementChange`` row: the sample's share of the tally after the decision minus its
share before, both read in the decision's transaction, which holds the sample's row lock),
and the figures task folds those rows into the stored figures: a recount costs what was
decided since the last one.

A fold and a count from scratch hold the figures row's lock, and each deletes the change
rows it accounts for in the statement that reads them (review/services/changes.py). A
count from scratch still comes every ``FIGURES_MAX_AGE`` for what no decision
records (checks re-run on decided samples), and whenever a fold finds the stored tally
inconsistent with a change (a cell below zero: the checks it was counted against changed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from datasets.models import CheckResult
from review import selectors
from review.models import AgreementChange, Decision, QueueFigures, ReviewQueue
from review.services.changes import changes_gone, changes_take
from synthaug.engine.agreement import Tally

Verdict = tuple[int, int | None, str, bool]  # (decision id, reviewer id, stratum, approved)
_VERDICTS = (Decision.Action.APPROVE, Decision.Action.REJECT)


def agreement_change(
    *,
    queue: ReviewQueue,
    sample_ids: Iterable[int],
    added: Iterable[int] = (),
    removed: Iterable[tuple[int, Verdict]] = (),
) -> AgreementChange | None:
    """Record how the decisions just written moved the queue's agreement tally.

    Call in the decision's transaction, after writing it, with the samples' rows locked:
    ``added`` are the ids of new approve/reject decisions, ``removed`` the verdicts an undo
    just took out of force, as ``(sample id, verdict)``. Two queries (the samples' verdicts
    in force, their latest checks) and the insert; nothing when the tally did not move.
    """
    sample_ids = sorted(set(sample_ids))
    added = set(added)
    now: dict[int, list[Verdict]] = defaultdict(list)
    # By sample alone, so the plan is the sample index's whatever the statistics say (the
    # queue's index is as selective on paper, and reads every decision of the queue).
    rows = (
        Decision.objects.filter(
            sample_id__in=sample_ids, action__in=_VERDICTS, undone_by__isnull=True
        )
        .values_list("queue_id", "sample_id", "id", "reviewer_id", "item__stratum", "action")
        .order_by()
    )
    for queue_id, sample_id, pk, reviewer, stratum, action in rows:
        if queue_id == queue.pk:
            now[sample_id].append((pk, reviewer, stratum, action == Decision.Action.APPROVE))
    gone: dict[int, list[Verdict]] = defaultdict(list)
    for sample_id, verdict in removed:
        gone[sample_id].append(verdict)
    checks: dict[int, dict[str, bool]] = defaultdict(dict)
    latest = (
        CheckResult.objects.filter(sample_id__in=sample_ids)
        .order_by("sample_id", "kind", "id")
        .values_list("sample_id", "kind", "passed")
    )
    for sample_id, kind, passed in latest:
        checks[sample_id][kind] = passed  # the highest id of a sample and kind counts

    judge = CheckResult.Check.JUDGE
    change: dict[str, list] = {"cells": [], "judge": [], "people": []}
    for sample_id in sample_ids:
        after = now[sample_id]
        before = [v for v in after if v[0] not in added] + gone[sample_id]
        moved = Tally.of_sample(sample_id, before, checks[sample_id], judge=judge).change_to(
            Tally.of_sample(sample_id, after, checks[sample_id], judge=judge)
        )
        for part, entries in moved.items():
            change[part] += entries
    if not any(change.values()):
        return None
    return AgreementChange.objects.create(queue=queue, change=change)


def agreement_count(*, queue: ReviewQueue) -> tuple[dict, dict, int]:
    """Count the queue's agreement from scratch and delete its change rows, in one snapshot:
    ``(value, detail, version)``. Call holding the figures row's lock."""
    gone = changes_gone(AgreementChange, queue)
    tally, version = selectors.batch_tally(batch=queue.batch, gone=gone)
    return *_stored(tally, queue), version


def agreement_fold(*, queue: ReviewQueue, row: QueueFigures) -> tuple[dict, dict, int] | None:
    """The stored figures with the queue's change rows folded in (the rows deleted and read
    in one statement), ``(value, detail, version)``; None when only a count from scratch
    is right (nothing stored yet, or a change the stored tally cannot take). Call holding
    the figures row's lock, ``row`` as read under it."""
    tally = selectors.stored_tally(row.value, row.detail)
    if tally is None:
        return None
    changes, version = changes_take(AgreementChange, queue)
    for change in changes:
        if not tally.apply(change):
            return None
    return *_stored(tally, queue), version


def _stored(tally: Tally, queue: ReviewQueue) -> tuple[dict, dict]:
    """A tally's figures as ``QueueFigures`` stores them (value, detail)."""
    return selectors.agreement_value(selectors.agreement_report(tally, dataset=queue.batch.dataset))
