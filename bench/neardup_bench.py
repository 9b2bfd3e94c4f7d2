"""Near-duplicate benchmark: MinHash LSH + rapidfuzz against brute-force rapidfuzz.

    make bench BENCH_ARGS="neardup"                          # 1M existing, 10k new
    make bench BENCH_ARGS="neardup --existing 200000 --db-rows 20000"   # quicker

Builds, reproducibly from ``--seed``, a set of ``--existing`` items from the shared datasets
(GSM8K, TruthfulQA, XQuAD en/de, AdvBench, read from ``--data``; nothing is copied into the
repository): each item joins two random sentences of the pool with a tenth of the words
swapped for random vocabulary words. ``--new`` new items follow: half are planted edited
copies of items in the first ``--subset`` (1 to 14 random edits: typos, words deleted,
inserted, swapped, replaced, upper-cased, zero-width characters), half are fresh.

Reports, each labelled with the path it measures:

* ENGINE (in-process ``MemoryIndex``): index build time for ``--existing`` items, index
  memory (array bytes and RSS growth, per million), query time of the new items against
  all existing ones;
* RECALL (engine, ``--subset``): against brute-force rapidfuzz ``fuzz.ratio >= 85`` over
  every (query, item) pair, for ``--brute-queries`` of the new items (brute force over all
  10k x 100k pairs takes ~7 minutes here); the speed ratio compares per-query times;
* DATABASE (PostgreSQL, ``NearDupSignature``): ``near_dup_index_rebuild`` of ``--db-rows``
  samples, the table's size on disk per million, and ``duplicates_find`` for the new items
  in checks-stage batches of 500, with recall against the same brute force.

Targets (issue 4): build <= 5 min for 1M, memory <= 1 GB per million, 10k against 1M in
<= 10 s, recall >= 0.95.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "synthaug_bench_neardup"
THRESHOLD = 85.0
# CPU seconds of the last build and query: the machine is shared, so wall time alone
# overstates what the code costs when other work runs.
CPU: dict[str, float] = {}

from synthaug.engine import neardup  # noqa: E402

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def sentence_pool(data: Path) -> list[str]:
    pool: list[str] = []
    with (data / "gsm8k" / "test.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            pool.extend(_SENTENCE.split(json.loads(line)["question"]))
    with (data / "truthfulqa" / "TruthfulQA.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pool.append(row["Question"])
            for column in ("Correct Answers", "Incorrect Answers"):
                pool.extend(answer.strip() for answer in row[column].split(";"))
    for lang in ("en", "de"):
        squad = json.loads((data / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        for article in squad["data"]:
            for paragraph in article["paragraphs"]:
                pool.extend(_SENTENCE.split(paragraph["context"]))
                pool.extend(qa["question"] for qa in paragraph["qas"])
    with (data / "advbench" / "harmful_behaviors.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pool.extend((row["goal"], row["target"]))
    return sorted({s.strip() for s in pool if len(s.strip()) >= 15})


def make_items(pool: list[str], vocab: list[str], n: int, rng: random.Random) -> list[str]:
    items = []
    for _ in range(n):
        words = f"{rng.choice(pool)} {rng.choice(pool)}".split()
        items.append(" ".join(rng.choice(vocab) if rng.random() < 0.1 else w for w in words))
    return items


def edit(text: str, rng: random.Random, vocab: list[str], ops: int) -> str:
    """``ops`` random edits of the kinds near-duplicates show."""
    words = text.split()
    for _ in range(ops):
        op = rng.randrange(7)
        i = rng.randrange(len(words))
        if op == 0:
            w = words[i]
            j = rng.randrange(len(w) + 1)
            words[i] = w[:j] + rng.choice(LETTERS) + w[j + 1 :]
        elif op == 1 and len(words) > 3:
            del words[i]
        elif op == 2:
            words.insert(i, rng.choice(vocab))
        elif op == 3 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == 4:
            words[i] = rng.choice(vocab)
        elif op == 5:
            words[i] = words[i].upper()
        else:
            w = words[i]
            j = rng.randrange(len(w) + 1)
            words[i] = w[:j] + "\u200b" + w[j:]
    return " ".join(words)


def build_sets(args) -> tuple[list[str], list[str]]:
    rng = random.Random(args.seed)
    pool = sentence_pool(args.data)
    vocab = sorted({w for s in pool for w in s.split()})
    existing = make_items(pool, vocab, args.existing, rng)
    new = []
    for i in range(args.new):
        if i % 2 == 0:
            source = existing[rng.randrange(min(args.subset, len(existing)))]
            new.append(edit(source, rng, vocab, rng.randint(1, 14)))
        else:
            new.append(make_items(pool, vocab, 1, rng)[0])
    return existing, new


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def engine_build(prepared: list[str]) -> tuple[neardup.MemoryIndex, float]:
    """Build the in-process index; returns it and the wall time (CPU time in ``CPU``)."""
    start, cpu = time.perf_counter(), time.process_time()
    # Both cores for the rapidfuzz confirmation, as the brute force below gets them too.
    index = neardup.MemoryIndex(threshold=THRESHOLD, workers=-1)
    step = 20_000
    for lo in range(0, len(prepared), step):
        chunk = prepared[lo : lo + step]
        index.add(list(range(lo, lo + len(chunk))), chunk)
    index._table()  # sort once, as the first query would
    CPU["build"] = time.process_time() - cpu
    return index, time.perf_counter() - start


def engine_query(index: neardup.MemoryIndex, queries: list[str]) -> tuple[list, float]:
    start, cpu = time.perf_counter(), time.process_time()
    results = []
    for lo in range(0, len(queries), 1000):
        results.extend(index.query(queries[lo : lo + 1000]))
    CPU["query"] = time.process_time() - cpu
    return results, time.perf_counter() - start


def recall_of(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> float:
    return len(found & truth) / len(truth) if truth else 1.0


def section(title: str) -> None:
    print(f"\n-- {title}", flush=True)


def engine_part(args, existing: list[str], new: list[str]) -> dict:
    figures: dict = {}
    start, cpu = time.perf_counter(), time.process_time()
    prep_existing = [neardup.prepare(t) for t in existing]
    prepare_s, prepare_cpu = time.perf_counter() - start, time.process_time() - cpu
    prep_new = [neardup.prepare(t) for t in new]

    section(f"ENGINE (in-process MemoryIndex): {len(existing):,} existing, {len(new):,} new")
    before = rss_mb()
    index, build_s = engine_build(prep_existing)
    build_s += prepare_s
    CPU["build"] += prepare_cpu
    grown = rss_mb() - before
    array_mb = index.nbytes / 1e6
    per_m = 1_000_000 / len(existing)
    results, query_s = engine_query(index, prep_new)
    with_match = sum(1 for r in results if r)
    print(
        f"index build (all steps)    {build_s:8.1f} s   (CPU {CPU['build']:.1f} s; "
        f"{build_s * per_m / 60:.1f} min per million; target <= 5 min)"
    )
    print(f"  of which normalising     {prepare_s:8.1f} s   (engine.text.normalise)")
    print(
        f"index memory               {array_mb:8.0f} MB arrays, RSS +{grown:.0f} MB "
        f"(incl. the text map) = {array_mb * per_m / 1000:.2f} / {grown * per_m / 1000:.2f} "
        "GB per million (target <= 1 GB)"
    )
    print(
        f"query {len(new):,} new vs {len(existing):,}  {query_s:8.1f} s   "
        f"(CPU {CPU['query']:.1f} s; {with_match:,} have a near duplicate; "
        "target <= 10 s for 10k vs 1M)"
    )
    figures.update(build_s=build_s, query_s=query_s, array_mb=array_mb, rss_mb=grown)
    del index, results

    subset = prep_existing[: args.subset]
    queries = prep_new[: args.brute_queries]
    section(f"RECALL (engine vs brute force): {len(queries):,} new vs the first {len(subset):,}")
    small, small_build_s = engine_build(subset)
    found_results, lsh_s = engine_query(small, queries)
    found = {(qi, m.match) for qi, ms in enumerate(found_results) for m in ms}
    start = time.perf_counter()
    truth = neardup.brute_force_pairs(queries, subset, threshold=THRESHOLD, workers=-1)
    brute_s = time.perf_counter() - start
    print(
        f"brute force (cdist, every pair, 2 threads)  {brute_s:8.1f} s   {len(truth):,} pairs >= 85"
    )
    print(
        f"LSH + rapidfuzz                  {lsh_s:8.2f} s   {len(found):,} pairs "
        f"(index build {small_build_s:.1f} s, not counted)"
    )
    print(
        f"recall {recall_of(found, truth):.4f} (target >= 0.95); false positives "
        f"{len(found - truth)}; speed ratio {brute_s / lsh_s:,.0f}x the brute force"
    )
    figures.update(recall=recall_of(found, truth), ratio=brute_s / lsh_s, truth=truth)
    return figures


def db_part(args, existing: list[str], new: list[str], truth: set[tuple[int, int]]) -> None:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base.startswith("postgres"):
        print("\n-- DATABASE: skipped (set DATABASE_URL to a PostgreSQL server)")
        return
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
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthaug.settings")
    import django

    django.setup()
    from django.db import connection

    from datasets.models import NearDupSignature, Sample
    from datasets.services.datasets import dataset_create
    from datasets.services.dedup import duplicates_find, near_dup_index_rebuild
    from synthaug.engine.text import content_hash

    rows = existing[: args.db_rows]
    section(f"DATABASE (PostgreSQL NearDupSignature): {len(rows):,} samples, {len(new):,} new")
    dataset = dataset_create(name="neardup bench", slug="neardup-bench", created_by=None)

    canonical: dict[str, int] = {}

    def insert(texts: list[str], prefix: str) -> list[int]:
        """Insert samples; a text whose normalised hash exists links to it (``duplicate_of``),
        as the import does, so the one-canonical-per-hash rule holds."""
        ids: list[int] = []
        for lo in range(0, len(texts), 5000):
            objs = []
            for i, t in enumerate(texts[lo : lo + 5000]):
                digest = content_hash({"question": t})
                objs.append(
                    Sample(
                        dataset=dataset,
                        input={"question": t},
                        text=t,
                        origin=Sample.Origin.REAL,
                        content_hash=digest,
                        source_group=f"{prefix}{lo + i}",
                        external_id=f"{prefix}{lo + i}",
                        status=Sample.Status.ACCEPTED,
                    )
                )
            firsts, copies, seen = [], [], set()
            for obj in objs:
                if obj.content_hash in canonical or obj.content_hash in seen:
                    copies.append(obj)
                else:
                    seen.add(obj.content_hash)
                    firsts.append(obj)
            Sample.objects.bulk_create(firsts)
            canonical.update((f.content_hash, f.pk) for f in firsts)
            for obj in copies:
                obj.duplicate_of_id = canonical[obj.content_hash]
            Sample.objects.bulk_create(copies)
            ids.extend(obj.pk for obj in objs)
        return ids

    start = time.perf_counter()
    insert(rows, "e")
    print(f"insert samples (setup)     {time.perf_counter() - start:8.1f} s")
    start = time.perf_counter()
    indexed = near_dup_index_rebuild(dataset_id=dataset.pk)
    build_s = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE datasets_neardupsignature")
        cursor.execute(
            "SELECT pg_total_relation_size('datasets_neardupsignature'), "
            "pg_relation_size('datasets_neardupsignature')"
        )
        total, heap = cursor.fetchone()
    stored = NearDupSignature.objects.count()
    per_m = 1_000_000 / indexed
    print(
        f"index rebuild              {build_s:8.1f} s   ({build_s * per_m / 60:.1f} min per "
        f"million, {stored:,} signature rows)"
    )
    print(
        f"index on disk              {total / 1e6:8.0f} MB   (heap {heap / 1e6:.0f} MB + "
        f"band and key indexes {(total - heap) / 1e6:.0f} MB) = {total * per_m / 1e9:.2f} GB per "
        "million (target <= 1 GB)"
    )
    new_ids = insert(new, "n")
    start = time.perf_counter()
    findings: dict = {}
    for lo in range(0, len(new_ids), 500):
        findings.update(duplicates_find(dataset_id=dataset.pk, sample_ids=new_ids[lo : lo + 500]))
    find_s = time.perf_counter() - start
    first_id = Sample.objects.filter(dataset=dataset).order_by("pk").values_list("pk", flat=True)[0]
    queries_with_truth = {qi for qi, ci in truth if ci < len(rows)}
    hit = sum(1 for qi in queries_with_truth if new_ids[qi] in findings)
    print(
        f"duplicates_find {len(new):,} new  {find_s:8.1f} s   (batches of 500; "
        f"{len(findings):,} linked; index grows with them)"
    )
    print(
        f"recall (queries with a brute-force match among the first {args.brute_queries:,}): "
        f"{hit}/{len(queries_with_truth)} = "
        f"{hit / max(1, len(queries_with_truth)):.4f}; first sample id {first_id}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--existing", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--subset", type=int, default=100_000)
    parser.add_argument("--brute-queries", type=int, default=1_000)
    parser.add_argument("--db-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20241125)
    parser.add_argument("--skip-db", action="store_true")
    args = parser.parse_args()
    args.subset = min(args.subset, args.existing)
    args.db_rows = min(args.db_rows, args.subset)

    start = time.perf_counter()
    existing, new = build_sets(args)
    print(
        f"generated {len(existing):,} existing and {len(new):,} new items "
        f"(seed {args.seed}) in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    figures = engine_part(args, existing, new)
    if not args.skip_db:
        db_part(args, existing, new, figures["truth"])


if __name__ == "__main__":
    main()
