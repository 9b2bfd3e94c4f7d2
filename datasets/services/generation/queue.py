"""Sending chunk tasks, and the generation settings every part reads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    chunk_size: int
    lease_seconds: int
    stall_seconds: int
    max_attempts: int
    http_attempts: int
    backoff_seconds: float
    retry_delay_seconds: float
    retry_delay_max_seconds: float


def conf() -> GenerationSettings:
    """The SYNTHAUG_GENERATION_* settings, read at call time (tests override them)."""
    return GenerationSettings(
        chunk_size=max(1, int(getattr(settings, "SYNTHAUG_GENERATION_CHUNK_SIZE", 64))),
        lease_seconds=int(getattr(settings, "SYNTHAUG_GENERATION_LEASE_SECONDS", 300)),
        stall_seconds=int(getattr(settings, "SYNTHAUG_GENERATION_STALL_SECONDS", 600)),
        max_attempts=max(1, int(getattr(settings, "SYNTHAUG_GENERATION_MAX_ATTEMPTS", 3))),
        http_attempts=max(1, int(getattr(settings, "SYNTHAUG_GENERATION_HTTP_ATTEMPTS", 3))),
        backoff_seconds=float(getattr(settings, "SYNTHAUG_GENERATION_BACKOFF_SECONDS", 0.5)),
        retry_delay_seconds=float(
            getattr(settings, "SYNTHAUG_GENERATION_RETRY_DELAY_SECONDS", 10.0)
        ),
        retry_delay_max_seconds=float(
            getattr(settings, "SYNTHAUG_GENERATION_RETRY_DELAY_MAX_SECONDS", 300.0)
        ),
    )


def chunked(seqs: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for seq in seqs:
        chunk.append(seq)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def enqueue_seqs(batch_id: int, seqs: list[int], *, countdown: float = 0) -> None:
    """Send chunk tasks for ``seqs`` once the current transaction commits.

    On commit, so a worker never looks for items that are not committed yet; outside a
    transaction it sends at once. A broker that is down is logged, not raised: the items are
    PENDING in the database, and the reaper queues a batch that makes no progress again.
    """
    from datasets.tasks import batch_generate_chunk

    chunks = list(chunked(sorted(seqs), conf().chunk_size))

    def send() -> None:
        for chunk in chunks:
            try:
                batch_generate_chunk.apply_async(
                    (batch_id, chunk), countdown=countdown if countdown > 0 else None
                )
            except BrokerError:
                log.exception(
                    "Could not queue batch %s (%d items); the reaper will queue them again",
                    batch_id,
                    len(seqs),
                )
                return

    if chunks:
        transaction.on_commit(send)
