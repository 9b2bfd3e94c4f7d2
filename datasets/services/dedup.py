"""Near-duplicate control: the contract the checking stage calls (issue 4).

This first version only knows exact duplicates (same normalised content hash). The scalable
near-duplicate index (MinHash LSH on character shingles, confirmed with rapidfuzz) replaces
the body of these functions without changing their signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.models import Sample


@dataclass(frozen=True, slots=True)
class DuplicateFinding:
    """What a sample duplicates: the earlier sample, the score (0-100) and how it was found."""

    sample_id: int
    duplicate_of_id: int
    score: float
    exact: bool


def duplicates_find(*, dataset_id: int, sample_ids: list[int]) -> dict[int, DuplicateFinding]:
    """Find, for each given sample, the closest *earlier* sample of the dataset at or above
    the dataset's near-duplicate threshold: other samples of the same batch, the real
    samples and every split included. Samples with no duplicate are absent from the result.

    Records nothing: ``duplicates_record`` links what the caller decides to link.
    """
    findings: dict[int, DuplicateFinding] = {}
    rows = Sample.objects.filter(pk__in=sample_ids).values_list("pk", "duplicate_of_id")
    for pk, duplicate_of_id in rows:
        if duplicate_of_id is not None:
            findings[pk] = DuplicateFinding(pk, duplicate_of_id, 100.0, exact=True)
    return findings


def duplicates_record(*, findings: dict[int, DuplicateFinding]) -> None:
    """Link each finding (``near_duplicate_of``, ``near_duplicate_score``) and put linked
    samples in one family (``family``: the id of the family's first sample)."""
    for finding in findings.values():
        root = (
            Sample.objects.filter(pk=finding.duplicate_of_id).values_list("family", flat=True).get()
            or finding.duplicate_of_id
        )
        Sample.objects.filter(pk=finding.duplicate_of_id, family__isnull=True).update(family=root)
        Sample.objects.filter(pk=finding.sample_id).update(
            near_duplicate_of_id=finding.duplicate_of_id,
            near_duplicate_score=finding.score,
            family=root,
        )
