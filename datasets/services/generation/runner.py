"""Generating items: claim a slot, generate it, record the sample. What a chunk task runs.

A slot is claimed with a conditional UPDATE (PENDING -> RUNNING, with a lease) whose row count
says who won (several slots at once: UPDATE ... RETURNING); no row lock is held while the model
is called. Samples are then written, a group of answers at a time, in one short transaction that
locks their items, so a redelivered or duplicated task, or a worker whose lease was taken over,
cannot make a second sample for a slot (and ``(batch, seq)`` is unique on Sample as the last
line of defence). An answer waiting for its group's write keeps its item RUNNING: a worker
that dies then costs one repeated call, never a lost or doubled sample.

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
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from datasets.generation import methods
from datasets.generation.methods import Document, Generated, GenerationFailed, Parent, Work
from datasets.models import Batch, GenerationItem, ModelEndpoint, Sample, SourceDocument
from datasets.selectors.generation import batch_spent
from datasets.services.coverage import COVERAGE_GENERATION_DELAY, coverage_refresh_request
from datasets.services.generation.aio import Bridge
from datasets.services.generation.batches import endpoint_cost, prompt_default
from datasets.services.generation.endpoints import (
    concurrency_slots_for,
    endpoint_for,
    rate_limiter_for,
)
from datasets.services.generation.lanes import Claims, Writer
from datasets.services.generation.lifecycle import (
    batch_finish_if_complete,
    batch_stop_for_budget,
)
from datasets.services.generation.queue import GenerationSettings, chunked, conf
from datasets.services.generation.sql import DoneRow, items_claim, items_mark_done
from synthaug.engine import errors
from synthaug.engine.llm import AsyncLLMClient, Endpoint, RetryPolicy
from synthaug.engine.offline import OFFLINE_VERSION
from synthaug.engine.slots import LocalWaiters
from synthaug.engine.text import content_hash, flatten

log = logging.getLogger(__name__)

State = GenerationItem.State
# Bridge.db: run a function on the chunk's database thread and await its result.
DatabaseCall = Callable[..., Awaitable[Any]]
GAVE_UP = "gave_up"
INTERNAL = "internal"


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    response_id: str = ""


@dataclass(frozen=True)
class Answer:
    """A schema-valid answer for a claimed item, waiting for its sample to be written."""

    item: GenerationItem
    work: Work
    generated: Generated
    usage: Usage


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
        self._parents: dict[int, Parent] = {}
        self._spent_base = Decimal(0)
        self._spent_since = Decimal(0)  # what this run billed since the last read
        self._unrecorded = Decimal(0)  # answers paid for, their samples not written yet
        # The accounts are kept by the event loop (answers arriving) and the database
        # thread (claims, writes): one lock keeps their sums exact.
        self._accounts = threading.Lock()
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
            base = batch_spent(batch_id=self.batch.pk)
            with self._accounts:
                self._spent_base = base
                self._spent_since = Decimal(0)
            self._spent_read_at = now
        with self._accounts:
            spent = self._spent_base + self._spent_since + self._unrecorded
        if spent < self.batch.budget_cap:
            return False
        batch_stop_for_budget(batch_id=self.batch.pk, spent=spent, cap=self.batch.budget_cap)
        self.outcome.budget_stopped = True
        return True

    def claim(self, seq: int) -> GenerationItem | None:
        """The item at ``seq`` if this run won it (PENDING -> RUNNING), else None."""
        won = self.claim_group([seq])
        return won[0] if won else None

    def claim_group(self, seqs: list[int]) -> list[GenerationItem]:
        """The items among ``seqs`` this run won (PENDING -> RUNNING), in seq order.

        One conditional UPDATE ... RETURNING for the group: its WHERE clause is the claim
        (the row count says who won, as for one item) and its RETURNING clause is the rows,
        so a claim costs one round trip however many lanes asked at once.
        """
        if self.stopped or not seqs:
            return []
        if self._over_budget():
            self.stopped = True
            return []
        now = timezone.now()
        won = items_claim(
            batch_id=self.batch.pk,
            seqs=seqs,
            worker=self.worker,
            now=now,
            lease_until=now + timedelta(seconds=self.conf.lease_seconds),
            max_attempts=self.conf.max_attempts,
        )
        lost = set(seqs).difference(item.seq for item in won)
        if lost:
            # Pending with every attempt used: its last workers died holding it.
            GenerationItem.objects.filter(
                batch_id=self.batch.pk,
                seq__in=lost,
                state=State.PENDING,
                attempts__gte=self.conf.max_attempts,
            ).update(
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
        if won and not self._marked_running:
            Batch.objects.filter(pk=self.batch.pk, status=Batch.Status.QUEUED).update(
                status=Batch.Status.RUNNING
            )
            self._marked_running = True
        self.outcome.claimed += len(won)
        return won

    def _claim(self, seqs: list[int]) -> list[tuple[GenerationItem, Work]]:
        items = self.claim_group(seqs)
        return list(zip(items, self.works_for(items), strict=True))

    def works_for(self, items: list[GenerationItem]) -> list[Work]:
        """What each item works from, its parents and documents read in one query each."""
        parent_ids = {item.parent_id for item in items if item.parent_id is not None}
        if parent_ids:
            rows = Sample.objects.only("id", "input", "expected", "tags", "source_group")
            for row in rows.filter(pk__in=parent_ids):
                self._parents[row.pk] = Parent(
                    row.pk, row.input, row.expected, row.tags or {}, row.source_group
                )
        missing = {
            item.source_document_id
            for item in items
            if item.source_document_id is not None
            and item.source_document_id not in self._documents
        }
        if missing:
            for row in SourceDocument.objects.filter(pk__in=missing):
                self._documents[row.pk] = Document(
                    row.pk, row.title, row.text, row.content_hash, row.tags or {}
                )
        return [self.work_for(item) for item in items]

    def work_for(self, item: GenerationItem) -> Work:
        parent = None
        if item.parent_id is not None:
            parent = self._parents.get(item.parent_id)
            if parent is None:
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
        with self._accounts:
            self._spent_since += self._cost(usage)

    def answered(self, usage: Usage) -> None:
        """Count an answer's cost toward the budget before its sample is written."""
        with self._accounts:
            self._unrecorded += self._cost(usage)

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
        the unique index and fails when the first commits; it looks again and links. The
        caller has counted the cost toward the budget (``answered``).
        """
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

    def record_successes(self, answers: list[Answer]) -> None:
        """Write the samples of several answers and mark their items DONE, in one transaction.

        The per-item guarantees of ``record_success`` hold for the group: the items are
        locked (in id order, so two writers cannot deadlock) and only those still RUNNING or
        PENDING without a sample get one; the others are billed. Should an insert meet a
        concurrent writer (the same content, or the same slot, landed meanwhile), the group
        is rolled back and written one by one, each settling its own race.
        """
        try:
            with transaction.atomic():
                written = self._store(answers)
        except IntegrityError:
            log.info("Batch %s: a write met another writer; writing one by one", self.batch.pk)
            for answer in answers:  # each counts what it wrote
                self.record_success(answer.item, answer.work, answer.generated, answer.usage)
        else:
            self.outcome.done += written
        paid = sum((self._cost(answer.usage) for answer in answers), Decimal(0))
        with self._accounts:
            self._unrecorded -= paid
            self._spent_since += paid

    def _store(self, answers: list[Answer]) -> int:
        """The body of ``record_successes``; call inside transaction.atomic()."""
        current = dict(
            (pk, (state, sample_id))
            for pk, state, sample_id in GenerationItem.objects.select_for_update()
            .filter(pk__in=[answer.item.pk for answer in answers])
            .order_by("pk")
            .values_list("pk", "state", "sample_id")
        )
        fresh: list[Answer] = []
        for answer in answers:
            state, sample_id = current.get(answer.item.pk, (None, None))
            if state in (State.RUNNING, State.PENDING) and not sample_id:
                fresh.append(answer)
            else:
                self._bill(answer.item, answer.usage)
        if not fresh:
            return 0
        samples = [self._sample(a.item, a.work, a.generated) for a in fresh]
        canonical = dict(
            Sample.objects.filter(
                dataset_id=self.batch.dataset_id,
                content_hash__in={sample.content_hash for sample in samples},
                duplicate_of__isnull=True,
            ).values_list("content_hash", "pk")
        )
        # The first sample of a content not in the dataset yet is its canonical one; later
        # ones in the group link to it once it has an id.
        firsts: dict[str, Sample] = {}
        now_written: list[Sample] = []
        later: list[Sample] = []
        for sample in samples:
            if sample.content_hash in canonical:
                sample.duplicate_of_id = canonical[sample.content_hash]
            elif sample.content_hash in firsts:
                later.append(sample)
                continue
            else:
                firsts[sample.content_hash] = sample
            now_written.append(sample)
        Sample.objects.bulk_create(now_written)
        for sample in later:
            sample.duplicate_of_id = firsts[sample.content_hash].pk
        if later:
            Sample.objects.bulk_create(later)
        items_mark_done(
            [
                DoneRow(
                    item_id=answer.item.pk,
                    sample_id=sample.pk,
                    response_id=answer.usage.response_id,
                    input_tokens=answer.usage.input_tokens,
                    output_tokens=answer.usage.output_tokens,
                    cost=self._cost(answer.usage),
                )
                for answer, sample in zip(fresh, samples, strict=True)
            ]
        )
        return len(fresh)

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
        bridge = Bridge()
        bridge.run(self._run_llm(endpoint, seqs, bridge.db))

    async def _run_llm(self, endpoint: Endpoint, seqs: list[int], db: DatabaseCall) -> None:
        """Call the endpoint for ``seqs`` through ``max_concurrency`` lanes.

        A lane takes one of the endpoint's shared slots (Redis), claims an item, calls,
        hands the answer to the writer and lets the slot go; so an item's lease starts when
        it is about to be sent, and slots pass between the workers sharing the endpoint
        call by call. Lanes that want items at the same moment share one claim; answers
        are written in groups (``_Writer``). Runs on the process's loop (``aio``), through
        its pooled HTTP client for the endpoint; ``db`` runs database work on the thread
        that runs the chunk.
        """
        failure = functools.partial(db, self.record_failure)
        transient = functools.partial(db, self.record_transient)
        version = self.version
        client = AsyncLLMClient(
            endpoint,
            policy=RetryPolicy(
                max_attempts=self.conf.http_attempts, backoff_base=self.conf.backoff_seconds
            ),
            limiter=rate_limiter_for(self.generator),
            reuse_http=True,
        )
        limit = max(1, endpoint.max_concurrency)
        shared = concurrency_slots_for(self.generator)
        # One lane at a time polls for a shared slot; a slot a lane lets go wakes it.
        waiting = LocalWaiters()
        # Nothing is claimed ahead under a budget cap: an item claimed ahead is called even
        # if the answers before it reach the cap, past the overshoot the cap promises.
        ahead = 0 if self.check_budget else max(1, limit // 4)
        claims: Claims[tuple[GenerationItem, Work]] = Claims(
            seqs, functools.partial(db, self._claim), stopped=lambda: self.stopped, ahead=ahead
        )
        writer: Writer[Answer] = Writer(
            functools.partial(db, self.record_successes), size=max(1, limit // 2)
        )

        async def lane() -> None:
            while claims.more():
                if shared is None:
                    claimed = await claims.next()
                    if claimed is not None:
                        await call(*claimed)
                    continue
                store, key = shared
                async with store.hold(key, limit=limit, local=waiting):
                    claimed = await claims.next()
                    if claimed is not None:
                        await call(*claimed)

        async def call(item: GenerationItem, work: Work) -> None:
            try:
                plan = methods.llm_plan(
                    work, system=version.system, user=version.user, schema=version.output_schema
                )
                result = await client.complete_json(
                    messages=plan.messages,
                    schema=plan.schema,
                    schema_name=plan.schema_name,
                    max_tokens=plan.max_tokens,
                    temperature=plan.temperature,
                    seed=plan.seed,
                )
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
                # Not str(item): it reads the batch row, and this runs on the event loop.
                log.exception("Generation failed for batch %s item %s", self.batch.pk, item.seq)
                await failure(item, INTERNAL, f"{type(exc).__name__}: {exc}", Usage())
                return
            usage = Usage(result.input_tokens, result.output_tokens, result.response_id)
            try:
                generated = methods.llm_read(work, plan, result.data)
            except GenerationFailed as exc:
                await failure(item, exc.reason, exc.detail, usage)
                return
            self.answered(usage)
            writer.add(Answer(item, work, generated, usage))

        try:
            lanes = [lane() for _ in range(min(limit, len(seqs)))]
            results = await asyncio.gather(*lanes, return_exceptions=True)
            results.extend(await asyncio.gather(claims.close(), return_exceptions=True))
            # Answers already paid for are written even when a lane failed.
            results.append(await writer.close())
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
        if run.outcome.done:
            # Samples written in bulk send no post_save: ask once for the coverage recount
            # that the post_save receiver asks for one sample at a time.
            coverage_refresh_request(dataset_id=batch.dataset_id, delay=COVERAGE_GENERATION_DELAY)
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
