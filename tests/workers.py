"""Run a real Celery worker process against the test database and broker.

Use with ``transactional_db`` so what the test writes is committed and visible to the
worker, which connects to the same test database through ``DATABASE_URL``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url_of_test_db() -> str:
    """A DATABASE_URL naming the database pytest-django created for this run."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@contextmanager
def celery_worker(
    *,
    concurrency: int = 1,
    queues: str = "celery",
    extra_env: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``celery worker`` and wait until it is ready; stop it (SIGTERM, then SIGKILL).

    By default the worker uses the test database and broker (plus ``extra_env``); ``env``
    replaces the whole environment instead, e.g. for a worker on the embedded default
    (SQLite and the file broker under ``SYNTHAUG_VAR_DIR``), which needs ``DATABASE_URL``
    and ``CELERY_BROKER_URL`` absent rather than set. Its log is ``proc.log``.
    """
    if env is None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url_of_test_db(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "SYNTHAUG_VAR_DIR": str(settings.VAR_DIR),
            **(extra_env or {}),
        }
    env = {**env, "PYTHONUNBUFFERED": "1"}
    log_dir = Path(env["SYNTHAUG_VAR_DIR"])
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"worker-{os.getpid()}-{time.time_ns()}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "synthaug",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "-Q",
            queues,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{time.time_ns()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: "ready." in _read(log), timeout=60, what="the worker to start", log=log)
        proc.log = log  # type: ignore[attr-defined]
        proc.log_text = lambda: _read(log)  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _read(log) -> str:
    log.flush()
    with open(log.name) as fh:
        return fh.read()


def _wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, log=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = _read(log)[-3000:] if log is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def wait_for(predicate: Callable[[], bool], *, timeout: float = 60, what: str = "it") -> None:
    _wait_for(predicate, timeout=timeout, what=what)
