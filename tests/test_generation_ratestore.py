"""The rate limiter's database store (the embedded default's): shared by processes, pruned.

The spawned processes import this module before they set Django up: keep Django imports at
module level out of it.

The behavioural tests every store passes are in `test_engine_ratelimit.py`. Here: several
worker processes reserving at the same moment, each with its own connection, on SQLite (a
fresh embedded-default database, migrated) and on PostgreSQL (the test database, committed
with `transactional_db`). Each process records the absolute send times the store reserved on
its one shared clock, so the check is exact: no window of the limiter's length holds more than
`rpm` requests or `tpm` tokens, whichever process made them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import subprocess
import sys
import time
import uuid

import pytest

from synthaug.engine.ratelimit import RateLimiter
from tests.test_embedded_default import ROOT, _env, _manage
from tests.test_engine_ratelimit import Clock, worst_window

PROCESSES = 4
PER_PROCESS = 15


def _reserve_burst(
    env: dict[str, str | None],
    key: str,
    limits: tuple[int, int, float],
    count: int,
    seed: int,
    ready,
    go,
    results: multiprocessing.Queue,
) -> None:
    """One worker process: wait for the others, then reserve `count` sends as fast as it can."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
    import django

    django.setup()
    from django.db import connection

    from datasets.services.generation.ratestore import DatabaseStore

    rpm, tpm, window = limits
    store = DatabaseStore()
    rng = random.Random(seed)
    reserved: list[tuple[float, int]] = []
    errors: list[str] = []
    connection.ensure_connection()
    ready.release()
    go.wait()
    for _ in range(count):
        tokens = rng.choice((10, 30, 60))
        try:
            now, at = store.reserve_at(
                key, rpm=rpm, tpm=tpm, window=window, tokens=tokens, entry_id=uuid.uuid4().hex
            )
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(repr(exc))
            continue
        if at < now:
            errors.append(f"reserved {at} before now {now}")
        reserved.append((at, tokens))
    results.put({"vendor": connection.vendor, "reserved": reserved, "errors": errors})


def _burst_from_processes(env: dict[str, str | None], key: str, limits) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Semaphore(0)
    go = context.Event()
    processes = [
        context.Process(
            target=_reserve_burst,
            args=(env, key, limits, PER_PROCESS, seed, ready, go, results),
        )
        for seed in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes: list[dict] = []
    try:
        for _ in processes:  # every process connected: now they reserve at the same moment
            deadline = time.monotonic() + 180
            while not ready.acquire(timeout=1):
                dead = [p.exitcode for p in processes if p.exitcode is not None]
                assert not dead, f"a worker process died before it was ready: {dead}"
                assert time.monotonic() < deadline, "a worker process did not start"
        go.set()
        for _ in processes:
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail("a worker process did not report back")
    finally:
        for process in processes:
            process.join(timeout=30)
    assert all(process.exitcode == 0 for process in processes)
    return outcomes


def _assert_limits_held(outcomes: list[dict], vendor: str, limits) -> None:
    rpm, tpm, window = limits
    assert {outcome["vendor"] for outcome in outcomes} == {vendor}
    assert [error for outcome in outcomes for error in outcome["errors"]] == []
    reserved = [send for outcome in outcomes for send in outcome["reserved"]]
    assert len(reserved) == PROCESSES * PER_PROCESS
    requests, tokens = worst_window(reserved, window)
    assert requests <= rpm
    assert tokens <= tpm
    # The store queues the requests rather than spreading them needlessly: 60 requests at 5
    # per window take 12 windows, and the token limit (~33 tokens each, 200 a window) ~10.
    span = max(at for at, _ in reserved) - min(at for at, _ in reserved)
    assert span <= (len(reserved) / rpm) * window + window


LIMITS = (5, 200, 1.0)


@pytest.mark.slow
def test_limits_hold_across_processes_on_sqlite(tmp_path):
    _manage(tmp_path, "migrate", "--noinput", "-v0")
    env: dict[str, str | None] = dict(_env(tmp_path))
    env["DATABASE_URL"] = None
    env["CELERY_BROKER_URL"] = None
    key = f"sqlite-{uuid.uuid4().hex}"
    outcomes = _burst_from_processes(env, key, LIMITS)
    _assert_limits_held(outcomes, "sqlite", LIMITS)


@pytest.mark.slow
def test_limits_hold_across_processes_on_postgresql(transactional_db):
    from tests.workers import database_url_of_test_db

    env: dict[str, str | None] = {"DATABASE_URL": database_url_of_test_db()}
    key = f"postgres-{uuid.uuid4().hex}"
    outcomes = _burst_from_processes(env, key, LIMITS)
    _assert_limits_held(outcomes, "postgresql", LIMITS)


@pytest.mark.django_db
def test_reservations_that_left_the_window_are_deleted():
    from datasets.models import RateReservation
    from datasets.services.generation.ratestore import DatabaseStore

    clock = Clock()
    store = DatabaseStore(clock=clock)
    limiter = RateLimiter(store, "pruned", rpm=100, tpm=0, window=10, slack=0)
    for _ in range(30):
        assert limiter.acquire(5) == 0
        clock.now += 1
    # Each reservation deleted those older than one window: ten seconds' worth are left.
    assert RateReservation.objects.filter(limit_id="pruned").count() == 10
    other = RateLimiter(store, "other", rpm=100, tpm=0, window=10, slack=0)
    other.acquire(5)
    assert RateReservation.objects.filter(limit_id="other").count() == 1
    # A settle for a reservation that was pruned changes nothing and does not fail.
    store.adjust("pruned", entry_id="gone", delta=50)
    store.clear("pruned")
    assert not RateReservation.objects.filter(limit_id="pruned").exists()


@pytest.mark.django_db
def test_the_embedded_default_broker_gets_the_database_store():
    from datasets.services.generation.endpoints import _rate_store
    from datasets.services.generation.ratestore import DatabaseStore
    from synthaug.engine.ratelimit import RedisStore

    assert isinstance(_rate_store("filesystem://"), DatabaseStore)
    assert isinstance(_rate_store("redis://127.0.0.1:6379/5"), RedisStore)


BATCH_SCRIPT = r"""
import json, os, sys, time, django
os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
django.setup()
from django.db import connection
from datasets.models import GenerationItem, ModelEndpoint
from datasets.services.datasets import dataset_create
from datasets.services.generation import batch_start
from tests.test_generation_support import create

assert connection.vendor == "sqlite"
dataset = dataset_create(name="Embedded", slug="embedded", created_by=None,
                         tag_dimensions={"topic": ["law"], "locale": []})
endpoint = ModelEndpoint.objects.create(
    name="limited", base_url=sys.argv[1], model="scripted-model", family="scripted",
    timeout_seconds=5, max_concurrency=4, requests_per_minute=int(sys.argv[2]),
)
batch = create(dataset, None, generator=endpoint, method="template", requested_count=24,
               checks=["format"], params={
                   "template": "What does {country} law say about {subject}?",
                   "answer": "It depends on the {subject} rules of {country}.",
                   "slots": {"country": ["France", "Spain", "Italy", "Peru", "Chile", "Ghana"],
                             "subject": ["tenancy", "inheritance", "contracts", "fishing"]},
               })
batch_start(batch=batch, user=None)
items = GenerationItem.objects.filter(batch=batch)
deadline = time.monotonic() + 240
while items.filter(state__in=["pending", "running"]).exists() and time.monotonic() < deadline:
    time.sleep(0.5)
print(json.dumps({
    "states": sorted(items.values_list("state", flat=True)),
    # A claim's worker is "node:pid:token": the pool processes that generated.
    "processes": sorted({w.split(":")[-2] for w in items.values_list("worker", flat=True)}),
}))
"""


@pytest.mark.slow
def test_an_embedded_default_worker_pool_keeps_an_endpoints_limit(tmp_path, llm_server):
    # The server allows 4 requests per 1.5 s; the app's window is 2 s (plus its slack): the
    # margin absorbs a sender that wakes a little late on a loaded machine. Two worker
    # processes that each kept their own window would send up to 8 per window, and the
    # server would answer 429.
    # Imported here: the processes the other tests spawn import this module before Django.
    from tests.test_generation_support import answering
    from tests.workers import celery_worker

    rpm = 4
    llm_server.respond_with(answering)
    llm_server.limits(rpm=rpm, window=1.5)
    _manage(tmp_path, "migrate", "--noinput", "-v0")
    env = {
        **_env(tmp_path),
        "SYNTHAUG_RATE_WINDOW_SECONDS": "2",
        "SYNTHAUG_GENERATION_CHUNK_SIZE": "3",
    }
    with celery_worker(concurrency=2, env=env) as worker:
        result = subprocess.run(
            [sys.executable, "-c", BATCH_SCRIPT, llm_server.base_url, str(rpm)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        log = worker.log_text()
    assert result.returncode == 0, result.stdout + result.stderr + log[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["states"] == ["done"] * 24, log[-3000:]
    assert "filesystem" in log  # the worker really used the embedded broker
    outcomes = [r.outcome for r in llm_server.chat_requests]
    assert outcomes.count("rate_limited") == 0
    assert outcomes.count("answer") == 24
    # Both pool processes generated: the limit held across processes, not within one.
    assert len(outcome["processes"]) == 2, outcome["processes"]


@pytest.mark.django_db(transaction=True)
def test_a_threads_connection_follows_conn_max_age_after_each_reservation():
    """The async client reserves from executor threads that nothing else ever closes."""
    import threading

    from django.db import connections

    from datasets.models import RateReservation
    from datasets.services.generation.ratestore import DatabaseStore

    store = DatabaseStore()
    seen: dict[str, bool] = {}
    settings_dict = connections["default"].settings_dict  # shared by every thread's wrapper
    max_age = settings_dict["CONN_MAX_AGE"]

    def reserve_in_a_thread() -> None:
        try:
            store.reserve("threaded", rpm=5, tpm=0, window=60, tokens=1, entry_id="a")
            seen["open_after_reserve"] = connections["default"].connection is not None
            store.adjust("threaded", entry_id="a", delta=4)
            seen["open_after_adjust"] = connections["default"].connection is not None
        finally:
            connections["default"].close()

    settings_dict["CONN_MAX_AGE"] = 0
    try:
        thread = threading.Thread(target=reserve_in_a_thread)
        thread.start()
        thread.join(30)
    finally:
        settings_dict["CONN_MAX_AGE"] = max_age
    assert seen == {"open_after_reserve": False, "open_after_adjust": False}
    assert RateReservation.objects.get(limit_id="threaded").tokens == 5
