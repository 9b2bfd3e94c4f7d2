"""Shared builders for the review tests: a checked batch with synthetic samples and check
results written directly (the checks stage is another part of the pipeline)."""

from __future__ import annotations

from datasets.models import Batch, CheckResult, Dataset, Sample
from review.models import ReviewSettings
from review.services import decision_record, queue_build
from tests.factories import sample_fields


def checked_batch(
    dataset: Dataset,
    *,
    count: int = 20,
    method: str = Batch.Method.PARAPHRASE,
    difficulties: tuple[str, ...] = ("easy", "medium"),
    judge_pass=lambda n: n % 3 != 0,
    borderline=lambda n: False,
    text=lambda n: None,
) -> tuple[Batch, list[Sample]]:
    """A READY batch of ``count`` synthetic samples, each with a judge and a format result."""
    batch = Batch.objects.create(
        dataset=dataset,
        method=method,
        requested_count=count,
        status=Batch.Status.READY,
        seed=1234,
    )
    samples = Sample.objects.bulk_create(
        [
            Sample(
                **sample_fields(
                    dataset,
                    text=text(n),
                    origin=Sample.Origin.SYNTHETIC,
                    batch=batch,
                    seq=n,
                    method=method,
                    difficulty=difficulties[n % len(difficulties)],
                    difficulty_auto=difficulties[n % len(difficulties)],
                    difficulty_source=Sample.DifficultySource.AUTO,
                )
            )
            for n in range(count)
        ]
    )
    CheckResult.objects.bulk_create(
        [
            CheckResult(
                sample=sample,
                batch=batch,
                kind=kind,
                passed=judge_pass(n) if kind == "judge" else True,
                score=0.8 if judge_pass(n) else 0.2,
                borderline=kind == "judge" and borderline(n),
                detail=f"{kind} rationale {n}",
                model="offline rules v1",
            )
            for n, sample in enumerate(samples)
            for kind in ("format", "judge")
        ]
    )
    return batch, samples


def full_queue(dataset: Dataset, *, count: int = 8, seed: int = 5):
    """A spot-check queue holding every item of a checked batch of ``count`` samples."""
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=count)
    queue, _ = queue_build(batch=batch, seed=seed)
    return queue


def overlap_queue(dataset: Dataset):
    """A full queue of 24 samples over three difficulties where half the items go to two
    reviewers: what the fold-versus-count tests decide on."""
    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=0.5
    )
    batch, _ = checked_batch(dataset, count=24, difficulties=("easy", "medium", "hard"))
    queue, _ = queue_build(batch=batch, seed=9)
    return queue


def verdict(user, item, approve: bool, *, reason: str = "low_quality") -> None:
    """``user`` approves or rejects (with ``reason``) the item they claimed."""
    decision_record(
        item_id=item.pk,
        user=user,
        action="approve" if approve else "reject",
        reason="" if approve else reason,
        claim_seq=item.claim_seq,
        idempotency_key=f"{user.pk}-{item.pk}-{item.claim_seq}",
    )
