"""Review benchmark: claims and queue pages over a million samples in PostgreSQL.

    make bench BENCH_ARGS="review"                         # 1M samples (a few minutes)
    make bench BENCH_ARGS="review --samples 200000"        # quicker
    make bench BENCH_ARGS="review --reuse"                 # the loaded database again

Loads ``--samples`` synthetic samples of one batch with COPY (plus a judge result for
each), builds the batch's spot-check queue (10 % stratified, so 100k items at 1M), then:

* 10 reviewer processes claim and decide items at once, with no pause between items;
  claim-next latency p50/p95 as the app server sees it (the wall time of one
  ``item_claim_next`` call in the reviewer's process; target p95 <= 10 ms). The same at 5
  and 2 reviewers follows, labelled: on a 2-core machine 10 busy processes plus PostgreSQL
  queue for the CPU, and the lower counts show how much of the figure is that queueing;
* the queue page's item list (the htmx fragment, a keyset page) and the full queue page,
  through Django's test client, at depths 0 .. 90k, while the 10 reviewers work (the
  target's condition: the queue's figures change with every decision): first with no
  pause between items, labelled as a stress (each process decides 10-16 items a second,
  and on a 2-core machine ten of them, PostgreSQL and the worker queue for the CPU), then,
  the headline, with each reviewer pausing ``--pause-ms`` (1 s) between items (about 10
  decisions/s in all: ten people each deciding an item a second, faster than any person
  reads one; 0 skips it); then with the queue quiet: server time p95 (target <= 50 ms),
  the slowest single page, and the number of queries (target: the same at every depth).
  One request of each view warms the process first (templates compiled, connection
  open), as in a server that has been up for a second.
  While the reviewers work a real Celery worker (2 processes, as in the Procfile, on
  ``BENCH_BROKER_URL``) runs what the app queues, as in production: the recounts of the
  queue's figures that the pages ask for, and the coverage rebuilds that decisions ask
  for; the bench prints how many recounts ran and what each cost;
* side by side, the same list fetched with OFFSET at the same depths: the keyset page must
  be at least 20x faster at depth >= 30k.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Names of their own keep two checkouts' runs apart (each worker would take the other's tasks).
BENCH_DB = os.environ.get("BENCH_REVIEW_DB", "synthaug_review_bench")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
sys.path.insert(0, str(ROOT))
REVIEWERS = 10
DEPTHS = [0, 1_000, 10_000, 30_000, 60_000, 90_000]
REPEATS = 30


def _django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthaug.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    import django

    django.setup()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def load(samples: int) -> dict:
    """The dataset, batch, samples (COPY) and judge results; returns ids for the children."""
    from django.db import connection
    from django.utils import timezone

    from datasets.models import Batch, CheckResult, Sample
    from datasets.services.datasets import dataset_create, membership_add, user_create
    from synthaug import roles

    lead, _ = user_create(username="bench-lead", role=roles.LEAD, password=None)
    dataset = dataset_create(name="Review bench", slug="review-bench", created_by=lead)
    membership_add(dataset=dataset, user=lead)
    reviewers = [
        user_create(username=f"bench-reviewer-{n}", role=roles.ANNOTATOR, password=None)[0]
        for n in range(REVIEWERS)
    ]
    for reviewer in reviewers:
        membership_add(dataset=dataset, user=reviewer)
    batch = Batch.objects.create(
        dataset=dataset,
        method=Batch.Method.PARAPHRASE,
        requested_count=samples,
        status=Batch.Status.READY,
    )
    now = timezone.now()
    fields = [f for f in Sample._meta.concrete_fields if f.column != "id"]
    columns = ", ".join(f.column for f in fields)
    levels = ["easy", "medium", "hard", "adversarial"]
    methods = ["paraphrase", "template", "grounded"]
    start = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(f"COPY datasets_sample ({columns}) FROM STDIN") as copy,
    ):
        for i in range(samples):
            text = f"Bench question {i}: what is the answer to case {i}?"
            values = {
                "dataset_id": dataset.pk,
                "input": json.dumps({"question": text}),
                "expected": json.dumps({"answer": f"answer {i}"}),
                "text": text,
                "origin": "synthetic",
                "tags": "{}",
                "difficulty": levels[i % 3] if i % 50 else "adversarial",
                "difficulty_features": "{}",
                "status": "accepted",
                "content_hash": f"{i:064x}",
                "source_group": f"bench:{i}",
                "batch_id": batch.pk,
                "seq": i,
                "method": methods[i % 3],
                "slot_values": "{}",
                "created_at": now,
            }
            copy.write_row(
                [
                    values[f.column]
                    if f.column in values
                    else (f.get_default() if not f.null else None)
                    for f in fields
                ]
            )
    loaded = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO datasets_checkresult (sample_id, batch_id, kind, passed, score, "
            "borderline, detail, data, model, prompt_version, created_at) "
            "SELECT id, batch_id, 'judge', id %% 4 <> 0, 0.7, id %% 997 = 0, 'bench', '{}', "
            "'bench judge', 'judge@v1', now() FROM datasets_sample WHERE batch_id = %s",
            [batch.pk],
        )
        cursor.execute("ANALYZE")
    assert CheckResult.objects.filter(batch=batch).exists()
    return {
        "dataset": dataset.pk,
        "batch": batch.pk,
        "lead": lead.pk,
        "reviewers": [r.pk for r in reviewers],
        "load_seconds": loaded,
    }


def child_reviewer(
    queue_id: int, user_id: int, count: int, stop: str = "", pause_ms: str = "0", start: str = ""
) -> dict:
    """One reviewer: claim-next then approve, ``count`` times (or until the file ``stop``
    exists), ``pause_ms`` between items; claim latencies in ms. With ``start``, it says it
    is ready and waits for the file ``start`` before its first claim, so that no claim is
    timed while the other reviewers' processes are still starting up."""
    from django.contrib.auth import get_user_model

    from review.models import ReviewQueue
    from review.services import decision_record, item_claim_next

    queue = ReviewQueue.objects.get(pk=queue_id)
    user = get_user_model().objects.get(pk=user_id)
    if start:
        Path(f"{start}.ready-{user_id}").touch()
        while not os.path.exists(start):
            time.sleep(0.01)
    claims, decisions, decided_at = [], [], []
    # People do not decide in step: each paced reviewer starts at its own point of the
    # pause (without this the ten start together and decide in bursts of ten a second).
    time.sleep(random.Random(user_id).uniform(0, float(pause_ms) / 1000))
    for n in range(count):
        if stop and os.path.exists(stop):
            break
        start = time.perf_counter()
        item = item_claim_next(queue=queue, user=user)
        claims.append((time.perf_counter() - start) * 1000)
        if item is None:
            break
        start = time.perf_counter()
        decision_record(
            item_id=item.pk,
            user=user,
            action="approve" if n % 5 else "reject",
            reason="" if n % 5 else "low_quality",
            claim_seq=item.claim_seq,
            idempotency_key=f"bench-{user_id}-{item.pk}",
        )
        decisions.append((time.perf_counter() - start) * 1000)
        decided_at.append(time.time())
        if stop and n == 0:  # working: the pages may be measured now
            Path(f"{stop}.ready-{user_id}").touch()
        time.sleep(float(pause_ms) / 1000)
    return {"claims": claims, "decisions": decisions, "decided_at": decided_at}


def pages(queue_id: int, lead_id: int, offset: bool = True) -> dict:
    """Server time of the queue page (full and htmx list) by keyset cursor at each depth,
    and the same list by OFFSET, side by side."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from review.models import ReviewItem, ReviewQueue
    from review.selectors import item_page, offset_item_page

    queue = ReviewQueue.objects.select_related("dataset").get(pk=queue_id)
    client = Client()
    client.force_login(get_user_model().objects.get(pk=lead_id))
    url = reverse("review:queue", args=[queue.dataset.slug, queue.pk])
    ids = list(ReviewItem.objects.filter(queue=queue).order_by("-pk").values_list("pk", flat=True))
    for headers in ({"HX-Request": "true"}, {}):  # warm-up: templates, connection
        assert client.get(url, headers=headers).status_code == 200
    results = {}
    started = time.time()
    for depth in [d for d in DEPTHS if d < len(ids)]:
        after = ids[depth - 1] if depth else None
        query = f"?after={after}" if after else ""
        row = {}
        for name, headers in (("list", {"HX-Request": "true"}), ("page", {})):
            times, cpu, queries = [], [], set()
            for _ in range(REPEATS):
                with CaptureQueriesContext(connection) as ctx:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    response = client.get(url + query, headers=headers)
                    times.append((time.perf_counter() - start) * 1000)
                    cpu.append((time.process_time() - start_cpu) * 1000)
                assert response.status_code == 200, response.status_code
                queries.add(len(ctx.captured_queries))
            row[name] = {
                "p95": p95(times),
                "max": max(times),
                "cpu_p95": p95(cpu),
                "queries": sorted(queries),
            }
        if not offset:
            results[depth] = row
            continue
        keyset, offsets = [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            page = item_page(queue=queue, after=after)
            keyset.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            rows = offset_item_page(queue=queue, offset=depth)
            offsets.append((time.perf_counter() - start) * 1000)
            assert [i.pk for i in rows] == [i.pk for i in page.items]
        row["keyset_p50"] = statistics.median(keyset)
        row["offset_p50"] = statistics.median(offsets)
        results[depth] = row
    results["window"] = [started, time.time()]
    return results


def run_child(args: list[str], database_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--database-url", database_url, *args],
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": BROKER},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Worker:
    """``celery worker`` on the bench's database and broker, as the Procfile runs it."""

    def __init__(self, database_url: str) -> None:
        self.log = ROOT / "var" / f"review-bench-worker-{os.getpid()}-{time.time_ns()}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": BROKER}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "synthaug",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"review-bench-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while "ready." not in self.log.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"The worker did not start; see {self.log}")
            time.sleep(0.2)

    def stop(self) -> dict:
        """Stop it (warm shutdown, then kill) and count what it ran from its log."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        ran: dict[str, list[float]] = {}
        for line in self.log.read_text().splitlines():
            found = re.search(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.]+)s", line)
            if found:
                ran.setdefault(found.group(1).rsplit(".", 1)[-1], []).append(float(found.group(2)))
        return ran


def collect(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{out[-2000:]}\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=300, help="per reviewer")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--child", nargs="+")
    parser.add_argument(
        "--pause-ms", type=int, default=1000, help="a reviewer's pause, second pages run"
    )
    parser.add_argument("--reuse", action="store_true", help="measure the loaded database again")
    args = parser.parse_args()

    if args.child:
        _django(args.database_url)
        mode, *rest = args.child
        if mode == "load":
            result = load(int(rest[0]))
        elif mode == "build":
            from django.db import connection

            from datasets.models import Batch
            from review.services import queue_build

            start = time.perf_counter()
            queue, _ = queue_build(batch=Batch.objects.get(pk=int(rest[0])), seed=2024)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE review_reviewitem")
            result = {
                "queue": queue.pk,
                "items": queue.items.count(),
                "seconds": time.perf_counter() - start,
            }
        elif mode == "review":
            result = child_reviewer(int(rest[0]), int(rest[1]), int(rest[2]), *rest[3:])
        elif mode == "ids":
            result = existing_ids()
        else:
            result = pages(int(rest[0]), int(rest[1]), offset=rest[2] == "offset")
        print(json.dumps(result))
        return

    from bench.machine import machine_line

    print(machine_line(), flush=True)
    from celery import Celery

    Celery(broker=BROKER).control.purge()  # tasks of an earlier run name rows of another db
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base.startswith("postgres"):
        raise SystemExit("The review benchmark measures PostgreSQL: set DATABASE_URL.")
    server, _, _ = base.rpartition("/")
    database_url = f"{server}/{BENCH_DB}"
    if args.reuse:
        ids = collect(run_child(["--child", "ids"], database_url))
        built = {"queue": ids["queue"]}
        print(f"reusing the loaded database: {ids['open']:,} items still open", flush=True)
    else:
        ids, built = fresh(base, database_url, args.samples)
    queue = str(built["queue"])

    counts = [REVIEWERS] + [n for n in (5, 2) if n < REVIEWERS]
    for n in counts:
        label = "(headline)" if n == REVIEWERS else "(labelled: fewer reviewers, less CPU queueing)"
        print(f"{n} reviewers x {args.claims} claims at once {label} ...", flush=True)
        claims, decisions = reviewers_run(queue, ids["reviewers"][:n], args.claims, database_url)
        print(
            f"  claim-next at {n}: n={len(claims)} p50 {statistics.median(claims):.2f} ms "
            f"p95 {p95(claims):.2f} ms (target <= 10); decision p95 {p95(decisions):.2f} ms",
            flush=True,
        )

    runs = [(0, "flat out, no pause between items (labelled: stress, CPU queueing)")]
    if args.pause_ms:
        pace = f"each pausing {args.pause_ms} ms between items (headline: a person's pace)"
        runs.append((args.pause_ms, pace))
    for pause, label in runs:
        print(f"queue pages by depth while {REVIEWERS} reviewers work {label} ...", flush=True)
        worker = Worker(database_url)
        try:
            busy, claims, rate = pages_during_review(queue, ids, pause, database_url)
        finally:
            ran = worker.stop()
            # The next phase starts as a run does: without this one's queued recounts and
            # rebuilds (due seconds later, they would run at its start) or their marks.
            Celery(broker=BROKER).control.purge()
            collect(run_child(["--child", "ids"], database_url))
        print(
            f"  (while the pages were measured: {rate:.1f} decisions/s; claim-next n={len(claims)} "
            f"p50 {statistics.median(claims):.2f} ms p95 {p95(claims):.2f} ms)"
        )
        for task, seconds in sorted(ran.items()):
            median = statistics.median(seconds)
            print(f"  (the worker ran {task} x{len(seconds)}: median {median:.2f} s, ", end="")
            print(f"max {max(seconds):.2f} s)")
        print_pages(busy, offset=False)

    print("queue pages by depth, queue quiet, with OFFSET side by side ...", flush=True)
    quiet = collect(
        run_child(["--child", "pages", queue, str(ids["lead"]), "offset"], database_url)
    )
    quiet.pop("window")
    print_pages(quiet, offset=True)


def pages_during_review(queue: str, ids: dict, pause: int, database_url: str):
    stop = ROOT / "var" / f"review-bench-stop-{os.getpid()}"
    stop.parent.mkdir(parents=True, exist_ok=True)
    stop.unlink(missing_ok=True)
    procs = [
        run_child(
            ["--child", "review", queue, str(pk), "1000000", str(stop), str(pause)], database_url
        )
        for pk in ids["reviewers"]
    ]
    try:
        # Measure only once every reviewer is deciding (their start-up takes seconds).
        wait_ready(stop, ids["reviewers"], procs, "the reviewers did not start deciding")
        busy = collect(run_child(["--child", "pages", queue, str(ids["lead"]), "-"], database_url))
    finally:
        stop.touch()
    results = [collect(proc) for proc in procs]
    stop.unlink()
    for pk in ids["reviewers"]:
        Path(f"{stop}.ready-{pk}").unlink(missing_ok=True)
    start, end = busy.pop("window")
    claims = [ms for result in results for ms in result["claims"]]
    during = sum(start <= t <= end for result in results for t in result["decided_at"])
    return busy, claims, during / (end - start)


def existing_ids() -> dict:
    from django.contrib.auth import get_user_model

    from datasets.models import CoverageState
    from review.models import QueueFigures, ReviewItem, ReviewQueue

    users = get_user_model().objects
    queue = ReviewQueue.objects.get(dataset__slug="review-bench")
    # The broker was purged of the last run's pending recounts: clear the marks that say
    # they are pending, or the app would wait ~12 minutes before asking again (its rule
    # for lost requests) and this run would measure pages without any recounts.
    QueueFigures.objects.filter(queue=queue).update(requested_at=None)
    CoverageState.objects.filter(dataset_id=queue.dataset_id).update(queued_at=None)
    return {
        "queue": queue.pk,
        "lead": users.get(username="bench-lead").pk,
        "reviewers": [users.get(username=f"bench-reviewer-{n}").pk for n in range(REVIEWERS)],
        "open": ReviewItem.objects.filter(queue=queue, state="open").count(),
    }


def fresh(base: str, database_url: str, samples: int) -> tuple[dict, dict]:
    # Through the server's maintenance database: DATABASE_URL may name the bench's own.
    admin = f"{base.rpartition('/')[0]}/postgres"
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=True)
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    print(f"loading {samples:,} samples with COPY ...", flush=True)
    ids = collect(run_child(["--child", "load", str(samples)], database_url))
    print(f"  loaded in {ids['load_seconds']:.1f} s", flush=True)
    built = collect(run_child(["--child", "build", str(ids["batch"])], database_url))
    print(f"queue built: {built['items']:,} items in {built['seconds']:.1f} s", flush=True)
    return ids, built


def wait_ready(marker: Path, reviewers: list[int], procs: list, failure: str) -> None:
    """Until every reviewer process has touched ``{marker}.ready-{its user id}``."""
    deadline = time.monotonic() + 300
    while not all(Path(f"{marker}.ready-{pk}").exists() for pk in reviewers):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(failure)
        time.sleep(0.05)


def reviewers_run(queue: str, reviewers: list[int], claims: int, database_url: str):
    """``reviewers`` processes claim and decide ``claims`` items each, all starting at once
    once every one of them is up (Django's start-up is a second of CPU per process)."""
    start = ROOT / "var" / f"review-bench-start-{os.getpid()}"
    start.parent.mkdir(parents=True, exist_ok=True)
    start.unlink(missing_ok=True)
    procs = [
        run_child(
            ["--child", "review", queue, str(pk), str(claims), "", "0", str(start)], database_url
        )
        for pk in reviewers
    ]
    wait_ready(start, reviewers, procs, "the reviewers did not start")
    start.touch()
    latencies, decisions = [], []
    for proc in procs:
        result = collect(proc)
        latencies += result["claims"]
        decisions += result["decisions"]
    start.unlink()
    for pk in reviewers:
        Path(f"{start}.ready-{pk}").unlink()
    return latencies, decisions


def print_pages(rows: dict, *, offset: bool) -> None:
    head = f"{'depth':>7} {'list p95':>9} {'page p95':>9} {'queries':>12} {'CPU p95 list/page':>18}"
    if offset:
        head += f" {'keyset p50':>11} {'OFFSET p50':>11} {'x faster':>9}"
    print(head)
    for depth, row in rows.items():
        queries = f"{row['list']['queries']}/{row['page']['queries']}"
        line = (
            f"{int(depth):>7,} {row['list']['p95']:>7.1f}ms {row['page']['p95']:>7.1f}ms "
            f"{queries:>12} {row['list']['cpu_p95']:>8.1f}/{row['page']['cpu_p95']:.1f}ms"
        )
        if offset:
            ratio = row["offset_p50"] / row["keyset_p50"]
            line += f" {row['keyset_p50']:>9.2f}ms {row['offset_p50']:>9.2f}ms {ratio:>8.1f}x"
        print(line)
    worst_list = max(row["list"]["p95"] for row in rows.values())
    worst_page = max(row["page"]["p95"] for row in rows.values())
    counts = {tuple(r["list"]["queries"]) for r in rows.values()} | {
        tuple(r["page"]["queries"]) for r in rows.values()
    }
    print(f"list p95 worst {worst_list:.1f} ms, page p95 worst {worst_page:.1f} ms (target <= 50)")
    print(
        "(CPU: the web process's own CPU per request; the rest of the server time is waiting"
        " for PostgreSQL and for a core)"
    )
    slowest = max(row["page"]["max"] for row in rows.values())
    print(f"slowest single page {slowest:.1f} ms")
    deep = [
        r["offset_p50"] / r["keyset_p50"] for d, r in rows.items() if offset and int(d) >= 30_000
    ]
    if deep:
        print(f"keyset vs OFFSET at depth >= 30k: min {min(deep):.1f}x (target >= 20)")
    print(f"queries per request at every depth: {sorted(counts)} (target: one value per view)")
    print(flush=True)


if __name__ == "__main__":
    main()
