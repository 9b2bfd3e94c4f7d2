"""Reads for the coverage page and the ``coverage`` command, all from kept counts.

Whatever the number of samples, the page costs a fixed handful of queries over small
tables: the dataset's ``CoverageCount`` rows (one per distinct tag combination, difficulty,
state and batch), its targets, the tag combinations of its source documents and its recent
batches. The matrix itself is built in Python by ``synthaug.engine.coverage``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import BigIntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from datasets.models import (
    Batch,
    CoverageChange,
    CoverageCount,
    CoverageState,
    CoverageTarget,
    Dataset,
    SourceDocument,
)
from synthaug.engine.coverage import (
    UNTAGGED,
    Bucket,
    Cell,
    CellChange,
    CountRow,
    Matrix,
    RowKey,
    bucket_of,
    documents_cover,
    matrix_build,
    matrix_compare,
    slice_of,
    suggest_method,
)

MAX_DIMENSIONS = 2
# Difficulty columns with targets, then the column of samples whose difficulty is unset.
TARGET_DIFFICULTIES = ("easy", "medium", "hard", "adversarial")
BATCHES_LISTED = 100


def dimensions_for(*, dataset: Dataset, requested: list[str] | None = None) -> tuple[str, ...]:
    """The one or two dimensions to show: those requested if the dataset has them, else
    the dataset's default, else its first dimension. Empty when it has no dimensions."""
    known = sorted(dataset.tag_dimensions or {})
    for choice in (requested or [], dataset.coverage_dimensions or []):
        picked = tuple(dict.fromkeys(d for d in choice if d in known))[:MAX_DIMENSIONS]
        if picked:
            return picked
    return tuple(known[:1])


@dataclass(frozen=True)
class KeptCount:
    tags: dict[str, str]
    difficulty: str
    bucket: Bucket
    n: int


def kept_counts(
    *, dataset: Dataset, dimensions: tuple[str, ...], batch: int | None = None
) -> list[KeptCount]:
    """The dataset's kept counts projected onto ``dimensions`` and summed in SQL (all
    batches, or only ``batch``'s), with the review decisions' changes since the last
    rebuild added: one statement (so one snapshot: a rebuild that takes the changes in is
    seen whole or not at all), a row per slice x difficulty x state."""
    projected = {f"t{i}": KeyTextTransform(dim, "tags") for i, dim in enumerate(dimensions)}
    columns = (*projected, "difficulty", "origin", "status", "review_status")

    def summed(model):
        rows = model.objects.filter(dataset=dataset)
        if batch is not None:
            rows = rows.filter(batch_id=batch)
        return (
            rows.annotate(**projected)
            .order_by()
            .values(*columns)
            # A cast: PostgreSQL sums bigints as numeric, which would come back as Decimal.
            .annotate(total=Cast(Sum("n"), output_field=BigIntegerField()))
        )

    totals: dict[tuple, int] = {}
    for row in summed(CoverageCount).union(summed(CoverageChange), all=True):
        bucket = bucket_of(
            origin=row["origin"], status=row["status"], review_status=row["review_status"]
        )
        if bucket is None:
            continue
        tags = tuple(
            (dim, str(row[name]))
            for name, dim in zip(projected, dimensions, strict=True)
            if row[name] not in (None, "")
        )
        key = (tags, row["difficulty"], bucket)
        totals[key] = totals.get(key, 0) + row["total"]
    return [
        KeptCount(dict(tags), difficulty, bucket, n)
        for (tags, difficulty, bucket), n in totals.items()
        if n
    ]


def targets_for(*, dataset: Dataset, dimensions: tuple[str, ...]) -> dict[tuple[RowKey, str], int]:
    """The lead's own targets for cells of this view (one query)."""
    wanted = set(dimensions)
    targets = {}
    for key, difficulty, target in CoverageTarget.objects.filter(dataset=dataset).values_list(
        "slice_key", "difficulty", "target"
    ):
        tags = json.loads(key)
        if set(tags) == wanted:
            targets[(tuple(tags[d] for d in dimensions), difficulty)] = target
    return targets


def document_slices(*, dataset: Dataset, dimensions: tuple[str, ...]) -> set[RowKey]:
    """The distinct tag combinations of the dataset's documents over ``dimensions``."""
    projected = {f"t{i}": KeyTextTransform(dim, "tags") for i, dim in enumerate(dimensions)}
    rows = (
        SourceDocument.objects.filter(dataset=dataset)
        .annotate(**projected)
        .values_list(*projected)
        .order_by()
        .distinct()
    )
    return {tuple(str(v) if v is not None else UNTAGGED for v in row) for row in rows}


def coverage_build(
    *,
    dataset: Dataset,
    dimensions: tuple[str, ...],
    counts: list[KeptCount],
    targets: dict[tuple[RowKey, str], int],
    minus: list[KeptCount] = (),
) -> Matrix:
    """The matrix over ``dimensions``; ``minus`` counts are taken away (a batch's own, for
    the matrix as if that batch had never been made).

    A dimension that declares no values (any value allowed) crosses with the values the
    samples carry, so an empty combination shows as a gap rather than as nothing.
    """
    allowed = {dim: list(values or []) for dim, values in dataset.tag_dimensions.items()}
    for dim in dimensions:
        if not allowed.get(dim):
            allowed[dim] = sorted({str(c.tags[dim]) for c in counts if c.tags.get(dim)})
    return matrix_build(
        counts=[
            *(
                CountRow(tags=c.tags, difficulty=c.difficulty, bucket=c.bucket, count=c.n)
                for c in counts
            ),
            *(
                CountRow(tags=c.tags, difficulty=c.difficulty, bucket=c.bucket, count=-c.n)
                for c in minus
            ),
        ],
        dimensions=dimensions,
        allowed=allowed,
        targets=targets,
        default_target=dataset.coverage_default_target,
        ceiling=dataset.synthetic_ceiling,
    )


@dataclass
class CellView:
    difficulty: str
    cell: Cell
    over_ceiling: bool
    has_target: bool
    own_target: bool
    # The batch form's query string for "Fill this gap" (empty when there is no gap).
    fill_query: str
    method: str
    batches: list[Batch] = field(default_factory=list)


@dataclass
class RowView:
    key: RowKey
    labels: list[tuple[str, str]]  # (dimension, value or "" for untagged)
    untagged: bool
    cells: list[CellView]
    # The samples list filtered to this row's slice.
    samples_query: str


@dataclass
class Totals:
    difficulty: str
    real: int = 0
    synthetic_approved: int = 0
    synthetic_pending: int = 0


@dataclass
class Coverage:
    dataset: Dataset
    dimensions: tuple[str, ...]
    difficulties: tuple[str, ...]
    matrix: Matrix
    rows: list[RowView]
    state: CoverageState | None
    untagged_real: int
    untagged_query: str
    totals: list[Totals]
    batches: list[Batch]
    compared: Batch | None = None
    changes: list[CellChange] = field(default_factory=list)

    @property
    def gap_cells(self) -> int:
        return sum(1 for row in self.rows for c in row.cells if c.cell.gap)

    @property
    def unset_difficulty(self) -> int:
        """Approved samples whose difficulty is not set: they fill no difficulty's gap."""
        return sum(t.real + t.synthetic_approved for t in self.totals if not t.difficulty)

    @property
    def over_ceiling_cells(self) -> int:
        return sum(1 for row in self.rows for c in row.cells if c.over_ceiling)


def _batch_cell(batch: Batch, dimensions: tuple[str, ...]) -> tuple[RowKey, str] | None:
    tags = batch.target_tags or {}
    if not all(tags.get(dim) for dim in dimensions):
        return None
    return tuple(str(tags[dim]) for dim in dimensions), batch.target_difficulty or ""


def recent_batches(*, dataset: Dataset) -> list[Batch]:
    """The dataset's latest batches with what the coverage view says about each."""
    return list(
        Batch.objects.filter(dataset=dataset)
        .select_related("judge", "generator")
        .only(
            "id",
            "dataset_id",
            "name",
            "method",
            "status",
            "requested_count",
            "target_tags",
            "target_difficulty",
            "why_synthetic",
            "judging_plan",
            "checks",
            "cost_estimate",
            "budget_cap",
            "created_at",
            "judge__name",
            "judge__model",
            "generator__name",
            "generator__model",
        )
        .order_by("-created_at", "-id")[:BATCHES_LISTED]
    )


def coverage_view(
    *,
    dataset: Dataset,
    dimensions: tuple[str, ...],
    compare_batch: int | None = None,
) -> Coverage:
    """Everything the coverage page shows, in a fixed number of queries.

    ``compare_batch`` adds the before/after comparison: the matrix without that batch's
    samples against the matrix with them (it must be one of the dataset's batches).
    """
    state = CoverageState.objects.filter(dataset=dataset).first()
    counts = kept_counts(dataset=dataset, dimensions=dimensions)
    targets = targets_for(dataset=dataset, dimensions=dimensions)
    matrix = coverage_build(dataset=dataset, dimensions=dimensions, counts=counts, targets=targets)
    documents = document_slices(dataset=dataset, dimensions=dimensions)
    batches = recent_batches(dataset=dataset)

    by_cell: dict[tuple[RowKey, str], list[Batch]] = {}
    for batch in batches:
        if (cell := _batch_cell(batch, dimensions)) is not None:
            by_cell.setdefault(cell, []).append(batch)

    rows = []
    for key in matrix.rows:
        untagged = UNTAGGED in key
        tags = slice_of(key, dimensions)
        has_documents = not untagged and documents_cover(documents, key)
        cells = []
        for difficulty in matrix.difficulties:
            cell = matrix.cell(key, difficulty)
            has_target = not untagged and bool(difficulty)
            method = suggest_method(
                difficulty=difficulty, dimensions=dimensions, has_documents=has_documents
            )
            fill_query = ""
            if has_target and cell.gap:
                fill_query = urlencode(
                    {
                        **{f"tag.{dim}": value for dim, value in tags.items()},
                        "difficulty": difficulty,
                        "method": method,
                        "count": cell.gap,
                    }
                )
            cells.append(
                CellView(
                    difficulty=difficulty,
                    cell=cell,
                    over_ceiling=cell.over_ceiling(matrix.ceiling),
                    has_target=has_target,
                    own_target=(key, difficulty) in targets,
                    fill_query=fill_query,
                    method=method,
                    batches=by_cell.get((key, difficulty), []),
                )
            )
        samples = {f"tag_{dim}": value for dim, value in tags.items()}
        if untagged:
            samples["untagged"] = ",".join(d for d, v in zip(dimensions, key, strict=True) if not v)
        rows.append(
            RowView(
                key=key,
                labels=list(zip(dimensions, key, strict=True)),
                untagged=untagged,
                cells=cells,
                samples_query=urlencode(samples),
            )
        )

    totals = {d: Totals(difficulty=d) for d in matrix.difficulties}
    for (_, difficulty), cell in matrix.cells.items():
        total = totals[difficulty]
        total.real += cell.real
        total.synthetic_approved += cell.synthetic_approved
        total.synthetic_pending += cell.synthetic_pending
    untagged_real = sum(c.real for (row, _), c in matrix.cells.items() if UNTAGGED in row)

    coverage = Coverage(
        dataset=dataset,
        dimensions=dimensions,
        difficulties=matrix.difficulties,
        matrix=matrix,
        rows=rows,
        state=state,
        untagged_real=untagged_real,
        untagged_query=urlencode({"origin": "real", "untagged": ",".join(dimensions)}),
        totals=list(totals.values()),
        batches=batches,
    )
    if compare_batch is not None:
        compared = next((b for b in batches if b.pk == compare_batch), None)
        if compared is None:
            compared = Batch.objects.filter(dataset=dataset, pk=compare_batch).first()
        if compared is not None:
            before = coverage_build(
                dataset=dataset,
                dimensions=dimensions,
                counts=counts,
                targets=targets,
                minus=kept_counts(dataset=dataset, dimensions=dimensions, batch=compared.pk),
            )
            coverage.compared = compared
            coverage.changes = matrix_compare(before, matrix)
    return coverage


def coverage_report(*, dataset: Dataset, dimensions: tuple[str, ...]) -> dict:
    """The matrix and its gaps as plain data, for ``manage.py coverage --json``."""
    counts = kept_counts(dataset=dataset, dimensions=dimensions)
    targets = targets_for(dataset=dataset, dimensions=dimensions)
    matrix = coverage_build(dataset=dataset, dimensions=dimensions, counts=counts, targets=targets)
    state = CoverageState.objects.filter(dataset=dataset).first()

    def cell_data(row: RowKey, difficulty: str, cell: Cell) -> dict:
        return {
            "slice": {dim: value for dim, value in zip(dimensions, row, strict=True)},
            "difficulty": difficulty,
            "real": cell.real,
            "synthetic_approved": cell.synthetic_approved,
            "synthetic_pending": cell.synthetic_pending,
            "approved": cell.approved,
            "target": cell.target,
            "gap": cell.gap,
            "synthetic_share": round(cell.synthetic_share, 4),
            "over_ceiling": cell.over_ceiling(matrix.ceiling),
        }

    return {
        "dataset": dataset.slug,
        "dimensions": list(dimensions),
        "default_target": dataset.coverage_default_target,
        "synthetic_ceiling": dataset.synthetic_ceiling,
        "refreshed_at": state.refreshed_at.isoformat() if state and state.refreshed_at else None,
        "total_gap": matrix.total_gap,
        "untagged": matrix.untagged_count(),
        "cells": [
            cell_data(row, d, matrix.cell(row, d))
            for row in matrix.rows
            for d in matrix.difficulties
        ],
        "gaps": [cell_data(row, d, cell) for row, d, cell in matrix.gaps()],
    }
