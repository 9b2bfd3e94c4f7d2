"""Reads of the review app: queues, progress, item pages, the audit log, agreement.

Lists are keyset pages (``id < cursor``), never OFFSET, and counts are capped, so a queue
page costs the same at any depth. Progress and agreement are counted from the decisions in
force (not undone) and the latest check results; a page reads them as a task last counted
them (``QueueFigures``, review/services/figures.py), agreement kept up to date between
counts by folding in each decision's change (review/services/agreement.py), which a
periodic count from scratch checks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Substr
from django.utils import timezone

from datasets.access import datasets_visible_to
from datasets.models import Batch, CheckResult
from datasets.selectors.browse import CappedCount, Page, capped_count
from review.models import AuditEntry, Decision, QueueFigures, ReviewItem, ReviewQueue
from review.services.queues import review_settings_for
from synthaug.engine.agreement import Agreement, Tally, agreement_of

PAGE_SIZE = 50
TEXT_HEAD_CHARS = 200


# Queues ----------------------------------------------------------------------------------


def queues_for_user(*, user) -> QuerySet[ReviewQueue]:
    """The queues in the user's datasets, newest first, with capped open and done counts and
    what the user holds (one query)."""
    items = ReviewItem.objects.filter(queue=OuterRef("pk"))
    return (
        ReviewQueue.objects.filter(dataset__in=datasets_visible_to(user))
        .select_related("dataset", "batch")
        .annotate(
            open_count=CappedCount(items.filter(state=ReviewItem.State.OPEN)),
            done_count=CappedCount(items.filter(state=ReviewItem.State.DONE)),
            mine_count=CappedCount(items.filter(state=ReviewItem.State.CLAIMED, claimed_by=user)),
        )
        .order_by("-created_at", "-pk")
    )


@dataclass(frozen=True)
class ReviewerProgress:
    reviewer_id: int | None
    username: str
    decided: int
    approved: int
    rejected: int
    holding: int


@dataclass(frozen=True)
class QueueProgress:
    total: int
    open: int
    claimed: int
    done: int
    by_reason: dict[str, int]
    by_stratum: dict[str, dict[str, int]]
    reviewers: list[ReviewerProgress]
    # Set when the settled figures are older than the last decision (see QueueFigures).
    as_of: datetime | None = None
    # No figures stored yet: a task is counting them.
    counting: bool = False
    # The queue's composition at build, per stratum: {"population": n, "sampled": n}.
    built: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100

    @property
    def strata(self) -> list[tuple[str, int | None, int | None, int, int]]:
        """(stratum, in batch, sampled at build, in queue, decided) for each stratum."""
        rows = []
        for name, row in self.by_stratum.items():
            built = self.built.get(name, {})
            rows.append(
                (name, built.get("population"), built.get("sampled"), row["total"], row["done"])
            )
        return rows


# A queue's progress in one statement (one snapshot), as tagged rows: "items" its items
# by reason and stratum (how many, how many decided); "person" each reviewer's verdicts in
# force (approve or reject, not undone) and how many approve; "version" the queue's newest
# audit entry, which the figures then hold everything up to. Every change to what a queue
# holds or decided writes an audit entry (build, decisions, skips, undo, add, reassign,
# bulk); claims do not: what is held right now is always read live. ``{gone}`` is where a
# figures count deletes the folded changes (review/services/progress.py), on PostgreSQL.
_PROGRESS_SQL = """
WITH {gone}items AS (
    SELECT reason, stratum, COUNT(*) AS n, SUM(CASE WHEN state = %s THEN 1 ELSE 0 END) AS done
    FROM review_reviewitem WHERE queue_id = %s GROUP BY reason, stratum
),
person AS (
    SELECT d.reviewer_id, u.{username} AS username, COUNT(*) AS n,
           SUM(CASE WHEN d.action = %s THEN 1 ELSE 0 END) AS approved
    FROM review_decision d LEFT JOIN {users} u ON u.id = d.reviewer_id
    WHERE d.queue_id = %s AND d.action IN (%s, %s)
      AND NOT EXISTS (SELECT 1 FROM review_decision x WHERE x.undoes_id = d.id)
    GROUP BY d.reviewer_id, u.{username}
)
SELECT 'items', reason, stratum, NULL, NULL, n, done FROM items
UNION ALL
SELECT 'person', NULL, NULL, reviewer_id, username, n, approved FROM person
UNION ALL
SELECT 'version', NULL, NULL, NULL, NULL, (
    SELECT MAX(id) FROM review_auditentry WHERE queue_id = %s
), NULL
"""


def queue_tally(*, queue: ReviewQueue, gone: tuple[str, list] | None = None) -> tuple[dict, int]:
    """The queue's settled progress as ``QueueFigures`` stores it, counted in the database
    (one query), and the version it holds everything up to. ``gone`` is a data-modifying
    CTE (``"name AS (...), "`` and its parameters) run in the same statement."""
    users = get_user_model()._meta
    sql = _PROGRESS_SQL.format(
        gone=gone[0] if gone else "",
        users=users.db_table,
        username=users.get_field(get_user_model().USERNAME_FIELD).column,
    )
    approve, reject = Decision.Action.APPROVE, Decision.Action.REJECT
    params = [*(gone[1] if gone else []), ReviewItem.State.DONE, queue.pk]
    params += [approve, queue.pk, approve, reject, queue.pk]
    with connections[router.db_for_read(Decision)].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    by_reason: dict[str, int] = defaultdict(int)
    by_stratum: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "done": 0})
    decided, version = [], 0
    for tag, reason, stratum, reviewer, username, n, m in rows:
        if tag == "items":
            by_reason[reason] += n
            by_stratum[stratum]["total"] += n
            by_stratum[stratum]["done"] += int(m)
        elif tag == "person":
            approved = int(m)
            decided.append(
                {
                    "reviewer": reviewer,
                    "reviewer__username": username,
                    "n": n,
                    "approved": approved,
                    "rejected": n - approved,
                }
            )
        else:
            version = n or 0
    return settled_value(by_reason, by_stratum, decided), version


def settled_value(by_reason: dict, by_stratum: dict, decided: list[dict]) -> dict:
    """Progress figures as ``QueueFigures`` stores them, in one order however counted."""
    return {
        "total": sum(by_reason.values()),
        "done": sum(row["done"] for row in by_stratum.values()),
        "by_reason": dict(sorted(by_reason.items())),
        "by_stratum": dict(sorted(by_stratum.items())),
        "decided": sorted(
            decided,
            key=lambda row: (row["reviewer__username"] is None, row["reviewer__username"] or ""),
        ),
    }


def queue_progress(
    *, queue: ReviewQueue, settled: dict | None, as_of: datetime | None = None
) -> QueueProgress:
    """Counts by state, reason and stratum, and per reviewer.

    ``settled`` are the stored aggregates over the whole queue (``queue_tally``, kept
    in ``QueueFigures``; None while not counted yet, and the page says so), ``as_of``
    their time when they are older than the last decision. What is held right now is read
    live (the claimed rows, a partial index): one query, two when someone holds items
    without having decided any.
    """
    counting = settled is None
    if settled is None:
        settled = {"total": 0, "done": 0, "by_reason": {}, "by_stratum": {}, "decided": []}
    # Claims live; one whose lease ran out counts as waiting (the next claim takes it).
    holding = dict(
        ReviewItem.objects.filter(
            queue=queue, state=ReviewItem.State.CLAIMED, lease_until__gte=timezone.now()
        )
        .values_list("claimed_by")
        .annotate(n=Count("pk"))
        .order_by()
    )
    claimed = sum(holding.values())
    reviewers = [
        ReviewerProgress(
            reviewer_id=row["reviewer"],
            username=row["reviewer__username"] or "(deleted user)",
            decided=row["n"],
            approved=row["approved"],
            rejected=row["rejected"],
            holding=holding.pop(row["reviewer"], 0),
        )
        for row in settled["decided"]
    ]
    if holding:
        from django.contrib.auth import get_user_model

        names = dict(get_user_model().objects.filter(pk__in=holding).values_list("pk", "username"))
        reviewers += [
            ReviewerProgress(pk, names.get(pk, "?"), 0, 0, 0, n) for pk, n in holding.items()
        ]
    return QueueProgress(
        total=settled["total"],
        open=max(0, settled["total"] - settled["done"] - claimed),
        claimed=claimed,
        done=settled["done"],
        by_reason=settled["by_reason"],
        by_stratum=settled["by_stratum"],
        reviewers=reviewers,
        as_of=as_of,
        counting=counting,
        built=(queue.composition or {}).get("strata", {}),
    )


def stored_figures(*, queue: ReviewQueue, detail: bool = False) -> dict[str, QueueFigures]:
    """The queue's stored figures by kind, each annotated with ``current``: the queue's
    version now (one query). ``detail`` (the disagreeing sample ids) is loaded only when
    asked for."""
    current = AuditEntry.objects.filter(queue=OuterRef("queue")).order_by("-id").values("id")
    rows = QueueFigures.objects.filter(queue=queue).annotate(current=Subquery(current[:1]))
    if not detail:
        rows = rows.defer("detail")
    return {row.kind: row for row in rows}


def agreement_figures(*, queue: ReviewQueue) -> tuple[dict, dict]:
    """``judge_agreement`` of the queue's batch as stored: the figures, and apart from them
    the disagreeing sample ids (only the "show disagreements" views read those)."""
    return agreement_value(judge_agreement(batch=queue.batch))


def agreement_value(report: AgreementReport) -> tuple[dict, dict]:
    """A report as ``QueueFigures`` stores it (``stored_agreement`` reads it back)."""
    value = {
        "judge": asdict(report.judge),
        "by_check": {kind: asdict(a) for kind, a in report.by_check.items()},
        "by_stratum": {name: asdict(a) for name, a in report.by_stratum.items()},
        "people": asdict(report.people),
        "judge_disagreed": report.judge_disagreed_count,
        "people_disagreed": report.people_disagreed_count,
        "kappa_min": report.kappa_min,
        "min_decisions": report.min_decisions,
    }
    detail = {
        "judge": sorted(report.judge_disagreements),
        "people": sorted(report.people_disagreements),
    }
    return value, detail


def stored_tally(value: dict, detail: dict) -> Tally | None:
    """The tally behind stored agreement figures (None if none are stored)."""
    if not value or "judge" not in detail:
        return None

    def cells(figures: dict) -> Counter:
        return Counter(
            {
                (True, True): figures["both_pass"],
                (True, False): figures["a_only"],
                (False, True): figures["b_only"],
                (False, False): figures["both_fail"],
            }
        )

    return Tally(
        by_check={kind: cells(a) for kind, a in value["by_check"].items()},
        by_stratum={name: cells(a) for name, a in value["by_stratum"].items()},
        people=cells(value["people"]),
        judge_disagreements=set(detail["judge"]),
        people_disagreements=set(detail["people"]),
    )


def stored_agreement(
    value: dict | None, detail: dict | None = None, as_of: datetime | None = None
) -> AgreementReport | None:
    """The report ``agreement_figures`` stored (None while not counted yet). Without
    ``detail`` the disagreement sets are empty; their sizes are in the figures."""
    if not value:
        return None
    detail = detail or {}
    return AgreementReport(
        judge=Agreement(**value["judge"]),
        by_check={kind: Agreement(**a) for kind, a in value["by_check"].items()},
        by_stratum={name: Agreement(**a) for name, a in value["by_stratum"].items()},
        people=Agreement(**value["people"]),
        judge_disagreements=set(detail.get("judge", ())),
        people_disagreements=set(detail.get("people", ())),
        judge_disagreed_count=value["judge_disagreed"],
        people_disagreed_count=value["people_disagreed"],
        kappa_min=value["kappa_min"],
        min_decisions=value["min_decisions"],
        as_of=as_of,
    )


class ItemRow(NamedTuple):
    """One row of the queue's item list: what the table shows, read as plain values (fifty
    rows of three model instances each cost a tenth of the list's CPU)."""

    pk: int
    sample_id: int
    reason: str
    stratum: str
    state: str
    claimed_by: str | None  # usernames
    assigned_to: str | None
    text_head: str


def _item_rows(items: QuerySet[ReviewItem]) -> QuerySet:
    username = get_user_model().USERNAME_FIELD
    return (
        items.annotate(text_head=Substr("sample__text", 1, TEXT_HEAD_CHARS + 1))
        .order_by("-pk")
        .values_list(
            "pk",
            "sample_id",
            "reason",
            "stratum",
            "state",
            f"claimed_by__{username}",
            f"assigned_to__{username}",
            "text_head",
        )
    )


def item_page(
    *,
    queue: ReviewQueue,
    state: str | None = None,
    sample_ids: set[int] | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page[ItemRow]:
    """One keyset page of the queue's items by id, with the sample's first characters.

    One query at any depth: the rows. The count of the whole queue is the one it keeps
    (``item_count``); narrowed pages add a capped count. ``sample_ids`` narrows the page to
    those samples (e.g. where the judge and a person disagreed).
    """
    matching = ReviewItem.objects.filter(queue=queue)
    if state:
        matching = matching.filter(state=state)
    if sample_ids is not None:
        matching = matching.filter(sample_id__in=sorted(sample_ids))
    rows = matching.filter(pk__lt=after) if after is not None else matching
    found = [ItemRow(*row) for row in _item_rows(rows)[: limit + 1]]
    items = found[:limit]
    return Page(
        items=items,
        next_after=items[-1].pk if len(found) > limit else None,
        prev_before=None,
        count=capped_count(matching) if state or sample_ids is not None else queue.item_count,
        is_first=after is None,
    )


def offset_item_page(*, queue: ReviewQueue, offset: int, limit: int = PAGE_SIZE) -> list[ItemRow]:
    """The same page by OFFSET: the baseline the benchmark measures keyset pages against."""
    rows = _item_rows(ReviewItem.objects.filter(queue=queue))
    return [ItemRow(*row) for row in rows[offset : offset + limit]]


def audit_page(
    *, dataset_id: int, queue: ReviewQueue | None = None, after: int | None = None
) -> Page[AuditEntry]:
    entries = AuditEntry.objects.filter(dataset_id=dataset_id)
    if queue is not None:
        entries = entries.filter(queue=queue)
    rows = entries.select_related("actor")
    if after is not None:
        rows = rows.filter(pk__lt=after)
    found = list(rows.order_by("-pk")[: PAGE_SIZE + 1])
    items = found[:PAGE_SIZE]
    return Page(
        items=items,
        next_after=items[-1].pk if len(found) > PAGE_SIZE else None,
        prev_before=None,
        count=capped_count(entries),
        is_first=after is None,
    )


def last_decision(*, queue: ReviewQueue, user) -> Decision | None:
    """The user's last decision in force in this queue (what "undo" would undo)."""
    return (
        Decision.objects.filter(
            queue=queue, reviewer=user, via=Decision.Via.REVIEW, undone_by__isnull=True
        )
        .exclude(action=Decision.Action.UNDO)
        .only("pk", "action", "sample_id")
        .order_by("-id")
        .first()
    )


# Agreement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementReport:
    """Judge-vs-human agreement of one batch's spot check, and between people.

    ``judge`` compares the latest judge verdict with each human verdict in force (approve =
    pass); ``by_check`` does the same for each check kind; ``by_stratum`` splits ``judge``
    by stratum. ``people`` compares two reviewers' verdicts on overlapping items.
    """

    judge: Agreement
    by_check: dict[str, Agreement]
    by_stratum: dict[str, Agreement]
    people: Agreement
    judge_disagreements: set[int] = field(default_factory=set)
    people_disagreements: set[int] = field(default_factory=set)
    kappa_min: float = 0.6
    min_decisions: int = 10
    # How many samples each set holds (a page's stored report carries the sizes only).
    judge_disagreed_count: int | None = None
    people_disagreed_count: int | None = None
    # Set on a queue page's report older than the last decision (see QueueFigures).
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if self.judge_disagreed_count is None:
            object.__setattr__(self, "judge_disagreed_count", len(self.judge_disagreements))
        if self.people_disagreed_count is None:
            object.__setattr__(self, "people_disagreed_count", len(self.people_disagreements))

    @property
    def stable(self) -> bool:
        """The judge can be trusted: enough decisions and kappa at or above the threshold."""
        return (
            self.judge.n >= self.min_decisions
            and self.judge.kappa is not None
            and self.judge.kappa >= self.kappa_min
        )

    @property
    def why_unstable(self) -> str:
        if self.stable:
            return ""
        if self.judge.n < self.min_decisions:
            return (
                f"Only {self.judge.n} human decisions with a judge verdict; "
                f"at least {self.min_decisions} are needed to measure the judge."
            )
        if self.judge.kappa is None:
            return "Kappa is undefined: the judge or the people gave one verdict to everything."
        return f"Cohen's kappa {self.judge.kappa:.2f} is below the threshold {self.kappa_min:.2f}."


# A batch's agreement tally in one statement (one snapshot), as tagged rows:
# * "pair": each human verdict in force (approve or reject, not undone; 1 approve, 0 reject)
#   against the latest result of each check of its sample (the highest id of a sample and
#   kind counts), grouped by check, the item's stratum and the two verdicts; a judge
#   disagreement keeps its sample id, so the disagreeing samples come in the same read;
# * "person": on samples two or more people decided, each person's latest verdict with the
#   id of their first decision in force (the first two people are compared);
# * "version": the queue's newest audit entry, which the figures then hold everything up to.
# Window functions, no self-joins. ``{gone}`` is where a figures count deletes the folded
# changes (review/services/agreement.py) in the same snapshot, on PostgreSQL.
_TALLY_SQL = """
WITH {gone}verdict AS (
    SELECT d.id, d.sample_id, d.reviewer_id, i.stratum,
           CASE WHEN d.action = %s THEN 1 ELSE 0 END AS human
    FROM review_decision d
    JOIN review_reviewqueue q ON q.id = d.queue_id
    JOIN review_reviewitem i ON i.id = d.item_id
    WHERE q.batch_id = %s AND d.action IN (%s, %s)
      AND NOT EXISTS (SELECT 1 FROM review_decision u WHERE u.undoes_id = d.id)
),
pair AS (
    SELECT c.kind, v.stratum, CASE WHEN c.passed THEN 1 ELSE 0 END AS passed, v.human,
           CASE WHEN c.kind = %s AND c.passed <> (v.human = 1) THEN v.sample_id END AS sample,
           COUNT(*) AS n
    FROM verdict v JOIN datasets_checkresult c ON c.sample_id = v.sample_id
    WHERE NOT EXISTS (
        SELECT 1 FROM datasets_checkresult o
        WHERE o.sample_id = c.sample_id AND o.kind = c.kind AND o.id > c.id
    )
    GROUP BY 1, 2, 3, 4, 5
),
latest AS (
    SELECT sample_id, human,
           MIN(id) OVER (PARTITION BY sample_id, reviewer_id) AS first_id,
           ROW_NUMBER() OVER (PARTITION BY sample_id, reviewer_id ORDER BY id DESC) AS nth
    FROM verdict
),
person AS (
    SELECT sample_id, human, first_id, COUNT(*) OVER (PARTITION BY sample_id) AS people
    FROM latest WHERE nth = 1
)
SELECT 'pair', kind, stratum, passed, human, sample, n FROM pair
UNION ALL
SELECT 'person', NULL, NULL, first_id, human, sample_id, NULL FROM person WHERE people >= 2
UNION ALL
SELECT 'version', NULL, NULL, NULL, NULL, NULL, (
    SELECT MAX(a.id) FROM review_auditentry a
    WHERE a.queue_id = (SELECT id FROM review_reviewqueue WHERE batch_id = %s)
)
"""


def batch_tally(*, batch: Batch, gone: tuple[str, list] | None = None) -> tuple[Tally, int]:
    """A batch's agreement tally counted in the database (one query), and the version it
    holds everything up to. ``gone`` is a data-modifying CTE (``"name AS (...), "`` and its
    parameters) run in the same statement, hence the same snapshot."""
    judge = CheckResult.Check.JUDGE
    approve, reject = Decision.Action.APPROVE, Decision.Action.REJECT
    cte, cte_params = gone or ("", [])
    params = [*cte_params, approve, batch.pk, approve, reject, judge, batch.pk]
    with connections[router.db_for_read(Decision)].cursor() as cursor:
        cursor.execute(_TALLY_SQL.format(gone=cte), params)
        rows = cursor.fetchall()
    tally, version, people = Tally(), 0, defaultdict(list)
    for tag, kind, stratum, passed, human, sample_id, n in rows:
        if tag == "pair":
            pair = (bool(passed), bool(human))
            tally.by_check.setdefault(kind, Counter())[pair] += n
            if kind == judge:
                tally.by_stratum.setdefault(stratum, Counter())[pair] += n
                if sample_id is not None:
                    tally.judge_disagreements.add(sample_id)
        elif tag == "person":
            people[sample_id].append((passed, bool(human)))  # (first decision id, verdict)
        else:
            version = n or 0
    for sample_id, verdicts in people.items():
        (_, first), (_, second), *_ = sorted(verdicts)
        tally.people[(first, second)] += 1
        if first != second:
            tally.people_disagreements.add(sample_id)
    return tally, version


def agreement_report(tally: Tally, *, dataset) -> AgreementReport:
    """The figures of a tally, with the dataset's thresholds for a stable judge."""
    policy = review_settings_for(dataset=dataset)
    judge = CheckResult.Check.JUDGE
    return AgreementReport(
        judge=agreement_of(tally.by_check.get(judge, Counter())),
        by_check={kind: agreement_of(tally.by_check[kind]) for kind in sorted(tally.by_check)},
        by_stratum={
            name: agreement_of(tally.by_stratum[name]) for name in sorted(tally.by_stratum)
        },
        people=agreement_of(tally.people),
        judge_disagreements=set(tally.judge_disagreements),
        people_disagreements=set(tally.people_disagreements),
        kappa_min=policy.judge_kappa_min,
        min_decisions=policy.judge_min_decisions,
    )


def judge_agreement(*, batch: Batch) -> AgreementReport:
    """Agreement figures for a batch's spot check, counted now (the tally in one query,
    the counting in SQL, and the dataset's thresholds).

    Every decision in force pairs with the latest result of each check of its sample
    (approve = pass); ``by_stratum`` splits the judge's pairs by the item's stratum.
    ``people`` compares the first two people to decide an overlapping sample, each by
    their latest verdict.
    """
    tally, _ = batch_tally(batch=batch)
    return agreement_report(tally, dataset=batch.dataset)


def judge_is_stable(*, batch: Batch) -> bool:
    """For the release gates: the batch's judge agrees well enough with people."""
    return judge_agreement(batch=batch).stable


# The review page -------------------------------------------------------------------------

# Context shown around the grounding span, and the size past which no diff is drawn.
PASSAGE_CONTEXT = 300
DIFF_MAX_CHARS = 20_000


@dataclass
class ItemView:
    """What the review page shows about one held item (built by ``hand_details``)."""

    item: ReviewItem
    sample: object
    parent: object | None
    checks: list[CheckResult]
    judge: CheckResult | None
    diff: list | None = None
    diff_skipped: bool = False
    before_span: str = ""
    span: str = ""
    after_span: str = ""


def hand_details(*, items: list[ReviewItem]) -> list[ItemView]:
    """The samples of the held items with parent, grounding window and latest checks.

    Two queries for any number of items: the samples (parent and document joined, only a
    window of the document's text cut by the database) and their check results.
    """
    from django.db.models import F, Value
    from django.db.models.functions import Greatest

    from datasets.models import Sample
    from synthaug.engine.text import flatten
    from synthaug.engine.textdiff import diff_lines

    if not items:
        return []
    start = Greatest(F("passage_start") - PASSAGE_CONTEXT + 1, Value(1))
    samples = {
        sample.pk: sample
        for sample in Sample.objects.filter(pk__in=[item.sample_id for item in items])
        .select_related("parent", "source_document", "batch", "difficulty_set_by")
        .defer("source_document__text")
        .annotate(
            window_start=start,
            window=Substr(
                "source_document__text",
                start,
                F("passage_end") - start + PASSAGE_CONTEXT + 1,
            ),
        )
    }
    latest: dict[int, dict[str, CheckResult]] = defaultdict(dict)
    for check in CheckResult.objects.filter(sample_id__in=list(samples)).order_by("id"):
        latest[check.sample_id][check.kind] = check
    views = []
    for item in items:
        sample = samples[item.sample_id]
        checks = latest.get(sample.pk, {})
        view = ItemView(
            item=item,
            sample=sample,
            parent=sample.parent,
            checks=[checks[kind] for kind in CheckResult.Check.values if kind in checks],
            judge=checks.get(CheckResult.Check.JUDGE),
        )
        if sample.parent is not None:
            left, right = flatten(sample.parent.input), flatten(sample.input)
            if len(left) + len(right) <= DIFF_MAX_CHARS:
                view.diff = diff_lines(left, right)
            else:
                view.diff_skipped = True
        window = getattr(sample, "window", None)
        if window and sample.passage_start is not None and sample.passage_end is not None:
            offset = sample.passage_start - (sample.window_start - 1)
            length = sample.passage_end - sample.passage_start
            view.before_span = window[:offset]
            view.span = window[offset : offset + length]
            view.after_span = window[offset + length :]
        elif sample.source_passage:
            view.span = sample.source_passage
        views.append(view)
    return views
