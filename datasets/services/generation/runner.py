"""Generating items: claim a slot, generate it, record the sample. What a chunk task runs.

A slot is claimed with a conditional UPDATE (PENDING -> RUNNING, with a lease) whose row count
says who won; no row lock is held while the model is called. The sample is then written in one
short transaction that locks the item, so a redelivered or duplicated task, or a worker whose
lease was taken over, cannot make a second sample for the slot (and ``(batch, seq)`` is unique
on Sample as the last line of defence).

Retries have one owner per layer: the LLM seam retries HTTP (``SYNTHAUG_GENERATION_HTTP_
ATTEMPTS`` requests per claim); a transient failure that outlives them puts the item back to
PENDING and the chunk reports it for re-queueing with a delay; each claim counts an attempt,
and after ``SYNTHAUG_GENERATION_MAX_ATTEMPTS`` the item fails with reason "gave_up".

The lease (``SYNTHAUG_GENERATION_LEASE_SECONDS``) must outlast one item's work: the endpoint's
timeout times the HTTP attempts, plus backoff. A lease that expires under a live worker only
costs a duplicate call; the sample is still made once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import IntegrityError, models, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from datasets.generation import methods
from datasets.generation.methods import Document, Generated, GenerationFailed, Parent, Work
from datasets.models import Batch, GenerationItem, ModelEndpoint, Sample
from datasets.selectors.generation import batch_spent
from datasets.services.generation.batches import endpoint_cost, prompt_default
from datasets.services.generation.endpoints import (
    concurrency_slots_for,
    endpoint_for,
    rate_limiter_for,
)
from datasets.services.generation.lifecycle import (
    batch_finish_if_complete,
    batch_stop_for_budget,
)
from datasets.services.generation.queue import GenerationSettings, chunked, conf
from synthaug.engine import errors
from synthaug.engine.llm import AsyncLLMClient, Endpoint, RetryPolicy
from synthaug.engine.offline import OFFLINE_VERSION
from synthaug.engine.text import content_hash, flatten

log = logging.getLogger(__name__)

State = GenerationItem.State
GAVE_UP = "gave_up"
INTERNAL = "internal"


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    response_id: str = ""


@dataclass
class ChunkOutcome:
    """What one chunk did; ``retry_seqs`` are to be queued again after ``retry_delay`` s."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    retry_seqs: list[int] = field(default_factory=list)
    retry_delay: float = 0.0
    budget_stopped: bool = False


def worker_name(hint: str = "") -> str:
    """Who holds a claim: host (or the Celery node name), process and a per-run token."""
    return f"{hint or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[-200:]


# --- one chunk ------------------------------------------------------------------------------


class _Chunk:
    """The state of one chunk run in one process: its batch, its claims, what it did."""

    def __init__(self, batch: Batch, worker: str, settings_: GenerationSettings) -> None:
        self.batch = batch
        self.generator: ModelEndpoint = batch.generator
        # A batch made without a prompt (not through batch_create) uses the default one.
        self.version = batch.prompt_version or prompt_default(purpose=batch.method)
        self.worker = worker
        self.conf = settings_
        self.outcome = ChunkOutcome()
        self.offline = self.generator.kind == ModelEndpoint.Kind.OFFLINE
        # The offline provider reads no prompt text, so provenance names the provider's own
        # version of the method instead of a prompt it never saw.
        self.prompt_label = (
            f"offline-{batch.method}@{OFFLINE_VERSION} (built-in, no prompt)"
            if self.offline
            else self.version.label[:100]
        )
        self.check_budget = batch.budget_cap is not None and not self.offline
        self.stopped = False
        self._marked_running = False
        self._documents: dict[int, Document] = {}
        self._spent_base = Decimal(0)
        self._spent_since = Decimal(0)  # what this run billed since the last read
        self._spent_read_at = float("-inf")
        self.grounded = methods.GroundedCache()

    # claims ------------------------------------------------------------------------------

    def prepare(self, seqs: list[int]) -> None:
        """Tell the offline grounded cache how far each document will be read."""
        if not (self.offline and self.batch.method == methods.GROUNDED):
            return
        needed: dict[int, int] = {}
        rows = GenerationItem.objects.filter(batch_id=self.batch.pk, seq__in=seqs).values_list(
            "source_document_id", "slot_values"
        )
        for document_id, values in rows:
            if document_id is not None:
                pick = int((values or {}).get("pick", 0))
                needed[document_id] = max(needed.get(document_id, 0), pick + 1)
        self.grounded = methods.GroundedCache(needed)

    def _over_budget(self) -> bool:
        """Whether the batch's spending reached its cap (then its pending items are cancelled).

        The batch-wide sum is read at most once a second (a SUM over the batch's items) and
        this run's own spending is added in between. Calls already in flight when the cap is
        reached still finish: a batch can overshoot by up to ``max_concurrency`` items per
        running chunk.
        """
        if not self.check_budget:
            return False
        now = time.monotonic()
        if now - self._spent_read_at >= 1.0:
            self._spent_base = batch_spent(batch_id=self.batch.pk)
            self._spent_since = Decimal(0)
            self._spent_read_at = now
        spent = self._spent_base + self._spent_since
        if spent < self.batch.budget_cap:
            return False
        batch_stop_for_budget(batch_id=self.batch.pk, spent=spent, cap=self.batch.budget_cap)
        self.outcome.budget_stopped = True
        return True

    def claim(self, seq: int) -> GenerationItem | None:
        """The item at ``seq`` if this run won it (PENDING -> RUNNING), else None."""
        if self.stopped:
            return None
        if self._over_budget():
            self.stopped = True
            return None
        now = timezone.now()
        items = GenerationItem.objects.filter(batch_id=self.batch.pk, seq=seq)
        won = items.filter(state=State.PENDING, attempts__lt=self.conf.max_attempts).update(
            state=State.RUNNING,
            attempts=F("attempts") + 1,
            lease_until=now + timedelta(seconds=self.conf.lease_seconds),
            worker=self.worker,
            started_at=now,
        )
        if not won:
            # Pending with every attempt used: its last workers died holding it.
            items.filter(state=State.PENDING, attempts__gte=self.conf.max_attempts).update(
                state=State.FAILED,
                error_reason=GAVE_UP,
                error_detail=Concat(
                    Value(f"gave up after {self.conf.max_attempts} attempts; last error: "),
                    F("error_detail"),
                    output_field=models.TextField(),
                ),
                finished_at=now,
                lease_until=None,
            )
            return None
        if not self._marked_running:
            Batch.objects.filter(pk=self.batch.pk, status=Batch.Status.QUEUED).update(
                status=Batch.Status.RUNNING
            )
            self._marked_running = True
        self.outcome.claimed += 1
        return items.get()

    def work_for(self, item: GenerationItem) -> Work:
        parent = None
        if item.parent_id is not None:
            row = Sample.objects.only("id", "input", "expected", "tags", "source_group").get(
                pk=item.parent_id
            )
            parent = Parent(row.pk, row.input, row.expected, row.tags or {}, row.source_group)
        document = None
        if item.source_document_id is not None:
            document = self._documents.get(item.source_document_id)
            if document is None:
                row = item.source_document
                document = Document(row.pk, row.title, row.text, row.content_hash, row.tags or {})
                self._documents[row.pk] = document
        batch = self.batch
        return Work(
            method=batch.method,
            seq=item.seq,
            batch_seed=batch.seed,
            params=batch.params or {},
            target_tags=batch.target_tags or {},
            target_difficulty=batch.target_difficulty,
            slot_values=item.slot_values or {},
            parent=parent,
            document=document,
        )

    # records -----------------------------------------------------------------------------

    def _cost(self, usage: Usage) -> Decimal:
        return endpoint_cost(
            self.generator, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
        )

    def _usage_fields(self, usage: Usage) -> dict[str, Any]:
        return {
            "input_tokens": F("input_tokens") + usage.input_tokens,
            "output_tokens": F("output_tokens") + usage.output_tokens,
            "cost": F("cost") + self._cost(usage),
        }

    def _spend(self, usage: Usage) -> None:
        """Count a call's cost toward the budget; each record_* bills its usage exactly once."""
        self._spent_since += self._cost(usage)

    def _bill(self, item: GenerationItem, usage: Usage) -> None:
        """Add usage to an item this run no longer holds: a call is paid for either way."""
        if usage.input_tokens or usage.output_tokens:
            GenerationItem.objects.filter(pk=item.pk).update(**self._usage_fields(usage))

    def _sample(self, item: GenerationItem, work: Work, generated: Generated) -> Sample:
        batch = self.batch
        if work.parent is not None:
            base_tags, group = work.parent.tags, work.parent.source_group
        elif work.document is not None:
            base_tags, group = work.document.tags, f"doc:{work.document.content_hash[:16]}"
        else:
            base_tags, group = {}, f"batch:{batch.pk}:{item.seq}"
        return Sample(
            dataset_id=batch.dataset_id,
            input=generated.input,
            expected=generated.expected,
            text=flatten(generated.input),
            origin=Sample.Origin.SYNTHETIC,
            tags={**base_tags, **(batch.target_tags or {})},
            difficulty=batch.target_difficulty,
            difficulty_source=Sample.DifficultySource.AUTO if batch.target_difficulty else "",
            # Issue 4 assesses difficulty; until then the batch's target stands, said so.
            difficulty_rationale=f"target of batch {batch.pk}",
            status=Sample.Status.PENDING,
            content_hash=content_hash(generated.input),
            source_group=group[:80],
            batch_id=batch.pk,
            seq=item.seq,
            parent_id=work.parent.id if work.parent else None,
            source_document_id=work.document.id if work.document else None,
            source_passage=generated.source_passage,
            passage_start=generated.passage_start,
            passage_end=generated.passage_end,
            method=batch.method,
            generation_model=self.generator.identity[:300],
            prompt_version=self.prompt_label,
            slot_values=generated.slot_values,
        )

    def record_success(
        self, item: GenerationItem, work: Work, generated: Generated, usage: Usage
    ) -> bool:
        """Write the sample and mark the item DONE; False when the slot was settled already.

        The canonical sample of the same content is looked up before the insert and linked
        as ``duplicate_of``. Two writers of one content at once: the second insert waits on
        the unique index and fails when the first commits; it looks again and links.
        """
        self._spend(usage)
        for _ in range(5):
            sample = self._sample(item, work, generated)
            try:
                with transaction.atomic():
                    current = (
                        GenerationItem.objects.select_for_update()
                        .only("state", "sample_id")
                        .get(pk=item.pk)
                    )
                    if current.state not in (State.RUNNING, State.PENDING) or current.sample_id:
                        self._bill(item, usage)
                        return False
                    sample.duplicate_of_id = (
                        Sample.objects.filter(
                            dataset_id=sample.dataset_id,
                            content_hash=sample.content_hash,
                            duplicate_of__isnull=True,
                        )
                        .values_list("pk", flat=True)
                        .first()
                    )
                    sample.save(force_insert=True)
                    GenerationItem.objects.filter(pk=item.pk).update(
                        state=State.DONE,
                        sample=sample,
                        lease_until=None,
                        finished_at=timezone.now(),
                        error_reason="",
                        error_detail="",
                        response_id=usage.response_id[:200],
                        **self._usage_fields(usage),
                    )
            except IntegrityError:
                if Sample.objects.filter(batch_id=self.batch.pk, seq=item.seq).exists():
                    self._bill(item, usage)
                    return False
                # Another writer landed the same content first: link to it instead.
                log.info("Slot %s: content written elsewhere meanwhile; linking it", item)
                continue
            self.outcome.done += 1
            return True
        raise RuntimeError(f"could not store the sample of {item}: the content hash kept racing")

    def record_failure(self, item: GenerationItem, reason: str, detail: str, usage: Usage) -> None:
        self._spend(usage)
        moved = GenerationItem.objects.filter(
            pk=item.pk, state=State.RUNNING, worker=self.worker
        ).update(
            state=State.FAILED,
            error_reason=reason[:40],
            error_detail=detail,
            finished_at=timezone.now(),
            lease_until=None,
            **self._usage_fields(usage),
        )
        if moved:
            self.outcome.failed += 1
        else:
            self._bill(item, usage)

    def record_transient(self, item: GenerationItem, error: errors.TransientLLMError) -> None:
        usage = Usage(error.input_tokens, error.output_tokens)
        if item.attempts >= self.conf.max_attempts:
            self.record_failure(
                item, GAVE_UP, f"gave up after {item.attempts} attempts; last error: {error}", usage
            )
            return
        self._spend(usage)
        now = timezone.now()
        moved = GenerationItem.objects.filter(
            pk=item.pk, state=State.RUNNING, worker=self.worker
        ).update(
            state=State.PENDING,
            lease_until=now,  # queued again now (see batch_start)
            worker="",
            error_reason=error.reason[:40],
            error_detail=str(error),
            **self._usage_fields(usage),
        )
        if not moved:
            self._bill(item, usage)
            return
        delay = self.conf.retry_delay_seconds * 2 ** (item.attempts - 1)
        delay = min(max(delay, error.retry_after or 0.0), self.conf.retry_delay_max_seconds)
        self.outcome.retry_seqs.append(item.seq)
        self.outcome.retry_delay = max(self.outcome.retry_delay, delay)

    # running -----------------------------------------------------------------------------

    def run_offline(self, seqs: list[int]) -> None:
        usage = Usage(response_id=f"offline-v{OFFLINE_VERSION}")
        for seq in seqs:
            item = self.claim(seq)
            if item is None:
                if self.stopped:
                    break
                continue
            try:
                work = self.work_for(item)
                generated = methods.offline_generate(work, cache=self.grounded)
            except GenerationFailed as exc:
                self.record_failure(item, exc.reason, exc.detail, Usage())
                continue
            except Exception as exc:
                log.exception("Offline generation failed for %s", item)
                self.record_failure(item, INTERNAL, f"{type(exc).__name__}: {exc}", Usage())
                continue
            self.record_success(item, work, generated, usage)

    def run_llm(self, seqs: list[int]) -> None:
        try:
            endpoint = endpoint_for(self.generator)
        except errors.PermanentLLMError as exc:
            # Every slot fails, each with the reason: nothing is silently skipped.
            for seq in seqs:
                item = self.claim(seq)
                if item is not None:
                    self.record_failure(item, exc.reason, exc.message, Usage())
            return
        async_to_sync(self._run_llm)(endpoint, seqs)

    async def _run_llm(self, endpoint: Endpoint, seqs: list[int]) -> None:
        # Database work goes back to the calling thread (thread_sensitive): one connection,
        # the one Celery manages, and tests see their own transaction.
        claim = sync_to_async(self.claim)
        work_for = sync_to_async(self.work_for)
        success = sync_to_async(self.record_success)
        failure = sync_to_async(self.record_failure)
        transient = sync_to_async(self.record_transient)
        version = self.version
        client = AsyncLLMClient(
            endpoint,
            policy=RetryPolicy(
                max_attempts=self.conf.http_attempts, backoff_base=self.conf.backoff_seconds
            ),
            limiter=rate_limiter_for(self.generator),
        )
        # The semaphore bounds claims, not only requests: an item's lease starts when it is
        # about to be sent, not while it waits behind the endpoint's other calls. The shared
        # slots (Redis) bound the requests in flight across every worker calling the endpoint.
        limit = max(1, endpoint.max_concurrency)
        slots = asyncio.Semaphore(limit)
        shared = concurrency_slots_for(self.generator)

        async def send(plan: Any) -> Any:
            def request() -> Any:
                return client.complete_json(
                    messages=plan.messages,
                    schema=plan.schema,
                    schema_name=plan.schema_name,
                    max_tokens=plan.max_tokens,
                    temperature=plan.temperature,
                    seed=plan.seed,
                )

            if shared is None:
                return await request()
            store, key = shared
            async with store.hold(key, limit=limit):
                return await request()

        async def one(seq: int) -> None:
            async with slots:
                await call(seq)

        async def call(seq: int) -> None:
            item = await claim(seq)
            if item is None:
                return
            try:
                work = await work_for(item)
                plan = methods.llm_plan(
                    work, system=version.system, user=version.user, schema=version.output_schema
                )
                result = await send(plan)
            except errors.TransientLLMError as exc:
                await transient(item, exc)
                return
            except errors.LLMError as exc:
                usage = Usage(exc.input_tokens, exc.output_tokens)
                await failure(item, exc.reason, exc.message, usage)
                return
            except GenerationFailed as exc:
                await failure(item, exc.reason, exc.detail, Usage())
                return
            except Exception as exc:
                log.exception("Generation failed for %s", item)
                await failure(item, INTERNAL, f"{type(exc).__name__}: {exc}", Usage())
                return
            usage = Usage(result.input_tokens, result.output_tokens, result.response_id)
            try:
                generated = methods.llm_read(work, plan, result.data)
            except GenerationFailed as exc:
                await failure(item, exc.reason, exc.detail, usage)
                return
            await success(item, work, generated, usage)

        try:
            results = await asyncio.gather(*(one(seq) for seq in seqs), return_exceptions=True)
        finally:
            await client.aclose()
        for result in results:
            if isinstance(result, BaseException):
                raise result


def batch_chunk_run(
    *, batch_id: int, seqs: list[int], worker: str = "", enqueue_checks: bool = True
) -> ChunkOutcome:
    """Claim and generate the pending items among ``seqs`` of a batch; settle the batch.

    Safe to run twice, or in two processes at once, for the same seqs: only PENDING items
    are claimed, each by one run. Items of a cancelled batch are no longer pending, so a
    late task does nothing. A batch that finishes here goes to CHECKING and, unless
    ``enqueue_checks`` is False, its checking stage is queued.
    """
    batch = (
        Batch.objects.select_related("generator", "prompt_version__template")
        .filter(pk=batch_id)
        .first()
    )
    if batch is None or batch.generator is None:
        return ChunkOutcome()
    run = _Chunk(batch, worker_name(worker), conf())
    ordered = sorted({int(seq) for seq in seqs})
    run.prepare(ordered)
    if run.offline:
        run.run_offline(ordered)
    else:
        run.run_llm(ordered)
    batch_finish_if_complete(batch_id=batch.pk, enqueue_checks=enqueue_checks)
    return run.outcome


def batch_run_sync(
    *,
    batch: Batch,
    on_progress: Callable[[ChunkOutcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    run_checks: bool = True,
) -> Batch:
    """Generate every pending item of a started batch in this process, no worker needed,
    then (``run_checks``) run its checking stage here too, to READY.

    For the embedded default's command line (``generate --sync``) and tests. Transient
    failures wait their delay and go again, within the same attempt limits as a worker.
    With ``run_checks=False`` a finished batch is left CHECKING, its stage not queued.
    """
    worker = f"sync@{socket.gethostname()}"
    size = conf().chunk_size
    while True:
        seqs = list(
            GenerationItem.objects.filter(batch_id=batch.pk, state=State.PENDING)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        if not seqs:
            break
        claimed = 0
        delay = 0.0
        for chunk in chunked(seqs, size):
            outcome = batch_chunk_run(
                batch_id=batch.pk, seqs=chunk, worker=worker, enqueue_checks=False
            )
            claimed += outcome.claimed
            if outcome.retry_seqs:
                delay = max(delay, outcome.retry_delay)
            if on_progress is not None:
                on_progress(outcome)
            if outcome.budget_stopped:
                break
        if not claimed:
            break  # nothing claimable: held by another worker, or out of attempts
        if delay:
            sleep(delay)
    batch_finish_if_complete(batch_id=batch.pk, enqueue_checks=False)
    batch.refresh_from_db()
    if run_checks and batch.status == Batch.Status.CHECKING:
        from datasets.services.verification import batch_checks_run_sync

        batch = batch_checks_run_sync(batch=batch, sleep=sleep)
    return batch
