"""Generation benchmarks: real Celery workers on Redis and PostgreSQL against the scripted
OpenAI-compatible server, each figure beside its baseline from the same run.

    make bench BENCH_ARGS="generation"                       # all three parts (about 6 minutes)
    make bench BENCH_ARGS="generation --parts latency"       # one part

latency
    A ``--calls`` batch (2,000) against a server answering every call after ``--latency``
    (200 ms), no limits, endpoint concurrency ``--concurrency`` (16). Wall time against the
    ideal ``calls x latency / concurrency`` (target <= 1.25x), and the workers' own CPU per
    call (target <= 5 ms), from the worker processes' rusage minus an idle worker's start and
    stop measured in the same run.
ratelimit
    The server enforces a tokens-per-window limit (the window shortened to ``--window`` seconds
    for both the server and the app, SYNTHAUG_RATE_WINDOW_SECONDS). The app's batch against a
    naive fixed pool of 16 threads that send the same requests and retry 429s and 5xx with
    exponential backoff (1, 2, 4, 8 s, five attempts), measured one after the other. Completed
    items per window (target >= 1.5x the pool), share of the token budget used (>= 95%), share
    of the app's calls answered 429 (<= 1%).
faults
    ``--fault-items`` (2,000) against a server that injects 10% 429, 5% 5xx, 5% timeouts and
    5% truncated JSON, drawn afresh for every call, and a 400 for 1% of request bodies, on
    every call of that body. A 400 is a property of the request (the server cannot accept what
    was sent), so a real server refuses a retry of the same request too; drawing it per call,
    as earlier runs did, let a retry of a good request draw a fresh 400, which no server does,
    and failed ~1.35% of items (one draw per call, ~1.35 calls per item) instead of the 1% of
    requests that are bad. Transient faults and truncation are drawn per call because a real
    provider's overloads and sampled output do vary between tries. At least 99% of items
    complete, every other item failed with its reason, none left pending, HTTP calls at most
    1.6x the items. Printed: failures per reason, the server's outcomes per call, and the share
    completed of the items whose request the server accepts (the 400s are the request's fault,
    not the app's; 1% of bodies refused leaves the 99% target no other loss to spare).

The server runs in a child process, so its CPU is not the app's. Results go to
bench/out/generation.json as well.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
# Overridable so that two checkouts can run this benchmark at once without sharing a database
# or a queue (each worker would take the other run's tasks).
BENCH_DB = os.environ.get("BENCH_GENERATION_DB", "synthaug_bench_generation")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
sys.path.insert(0, str(ROOT))

PROMPT_SLOTS = {
    "country": [f"Country{i}" for i in range(50)],
    "subject": [f"subject{i}" for i in range(40)],
}


# --- the scripted server, in its own process ------------------------------------------------


def _answer(body: dict[str, Any]) -> dict[str, str]:
    text = json.dumps(body.get("messages", []))[-200:]
    return {"question": f"Please tell me about {abs(hash(text)) % 10**9}", "answer": "It depends."}


def _server_main(conn, config: dict[str, Any]) -> None:
    from tests.llm_server import ScriptedLLMServer, prompt_tokens

    server = ScriptedLLMServer().start()
    server.respond_with(_answer)
    server.latency(config.get("latency", 0.0))
    if config.get("tpm") or config.get("rpm"):
        server.limits(rpm=config.get("rpm"), tpm=config.get("tpm"), window=config["window"])
    if config.get("faults"):
        server.faults(**config["faults"])
    conn.send(server.base_url)
    while True:
        command = conn.recv()
        if command == "stats":
            chats = server.chat_requests
            outcomes: dict[str, int] = {}
            admitted: list[tuple[float, int]] = []
            for record in chats:
                outcomes[record.outcome] = outcomes.get(record.outcome, 0) + 1
                if record.outcome != "rate_limited":
                    tokens = prompt_tokens(record.body) + int(record.body.get("max_tokens") or 0)
                    admitted.append((record.time, tokens))
            admitted_tokens = sum(tokens for _, tokens in admitted)
            sample = chats[0].body if chats else None
            conn.send(
                {
                    "calls": len(chats),
                    "outcomes": outcomes,
                    "admitted_tokens": admitted_tokens,
                    "closest_s": _closest(admitted, config.get("tpm") or 0),
                    "max_in_flight": server.max_in_flight,
                    "sample_body": sample,
                    "arrivals": sorted(record.time for record in chats),
                }
            )
        elif command == "reset":
            server.reset()
            server.respond_with(_answer)
            server.latency(config.get("latency", 0.0))
            if config.get("tpm") or config.get("rpm"):
                server.limits(rpm=config.get("rpm"), tpm=config.get("tpm"), window=config["window"])
            conn.send("ok")
        else:
            server.stop()
            conn.send("bye")
            return


def _closest(admitted: list[tuple[float, int]], tpm: int) -> float | None:
    """The shortest span between an admitted request and the earlier one that had to leave
    the window for it to fit the token limit (the server admits it only if that span is over
    the window). Its distance above the window is how much of the limiter's slack the
    senders' lateness left unused; below it, the request was answered 429."""
    if not tpm:
        return None
    admitted = sorted(admitted)
    closest = None
    for i, (arrived, tokens) in enumerate(admitted):
        total = tokens
        for before in range(i - 1, -1, -1):
            total += admitted[before][1]
            if total > tpm:
                span = arrived - admitted[before][0]
                closest = span if closest is None else min(closest, span)
                break
    return None if closest is None else round(closest, 4)


class Server:
    def __init__(self, **config: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_server_main, args=(child, config), daemon=True)
        self.proc.start()
        self.base_url = self.conn.recv()

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def close(self) -> None:
        self.ask("stop")
        self.proc.join(timeout=10)


# --- the app: database, worker, batch -------------------------------------------------------


def _database() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base.startswith("postgres"):
        raise SystemExit("The generation benchmark measures PostgreSQL: set DATABASE_URL.")
    server = base.rsplit("/", 1)[0]
    subprocess.run(["psql", base, "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=True)
    subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
    url = f"{server}/{BENCH_DB}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DATABASE_URL": url},
    )
    return url


def _django(database_url: str, extra_env: dict[str, str]) -> None:
    os.environ.update(extra_env)
    os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = BROKER
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthaug.settings")
    import django

    django.setup()


class Worker:
    """``celery worker`` as a child; its CPU (and its pool's) read from wait4 when it stops."""

    def __init__(self, database_url: str, extra_env: dict[str, str], concurrency: int) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        self.log_path = OUT / f"generation-worker-{time.time_ns()}.log"
        self.log = open(self.log_path, "w+")  # noqa: SIM115
        env = {
            **os.environ,
            **extra_env,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": BROKER,
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "synthaug",
                "worker",
                "--loglevel=WARNING",
                f"--concurrency={concurrency}",
                "--pool=prefork",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench-{time.time_ns()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from synthaug.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return
        raise SystemExit(f"The worker did not start; see {self.log_path}")

    def stop(self) -> float:
        """Stop the worker (warm shutdown); return its CPU seconds, pool included."""
        os.kill(self.proc.pid, signal.SIGTERM)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = status
        self.log.close()
        return usage.ru_utime + usage.ru_stime


def _dataset():
    from datasets.services.datasets import dataset_create

    slug = f"bench-{time.time_ns()}"
    return dataset_create(
        name=slug,
        slug=slug,
        created_by=None,
        schema={},
        tag_dimensions={"topic": ["law"], "locale": []},
    )


def _batch(base_url: str, count: int, *, concurrency: int, tpm: int = 0, timeout: float = 30):
    from datasets.models import Batch, ModelEndpoint
    from datasets.services.generation import batch_create, offline_endpoints

    _, judge = offline_endpoints()
    endpoint = ModelEndpoint.objects.create(
        name=f"scripted-{time.time_ns()}",
        base_url=base_url,
        model="scripted-model",
        family="scripted",
        timeout_seconds=timeout,
        max_concurrency=concurrency,
        tokens_per_minute=tpm,
    )
    return batch_create(
        dataset=_dataset(),
        created_by=None,
        method=Batch.Method.TEMPLATE,
        requested_count=count,
        target_tags={"topic": "law"},
        target_difficulty="medium",
        why_synthetic="Benchmark.",
        judging_plan="Benchmark.",
        generator=endpoint,
        judge=judge,
        prompt_version=None,
        params={
            "template": "What does {country} law say about {subject}?",
            "answer": "It depends on the {subject} rules of {country}.",
            "slots": PROMPT_SLOTS,
        },
        checks=["format"],
        budget_cap=None,
        seed=1,
    )


def _run(batch, *, timeout: float) -> tuple[float, dict[str, int]]:
    """Start the batch; wait until no item is pending or running; return (wall, states)."""
    from django.db.models import Count

    from datasets.models import GenerationItem
    from datasets.services.generation import batch_start

    State = GenerationItem.State
    items = GenerationItem.objects.filter(batch=batch)
    started = time.monotonic()
    batch_start(batch=batch, user=None)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not items.filter(state__in=(State.PENDING, State.RUNNING)).exists():
            break
        time.sleep(0.05)
    wall = time.monotonic() - started
    states = dict(items.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    return wall, states


def _idle_worker_cpu(database_url: str, env: dict[str, str], concurrency: int) -> float:
    worker = Worker(database_url, env, concurrency)
    return worker.stop()


# --- the parts ------------------------------------------------------------------------------


def _http_floor(base_url: str, body: dict[str, Any], calls: int, concurrency: int) -> float:
    """Wall time of ``calls`` bare requests, ``concurrency`` at a time, from one asyncio
    HTTP client with no app around it: what this machine, loaded as it is, lets any client
    reach against the server (the server's own overhead included)."""
    import asyncio
    import logging

    import httpx2

    # Django's settings log every request of the client at INFO: not part of a bare client.
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    async def run() -> float:
        todo = iter(range(calls))
        async with httpx2.AsyncClient(base_url=base_url, timeout=30) as client:

            async def lane() -> None:
                for _ in todo:
                    response = await client.post("/chat/completions", json=body)
                    response.raise_for_status()

            started = time.monotonic()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return time.monotonic() - started

    return asyncio.run(run())


def part_latency(args, database_url: str) -> dict[str, Any]:
    env = {"SYNTHAUG_GENERATION_CHUNK_SIZE": str(args.chunk)}
    idle = _idle_worker_cpu(database_url, env, args.workers)
    server = Server(latency=args.latency)
    try:
        batch = _batch(server.base_url, args.calls, concurrency=args.concurrency)
        # The floor first, with a request like the app's (the server's answer reads only
        # the messages): the same server, the same load, minutes apart at most.
        floor_body = {
            "model": "scripted-model",
            "messages": [{"role": "user", "content": "What does Country1 law say about x?"}],
            "response_format": {"type": "json_object"},
            "max_tokens": 400,
        }
        floor = _http_floor(server.base_url, floor_body, args.floor_calls, args.concurrency)
        server.ask("reset")
        worker = Worker(database_url, env, args.workers)
        started = time.monotonic()  # the server's clock too: CLOCK_MONOTONIC is system-wide
        wall, states = _run(batch, timeout=args.calls * args.latency + 300)
        cpu = worker.stop()
        stats = server.ask("stats")
    finally:
        server.close()
    ideal = args.calls * args.latency / args.concurrency
    floor_ratio = floor / (args.floor_calls * args.latency / args.concurrency)
    own_cpu = max(cpu - idle, 0.0)
    result = {
        "calls": stats["calls"],
        "items": states,
        "concurrency": args.concurrency,
        "max_in_flight_seen_by_server": stats["max_in_flight"],
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3),
        # A bare HTTP client's ratio in the same run: the part of wall_over_ideal that is
        # the machine's (a loaded machine delays the server's answers), not the app's.
        "bare_client_over_ideal": round(floor_ratio, 3),
        "wall_over_bare_client": round(wall / ideal / floor_ratio, 3),
        "worker_cpu_s": round(cpu, 2),
        "idle_worker_cpu_s": round(idle, 2),
        "cpu_ms_per_call": round(own_cpu / max(stats["calls"], 1) * 1000, 3),
        **_in_flight(stats["arrivals"], started=started, wall=wall, latency=args.latency),
    }
    result["pass"] = (
        result["wall_over_ideal"] <= 1.25
        and result["cpu_ms_per_call"] <= 5
        and states.get("done", 0) == args.calls
        and stats["max_in_flight"] <= args.concurrency
    )
    return result


def _in_flight(arrivals: list[float], *, started: float, wall: float, latency: float) -> dict:
    """Where the wall time beyond the ideal went: before the first call, after the last,
    and how many calls were in flight on average in between."""
    if not arrivals:
        return {}
    first, last = arrivals[0] - started, arrivals[-1] - started
    return {
        "first_call_after_s": round(first, 2),
        "after_last_call_s": round(wall - last, 2),
        "mean_in_flight_between": round(len(arrivals) * latency / (last - first + latency), 2),
    }


def _naive_pool(base_url: str, body: dict[str, Any], items: int, threads: int) -> dict[str, Any]:
    """A fixed pool of threads, each sending the same request with naive retries."""
    import urllib.error
    import urllib.request

    lock = threading.Lock()
    todo = list(range(items))
    done = failed = calls = limited = 0
    payload = json.dumps(body).encode()

    def send() -> int:
        request = urllib.request.Request(  # noqa: S310 - the local scripted server
            f"{base_url}/chat/completions",
            data=payload,
            headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def work() -> None:
        nonlocal done, failed, calls, limited
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            for attempt in range(5):
                status = send()
                with lock:
                    calls += 1
                    limited += status == 429
                if status == 200:
                    with lock:
                        done += 1
                    break
                if status not in (429, 500, 502, 503):
                    break
                time.sleep(2**attempt)
            else:
                with lock:
                    failed += 1

    started = time.monotonic()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {
        "wall_s": time.monotonic() - started,
        "done": done,
        "failed": failed,
        "calls": calls,
        "limited": limited,
    }


def part_ratelimit(args, database_url: str) -> dict[str, Any]:
    from django.conf import settings

    window = args.window
    # Roughly 4 requests a second fit the token budget: well under what 16 slots could send
    # at this latency, so the limit binds.
    tpm = args.tpm
    env = {
        "SYNTHAUG_RATE_WINDOW_SECONDS": str(window),
        "SYNTHAUG_GENERATION_CHUNK_SIZE": str(args.chunk),
        "SYNTHAUG_GENERATION_RETRY_DELAY_SECONDS": "1",
        "SYNTHAUG_GENERATION_RETRY_DELAY_MAX_SECONDS": str(window),
    }
    os.environ.update(env)
    server = Server(latency=args.latency, tpm=tpm, window=window)
    try:
        batch = _batch(server.base_url, args.rate_items, concurrency=16, tpm=tpm)
        worker = Worker(database_url, env, args.workers)
        wall, states = _run(batch, timeout=args.rate_items * 10 + 300)
        worker.stop()
        ours = server.ask("stats")
        server.ask("reset")
        time.sleep(window)  # an empty window for the baseline, as the app had
        naive = _naive_pool(
            server.base_url.rstrip("/"), ours["sample_body"], args.rate_items, threads=16
        )
        theirs = server.ask("stats")
    finally:
        server.close()
    done = states.get("done", 0)
    ours_rate = done / wall * window
    naive_rate = naive["done"] / naive["wall_s"] * window
    limited = ours["outcomes"].get("rate_limited", 0)
    result = {
        "window_s": window,
        "tokens_per_window": tpm,
        "app": {
            "items": states,
            "wall_s": round(wall, 2),
            "items_per_window": round(ours_rate, 2),
            "calls": ours["calls"],
            "answered_429": limited,
            "share_429": round(limited / max(ours["calls"], 1), 4),
            "budget_used": round(ours["admitted_tokens"] / (tpm * wall / window), 3),
            "slack_s": settings.SYNTHAUG_RATE_SLACK_SECONDS,
            "closest_span_s": ours["closest_s"],
        },
        "naive_pool": {
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in naive.items()},
            "items_per_window": round(naive_rate, 2),
            "budget_used": round(theirs["admitted_tokens"] / (tpm * naive["wall_s"] / window), 3),
        },
        "ratio": round(ours_rate / naive_rate, 3) if naive_rate else None,
    }
    result["pass"] = (
        (result["ratio"] or 0) >= 1.5
        and result["app"]["budget_used"] >= 0.95
        and result["app"]["share_429"] <= 0.01
    )
    return result


def part_faults(args, database_url: str) -> dict[str, Any]:
    env = {
        "SYNTHAUG_GENERATION_CHUNK_SIZE": str(args.chunk),
        "SYNTHAUG_GENERATION_BACKOFF_SECONDS": "0.2",
        "SYNTHAUG_GENERATION_RETRY_DELAY_SECONDS": "0.5",
        "SYNTHAUG_GENERATION_RETRY_DELAY_MAX_SECONDS": "2",
        "SYNTHAUG_GENERATION_LEASE_SECONDS": "60",
    }
    faults = {
        "p429": 0.10,
        "p5xx": 0.05,
        "ptimeout": 0.05,
        "ptruncated": 0.05,
        "bad_requests": 0.01,
        "seed": args.fault_seed,
        "hang_seconds": 3.0,
        "retry_after": 0.5,
    }
    server = Server(latency=0.05, faults=faults)
    try:
        batch = _batch(server.base_url, args.fault_items, concurrency=16, timeout=1.0)
        worker = Worker(database_url, env, args.workers)
        wall, states = _run(batch, timeout=600)
        worker.stop()
        stats = server.ask("stats")
    finally:
        server.close()
    from datasets.models import GenerationItem

    failed = GenerationItem.objects.filter(batch=batch, state=GenerationItem.State.FAILED)
    without_reason = failed.filter(error_reason="").count()
    reasons: dict[str, int] = {}
    for reason in failed.values_list("error_reason", flat=True):
        reasons[reason] = reasons.get(reason, 0) + 1
    done = states.get("done", 0)
    refused = reasons.get("bad_request", 0)
    result = {
        "seed": args.fault_seed,
        "items": states,
        "wall_s": round(wall, 2),
        "completed_share": round(done / args.fault_items, 4),
        "completed_share_of_accepted_requests": round(done / (args.fault_items - refused), 4),
        "failed_reasons": reasons,
        "failed_without_reason": without_reason,
        "left_pending_or_running": states.get("pending", 0) + states.get("running", 0),
        "calls": stats["calls"],
        "calls_per_item": round(stats["calls"] / args.fault_items, 3),
        "server_outcomes": stats["outcomes"],
    }
    result["pass"] = (
        result["completed_share"] >= 0.99
        and without_reason == 0
        and result["left_pending_or_running"] == 0
        and result["calls_per_item"] <= 1.6
    )
    return result


PARTS = {"latency": part_latency, "ratelimit": part_ratelimit, "faults": part_faults}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--floor-calls", type=int, default=800, help="bare-client calls (latency part)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker pool processes")
    parser.add_argument("--chunk", type=int, default=64, help="items per chunk task")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--tpm", type=int, default=20_000, help="tokens per window")
    parser.add_argument("--rate-items", type=int, default=300)
    parser.add_argument("--fault-items", type=int, default=2000)
    parser.add_argument("--fault-seed", type=int, default=7, help="the server's fault draws")
    args = parser.parse_args()
    database_url = _database()
    _django(database_url, {})
    results: dict[str, Any] = {}
    for name in args.parts.split(","):
        print(f"-- {name}", flush=True)
        results[name] = PARTS[name](args, database_url)
        print(json.dumps(results[name], indent=2), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generation.json").write_text(json.dumps(results, indent=2))
    verdicts = {name: "PASS" if r["pass"] else "MISS" for name, r in results.items()}
    print("targets:", verdicts)


if __name__ == "__main__":
    main()
