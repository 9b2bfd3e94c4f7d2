"""Near-duplicate control (issue 4): the persistent index and the contract the checks call.

The engine (``synthaug.engine.neardup``) turns texts into MinHash LSH band keys and confirms
candidates with rapidfuzz; this module stores the keys (``NearDupSignature``), looks candidates
up, and links and groups what it finds.

* ``near_dup_index_add`` indexes samples (idempotent). Imports reach it through the
  ``samples_added`` signal (``datasets.receivers``); the checks stage's new samples are
  indexed by ``duplicates_find``; ``manage.py dedup_index`` (re)builds a whole dataset.
* ``duplicates_find`` finds, for each given sample, the closest earlier sample at or above
  the dataset's threshold: exact (same content hash) first, then near.
* ``duplicates_record`` links findings and merges near-duplicate families (union-find:
  a family is labelled by its smallest sample id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from django.db.models import Q

from datasets.models import NEAR_DUP_BAND_FIELDS, Dataset, NearDupSignature, Sample
from synthaug.engine import neardup

CHUNK = 5000
if len(NEAR_DUP_BAND_FIELDS) != neardup.BANDS:  # pragma: no cover - a build-time mismatch
    raise RuntimeError("NearDupSignature needs one column per engine band: add a migration")
# Keys per ``IN (...)`` lookup: well under SQLite's 32766 bound parameters.
LOOKUP_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class DuplicateFinding:
    """What a sample duplicates: the earlier sample, the score (0-100) and how it was found."""

    sample_id: int
    duplicate_of_id: int
    score: float
    exact: bool


def _chunks(items: list, size: int) -> Iterator[list]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def _write_signatures(ids: list[int], keys: np.ndarray, *, fresh: bool) -> None:
    """Store one signature row per sample. ``fresh`` (none of these samples stored, e.g.
    after a rebuild's delete) uses PostgreSQL COPY; otherwise stored samples are skipped."""
    rows = [(pk, *row) for pk, row in zip(ids, keys.tolist(), strict=True)]
    if fresh and connection.vendor == "postgresql":
        table = connection.ops.quote_name(NearDupSignature._meta.db_table)
        columns = ", ".join(("sample_id", *NEAR_DUP_BAND_FIELDS))
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    NearDupSignature.objects.bulk_create(
        [
            NearDupSignature(sample_id=pk, **dict(zip(NEAR_DUP_BAND_FIELDS, row, strict=True)))
            for pk, *row in rows
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )


def _index_rows(dataset_id: int, rows: list[tuple[int, str]], *, fresh: bool = False) -> None:
    if not rows:
        return
    prepared = [neardup.prepare(text) for _, text in rows]
    keys = neardup.keys_for(prepared, salt=dataset_id)
    _write_signatures([pk for pk, _ in rows], keys, fresh=fresh)


def near_dup_index_add(
    *,
    dataset_id: int,
    sample_ids: Iterable[int] | None = None,
    import_job_id: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Index the given samples of a dataset (by ids, or all of one import job).

    Idempotent: samples already indexed are skipped. Returns how many samples it indexed.
    Each chunk commits on its own, so a crash loses at most one chunk and a re-run
    completes the rest.
    """
    # Already indexed samples are skipped up front (a primary-key join), so the checks
    # stage's ``samples_added`` after ``duplicates_find`` costs one query.
    samples = Sample.objects.filter(dataset_id=dataset_id, near_dup_signature__isnull=True)
    if import_job_id is not None:
        samples = samples.filter(import_job_id=import_job_id)
    elif sample_ids is not None:
        samples = samples.filter(pk__in=list(sample_ids))
    done = 0
    last = 0
    while True:
        rows = list(samples.filter(pk__gt=last).order_by("pk").values_list("pk", "text")[:CHUNK])
        if not rows:
            return done
        with transaction.atomic():
            _index_rows(dataset_id, rows)
        done += len(rows)
        last = rows[-1][0]
        if progress:
            progress(len(rows))


def near_dup_index_rebuild(
    *, dataset_id: int, progress: Callable[[int], None] | None = None
) -> int:
    """Drop and rebuild a dataset's whole index. Returns the number of samples indexed.

    Runs in one transaction, so readers see the old index or the new one, never half.
    """
    with transaction.atomic():
        NearDupSignature.objects.filter(sample__dataset_id=dataset_id).delete()
        done = 0
        last = 0
        while True:
            rows = list(
                Sample.objects.filter(dataset_id=dataset_id, pk__gt=last)
                .order_by("pk")
                .values_list("pk", "text")[:CHUNK]
            )
            if not rows:
                return done
            _index_rows(dataset_id, rows, fresh=True)
            done += len(rows)
            last = rows[-1][0]
            if progress:
                progress(len(rows))


def near_dup_index_size(*, dataset_id: int) -> int:
    """How many samples of the dataset are indexed."""
    return NearDupSignature.objects.filter(sample__dataset_id=dataset_id).count()


def _lookup(keys: np.ndarray) -> dict[tuple[int, int], list[int]]:
    """(band, stored key) -> sample ids, for the given keys: one indexed query per band."""
    found: dict[tuple[int, int], list[int]] = defaultdict(list)
    for band, name in enumerate(NEAR_DUP_BAND_FIELDS):
        for chunk in _chunks(np.unique(keys[:, band]).tolist(), LOOKUP_CHUNK):
            rows = NearDupSignature.objects.filter(**{f"{name}__in": chunk}).values_list(
                name, "sample_id"
            )
            for key, sample_id in rows:
                found[band, key].append(sample_id)
    return found


def duplicates_find(*, dataset_id: int, sample_ids: list[int]) -> dict[int, DuplicateFinding]:
    """Find, for each given sample, the closest *earlier* sample of the dataset at or above
    the dataset's near-duplicate threshold: other samples of the same batch, the real
    samples and every split included. Samples with no duplicate are absent from the result.

    Exact duplicates (``duplicate_of`` set at creation from the content hash) are reported
    with score 100 and ``exact=True``. Near duplicates: the best ``fuzz.ratio`` on the
    normalised texts, ties to the earliest sample.

    Links nothing (``duplicates_record`` links what the caller decides to link), but adds
    the given samples to the index, so later batches find them.
    """
    threshold = Dataset.objects.values_list("near_duplicate_threshold", flat=True).get(
        pk=dataset_id
    )
    rows = list(
        Sample.objects.filter(dataset_id=dataset_id, pk__in=sample_ids)
        .order_by("pk")
        .values_list("pk", "text", "duplicate_of_id")
    )
    if not rows:
        return {}
    findings: dict[int, DuplicateFinding] = {}
    prepared = {pk: neardup.prepare(text) for pk, text, _ in rows}
    ids = [pk for pk, _, _ in rows]
    keys = neardup.keys_for([prepared[pk] for pk in ids], salt=dataset_id)

    # Candidates: stored keys (the whole dataset) plus the given samples' own keys, so a
    # batch is compared with itself whether or not it is indexed yet.
    by_key = _lookup(keys)
    for pk, row in zip(ids, keys.tolist(), strict=True):
        for band, key in enumerate(row):
            by_key[band, key].append(pk)
    candidates: dict[int, set[int]] = {}
    for pk, row in zip(ids, keys.tolist(), strict=True):
        candidates[pk] = {
            c for band, key in enumerate(row) for c in by_key.get((band, key), ()) if c < pk
        }

    wanted = sorted({c for cs in candidates.values() for c in cs} - prepared.keys())
    texts = dict(prepared)
    for chunk in _chunks(wanted, LOOKUP_CHUNK):
        # The dataset filter drops the rare stray from another dataset's colliding key.
        for pk, text in Sample.objects.filter(dataset_id=dataset_id, pk__in=chunk).values_list(
            "pk", "text"
        ):
            texts[pk] = neardup.prepare(text)

    for pk, _, duplicate_of_id in rows:
        if duplicate_of_id is not None:
            findings[pk] = DuplicateFinding(pk, duplicate_of_id, 100.0, exact=True)
            continue
        cands = [c for c in candidates[pk] if c in texts]
        matches = neardup.best_matches(pk, prepared[pk], cands, texts, threshold)
        if matches:
            best = matches[0]
            findings[pk] = DuplicateFinding(pk, best.match, round(best.score, 2), exact=False)

    with transaction.atomic():
        _write_signatures(ids, keys, fresh=False)
    return findings


def duplicates_record(*, findings: dict[int, DuplicateFinding]) -> None:
    """Link each finding (``near_duplicate_of``, ``near_duplicate_score``) and put linked
    samples in one family (``family``: the id of the family's first, i.e. smallest, sample).

    Union-find: a finding that joins two families merges them, every member relabelled to
    the smaller root, all in one transaction. The dataset row is locked for the merge, so
    two batches of one dataset cannot relabel the same families at once.
    """
    if not findings:
        return
    pairs = [(f.sample_id, f.duplicate_of_id) for f in findings.values()]
    involved = {pk for pair in pairs for pk in pair}
    with transaction.atomic():
        dataset_ids = set(
            Sample.objects.filter(pk__in=involved).values_list("dataset_id", flat=True)
        )
        list(Dataset.objects.select_for_update().filter(pk__in=dataset_ids).values("pk"))
        family = dict(Sample.objects.filter(pk__in=involved).values_list("pk", "family"))

        parent: dict[int, int] = {}

        def find(x: int) -> int:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: int, b: int) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        # Existing labels are roots of their own: a sample joins the family it is in.
        for pk in involved:
            union(pk, family[pk] if family[pk] is not None else pk)
        for a, b in pairs:
            union(a, b)

        old_labels: dict[int, int] = {}
        for pk in involved:
            if family[pk] is not None:
                old_labels[family[pk]] = find(pk)
        for old, new in old_labels.items():
            if old != new:
                Sample.objects.filter(dataset_id__in=dataset_ids, family=old).update(family=new)
        by_root: dict[int, list[int]] = defaultdict(list)
        for pk in involved:
            by_root[find(pk)].append(pk)
        for root, members in by_root.items():
            Sample.objects.filter(pk__in=members).filter(
                Q(family__isnull=True) | ~Q(family=root)
            ).update(family=root)
        for finding in findings.values():
            Sample.objects.filter(pk=finding.sample_id).update(
                near_duplicate_of_id=finding.duplicate_of_id,
                near_duplicate_score=finding.score,
            )
