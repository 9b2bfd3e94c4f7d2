"""Coverage benchmark: the coverage page over kept counts against per-cell COUNT queries.

    make bench BENCH_ARGS="coverage"                    # 1M samples (a few minutes)
    make bench BENCH_ARGS="coverage --rows 200000"      # quicker

Loads ``--rows`` samples into one dataset of a fresh PostgreSQL database with COPY (the
real demo questions with variations, tagged by task, category and locale, 10% synthetic
across 20 batches in every state), rebuilds the kept counts once, then measures in the
same process:

* the coverage page (task x locale, with a before/after batch), through Django's test
  client: p50/p95 server time over ``--requests`` requests;
* the naive way to draw the same matrix: one COUNT query per cell (real / synthetic
  approved / synthetic pending as filtered aggregates), p50/p95 over ``--naive-runs``.

Prints both, the ratio, and the target: the page in at most 300 ms at 1M samples.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "synthaug_bench_coverage"
sys.path.insert(0, str(ROOT))
DIFFICULTIES = ["easy", "medium", "hard", "adversarial", ""]
BATCHES = 20
TARGET_MS = 300


def _setup_database(base: str) -> str:
    server, _, _ = base.rpartition("/")
    database_url = f"{server}/{BENCH_DB}"
    # The maintenance database: the one named in DATABASE_URL may not exist yet.
    admin = f"{server}/postgres"
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=True)
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    return database_url


def _load(dataset, batches: list, rows: int) -> None:
    """COPY ``rows`` samples: 90% real, 10% synthetic spread over ``batches``."""
    import orjson
    from django.db import connection
    from django.utils import timezone

    from bench.datagen import generate
    from datasets.models import Sample

    now = timezone.now()
    # Every NOT NULL column Django fills from a default, filled the same way here.
    fixed = {
        "difficulty_source": "",
        "difficulty_rationale": "",
        "difficulty_auto": "",
        "difficulty_auto_rationale": "",
        "difficulty_features": "{}",
        "split": "",
        "source_file": "bench",
        "source_passage": "",
        "method": "",
        "generation_model": "",
        "prompt_version": "",
        "slot_values": "{}",
        "created_at": now,
    }
    varying = (
        "dataset_id",
        "external_id",
        "input",
        "expected",
        "text",
        "origin",
        "tags",
        "difficulty",
        "status",
        "review_status",
        "content_hash",
        "source_group",
        "batch_id",
        "seq",
    )
    columns = (*varying, *fixed)
    table = connection.ops.quote_name(Sample._meta.db_table)
    synthetic_states = [
        ("accepted", ""),
        ("accepted", "approved"),
        ("pending", ""),
        ("rejected", ""),
        ("accepted", "rejected"),
    ]
    with connection.cursor() as cursor:
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for i, row in enumerate(generate(rows)):
                difficulty = DIFFICULTIES[(i * 7) % len(DIFFICULTIES)]
                synthetic = i % 10 == 9
                tags = row["tags"]
                if i % 97 == 0:
                    tags = {k: v for k, v in tags.items() if k != "locale"}  # untagged
                if synthetic:
                    batch = batches[(i // 10) % len(batches)]
                    status, review = synthetic_states[(i // 10) % len(synthetic_states)]
                    origin, batch_id, seq, external = "synthetic", batch.pk, i, ""
                else:
                    status, review = "accepted", ""
                    origin, batch_id, seq, external = "real", None, None, row["id"]
                copy.write_row(
                    (
                        dataset.pk,
                        external,
                        orjson.dumps(row["input"]).decode(),
                        orjson.dumps(row["expected"]).decode(),
                        row["input"]["question"],
                        origin,
                        orjson.dumps(tags).decode(),
                        difficulty,
                        status,
                        review,
                        f"{i:064x}",
                        f"sample:{i}",
                        batch_id,
                        seq,
                        *fixed.values(),
                    )
                )
        cursor.execute(f"ANALYZE {table}")


def _naive_page(dataset, dimensions: tuple[str, ...]) -> int:
    """The matrix drawn the naive way: one COUNT query per cell over the samples."""
    from django.db.models import Count, Q

    from datasets.models import Sample
    from datasets.selectors.coverage import coverage_view

    # The same rows the page shows (read from the kept counts: not part of the timing).
    rows = [row.key for row in coverage_view(dataset=dataset, dimensions=dimensions).rows]
    live = Q(duplicate_of__isnull=True) & ~Q(status="rejected") & ~Q(review_status="rejected")
    queries = 0
    for key in rows:
        tags = {dim: value for dim, value in zip(dimensions, key, strict=True) if value}
        for difficulty in DIFFICULTIES:
            Sample.objects.filter(
                live, dataset=dataset, tags__contains=tags, difficulty=difficulty
            ).aggregate(
                real=Count("pk", filter=Q(origin="real")),
                approved=Count("pk", filter=Q(origin="synthetic", status="accepted")),
                pending=Count("pk", filter=Q(origin="synthetic", status="pending")),
            )
            queries += 1
    return queries


def _build(rows: int):
    from datasets.management.commands.demo import SCHEMA, TAG_DIMENSIONS
    from datasets.models import Batch
    from datasets.services.coverage import coverage_settings_update
    from datasets.services.datasets import dataset_create, user_create
    from synthaug import roles

    lead, _ = user_create(username="bench-lead", role=roles.LEAD)
    dataset = dataset_create(
        name="Coverage bench",
        slug="coverage-bench",
        created_by=lead,
        schema=SCHEMA,
        tag_dimensions=TAG_DIMENSIONS,
    )
    dimensions = ("task", "locale")
    coverage_settings_update(
        dataset=dataset, dimensions=list(dimensions), default_target=50_000, ceiling=0.5
    )
    batches = [
        Batch.objects.create(
            dataset=dataset,
            method="paraphrase",
            requested_count=100,
            target_tags={"task": "truthfulness", "locale": ["en", "de", "es", "zh"][n % 4]},
            target_difficulty=DIFFICULTIES[n % 4],
            why_synthetic=f"bench batch {n}",
        )
        for n in range(BATCHES)
    ]
    started = time.perf_counter()
    _load(dataset, batches, rows)
    print(f"loaded {rows:,} samples with COPY in {time.perf_counter() - started:.1f} s", flush=True)
    return lead, dataset, batches, dimensions


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument(
        "--reuse", action="store_true", help="Measure the database the last run loaded again"
    )
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base.startswith("postgres"):
        raise SystemExit("The coverage benchmark measures PostgreSQL: set DATABASE_URL.")
    if args.reuse:
        server, _, _ = base.rpartition("/")
        database_url = f"{server}/{BENCH_DB}"
    else:
        database_url = _setup_database(base)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthaug.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from datasets.models import Batch, CoverageCount
    from datasets.services.coverage import coverage_counts_refresh

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    if args.reuse:
        from django.contrib.auth import get_user_model

        from datasets.models import Dataset

        lead = get_user_model().objects.get(username="bench-lead")
        dataset = Dataset.objects.get(slug="coverage-bench")
        batches = list(Batch.objects.filter(dataset=dataset).order_by("id"))
        dimensions = ("task", "locale")
        print(f"reusing {dataset.samples.count():,} samples", flush=True)
    else:
        lead, dataset, batches, dimensions = _build(args.rows)

    state = coverage_counts_refresh(dataset_id=dataset.pk)
    kept = CoverageCount.objects.filter(dataset=dataset).count()
    print(
        f"kept counts rebuilt in {state.refresh_seconds:.2f} s: "
        f"{state.samples_counted:,} samples -> {kept:,} rows",
        flush=True,
    )

    client = Client()
    client.force_login(lead)
    page = f"/datasets/{dataset.slug}/coverage/?dims=task,locale&batch={batches[0].pk}"
    for _ in range(3):  # warm caches, sessions, template loading
        response = client.get(page)
        assert response.status_code == 200, response.status_code
    page_ms = []
    for _ in range(args.requests):
        t0 = time.perf_counter()
        response = client.get(page)
        page_ms.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
    naive_ms = []
    queries = 0
    for _ in range(args.naive_runs):
        t0 = time.perf_counter()
        queries = _naive_page(dataset, dimensions)
        naive_ms.append((time.perf_counter() - t0) * 1000)

    page_p50, page_p95 = _percentiles(page_ms)
    naive_p50, naive_p95 = _percentiles(naive_ms)
    print()
    print(f"{'run':<48} {'p50 ms':>9} {'p95 ms':>9} {'runs':>5}")
    print(
        f"{'coverage page (kept counts), task x locale':<48} {page_p50:>9.1f} {page_p95:>9.1f} "
        f"{len(page_ms):>5}"
    )
    print(
        f"{f'naive: {queries} per-cell COUNT queries':<48} {naive_p50:>9.1f} {naive_p95:>9.1f} "
        f"{len(naive_ms):>5}"
    )
    print()
    verdict = "met" if page_p95 <= TARGET_MS else "MISSED"
    print(
        f"{state.samples_counted:,} samples: page p95 {page_p95:.0f} ms (target <= {TARGET_MS} ms: "
        f"{verdict}), {naive_p50 / page_p50:.0f}x faster than per-cell COUNTs at p50"
    )


if __name__ == "__main__":
    main()
