"""Shared concurrency slots on real Redis: the bound holds across processes, dead holders expire."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid

from synthaug.engine.slots import LocalWaiters, RedisSlots

REDIS_URL = os.environ.get("SYNTHAUG_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _hold_many(key: str, limit: int, calls: int, hold: float, out) -> None:
    slots = RedisSlots(REDIS_URL)

    async def one() -> None:
        async with slots.hold(key, limit=limit, lease=30):
            out.put(("in", time.time()))
            await asyncio.sleep(hold)
            out.put(("out", time.time()))

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(calls)))

    asyncio.run(main())


def test_the_bound_holds_across_processes() -> None:
    key = f"test:{uuid.uuid4().hex}"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    # Three processes, each wanting 8 calls at once, share 5 slots.
    procs = [ctx.Process(target=_hold_many, args=(key, 5, 8, 0.15, out)) for _ in range(3)]
    for proc in procs:
        proc.start()
    events = [out.get(timeout=60) for _ in range(3 * 8 * 2)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    # Sweep the events in time order: "out" before "in" at equal times.
    events.sort(key=lambda event: (event[1], event[0] == "in"))
    inside = most = 0
    for kind, _ in events:
        inside += 1 if kind == "in" else -1
        most = max(most, inside)
    assert most == 5
    assert RedisSlots(REDIS_URL).holders(key) == 0


def test_a_dead_holders_slot_frees_when_its_lease_ends() -> None:
    slots = RedisSlots(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"
    assert slots.try_acquire(key, limit=1, holder="dead", lease=0.3)
    assert not slots.try_acquire(key, limit=1, holder="alive", lease=5)
    time.sleep(0.35)
    assert slots.try_acquire(key, limit=1, holder="alive", lease=5)
    assert slots.holders(key) == 1
    slots.release(key, holder="alive")
    assert slots.holders(key) == 0


def test_a_waiter_gets_the_slot_soon_after_release() -> None:
    slots = RedisSlots(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"

    async def main() -> float:
        async def first() -> None:
            async with slots.hold(key, limit=1, lease=5):
                await asyncio.sleep(0.2)

        async def second() -> float:
            await asyncio.sleep(0.01)
            start = time.monotonic()
            async with slots.hold(key, limit=1, lease=5):
                return time.monotonic() - start

        _, waited = await asyncio.gather(first(), second())
        return waited

    waited = asyncio.run(main())
    # It waited for the holder (about 0.19 s) and not much more than one poll interval after.
    assert 0.15 <= waited <= 0.35


def test_a_live_holder_keeps_its_slot_past_the_lease() -> None:
    slots = RedisSlots(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"

    async def main() -> bool:
        async with slots.hold(key, limit=1, lease=0.3):
            await asyncio.sleep(0.7)  # more than two leases: renewed meanwhile
            return slots.try_acquire(key, limit=1, holder="other", lease=5)

    assert asyncio.run(main()) is False
    assert slots.holders(key) == 0


def test_a_slot_released_in_the_process_wakes_its_waiter_at_once() -> None:
    # Polls two seconds apart: only the release's wake-up lets the waiter in sooner.
    slots = RedisSlots(REDIS_URL, poll=2.0, max_poll=2.0)
    key = f"test:{uuid.uuid4().hex}"
    waiters = LocalWaiters()

    async def main() -> float:
        held = asyncio.Event()

        async def first() -> None:
            async with slots.hold(key, limit=1, lease=30, local=waiters):
                held.set()
                await asyncio.sleep(0.3)

        async def second() -> float:
            await held.wait()
            asked = time.monotonic()
            async with slots.hold(key, limit=1, lease=30, local=waiters):
                return time.monotonic() - asked

        _, waited = await asyncio.gather(first(), second())
        return waited

    waited = asyncio.run(main())
    # The holder let go after 0.3 s; the next poll would have come after at least 1 s.
    assert 0.25 <= waited < 0.9
    assert slots.holders(key) == 0
