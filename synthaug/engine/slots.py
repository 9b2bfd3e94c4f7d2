"""An endpoint's concurrency limit, shared by every worker process that calls it.

Each chunk task bounds its own calls with an asyncio semaphore; that alone lets N worker
processes send N times an endpoint's ``max_concurrency``. `RedisSlots` is the shared bound: a
sorted set of holders scored by lease expiry, so a holder that died (SIGKILL, lost machine)
frees its slot when its lease runs out instead of leaking it for ever; a live holder renews
its lease while its call runs.

Acquiring polls: a Lua script takes a free slot atomically or says when the earliest lease
ends; the caller sleeps a short, jittered interval (never past that lease) and asks again.
Holders release as soon as their call returns, so under contention the wait is one poll
interval, small next to an LLM call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis

# KEYS: 1 holders (zset: holder id -> lease expiry, server time in ms).
# ARGV: limit, holder id, lease in ms.
# Returns 1 when the slot is taken, else 0.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
  return 1
end
return 0
"""

# KEYS: 1 holders. ARGV: holder id, lease in ms. Extends a live holder's lease.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
  return 1
end
return 0
"""


class LocalWaiters:
    """The waiters of one process for one key: one of them polls Redis at a time, and a
    slot released here wakes it at once instead of at its next poll."""

    def __init__(self) -> None:
        self.gate = asyncio.Lock()
        self.released = asyncio.Event()


class RedisSlots:
    """At most ``limit`` holders of ``key`` at once, across processes and machines."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "synthaug:slots:",
        poll: float = 0.01,
        max_poll: float = 0.05,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisSlots needs a redis URL or a client")
            client = redis.Redis.from_url(url)
        self.client = client
        self.prefix = prefix
        self.poll = poll
        self.max_poll = max_poll
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    def try_acquire(self, key: str, *, limit: int, holder: str, lease: float) -> bool:
        taken = self._acquire(
            keys=[self.prefix + key], args=[int(limit), holder, max(1, int(lease * 1000))]
        )
        return bool(taken)

    def renew(self, key: str, *, holder: str, lease: float) -> bool:
        return bool(self._renew(keys=[self.prefix + key], args=[holder, max(1, int(lease * 1000))]))

    def release(self, key: str, *, holder: str) -> None:
        self.client.zrem(self.prefix + key, holder)

    def holders(self, key: str) -> int:
        """How many live holders the key has (expired leases not counted)."""
        return int(self.client.zcard(self.prefix + key))

    @asynccontextmanager
    async def hold(
        self,
        key: str,
        *,
        limit: int,
        lease: float = 15.0,
        local: LocalWaiters | None = None,
    ) -> AsyncIterator[None]:
        """Wait for a slot of ``key`` (at most ``limit`` holders), hold it for the block.

        The lease is renewed every third of its length while the block runs, so a long call
        keeps its slot and a dead holder loses it within one ``lease``. Waiters that share
        ``local`` poll Redis one at a time (a process with many waiters sends one poll per
        interval, not one per waiter), and a slot one of them releases wakes the poller at
        once: without it a freed slot stayed idle for half a poll interval on average,
        about a tenth of a 200 ms call.
        """
        holder = uuid.uuid4().hex
        async with local.gate if local else contextlib.nullcontext():
            delay = self.poll
            while True:
                if local:
                    local.released.clear()
                if await asyncio.to_thread(
                    self.try_acquire, key, limit=limit, holder=holder, lease=lease
                ):
                    break
                pause = delay * random.uniform(0.5, 1.5)
                if local:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(local.released.wait(), pause)
                else:
                    await asyncio.sleep(pause)
                delay = min(delay * 1.5, self.max_poll)
        renewing = asyncio.create_task(self._keep(key, holder=holder, lease=lease))
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.to_thread(self.release, key, holder=holder)
            if local:
                local.released.set()

    async def _keep(self, key: str, *, holder: str, lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 3)
            await asyncio.to_thread(self.renew, key, holder=holder, lease=lease)
