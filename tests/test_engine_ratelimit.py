"""The shared rate limiter: the algorithm on a fake clock, then real Redis across processes.

The behavioural tests run on every store that implements the protocol: `MemoryStore`, and the
database store of the embedded default (`datasets.services.generation.ratestore`) on the test
database, with the same fake clock. The database store's own tests across processes, on SQLite
and PostgreSQL, are in `test_generation_ratestore.py`.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import threading
import time
import uuid

import pytest

from synthaug.engine.ratelimit import MemoryStore, RateLimiter, RedisStore

REDIS_URL = os.environ.get("SYNTHAUG_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("database", marks=pytest.mark.django_db)])
def store_for(request):
    """Build the store under test on a given clock (the database store on the test database)."""
    if request.param == "memory":
        return MemoryStore
    # Imported here: the engine's own tests (and the processes they spawn) need no Django.
    from datasets.services.generation.ratestore import DatabaseStore

    return lambda clock: DatabaseStore(clock=clock)


@pytest.fixture
def limiter_on(store_for):
    def make(clock: Clock, *, rpm: int = 0, tpm: int = 0, window: float = 10.0) -> RateLimiter:
        return RateLimiter(store_for(clock), "endpoint", rpm, tpm, window=window, slack=0)

    return make


def worst_window(sends: list[tuple[float, int]], window: float) -> tuple[int, int]:
    """The most requests and the most tokens in any window `(t - window, t]` of the sends.

    A reservation exactly one window after another may come out a float rounding (1e-13 s)
    short of it: sends within a microsecond of the boundary count as outside.
    """
    sends = sorted(sends)
    most_requests = most_tokens = 0
    for end, _ in sends:
        inside = [tokens for t, tokens in sends if end - window + 1e-6 < t <= end]
        most_requests = max(most_requests, len(inside))
        most_tokens = max(most_tokens, sum(inside))
    return most_requests, most_tokens


# --- the algorithm, on each store and a fake clock ------------------------------------------------


def test_requests_per_window_are_capped_and_reservations_queue_up(limiter_on):
    clock = Clock()
    limiter = limiter_on(clock, rpm=3)
    assert [limiter.acquire(1) for _ in range(3)] == [0, 0, 0]
    # The next three wait for the first window to pass, the three after for the second.
    assert [limiter.acquire(1) for _ in range(4)] == [10, 10, 10, 20]
    clock.now += 10
    assert limiter.acquire(1) == 10  # the queue keeps its order: no one jumps it


def test_tokens_per_window_are_capped(limiter_on):
    clock = Clock()
    limiter = limiter_on(clock, tpm=100)
    assert limiter.acquire(60) == 0
    clock.now += 1
    assert limiter.acquire(30) == 0
    # 90 used: 20 more must wait until the 60 leave the window (9 s from now).
    assert limiter.acquire(20) == pytest.approx(9)


def test_settle_returns_unused_tokens_and_charges_overruns(limiter_on):
    clock = Clock()
    limiter = limiter_on(clock, tpm=100)
    assert limiter.acquire(90) == 0
    limiter.settle(10, 90)  # the response used far less than estimated
    assert limiter.acquire(80) == 0
    limiter.settle(85, 80)  # ... and this one a little more: 95 in the window now
    assert limiter.acquire(10) == pytest.approx(10)


def test_a_request_bigger_than_the_limit_waits_for_an_empty_window(limiter_on):
    clock = Clock()
    limiter = limiter_on(clock, tpm=100)
    assert limiter.acquire(10) == 0
    assert limiter.acquire(500) == pytest.approx(10)


def test_no_limits_means_no_waiting_and_no_store():
    class ExplodingStore:
        def reserve(self, *args, **kwargs):
            raise AssertionError("an unlimited limiter must not touch its store")

        adjust = reserve

    limiter = RateLimiter(ExplodingStore(), "free", rpm=0, tpm=0)
    assert limiter.acquire(10_000) == 0
    limiter.settle(5, 10_000)


@pytest.mark.parametrize("seed", range(5))
def test_random_traffic_never_exceeds_either_limit_in_any_window(seed, limiter_on):
    rng = random.Random(seed)
    clock = Clock()
    window, rpm, tpm = 10.0, 7, 300
    limiter = limiter_on(clock, rpm=rpm, tpm=tpm, window=window)
    sends = []
    for _ in range(400):
        clock.now += rng.expovariate(2.0)
        estimate = rng.choice((10, 40, 80, 150))
        send_at = clock.now + limiter.acquire(estimate)
        actual = rng.randint(estimate // 3, estimate)
        limiter.settle(actual, estimate)
        sends.append((send_at, actual))
    requests, tokens = worst_window(sends, window)
    assert requests <= rpm
    assert tokens <= tpm
    # And the limiter is not simply slow: traffic this heavy keeps it near a limit.
    duration = max(t for t, _ in sends) - min(t for t, _ in sends)
    assert len(sends) / (duration / window) > rpm * 0.5


def test_memory_store_is_safe_across_threads():
    window, rpm, tpm = 0.5, 6, 10_000
    limiter = RateLimiter(MemoryStore(), "threads", rpm, tpm, window=window, slack=0.02)
    sends: list[tuple[float, int]] = []
    lock = threading.Lock()
    until = time.monotonic() + 1.6

    def worker() -> None:
        while True:
            wait = limiter.acquire(1)
            if time.monotonic() + wait > until:
                return
            time.sleep(wait)
            with lock:
                sends.append((time.monotonic(), 1))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests, _ = worst_window(sends, window)
    assert requests <= rpm + 1
    assert len(sends) >= rpm * 2


# --- Redis, shared by threads and processes ------------------------------------------------------


@pytest.fixture
def redis_key():
    store = RedisStore(REDIS_URL)
    key = f"test-{uuid.uuid4().hex}"
    yield key
    store.clear(key)


@pytest.fixture(params=["redis", pytest.param("database", marks=pytest.mark.django_db)])
def shared_store(request):
    """A store shared by processes, on its real clock (Redis's, or the database server's)."""
    if request.param == "redis":
        store = RedisStore(REDIS_URL)
    else:
        from datasets.services.generation.ratestore import DatabaseStore

        store = DatabaseStore()
    key = f"test-{uuid.uuid4().hex}"
    yield store, key
    for suffix in ("", "-t"):
        store.clear(key + suffix)


def test_shared_stores_cap_requests_and_tokens(shared_store):
    store, key = shared_store
    limiter = RateLimiter(store, key, rpm=3, tpm=100, window=30, slack=0)
    assert [limiter.acquire(20) for _ in range(3)] == [0, 0, 0]
    assert 29 < limiter.acquire(20) <= 30
    tokens_only = RateLimiter(store, key + "-t", rpm=0, tpm=100, window=30, slack=0)
    assert tokens_only.acquire(70) == 0
    tokens_only.settle(10, 70)  # an over-estimate gives its unused tokens back
    assert tokens_only.acquire(80) == 0
    tokens_only.settle(95, 80)  # an overrun is charged: 105 in the window now
    assert 29 < tokens_only.acquire(1) <= 30


def test_redis_keys_expire_after_the_window(redis_key):
    store = RedisStore(REDIS_URL)
    RateLimiter(store, redis_key, rpm=5, tpm=50, window=2).acquire(10)
    ttls = [store.client.pttl(key) for key in store._keys(redis_key)]
    assert all(0 < ttl <= 2_250 + 1_000 for ttl in ttls)


def _hammer(
    url: str,
    key: str,
    limits: tuple[int, int, float],
    start_at: float,
    until: float,
    threads: int,
    seed: int,
    results: multiprocessing.Queue,
) -> None:
    """One worker process: `threads` threads acquiring, sleeping and 'sending' until `until`."""
    rpm, tpm, window = limits
    limiter = RateLimiter(RedisStore(url), key, rpm, tpm, window=window, slack=0.05)
    sends: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        time.sleep(max(0.0, start_at - time.time()))
        while True:
            estimate = rng.choice((20, 50, 100))
            wait = limiter.acquire(estimate)
            if time.time() + wait > until:
                return
            time.sleep(wait)
            actual = rng.randint(estimate // 2, estimate)
            with lock:
                sends.append((time.time(), actual))
            limiter.settle(actual, estimate)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put(sends)


def test_redis_limits_hold_across_processes_and_threads(redis_key):
    rpm, tpm, window = 8, 250, 1.0  # both bind: 8 requests average ~450 estimated tokens
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0  # spawned interpreters take a moment to start
    until = start_at + 4.0
    processes = [
        context.Process(
            target=_hammer,
            args=(REDIS_URL, redis_key, (rpm, tpm, window), start_at, until, 3, seed, results),
        )
        for seed in range(3)
    ]
    for process in processes:
        process.start()
    sends: list[tuple[float, int]] = []
    try:
        for _ in processes:
            sends.extend(results.get(timeout=60))
    except queue.Empty:
        pytest.fail("a worker process did not report back")
    finally:
        for process in processes:
            process.join(timeout=10)
    assert all(process.exitcode == 0 for process in processes)
    requests, tokens = worst_window(sends, window)
    assert requests <= rpm + 1
    assert tokens <= tpm
    # Not starved either: the token limit allows about 4 requests a second here (~20 in all).
    assert len(sends) >= 10
