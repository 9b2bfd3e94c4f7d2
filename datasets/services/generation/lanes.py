"""How a chunk's lanes share its work: claims (``Claims``) and writes (``Writer``).

A chunk calls an endpoint through up to ``max_concurrency`` lanes on one event loop, and
sends its database work to one thread (``aio.Bridge``): these two classes keep that work
to a few round trips per group of items, not several per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Claims[T]:
    """The chunk's seqs, handed out to lanes as what ``claim`` returns for them.

    Lanes that ask together share one claim, and up to ``ahead`` items are claimed before
    a lane asks (in the background, while the lanes' calls run): a lane holding a slot
    then finds its next item ready instead of waiting behind the chunk's other database
    work, which left the slot idle. Such an item's lease starts up to one call early.
    """

    def __init__(
        self,
        seqs: list[int],
        claim: Callable[[list[int]], Awaitable[list[T]]],
        *,
        stopped: Callable[[], bool],
        ahead: int,
    ) -> None:
        """``claim(seqs)`` returns what was won of ``seqs`` (possibly nothing); after
        ``stopped()`` turns true nothing more is claimed."""
        self.todo = list(reversed(seqs))
        self.claim = claim
        self.stopped = stopped
        self.ready: deque[T] = deque()
        self.ahead = ahead
        self.waiting = 0
        self.lock = asyncio.Lock()
        self.refill: asyncio.Task[None] | None = None

    def _open(self) -> bool:
        return bool(self.todo) and not self.stopped()

    def more(self) -> bool:
        """Whether an item may still come: ready, to be claimed, or being claimed."""
        refilling = self.refill is not None and not self.refill.done()
        return bool(self.ready) or self._open() or refilling

    async def _claim_more(self, count: int) -> None:
        """Claim up to ``count`` more seqs; call holding the lock."""
        group = [self.todo.pop() for _ in range(min(count, len(self.todo)))]
        self.ready.extend(await self.claim(group))

    async def _refill(self) -> None:
        async with self.lock:
            wanted = self.ahead - len(self.ready)
            if wanted > 0 and self._open():
                await self._claim_more(wanted)

    async def next(self) -> T | None:
        """The next thing claimed; None when none is left."""
        self.waiting += 1
        try:
            async with self.lock:
                while not self.ready and self._open():
                    await self._claim_more(self.waiting + self.ahead)
                claimed = self.ready.popleft() if self.ready else None
        finally:
            self.waiting -= 1
        if len(self.ready) < self.ahead and self._open() and not self.more_coming():
            self.refill = asyncio.ensure_future(self._refill())
        return claimed

    def more_coming(self) -> bool:
        return self.refill is not None and not self.refill.done()

    async def close(self) -> None:
        """Wait for a claim in flight (its items are then in ``ready``, and released)."""
        if self.refill is not None:
            await self.refill


class Writer[T]:
    """Writes answers in groups: at most ``size`` at once, at least every ``delay`` s.

    One write runs at a time; answers arriving meanwhile wait for the next, so under load
    the groups grow and the writes per answer shrink. An answer waiting here is paid for
    and its item still RUNNING: a worker that dies now loses it, and the reaper queues the
    item again (one call repeated, no sample lost or doubled).
    """

    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], *, size: int, delay: float = 0.25
    ) -> None:
        self.write = write
        self.size = size
        self.delay = delay
        self.pending: list[T] = []
        self.full = asyncio.Event()
        self.closing = False
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def add(self, answer: T) -> None:
        self.pending.append(answer)
        if len(self.pending) >= self.size:
            self.full.set()
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            if len(self.pending) < self.size and not self.closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.full.wait(), self.delay)
            self.full.clear()
            group, self.pending = self.pending, []
            try:
                await self.write(group)
            except Exception as exc:
                # The group's items stay RUNNING and the reaper queues them again; the
                # chunk reports the first such error when it ends.
                log.exception("Could not write %d answers; queued again later", len(group))
                self.error = self.error or exc

    async def close(self) -> BaseException | None:
        """Write what is left; the exception a write raised, if one did."""
        self.closing = True
        self.full.set()
        if self.task is not None:
            await self.task
        await self._drain()
        return self.error
