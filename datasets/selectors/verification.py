"""Reads for the checking stage: a batch's funnel and a sample's checks.

Every figure is an aggregate the database computes over the batch's rows (the CheckResult
``(batch, kind, passed)`` index and the Sample batch index): a page costs the same few queries
for ten samples or a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber, Substr

from datasets.models import Batch, CheckResult, Difficulty, Sample
from datasets.selectors.browse import TEXT_HEAD_CHARS

Check = CheckResult.Check
# The funnel's order: each stage keeps what passed it and every stage before it.
FUNNEL = (Check.FORMAT, Check.FAITHFULNESS, Check.SAFETY, Check.UNIQUE, Check.JUDGE)
STAGE_LABELS = {
    Check.FORMAT: "Format ok",
    Check.FAITHFULNESS: "Faithful",
    Check.SAFETY: "Safe",
    Check.UNIQUE: "Unique",
    Check.JUDGE: "Accepted (judge passed too)",
}
EXAMPLES_PER_REASON = 3


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    count: int
    rate: float | None  # share of the generated samples
    removed: int  # how many this stage removed from what the previous stages kept


@dataclass(frozen=True)
class Reason:
    kind: str
    label: str
    failed: int
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Funnel:
    generated: int
    checked: int
    unchecked: int
    accepted: int
    rejected: int
    borderline: int
    stages: list[Stage]
    reasons: list[Reason]
    difficulty: list[tuple[str, str, int]]  # what survived: (level, label, count)
    diversity: dict[str, Any]

    @property
    def has_results(self) -> bool:
        return self.checked > 0


def _flag_groups(batch_id: int) -> list[tuple[int, ...]]:
    """(format failed, faithfulness failed, safety failed, unique failed, judge failed,
    borderline, samples) per combination: one GROUP BY over the batch's check rows."""
    flags = ",\n".join(
        f"MAX(CASE WHEN kind = %s AND NOT passed THEN 1 ELSE 0 END) AS f{i}"
        for i in range(len(FUNNEL))
    )
    columns = ", ".join(f"f{i}" for i in range(len(FUNNEL)))
    table = CheckResult._meta.db_table
    sql = (
        f"SELECT {columns}, b, COUNT(*) FROM (SELECT sample_id, {flags}, "  # noqa: S608
        f"MAX(CASE WHEN borderline THEN 1 ELSE 0 END) AS b FROM {table} "
        f"WHERE batch_id = %s GROUP BY sample_id) per_sample GROUP BY {columns}, b"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*FUNNEL, batch_id])
        return [tuple(int(v) for v in row) for row in cursor.fetchall()]


def _examples(batch_id: int) -> dict[str, list[dict[str, Any]]]:
    """The first few failed checks of each kind, with their samples' text heads (one query)."""
    rows = (
        CheckResult.objects.filter(batch_id=batch_id, passed=False)
        .annotate(
            position=Window(RowNumber(), partition_by=[F("kind")], order_by=F("id").asc()),
            text_head=Substr("sample__text", 1, TEXT_HEAD_CHARS + 1),
        )
        .filter(position__lte=EXAMPLES_PER_REASON)
        .values("kind", "sample_id", "detail", "score", "text_head")
        .order_by("kind", "id")
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row["kind"], []).append(row)
    return found


def batch_funnel(*, batch: Batch) -> Funnel:
    """Generated, format ok, faithful, safe, unique, accepted; reasons with examples; the
    difficulty of what survived; the batch's diversity. Three queries."""
    statuses: dict[str, int] = {}
    levels: dict[str, int] = {}
    rows = (
        Sample.objects.filter(batch_id=batch.pk)
        .order_by()
        .values("status", "difficulty")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + row["n"]
        if row["status"] == Sample.Status.ACCEPTED:
            levels[row["difficulty"]] = levels.get(row["difficulty"], 0) + row["n"]
    generated = sum(statuses.values())
    groups = _flag_groups(batch.pk)
    checked = sum(group[-1] for group in groups)
    failed = [sum(g[-1] for g in groups if g[i]) for i in range(len(FUNNEL))]
    stages = [Stage("generated", "Generated", generated, 1.0 if generated else None, 0)]
    kept_before = checked
    for i, kind in enumerate(FUNNEL):
        kept = sum(g[-1] for g in groups if not any(g[: i + 1]))
        stages.append(
            Stage(
                kind,
                STAGE_LABELS[kind],
                kept,
                kept / generated if generated else None,
                kept_before - kept,
            )
        )
        kept_before = kept
    examples = _examples(batch.pk)
    labels = dict(Check.choices)
    reasons = [
        Reason(kind, labels[kind], failed[i], examples.get(kind, []))
        for i, kind in enumerate(FUNNEL)
        if failed[i]
    ]
    return Funnel(
        generated=generated,
        checked=checked,
        unchecked=statuses.get(Sample.Status.PENDING, 0),
        accepted=statuses.get(Sample.Status.ACCEPTED, 0),
        rejected=statuses.get(Sample.Status.REJECTED, 0),
        borderline=sum(g[-1] for g in groups if g[-2]),
        stages=stages,
        reasons=sorted(reasons, key=lambda r: -r.failed),
        difficulty=[
            (level, label, levels.get(level, 0)) for level, label in Difficulty.choices if level
        ]
        + ([("", "Unset", levels[""])] if levels.get("") else []),
        diversity=batch.diversity or {},
    )


def batch_checks_progress(*, batch: Batch) -> tuple[int, int]:
    """(checked, samples) of a batch, for the progress bar while it is CHECKING (one query)."""
    counts = Sample.objects.filter(batch_id=batch.pk).aggregate(
        total=Count("pk"), unchecked=Count("pk", filter=Q(status=Sample.Status.PENDING))
    )
    return counts["total"] - counts["unchecked"], counts["total"]


def sample_checks(*, sample: Sample) -> list[CheckResult]:
    """The sample's latest result per check, in funnel order (one query).

    Results are appended and never edited; the newest row of a kind is the one that counts.
    """
    rows = CheckResult.objects.filter(sample_id=sample.pk).order_by("kind", "-id")
    latest: dict[str, CheckResult] = {}
    for row in rows:
        latest.setdefault(row.kind, row)
    return [latest[kind] for kind in FUNNEL if kind in latest]
