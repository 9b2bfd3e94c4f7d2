"""Coverage arithmetic: how well the data covers each case type, and where the gaps are.

Input is a list of aggregated counts (tags, difficulty, origin bucket, count), as a selector
reads them from kept counts; output is a matrix of rows (one tag value, or two crossed) by
difficulty. No ORM here: the same functions serve the page, the command and the tests.

Definitions (the lead's view of the data):
- *approved* = real + synthetic that passed its checks (``synthetic_approved``);
- *gap* = target - approved, never below zero; pending synthetic does not close a gap;
- *synthetic share* = synthetic approved / approved; a cell over the ceiling is flagged,
  because synthetic data that dominates a slice amplifies the generator's bias.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard", "adversarial", "")
UNTAGGED = ""  # the row for samples that lack a value in the dimension


class Bucket(StrEnum):
    REAL = "real"
    SYNTHETIC_APPROVED = "synthetic_approved"
    SYNTHETIC_PENDING = "synthetic_pending"


@dataclass(frozen=True)
class CountRow:
    """Samples sharing one tag combination, difficulty and bucket."""

    tags: dict[str, str]
    difficulty: str
    bucket: Bucket
    count: int


@dataclass
class Cell:
    real: int = 0
    synthetic_approved: int = 0
    synthetic_pending: int = 0
    target: int = 0

    @property
    def approved(self) -> int:
        return self.real + self.synthetic_approved

    @property
    def gap(self) -> int:
        return max(self.target - self.approved, 0)

    @property
    def synthetic_share(self) -> float:
        return self.synthetic_approved / self.approved if self.approved else 0.0

    def over_ceiling(self, ceiling: float) -> bool:
        return self.synthetic_approved > 0 and self.synthetic_share > ceiling

    def add(self, bucket: Bucket, count: int) -> None:
        if bucket is Bucket.REAL:
            self.real += count
        elif bucket is Bucket.SYNTHETIC_APPROVED:
            self.synthetic_approved += count
        else:
            self.synthetic_pending += count


RowKey = tuple[str, ...]


@dataclass
class Matrix:
    dimensions: tuple[str, ...]
    difficulties: tuple[str, ...]
    ceiling: float
    cells: dict[tuple[RowKey, str], Cell] = field(default_factory=dict)
    rows: list[RowKey] = field(default_factory=list)

    def cell(self, row: RowKey, difficulty: str) -> Cell:
        return self.cells[(row, difficulty)]

    @property
    def total_gap(self) -> int:
        return sum(cell.gap for cell in self.cells.values())

    def gaps(self) -> list[tuple[RowKey, str, Cell]]:
        """Cells with a gap, largest first (ties by row, then difficulty order)."""
        order = {d: i for i, d in enumerate(self.difficulties)}
        found = [(row, d, c) for (row, d), c in self.cells.items() if c.gap > 0]
        return sorted(found, key=lambda item: (-item[2].gap, item[0], order[item[1]]))

    def over_ceiling(self) -> list[tuple[RowKey, str, Cell]]:
        return [(row, d, c) for (row, d), c in self.cells.items() if c.over_ceiling(self.ceiling)]

    def untagged_count(self) -> int:
        """Approved + pending samples that lack a value in one of the matrix's dimensions."""
        return sum(
            c.real + c.synthetic_approved + c.synthetic_pending
            for (row, _), c in self.cells.items()
            if UNTAGGED in row
        )


def _row_key(tags: dict[str, str], dimensions: Sequence[str]) -> RowKey:
    return tuple(str(tags.get(dim) or UNTAGGED) for dim in dimensions)


def matrix_build(
    *,
    counts: Iterable[CountRow],
    dimensions: Sequence[str],
    allowed: dict[str, list[str]],
    targets: dict[tuple[RowKey, str], int] | None = None,
    default_target: int = 0,
    ceiling: float = 0.5,
    difficulties: Sequence[str] = DIFFICULTIES,
) -> Matrix:
    """Aggregate ``counts`` into a rows x difficulty matrix.

    Rows are every combination of the dimensions' allowed values (so an empty cell shows as
    a gap, not as nothing), plus any value actually present, plus the untagged row when
    samples lack a value. ``targets`` overrides ``default_target`` per cell; the untagged row
    and the unset difficulty column never get a target (they are not case types to fill).
    """
    if not dimensions:
        raise ValueError("A coverage matrix needs at least one tag dimension.")
    if not 0 <= ceiling <= 1:
        raise ValueError("The synthetic ceiling is a share between 0 and 1.")
    targets = targets or {}
    matrix = Matrix(dimensions=tuple(dimensions), difficulties=tuple(difficulties), ceiling=ceiling)

    seen: set[RowKey] = set()
    per_cell: dict[tuple[RowKey, str], Cell] = {}
    for row in counts:
        key = _row_key(row.tags, dimensions)
        difficulty = row.difficulty if row.difficulty in difficulties else ""
        seen.add(key)
        per_cell.setdefault((key, difficulty), Cell()).add(row.bucket, row.count)

    declared: list[RowKey] = [()]
    for dim in dimensions:
        declared = [(*prefix, value) for prefix in declared for value in allowed.get(dim, [])]
    rows = list(dict.fromkeys([*declared, *sorted(seen - set(declared))]))
    # Untagged rows last: they are a gap in the analysis itself, not a case type.
    rows.sort(key=lambda key: UNTAGGED in key)
    matrix.rows = rows

    for key in rows:
        for difficulty in difficulties:
            cell = per_cell.get((key, difficulty), Cell())
            if UNTAGGED not in key and difficulty:
                cell.target = targets.get((key, difficulty), default_target)
            matrix.cells[(key, difficulty)] = cell
    return matrix


@dataclass(frozen=True)
class CellChange:
    row: RowKey
    difficulty: str
    gap_before: int
    gap_after: int
    share_before: float
    share_after: float
    over_ceiling_after: bool

    @property
    def closed(self) -> int:
        return self.gap_before - self.gap_after


def matrix_compare(before: Matrix, after: Matrix) -> list[CellChange]:
    """Cells whose approved counts changed between two matrices over the same axes."""
    if before.dimensions != after.dimensions:
        raise ValueError("Compare matrices over the same dimensions.")
    changes = []
    for (row, difficulty), cell_after in after.cells.items():
        cell_before = before.cells.get((row, difficulty), Cell(target=cell_after.target))
        if cell_before.approved == cell_after.approved:
            continue
        changes.append(
            CellChange(
                row=row,
                difficulty=difficulty,
                gap_before=cell_before.gap,
                gap_after=cell_after.gap,
                share_before=cell_before.synthetic_share,
                share_after=cell_after.synthetic_share,
                over_ceiling_after=cell_after.over_ceiling(after.ceiling),
            )
        )
    return sorted(changes, key=lambda c: (-c.closed, c.row, c.difficulty))


# --- from kept counts to buckets, slices and suggestions ------------------------------------


def bucket_of(*, origin: str, status: str, review_status: str) -> Bucket | None:
    """Which column of the matrix a sample counts in, or None when it counts nowhere.

    Real samples count unless a person or a check rejected them; synthetic ones count as
    approved once their checks accepted them (and no reviewer rejected them), as pending
    while their checks have not run. Rejected samples close no gap.
    """
    if status == "rejected" or review_status == "rejected":
        return None
    if origin == "real":
        return Bucket.REAL
    if status == "accepted":
        return Bucket.SYNTHETIC_APPROVED
    if status == "pending":
        return Bucket.SYNTHETIC_PENDING
    return None


def slice_key(tags: dict[str, str]) -> str:
    """Canonical text of a tag slice: the same slice always gives the same key."""
    return json.dumps({str(k): str(v) for k, v in tags.items() if v}, sort_keys=True)


def slice_of(row: RowKey, dimensions: Sequence[str]) -> dict[str, str]:
    return {dim: value for dim, value in zip(dimensions, row, strict=True) if value}


# Dimensions whose values a template's slots vary naturally (a locale, an entity, ...).
TEMPLATE_DIMENSIONS = frozenset(
    {"locale", "language", "lang", "entity", "industry", "region", "country", "domain"}
)


def suggest_method(*, difficulty: str, dimensions: Sequence[str], has_documents: bool) -> str:
    """The generation method to start a gap's batch with (the lead may change it).

    Adversarial cells need attacks; where real source documents exist for the slice,
    grounded generation is closest to real tasks and easiest to check; a slice that varies
    by locale or entity suits template expansion; anything else starts as paraphrase.
    """
    if difficulty == "adversarial":
        return "adversarial"
    if has_documents:
        return "grounded"
    if any(dim.lower() in TEMPLATE_DIMENSIONS for dim in dimensions):
        return "template"
    return "paraphrase"


def documents_cover(documents: Iterable[RowKey], row: RowKey) -> bool:
    """Whether some document's projected tags match ``row`` (a missing tag matches any)."""
    return any(
        all(doc in (UNTAGGED, value) for doc, value in zip(tags, row, strict=True))
        for tags in documents
    )
