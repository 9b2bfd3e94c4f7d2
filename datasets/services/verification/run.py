"""The checking stage of a batch: every new sample through every check, then READY.

    RUNNING --generation ends--> CHECKING --every sample checked--> READY (ready for review)

A sample is *unchecked* while its status is PENDING. ``batch_checks_chunk`` takes the next
unchecked samples of a CHECKING batch, judges them with no lock held (the judge may be slow),
then in one short transaction locks those still PENDING and writes, for each, one CheckResult
per check, its status (ACCEPTED when every check passed, REJECTED otherwise) and its
automatic difficulty. A redelivered or duplicated run finds the samples no longer PENDING and
writes nothing twice; two runs at once may both pay for a judge call, never store two verdicts.

``batch_checks_finish`` moves a CHECKING batch with no unchecked sample left to READY under
the batch row's lock, stores its diversity figures, and sends ``batch_checks_finished`` on
commit. An item retried after READY makes a new sample, the batch goes back through RUNNING
and CHECKING, and only that new sample is checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets import signals
from datasets.importing.readers.base import FileError
from datasets.importing.rowspec import compile_schema
from datasets.models import Batch, CheckResult, Dataset, ModelEndpoint, Sample
from datasets.services import dedup
from datasets.services.verification import checks as c
from datasets.services.verification.judge import (
    RULES_LABEL,
    Item,
    JudgeUnavailable,
    Verdict,
    judge_prompt,
    judge_prompt_mark_used,
    llm_verdicts,
    offline_verdict,
)
from synthaug.engine import difficulty, diversity
from synthaug.engine.offline import attack_markers

log = logging.getLogger(__name__)

Status = Batch.Status
PENDING = Sample.Status.PENDING


def chunk_size() -> int:
    return max(1, int(getattr(settings, "SYNTHAUG_CHECKS_CHUNK_SIZE", 50)))


@dataclass
class ChecksOutcome:
    """What one chunk did. ``unavailable``: samples left unchecked because the judge was
    transiently unavailable (try again later); ``remaining``: unchecked samples after it."""

    checked: int = 0
    accepted: int = 0
    rejected: int = 0
    unavailable: list[int] = field(default_factory=list)
    remaining: int = 0
    finished: bool = False
    stopped: bool = False  # the batch is not CHECKING (cancelled, reopened, gone)


# --- loading ---------------------------------------------------------------------------------

_FIELDS = (
    "id",
    "dataset_id",
    "batch_id",
    "method",
    "input",
    "expected",
    "text",
    "source_passage",
    "parent_id",
    "slot_values",
    "duplicate_of_id",
)


def _items(batch: Batch, ids: list[int]) -> list[Item]:
    rows = list(Sample.objects.filter(pk__in=ids).order_by("pk").values(*_FIELDS))
    parent_ids = {row["parent_id"] for row in rows if row["parent_id"]}
    parents = {
        row["id"]: row
        for row in Sample.objects.filter(pk__in=parent_ids).values("id", "text", "expected")
    }
    items = []
    for row in rows:
        parent = parents.get(row["parent_id"])
        items.append(
            Item(
                sample_id=row["id"],
                method=row["method"] or batch.method,
                input=row["input"] if isinstance(row["input"], dict) else {"input": row["input"]},
                expected=row["expected"] if isinstance(row["expected"], dict) else {},
                text=row["text"],
                source_passage=row["source_passage"] or "",
                parent_text=parent["text"] if parent else None,
                parent_expected=parent["expected"] if parent else None,
                slot_values=row["slot_values"] or {},
                params=batch.params or {},
            )
        )
    return items


def _verdicts(batch: Batch, items: list[Item]) -> dict[int, Verdict | JudgeUnavailable]:
    judge = batch.judge
    if judge is None or judge.kind == ModelEndpoint.Kind.OFFLINE:
        label = (
            f"{judge.name} / {judge.model} (built-in offline provider)"[:300]
            if judge is not None
            else RULES_LABEL
        )
        return {item.sample_id: offline_verdict(item, label=label) for item in items}
    version = judge_prompt()
    judge_prompt_mark_used(version)
    return llm_verdicts(
        judge, version, items, policy_categories=list(batch.dataset.policy_categories or [])
    )


def _validator(dataset: Dataset) -> tuple[Callable[[Any], Any] | None, str]:
    try:
        return compile_schema(dataset.schema or {}), ""
    except FileError as exc:
        return None, str(exc)


# --- one chunk -------------------------------------------------------------------------------


def _outcomes(
    item: Item,
    verdict: Verdict,
    finding: dedup.DuplicateFinding | None,
    *,
    exact_of: int | None,
    dataset: Dataset,
    validate: Callable[[Any], Any] | None,
    schema_error: str,
) -> list[c.Outcome]:
    policy = list(dataset.policy_categories or [])
    if finding is not None:
        unique = c.unique_check(finding.duplicate_of_id, finding.score, exact=finding.exact)
    elif exact_of is not None:
        # Linked at generation time (same content hash); whatever dedup reports.
        unique = c.unique_check(exact_of, 100.0, exact=True)
    else:
        unique = c.unique_check(None, None, exact=False)
    return [
        c.format_check(
            item,
            validate=validate,
            max_chars=settings.SYNTHAUG_MAX_FIELD_CHARS,
            schema_error=schema_error,
        ),
        c.faithfulness_check(item, verdict),
        c.safety_check(item, verdict, policy_categories=policy),
        unique,
        c.judge_check(
            verdict, threshold=dataset.judge_threshold, band=dataset.judge_borderline_band
        ),
    ]


def _assessment(item: Item, verdict: Verdict) -> difficulty.Assessment:
    found = difficulty.features(
        text=item.text,
        context=item.source_passage,
        attack_markers=attack_markers(item.text),
        method=item.method,
    )
    return difficulty.assess(found, judge_level=None if verdict.error else verdict.difficulty)


def batch_checks_chunk(*, batch_id: int, final_attempt: bool = True) -> ChecksOutcome:
    """Check the next unchecked samples of a CHECKING batch (at most ``chunk_size()``).

    A judge transiently unavailable (after the seam's retries) leaves its samples unchecked
    and lists them in ``unavailable``, unless ``final_attempt``: then the judge check fails
    with the reason, like a permanent error. Safe to run twice or concurrently.
    """
    outcome = ChecksOutcome()
    batch = Batch.objects.select_related("dataset", "judge").filter(pk=batch_id).first()
    if batch is None or batch.status != Status.CHECKING:
        outcome.stopped = True
        return outcome
    pending = Sample.objects.filter(batch_id=batch_id, status=PENDING)
    ids = list(pending.order_by("pk").values_list("pk", flat=True)[: chunk_size()])
    if not ids:
        outcome.finished = batch_checks_finish(batch_id=batch_id)
        return outcome
    items = _items(batch, ids)
    verdicts = _verdicts(batch, items)
    for item in items:
        found = verdicts.get(item.sample_id)
        if isinstance(found, JudgeUnavailable):
            if not final_attempt:
                outcome.unavailable.append(item.sample_id)
                continue
            judge = batch.judge  # an endpoint: the built-in judge is never unavailable
            verdicts[item.sample_id] = Verdict(
                error=f"unavailable after every retry: {found}",
                model=f"{judge.name} / {judge.model}"[:300],
                prompt_version=found.prompt_version,
            )
    ready = [item for item in items if item.sample_id not in outcome.unavailable]
    findings = dedup.duplicates_find(
        dataset_id=batch.dataset_id, sample_ids=[item.sample_id for item in ready]
    )
    exact = {item.sample_id: None for item in ready}
    for pk, duplicate_of in Sample.objects.filter(pk__in=list(exact)).values_list(
        "pk", "duplicate_of_id"
    ):
        exact[pk] = duplicate_of
    validate, schema_error = _validator(batch.dataset)
    with transaction.atomic():
        # Only samples still unchecked, locked until the results are stored: a concurrent
        # run of the same chunk waits here, then finds them checked and skips them.
        humans = dict(
            Sample.objects.select_for_update()
            .filter(pk__in=list(exact), status=PENDING)
            .values_list("pk", "difficulty_source")
        )
        still = set(humans)
        rows: list[CheckResult] = []
        updates: list[Sample] = []
        for item in ready:
            if item.sample_id not in still:
                continue
            verdict = verdicts[item.sample_id]
            results = _outcomes(
                item,
                verdict,
                findings.get(item.sample_id),
                exact_of=exact.get(item.sample_id),
                dataset=batch.dataset,
                validate=validate,
                schema_error=schema_error,
            )
            rows.extend(
                CheckResult(
                    sample_id=item.sample_id,
                    batch_id=batch_id,
                    kind=r.kind,
                    passed=r.passed,
                    score=r.score,
                    borderline=r.borderline,
                    detail=r.detail.replace("\x00", ""),
                    data=r.data,
                    model=r.model[:300],
                    prompt_version=r.prompt_version[:100],
                )
                for r in results
            )
            accepted = all(r.passed for r in results)
            assessed = _assessment(item, verdict)
            sample = Sample(
                pk=item.sample_id,
                status=Sample.Status.ACCEPTED if accepted else Sample.Status.REJECTED,
                difficulty_auto=assessed.level,
                difficulty_auto_rationale=assessed.rationale,
                difficulty_features=assessed.features,
            )
            if humans.get(item.sample_id) != Sample.DifficultySource.HUMAN:
                sample.difficulty = assessed.level
                sample.difficulty_source = Sample.DifficultySource.AUTO
                sample.difficulty_rationale = assessed.rationale
            updates.append(sample)
            outcome.checked += 1
            outcome.accepted += accepted
            outcome.rejected += not accepted
        CheckResult.objects.bulk_create(rows, batch_size=500)
        auto = [s for s in updates if s.difficulty_source == Sample.DifficultySource.AUTO]
        kept = [s for s in updates if s.difficulty_source != Sample.DifficultySource.AUTO]
        common = ["status", "difficulty_auto", "difficulty_auto_rationale", "difficulty_features"]
        if auto:
            Sample.objects.bulk_update(
                auto, [*common, "difficulty", "difficulty_source", "difficulty_rationale"]
            )
        if kept:
            Sample.objects.bulk_update(kept, common)
        dedup.duplicates_record(findings={pk: f for pk, f in findings.items() if pk in still})
        checked_ids = [s.pk for s in updates]
        if checked_ids:
            dataset_id = batch.dataset_id
            transaction.on_commit(
                lambda: signals.samples_added.send(
                    sender=Sample, dataset_id=dataset_id, sample_ids=checked_ids
                )
            )
    outcome.remaining = pending.count()
    if not outcome.remaining:
        outcome.finished = batch_checks_finish(batch_id=batch_id)
    return outcome


# --- finishing -------------------------------------------------------------------------------


def _diversity(batch: Batch) -> dict[str, Any]:
    rows = Sample.objects.filter(batch_id=batch.pk).values_list("text", "parent__text")
    return diversity.batch_diversity(list(rows.iterator(chunk_size=2000)), method=batch.method)


def batch_checks_finish(*, batch_id: int) -> bool:
    """CHECKING -> READY once no sample of the batch is unchecked; True when it moved.

    Under the batch row's lock, so two runs finishing at once move it once and send
    ``batch_checks_finished`` once (on commit, keyword argument ``batch``).
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status != Status.CHECKING:
            return False
        if Sample.objects.filter(batch_id=batch_id, status=PENDING).exists():
            return False
        now = timezone.now()
        figures = _diversity(batch)
        Batch.objects.filter(pk=batch_id).update(
            status=Status.READY, checks_finished_at=now, diversity=figures
        )
        batch.status, batch.checks_finished_at, batch.diversity = Status.READY, now, figures
        transaction.on_commit(lambda: signals.batch_checks_finished.send(sender=Batch, batch=batch))
    log.info("Batch %s checked and ready for review.", batch_id)
    return True


def batch_checks_begin(*, batch_id: int) -> None:
    """Note when the checking stage started (the first time only)."""
    Batch.objects.filter(pk=batch_id, checks_started_at__isnull=True).update(
        checks_started_at=timezone.now()
    )


def batch_checks_run_sync(
    *,
    batch: Batch,
    attempts: int = 3,
    delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[ChecksOutcome], None] | None = None,
) -> Batch:
    """Check every unchecked sample of a CHECKING batch in this process, then READY.

    For ``generate --sync``, the demo and tests. A transiently unavailable judge is tried
    ``attempts`` times in all (``delay`` seconds apart, doubling) before its items fail.
    """
    batch_checks_begin(batch_id=batch.pk)
    tries = 0
    while True:
        tries += 1
        outcome = batch_checks_chunk(batch_id=batch.pk, final_attempt=tries >= attempts)
        if on_progress is not None:
            on_progress(outcome)
        if outcome.stopped or outcome.finished:
            break
        if outcome.unavailable:
            sleep(delay * 2 ** (tries - 1))
            continue
        tries = 0
    batch.refresh_from_db()
    return batch


def release_paraphrase_only(batches: Any) -> bool:
    """Whether a release built from these batches holds nothing but paraphrases (a gate)."""
    return diversity.release_paraphrase_only(getattr(b, "method", b) for b in batches)
