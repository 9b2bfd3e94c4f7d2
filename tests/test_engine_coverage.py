from __future__ import annotations

import pytest

from synthaug.engine.coverage import (
    Bucket,
    CountRow,
    matrix_build,
    matrix_compare,
)

ALLOWED = {"topic": ["health", "law"], "locale": ["en", "de"]}


def rows(*items: tuple[dict, str, Bucket, int]) -> list[CountRow]:
    return [CountRow(tags=t, difficulty=d, bucket=b, count=n) for t, d, b, n in items]


def test_it_counts_approved_as_real_plus_accepted_synthetic_and_computes_the_gap():
    matrix = matrix_build(
        counts=rows(
            ({"topic": "health"}, "easy", Bucket.REAL, 7),
            ({"topic": "health"}, "easy", Bucket.SYNTHETIC_APPROVED, 2),
            ({"topic": "health"}, "easy", Bucket.SYNTHETIC_PENDING, 50),
        ),
        dimensions=["topic"],
        allowed=ALLOWED,
        default_target=20,
    )
    cell = matrix.cell(("health",), "easy")
    assert (cell.real, cell.synthetic_approved, cell.synthetic_pending) == (7, 2, 50)
    assert cell.approved == 9
    assert cell.gap == 11  # pending items do not close a gap
    assert cell.synthetic_share == pytest.approx(2 / 9)


def test_it_shows_declared_but_empty_cells_as_full_gaps():
    matrix = matrix_build(counts=[], dimensions=["topic"], allowed=ALLOWED, default_target=5)
    assert matrix.rows == [("health",), ("law",)]
    assert matrix.cell(("law",), "hard").gap == 5
    # 2 rows x 4 real difficulty columns; the unset column has no target.
    assert matrix.total_gap == 2 * 4 * 5
    assert matrix.cell(("law",), "").target == 0


def test_it_never_reports_a_negative_gap():
    matrix = matrix_build(
        counts=rows(({"topic": "law"}, "easy", Bucket.REAL, 30)),
        dimensions=["topic"],
        allowed=ALLOWED,
        default_target=10,
    )
    assert matrix.cell(("law",), "easy").gap == 0


def test_it_applies_per_cell_targets_over_the_default():
    matrix = matrix_build(
        counts=[],
        dimensions=["topic"],
        allowed=ALLOWED,
        targets={(("law",), "adversarial"): 40},
        default_target=3,
    )
    assert matrix.cell(("law",), "adversarial").target == 40
    assert matrix.cell(("law",), "easy").target == 3
    assert matrix.gaps()[0][:2] == (("law",), "adversarial")


def test_it_flags_cells_where_synthetic_exceeds_the_ceiling():
    matrix = matrix_build(
        counts=rows(
            ({"topic": "health"}, "hard", Bucket.REAL, 2),
            ({"topic": "health"}, "hard", Bucket.SYNTHETIC_APPROVED, 3),
            ({"topic": "law"}, "hard", Bucket.REAL, 2),
            ({"topic": "law"}, "hard", Bucket.SYNTHETIC_APPROVED, 2),
        ),
        dimensions=["topic"],
        allowed=ALLOWED,
        ceiling=0.5,
    )
    flagged = [(row, d) for row, d, _ in matrix.over_ceiling()]
    assert flagged == [(("health",), "hard")]  # exactly half is allowed


def test_it_counts_and_lists_untagged_samples_in_a_row_of_their_own():
    matrix = matrix_build(
        counts=rows(
            ({}, "", Bucket.REAL, 4),
            ({"topic": "health"}, "easy", Bucket.REAL, 1),
            ({"topic": "astrology"}, "easy", Bucket.REAL, 2),
        ),
        dimensions=["topic"],
        allowed=ALLOWED,
        default_target=1,
    )
    assert matrix.rows[-1] == ("",)
    assert ("astrology",) in matrix.rows  # present in the data though not declared
    assert matrix.untagged_count() == 4
    assert matrix.cell(("",), "easy").target == 0


def test_it_crosses_two_dimensions():
    matrix = matrix_build(
        counts=rows(({"topic": "law", "locale": "de"}, "medium", Bucket.REAL, 3)),
        dimensions=["topic", "locale"],
        allowed=ALLOWED,
        default_target=2,
    )
    assert len(matrix.rows) == 4
    assert matrix.cell(("law", "de"), "medium").real == 3
    assert matrix.cell(("law", "en"), "medium").gap == 2


def test_it_compares_before_and_after_a_batch():
    base = rows(({"topic": "law"}, "hard", Bucket.REAL, 2))
    batch = rows(({"topic": "law"}, "hard", Bucket.SYNTHETIC_APPROVED, 5))
    kwargs = {"dimensions": ["topic"], "allowed": ALLOWED, "default_target": 6, "ceiling": 0.5}
    before = matrix_build(counts=base, **kwargs)
    after = matrix_build(counts=base + batch, **kwargs)
    (change,) = matrix_compare(before, after)
    assert change.row == ("law",)
    assert change.difficulty == "hard"
    assert (change.gap_before, change.gap_after, change.closed) == (4, 0, 4)
    assert change.over_ceiling_after is True  # 5 of 7 approved are synthetic


def test_it_refuses_bad_arguments():
    with pytest.raises(ValueError, match="dimension"):
        matrix_build(counts=[], dimensions=[], allowed={})
    with pytest.raises(ValueError, match="ceiling"):
        matrix_build(counts=[], dimensions=["topic"], allowed=ALLOWED, ceiling=1.5)
