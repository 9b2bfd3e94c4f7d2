"""Import benchmark: the app's streamed import against django-import-export's default path.

    make bench BENCH_ARGS="import"                     # 1M rows (several minutes)
    make bench BENCH_ARGS="import --rows 200000"       # quicker

Builds a JSONL and a CSV file of ``--rows`` rows from the real demo data (with variations),
imports each through the app's import path (``import_file``: a good file goes in one pass)
into PostgreSQL, imports the JSONL again as an upload does it (a dry run, then the import),
and imports a 20k-row slice of the same CSV through django-import-export's default
row-by-row ``ModelResource`` in the same run. The runs share one database (the CSV goes
into a table already holding the JSONL's rows, as a second import would), each starting
after a ``CHECKPOINT``, so none pays for writing out the one before. The near-duplicate
indexing that an import queues as a task after its commit is timed separately, once, for
the JSONL import. Every import runs in a child process so its peak memory (ru_maxrss,
taken before any indexing) is its own. The same rows, already cleaned, are also COPY'd
into a table with no index: the ceiling any import path could reach on this machine,
measured in the same run. Prints rows/s, the ratio to the baseline and to that ceiling,
and the targets: 1M rows in at most 60 s, at least 30x the baseline's rows/s, peak memory
under 300 MB. Use ``--no-tasks`` to skip timing the indexing tasks an import queues (the
near-duplicate index takes minutes at 1M).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
# Two checkouts benchmarking on one server must not drop each other's database.
BENCH_DB = os.environ.get("BENCH_IMPORT_DB", "synthaug_bench")
sys.path.insert(0, str(ROOT))
BASELINE_ROWS = 20_000


def _django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthaug.settings")
    import django

    django.setup()


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dataset(slug: str):
    from datasets.management.commands.demo import SCHEMA, TAG_DIMENSIONS
    from datasets.services.datasets import dataset_create

    # A fresh slug per run: samples protect their import jobs, so old runs are not deleted.
    slug = f"{slug}-{time.time_ns()}"
    return dataset_create(
        name=slug, slug=slug, created_by=None, schema=SCHEMA, tag_dimensions=TAG_DIMENSIONS
    )


def child_streamed(path: Path, fmt: str, *, index: bool = False) -> dict:
    from bench.datagen import CSV_MAPPING
    from datasets.models import ImportJob
    from datasets.services.imports import import_file

    dataset = _dataset(f"bench-{fmt}")
    mapping = CSV_MAPPING if fmt == "csv" else None
    start = time.perf_counter()
    job = import_file(dataset=dataset, created_by=None, path=path, mapping=mapping)
    seconds = time.perf_counter() - start
    if job.status != ImportJob.Status.SUCCEEDED:
        first = list(job.row_errors.values_list("row", "message")[:3])
        raise SystemExit(f"import failed: {job.file_error or first}")
    result = {
        "rows": job.rows_imported,
        "seconds": seconds,
        "engine": job.engine,
        "maxrss_mb": _maxrss_mb(),
        # A good file goes in one pass (read, check, insert), confirmed as it starts; the
        # rest is storing the upload and the commit (the deferred foreign-key checks).
        "one_pass": job.confirmed_at == job.started_at,
        "check_seconds": (job.confirmed_at - job.started_at).total_seconds(),
        "insert_seconds": (job.finished_at - job.confirmed_at).total_seconds(),
    }
    if index:
        # What the tasks queued by the import do next, timed on their own: the samples are
        # committed and searchable before they start.
        from datasets.services.dedup import near_dup_index_add
        from datasets.services.search import search_index_pending

        start = time.perf_counter()
        result["search_indexed"] = search_index_pending(dataset_id=dataset.pk)
        result["search_index_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        result["indexed"] = near_dup_index_add(dataset_id=dataset.pk, import_job_id=job.pk)
        result["index_seconds"] = time.perf_counter() - start
    return result


def child_two_steps(path: Path) -> dict:
    """The same JSONL as an upload takes it: a dry run (read, check, stage, duplicates),
    then the import (duplicates again, ``INSERT ... SELECT`` from the staging table)."""
    from datasets.models import ImportJob
    from datasets.services.imports import (
        import_job_confirm,
        import_job_create,
        import_job_execute,
        import_job_validate,
    )

    dataset = _dataset("bench-upload")
    start = time.perf_counter()
    job = import_job_create(
        dataset=dataset, created_by=None, file=path, file_name=path.name, enqueue=False
    )
    job = import_job_validate(job=job)
    job = import_job_confirm(job=job, user=None, enqueue=False)
    job = import_job_execute(job=job)
    seconds = time.perf_counter() - start
    if job.status != ImportJob.Status.SUCCEEDED:
        raise SystemExit(f"import failed: {job.file_error or job.failure_reason}")
    return {
        "rows": job.rows_imported,
        "seconds": seconds,
        "maxrss_mb": _maxrss_mb(),
        "check_seconds": (job.confirmed_at - job.started_at).total_seconds(),
        "insert_seconds": (job.finished_at - job.confirmed_at).total_seconds(),
    }


def child_copy(path: Path) -> dict:
    """The ceiling: the same rows, already cleaned, COPY'd into a table of their stored
    columns with no index, constraint or check. Preparing the COPY text is not timed."""
    from django.db import connection

    from synthaug.engine.text import content_hash, flatten

    prepared = OUT / "bench-copy.tsv"
    with path.open("rb") as src, prepared.open("w", encoding="utf-8") as out:
        for n, line in enumerate(src, start=1):
            row = orjson.loads(line)
            text, digest = flatten(row["input"]), content_hash(row["input"])
            fields = [
                row["id"],
                orjson.dumps(row["input"]).decode(),
                orjson.dumps(row["expected"]).decode(),
                text,
                orjson.dumps(row["tags"]).decode(),
                digest,
                f"sample:{digest[:16]}",
                str(n),
            ]
            out.write("\t".join(_copy_text(f) for f in fields) + "\n")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy_ceiling")
        cursor.execute(
            "CREATE TABLE bench_copy_ceiling (external_id varchar(200), input jsonb, "
            "expected jsonb, text text, tags jsonb, content_hash varchar(64), "
            "source_group varchar(200), source_row integer)"
        )
    rows = n
    start = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy("COPY bench_copy_ceiling FROM STDIN") as copy,
        prepared.open("rb") as fh,
    ):
        while block := fh.read(1 << 20):
            copy.write(block)
    seconds = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_copy_ceiling")
    prepared.unlink()
    return {"rows": rows, "seconds": seconds, "engine": "COPY"}


def _copy_text(value: str) -> str:
    """A value in COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def child_baseline(path: Path) -> dict:
    """django-import-export's default: a ModelResource, row by row, diffs on, no bulk."""
    import csv

    import tablib
    from import_export import resources

    from datasets.models import Sample
    from synthaug.engine.text import content_hash, flatten

    class DefaultSampleResource(resources.ModelResource):
        class Meta:
            model = Sample
            fields = (
                "id",
                "dataset",
                "external_id",
                "input",
                "expected",
                "text",
                "origin",
                "status",
                "tags",
                "content_hash",
                "source_group",
                "source_file",
                "source_row",
            )

    dataset = _dataset("bench-baseline")
    start = time.perf_counter()
    data = tablib.Dataset(headers=list(DefaultSampleResource.Meta.fields))
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=1):
            item = {"question": row["question"]}
            digest = content_hash(item)
            data.append(
                [
                    "",
                    dataset.pk,
                    row["id"],
                    json.dumps(item),
                    json.dumps({"answer": row["answer"]}),
                    flatten(item),
                    "real",
                    "accepted",
                    json.dumps(
                        {"task": row["task"], "category": row["category"], "locale": row["locale"]}
                    ),
                    digest,
                    f"sample:{digest[:16]}",
                    path.name,
                    n,
                ]
            )
    result = DefaultSampleResource().import_data(data, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - start
    rows = result.totals["new"]
    return {"rows": rows, "seconds": seconds, "engine": "import-export default"}


def run_child(mode: str, path: Path, database_url: str) -> dict:
    # Each run starts with the last run's dirty pages written out, so it does not pay for
    # that run's writeback (it still imports into the tables the earlier runs filled).
    subprocess.run(["psql", database_url, "-qc", "CHECKPOINT"], check=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), "--database-url", database_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        # The follow-up tasks an import queues (near-duplicate index, coverage counts) name
        # rows of the bench database: keep them in a throwaway broker folder, never on a
        # broker whose workers read another database.
        env={
            **os.environ,
            "SYNTHAUG_VAR_DIR": str(OUT / "var"),
            "CELERY_BROKER_URL": "filesystem://",
        },
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"))
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--no-tasks",
        action="store_true",
        help="skip timing the search and near-duplicate indexing tasks (minutes at 1M)",
    )
    args = parser.parse_args()

    if args.child:
        mode, path = args.child[0], Path(args.child[1])
        _django(args.database_url)
        if mode == "baseline":
            result = child_baseline(path)
        elif mode == "copy":
            result = child_copy(path)
        elif mode == "two-steps":
            result = child_two_steps(path)
        else:
            fmt, _, index = mode.partition("+")
            result = child_streamed(path, fmt, index=index == "index")
        result.setdefault("maxrss_mb", _maxrss_mb())
        print(json.dumps(result))
        return

    from bench.machine import machine_line

    print(machine_line(), flush=True)
    from bench.datagen import write_csv, write_jsonl

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base.startswith("postgres"):
        raise SystemExit("The import benchmark measures PostgreSQL: set DATABASE_URL.")
    server, _, _ = base.rpartition("/")
    database_url = f"{server}/{BENCH_DB}"
    subprocess.run(["psql", base, "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=True)
    subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DATABASE_URL": database_url},
    )

    OUT.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.rows:,} rows ...", flush=True)
    jsonl = write_jsonl(OUT / "bench.jsonl", args.rows)
    csv_path = write_csv(OUT / "bench.csv", args.rows)
    slice_path = write_csv(OUT / "bench-slice.csv", BASELINE_ROWS)
    mb = jsonl.stat().st_size / 1e6
    print(
        f"files: {jsonl.name} {mb:.0f} MB, {csv_path.name} {csv_path.stat().st_size / 1e6:.0f} MB"
    )

    results = {
        "baseline (import-export default, 20k CSV)": run_child(
            "baseline", slice_path, database_url
        ),
        f"ceiling (plain COPY of the clean rows, {args.rows:,})": run_child(
            "copy", jsonl, database_url
        ),
        f"streamed JSONL ({args.rows:,})": run_child(
            "jsonl" if args.no_tasks else "jsonl+index", jsonl, database_url
        ),
        f"streamed CSV ({args.rows:,})": run_child("csv", csv_path, database_url),
        f"upload, two steps, JSONL ({args.rows:,})": run_child("two-steps", jsonl, database_url),
    }
    baseline = results["baseline (import-export default, 20k CSV)"]
    base_rate = baseline["rows"] / baseline["seconds"]
    ceiling = results[f"ceiling (plain COPY of the clean rows, {args.rows:,})"]
    copy_rate = ceiling["rows"] / ceiling["seconds"]
    imports = [name for name in results if name.startswith(("streamed", "upload"))]
    print()
    print(f"{'run':<44} {'rows':>10} {'seconds':>9} {'rows/s':>10} {'x base':>8} {'peak MB':>8}")
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(
            f"{name:<44} {r['rows']:>10,} {r['seconds']:>9.1f} {rate:>10,.0f} "
            f"{rate / base_rate:>8.1f} {r['maxrss_mb']:>8.0f}"
        )
    print()
    indexed = results[f"streamed JSONL ({args.rows:,})"]
    for name in imports:
        r = results[name]
        rest = r["seconds"] - r["check_seconds"] - r["insert_seconds"]
        if r.get("one_pass"):
            print(
                f"{name}: one pass (read, check, insert) {r['insert_seconds']:.1f} s, "
                f"storing the upload and the commit {rest:.1f} s"
            )
            continue
        print(
            f"{name}: dry run (read, check, stage, duplicates) {r['check_seconds']:.1f} s, "
            f"import (duplicates, insert) {r['insert_seconds']:.1f} s, storing the upload and "
            f"the commit {rest:.1f} s"
        )
    if not args.no_tasks:
        _print_tasks(indexed)
    scale = 1_000_000 / args.rows
    print(
        f"COPY of the clean rows into a table with no index here: {copy_rate:,.0f} rows/s "
        "(the issue measured about 58k rows/s on its machine; what it copied into is not said)"
    )
    for name in imports:
        r = results[name]
        rate = r["rows"] / r["seconds"]
        print(
            f"{name}: 1M-row time {r['seconds'] * scale:.1f} s (target <= 60), "
            f"{rate / copy_rate:.1%} of that COPY's rate, "
            f"{rate / base_rate:.1f}x baseline (target >= 30), "
            f"peak {r['maxrss_mb']:.0f} MB (target < 300)"
        )


def _print_tasks(indexed: dict) -> None:
    print(
        f"search index of the JSONL import (a task after commit, not in the times above): "
        f"{indexed['search_indexed']:,} samples in {indexed['search_index_seconds']:.1f} s"
    )
    print(
        f"near-duplicate index of the JSONL import (a task after commit, not in the times "
        f"above): {indexed['indexed']:,} samples in {indexed['index_seconds']:.1f} s "
        f"({indexed['indexed'] / indexed['index_seconds']:,.0f} samples/s)"
    )


if __name__ == "__main__":
    main()
