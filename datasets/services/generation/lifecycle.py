"""A batch's life after creation: start, cancel, resume, retry an item, finish.

State machine (``Batch.Status``), every move a conditional UPDATE or made under the batch
row's lock, so two processes never both make the same move:

    DRAFT --start--> QUEUED --first claim--> RUNNING --all items settled--> CHECKING | FAILED
    CHECKING --every new sample checked--> READY (ready for review)
    QUEUED/RUNNING/DRAFT --cancel--> CANCELLED --resume--> QUEUED
    FAILED (with pending/cancelled items) --resume--> QUEUED
    CHECKING/READY/FAILED --item_retry--> RUNNING

CHECKING means every item is DONE, FAILED or CANCELLED and at least one is DONE; FAILED means
none is. ``batch_generation_finished`` runs once (after commit) when a batch becomes CHECKING
and queues the checking stage (``datasets.services.verification``), which moves it to READY.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from datasets.generation import methods
from datasets.models import Batch, GenerationItem, PromptVersion
from datasets.selectors.generation import slice_documents, slice_parents
from datasets.services.generation.batches import money
from datasets.services.generation.queue import enqueue_seqs

log = logging.getLogger(__name__)

State = GenerationItem.State
Status = Batch.Status

_RESUMABLE = (Status.CANCELLED, Status.FAILED)
_RETRYABLE = (Status.QUEUED, Status.RUNNING, Status.CHECKING, Status.READY, Status.FAILED)


# --- starting ------------------------------------------------------------------------------


def _items_for(batch: Batch, now: Any) -> list[GenerationItem]:
    """The batch's slots with their assignments, deterministic from ``batch.seed``."""
    count, seed, method = batch.requested_count, batch.seed, batch.method
    # lease_until on a PENDING item marks when it was last queued; the reaper reads it to
    # tell a batch waiting in the queue from one whose tasks were lost.
    if method in methods.PARENT_METHODS:
        parent_ids = list(
            slice_parents(dataset=batch.dataset, target_tags=batch.target_tags)
            .order_by()
            .values_list("pk", flat=True)
        )
        if not parent_ids:
            raise ValidationError(
                {"target_tags": "The target slice has no real samples left to work from."}
            )
        parents = methods.assign_parents(parent_ids, count=count, seed=seed)
        kinds = (
            methods.assign_kinds(batch.params["kinds"], count=count)
            if method == methods.ADVERSARIAL
            else None
        )
        return [
            GenerationItem(
                batch=batch,
                seq=seq,
                parent_id=parent,
                slot_values={"kind": kinds[seq]} if kinds else {},
                lease_until=now,
            )
            for seq, parent in enumerate(parents)
        ]
    if method == methods.GROUNDED:
        document_ids = slice_documents(dataset=batch.dataset, target_tags=batch.target_tags)
        if not document_ids:
            raise ValidationError({"method": "The dataset has no source documents left."})
        return [
            GenerationItem(
                batch=batch,
                seq=seq,
                source_document_id=document,
                slot_values={"pick": pick},
                lease_until=now,
            )
            for seq, (document, pick) in enumerate(
                methods.assign_documents(document_ids, count=count, seed=seed)
            )
        ]
    combos = methods.assign_slots(batch.params, count=count, seed=seed)
    return [
        GenerationItem(batch=batch, seq=seq, slot_values=values, lease_until=now)
        for seq, values in enumerate(combos)
    ]


def batch_start(*, batch: Batch, user: AbstractBaseUser | None, enqueue: bool = True) -> Batch:
    """DRAFT -> QUEUED: create the batch's items and queue them (after commit).

    Precondition: the caller checked that ``user`` may launch batches in the dataset. The
    prompt version becomes used (immutable). ``enqueue=False`` leaves the items for an
    in-process run (``batch_run_sync``: the command's ``--sync``, tests).
    """
    with transaction.atomic():
        now = timezone.now()
        moved = Batch.objects.filter(pk=batch.pk, status=Status.DRAFT).update(
            status=Status.QUEUED, started_at=now, finished_at=None, error=""
        )
        if not moved:
            current = Batch.objects.filter(pk=batch.pk).values_list("status", flat=True).first()
            raise ValidationError(f"Only a draft batch can start; this one is {current or 'gone'}.")
        batch = Batch.objects.select_related("dataset", "prompt_version").get(pk=batch.pk)
        items = _items_for(batch, now)
        GenerationItem.objects.bulk_create(items, batch_size=2000)
        if batch.prompt_version_id is not None:
            PromptVersion.objects.filter(pk=batch.prompt_version_id, used_at__isnull=True).update(
                used_at=now
            )
        if enqueue:
            enqueue_seqs(batch.pk, [item.seq for item in items])
    batch.refresh_from_db()
    return batch


# --- stopping and going again ---------------------------------------------------------------


def _locked(batch: Batch) -> Batch:
    """The batch row, locked until the transaction ends (call inside transaction.atomic)."""
    return Batch.objects.select_for_update().get(pk=batch.pk)


def batch_cancel(*, batch: Batch, user: AbstractBaseUser | None) -> Batch:
    """Stop a batch: pending items become CANCELLED; items being generated still finish.

    Precondition: the caller checked that ``user`` may launch batches in the dataset.
    """
    who = getattr(user, "username", "") or "someone"
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status not in (Status.DRAFT, Status.QUEUED, Status.RUNNING):
            raise ValidationError(
                f"Only a batch that has not finished can be cancelled; this one is "
                f"{locked.get_status_display().lower()}."
            )
        now = timezone.now()
        GenerationItem.objects.filter(batch=locked, state=State.PENDING).update(
            state=State.CANCELLED,
            error_reason="cancelled",
            error_detail=f"cancelled by {who} before it was generated",
            finished_at=now,
            lease_until=None,
        )
        Batch.objects.filter(pk=locked.pk).update(status=Status.CANCELLED, finished_at=now)
    batch.refresh_from_db()
    return batch


def batch_resume(*, batch: Batch, user: AbstractBaseUser | None, enqueue: bool = True) -> Batch:
    """A CANCELLED or FAILED batch with items not generated goes back to QUEUED.

    Cancelled items become pending again and every pending item is queued. Failed items are
    left alone: ``item_retry`` is the deliberate way to try one again.
    """
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status not in _RESUMABLE:
            raise ValidationError(
                f"Only a cancelled or failed batch can resume; this one is "
                f"{locked.get_status_display().lower()}."
            )
        now = timezone.now()
        GenerationItem.objects.filter(batch=locked, state=State.CANCELLED).update(
            state=State.PENDING,
            error_reason="",
            error_detail="",
            finished_at=None,
            lease_until=now,
            worker="",
        )
        seqs = list(
            GenerationItem.objects.filter(batch=locked, state=State.PENDING).values_list(
                "seq", flat=True
            )
        )
        if not seqs:
            raise ValidationError(
                "Nothing is left to resume: every item was generated or failed. Retry failed "
                "items one by one."
            )
        GenerationItem.objects.filter(batch=locked, state=State.PENDING).update(lease_until=now)
        # started_at restarts so the time-left estimate measures this run, not the pause.
        Batch.objects.filter(pk=locked.pk).update(
            status=Status.QUEUED, finished_at=None, error="", started_at=now
        )
        if enqueue:
            enqueue_seqs(locked.pk, seqs)
    batch.refresh_from_db()
    return batch


def item_retry(
    *, item: GenerationItem, user: AbstractBaseUser | None, enqueue: bool = True
) -> GenerationItem:
    """A FAILED item goes back to PENDING with a fresh set of attempts, and is queued.

    A batch that had finished generating (CHECKING, READY or FAILED) goes back to RUNNING.
    The checking stage runs again when it finishes and checks only the samples that have
    not been checked (a running check of the others carries on and stores its results).
    """
    with transaction.atomic():
        locked = _locked(item.batch)
        if locked.status not in _RETRYABLE:
            raise ValidationError(
                f"Items of a {locked.get_status_display().lower()} batch cannot be retried"
                + ("; resume the batch instead." if locked.status == Status.CANCELLED else ".")
            )
        now = timezone.now()
        moved = GenerationItem.objects.filter(pk=item.pk, state=State.FAILED).update(
            state=State.PENDING,
            attempts=0,
            error_reason="",
            error_detail="",
            finished_at=None,
            lease_until=now,
            worker="",
        )
        if not moved:
            raise ValidationError("Only a failed item can be retried.")
        if locked.status in (Status.CHECKING, Status.READY, Status.FAILED):
            Batch.objects.filter(pk=locked.pk).update(status=Status.RUNNING, finished_at=None)
        if enqueue:
            enqueue_seqs(locked.pk, [item.seq])
    item.refresh_from_db()
    return item


# --- finishing ------------------------------------------------------------------------------


def batch_generation_finished(batch: Batch, *, enqueue_checks: bool = True) -> None:
    """Called once (after commit) when a batch's generation ends and it becomes CHECKING.

    Queues the checking stage (``batch_check_chunk``); ``enqueue_checks=False`` leaves it to
    the caller (``batch_run_sync`` runs it in-process). Should the task be lost, the reaper
    queues a CHECKING batch that makes no progress again.
    """
    log.info("Batch %s finished generating; checking its samples.", batch.pk)
    if enqueue_checks:
        from datasets.services.verification.queue import enqueue_checks as send

        send(batch.pk)


def batch_finish_if_complete(*, batch_id: int, enqueue_checks: bool = True) -> str | None:
    """Settle a QUEUED/RUNNING batch whose items are all DONE, FAILED or CANCELLED.

    Returns the new status (CHECKING or FAILED), or None when the batch is not finished (or
    was settled by someone else). Under the batch row's lock, so a concurrent ``item_retry``
    either lands first (and the batch stays running) or finds the batch finished and
    reopens it.
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status not in (Status.QUEUED, Status.RUNNING):
            return None
        items = GenerationItem.objects.filter(batch_id=batch_id)
        if items.filter(state__in=(State.PENDING, State.RUNNING)).exists():
            return None
        if not items.exists():
            return None
        status = Status.CHECKING if items.filter(state=State.DONE).exists() else Status.FAILED
        message = "No item was generated; the reasons are listed by item."
        now = timezone.now()
        Batch.objects.filter(pk=batch_id).update(
            status=status,
            finished_at=now,
            checks_started_at=now if status == Status.CHECKING else F("checks_started_at"),
            error=Case(
                When(error="", then=Value(message)),
                default=F("error"),
                output_field=models.TextField(),
            )
            if status == Status.FAILED
            else F("error"),
        )
        if status == Status.CHECKING:
            batch.status = status
            transaction.on_commit(
                lambda: batch_generation_finished(batch, enqueue_checks=enqueue_checks)
            )
    return status


def batch_stop_for_budget(*, batch_id: int, spent: Decimal, cap: Decimal) -> int:
    """Cancel the pending items of a batch that reached its cap; returns how many."""
    with transaction.atomic():
        Batch.objects.select_for_update().filter(pk=batch_id).first()
        now = timezone.now()
        cancelled = GenerationItem.objects.filter(batch_id=batch_id, state=State.PENDING).update(
            state=State.CANCELLED,
            error_reason="budget",
            error_detail=f"not generated: the batch reached its budget cap ({spent} of {cap})",
            finished_at=now,
            lease_until=None,
        )
        Batch.objects.filter(pk=batch_id).filter(Q(error="")).update(
            error=f"Stopped at the budget cap: {money(spent)} spent of {cap}; "
            f"{cancelled} item(s) not generated."
        )
    return cancelled
