"""The streamed bulk engine: any size of file, flat memory, set-based checks in SQL.

Validation streams rows from a reader through ``RowSpec`` and writes the clean ones, in
chunks, to the staging table (PostgreSQL ``COPY`` through psycopg 3; ``bulk_create`` on
SQLite) and the bad ones to ImportRowError. Each chunk commits on its own (when the caller
is not inside a transaction), so the job page sees progress while the file is read. On
PostgreSQL a sample import writes each chunk from a background thread while the next
chunk's rows are checked (``_Writer``).
Duplicates are then found with window functions and joins, never with a Python set of a
million hashes.

Execution happens in one transaction: lock the job and the dataset, check duplicates again
(another import may have landed since validation), then ``INSERT ... SELECT`` from the
staging table into Sample (and SourceDocument), and empty the staging rows.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from datasets.importing.readers import RawRow
from datasets.importing.rowspec import (
    DUPLICATE_EXCERPT_CHARS,
    PREVIEW_ROWS,
    SQL_ID_REPEATS_ROW,
    SQL_ID_USED_BY_SAMPLE,
    SQL_SAME_CONTENT_AS_ROW,
    SQL_SAME_CONTENT_AS_SAMPLE,
    CleanDocument,
    CleanRow,
    RowError,
    RowSpec,
    sample_preview,
)
from datasets.models import (
    ImportJob,
    ImportRowError,
    ImportStagedDocument,
    ImportStagedRow,
    Sample,
    SourceDocument,
)

Progress = Callable[[int, int | None], None]

CHUNK_ROWS = 5000
# Checked chunks that may wait for the writer thread (``_Writer``).
WRITE_QUEUE_CHUNKS = 4
INSERT_CHUNK_ROWS = 100_000
PROGRESS_EVERY_SECONDS = 1.0
FIELD_MAX = ImportRowError._meta.get_field("field").max_length

_STAGED_ROW_COLUMNS = (
    "job_id",
    "row",
    "external_id",
    "input",
    "expected",
    "text",
    "tags",
    "difficulty",
    "content_hash",
    "source_group",
    "document_hash",
    "source_passage",
    "passage_start",
    "passage_end",
)
_STAGED_DOC_COLUMNS = (
    "job_id",
    "row",
    "title",
    "text",
    "origin",
    "external_id",
    "content_hash",
    "tags",
)
_ERROR_COLUMNS = ("job_id", "row", "field", "message", "excerpt", "kind")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _copy(model, columns: tuple[str, ...], rows: Iterable[tuple], *, raw=None) -> None:
    """Write rows with PostgreSQL COPY (text format; JSON columns as JSON text).

    ``raw``: the psycopg connection to use from a thread other than the one that owns
    Django's connection (``_Writer``); by default Django's connection of this thread.
    """
    sql = f"COPY {_table(model)} ({', '.join(columns)}) FROM STDIN"
    if raw is not None:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
        return
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


class _Writer:
    """A background thread that runs a stager's chunk writes, one at a time, in order.

    psycopg releases the GIL while it waits on the server, so PostgreSQL takes in chunk k
    (COPY, the JSON columns' parsing, the indexes) on the other core while Python checks
    the rows of the next chunks. Up to ``depth`` chunks wait for the thread (memory stays
    at ``depth + 1`` chunks), so a slow write (a checkpoint) does not stop the checking at
    once. It uses this thread's psycopg connection (in autocommit each COPY commits on its
    own; inside a caller's transaction it joins it), and one connection cannot serve two
    statements at once: while a write may be running, this thread must not use the
    database; call ``wait`` first. A write's exception is raised by ``submit`` or ``wait``.
    """

    def __init__(self) -> None:
        connection.ensure_connection()
        self.raw = connection.connection
        self.depth = WRITE_QUEUE_CHUNKS
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-copy")
        self._pending: deque[Future] = deque()
        self._error: BaseException | None = None

    def _run(self, write: Callable[[], None]) -> None:
        # After a failed write the transaction is aborted: the writes queued behind it
        # would only fail again, with an error that says less.
        if self._error is not None:
            return
        try:
            write()
        except BaseException as exc:
            self._error = exc
            raise

    def submit(self, write: Callable[[], None]) -> None:
        while len(self._pending) >= self.depth or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._run, write))

    def wait(self) -> None:
        """Wait for every write; raise the first one's error, if a write failed."""
        futures_wait(self._pending)
        self._pending.clear()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait for the last writes (raising the first error) and stop the thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


class Stager:
    """Collects an import's clean rows, documents and row errors and writes them in chunks.

    Also keeps the counters and reports progress: to the job row (at most
    once a second, with a queryset update so nothing else on the job is overwritten) and to
    an optional ``progress(done_rows, total_rows)`` callable.
    """

    def __init__(
        self, job: ImportJob, *, progress: Progress | None = None, pipelined: bool = False
    ) -> None:
        self.job = job
        self.progress = progress
        self.use_copy = connection.vendor == "postgresql"
        # Chunks written by a background thread (PostgreSQL only); see ``_Writer``.
        self.writer = _Writer() if pipelined and self.use_copy else None
        self.rows: list[CleanRow] = []
        self.documents: list[CleanDocument] = []
        self.errors: list[RowError] = []
        self.rows_total = 0
        self.rows_staged = 0
        self.documents_staged = 0
        self._last_report = time.monotonic()
        self.bytes_read: Callable[[], int] = lambda: 0

    # -- collecting

    def add_row(self, clean: CleanRow) -> None:
        self.rows.append(clean)
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def add_document(self, document: CleanDocument) -> None:
        self.documents.append(document)
        if len(self.documents) >= CHUNK_ROWS // 10:
            self.flush()

    def add_errors(self, errors: Iterable[RowError]) -> None:
        self.errors.extend(errors)
        if len(self.errors) >= CHUNK_ROWS:
            self.flush()

    def counted(self) -> None:
        """One more row read from the file; reports progress now and then."""
        self.rows_total += 1
        if self.rows_total % 1000 == 0:
            now = time.monotonic()
            if now - self._last_report >= PROGRESS_EVERY_SECONDS:
                self._last_report = now
                self.flush()
                self.report()

    def report(self) -> None:
        if self.writer is not None:
            self.writer.wait()
        ImportJob.objects.filter(pk=self.job.pk).update(
            rows_processed=self.rows_total, bytes_processed=self.bytes_read()
        )
        if self.progress is not None:
            self.progress(self.rows_total, None)

    # -- writing

    def flush(self) -> None:
        """Write what was collected: now, or (pipelined) handed to the writer thread."""
        if not (self.rows or self.documents or self.errors):
            return
        rows, documents, errors = self.rows, self.documents, self.errors
        self.rows, self.documents, self.errors = [], [], []
        self.rows_staged += len(rows)
        self.documents_staged += len(documents)
        if self.writer is not None:
            raw = self.writer.raw
            self.writer.submit(lambda: self._write(rows, documents, errors, raw=raw))
            return
        with transaction.atomic():
            self._write(rows, documents, errors)

    def close(self) -> None:
        """Finish the writes under way (raising their error); call when staging ends."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    def _write(
        self,
        rows: list[CleanRow],
        documents: list[CleanDocument],
        errors: list[RowError],
        *,
        raw=None,
    ) -> None:
        if rows:
            self._write_rows(rows, raw=raw)
        if documents:
            self._write_documents(documents, raw=raw)
        if errors:
            write_errors(self.job, errors, use_copy=self.use_copy, raw=raw)

    def _write_rows(self, rows: list[CleanRow], *, raw=None) -> None:
        job_id = self.job.pk
        if self.use_copy:
            _copy(
                ImportStagedRow,
                _STAGED_ROW_COLUMNS,
                (
                    (
                        job_id,
                        r.row,
                        r.external_id,
                        _json(r.input),
                        _json(r.expected),
                        r.text,
                        _json(r.tags),
                        r.difficulty,
                        r.content_hash,
                        r.source_group,
                        r.document_hash,
                        r.source_passage,
                        r.passage_start,
                        r.passage_end,
                    )
                    for r in rows
                ),
                raw=raw,
            )
            return
        ImportStagedRow.objects.bulk_create(
            [
                ImportStagedRow(
                    job_id=job_id,
                    row=r.row,
                    external_id=r.external_id,
                    input=r.input,
                    expected=r.expected,
                    text=r.text,
                    tags=r.tags,
                    difficulty=r.difficulty,
                    content_hash=r.content_hash,
                    source_group=r.source_group,
                    document_hash=r.document_hash,
                    source_passage=r.source_passage,
                    passage_start=r.passage_start,
                    passage_end=r.passage_end,
                )
                for r in rows
            ],
            batch_size=500,
        )

    def _write_documents(self, documents: list[CleanDocument], *, raw=None) -> None:
        job_id = self.job.pk
        if self.use_copy:
            _copy(
                ImportStagedDocument,
                _STAGED_DOC_COLUMNS,
                [
                    (
                        job_id,
                        d.row,
                        d.title,
                        d.text,
                        d.origin,
                        d.external_id,
                        d.content_hash,
                        _json(d.tags),
                    )
                    for d in documents
                ],
                raw=raw,
            )
            return
        ImportStagedDocument.objects.bulk_create(
            [
                ImportStagedDocument(
                    job_id=job_id,
                    row=d.row,
                    title=d.title,
                    text=d.text,
                    origin=d.origin,
                    external_id=d.external_id,
                    content_hash=d.content_hash,
                    tags=d.tags,
                )
                for d in documents
            ],
            batch_size=200,
        )


def write_errors(
    job: ImportJob, errors: list[RowError], *, use_copy: bool | None = None, raw=None
) -> None:
    """Store row errors (COPY on PostgreSQL): many thousands for a thoroughly bad file."""
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    if use_copy:
        _copy(
            ImportRowError,
            _ERROR_COLUMNS,
            [(job.pk, e.row, e.field[:FIELD_MAX], e.message, e.excerpt, e.kind) for e in errors],
            raw=raw,
        )
        return
    ImportRowError.objects.bulk_create(
        [
            ImportRowError(
                job=job,
                row=e.row,
                field=e.field[:FIELD_MAX],
                message=e.message,
                excerpt=e.excerpt,
                kind=e.kind,
            )
            for e in errors
        ],
        batch_size=500,
    )


# --- One pass: rows checked and copied straight into Sample --------------------------

# The columns an imported sample is written with by ``SampleCopier``; ``insert_samples``
# writes the same ones from the staging table (plus the document's id). A test imports
# one file both ways and compares every field.
_SAMPLE_COPY_COLUMNS = (
    "dataset_id",
    "external_id",
    "input",
    "expected",
    "text",
    "origin",
    "tags",
    "difficulty",
    "difficulty_source",
    "difficulty_rationale",
    "status",
    "split",
    "content_hash",
    "source_group",
    "import_job_id",
    "source_file",
    "source_row",
    "source_passage",
    "passage_start",
    "passage_end",
    "method",
    "generation_model",
    "prompt_version",
    "slot_values",
    "created_at",
    "difficulty_auto",
    "difficulty_auto_rationale",
    "difficulty_features",
    "review_status",
)


class RowRefused(Exception):
    """A row of a one-pass import has a problem: the pass stops and writes nothing."""


class SampleCopier(Stager):
    """A ``Stager`` for an all-or-nothing sample import in one pass (PostgreSQL only).

    Clean rows are COPY'd straight into Sample, from the writer thread while the next
    chunk is checked, instead of into the staging table for a later ``INSERT ... SELECT``.
    The first bad row raises ``RowRefused``; a row that repeats another row or an existing
    sample (content or id) makes the COPY fail on the unique constraints that back the
    duplicate rules. Either way the caller rolls the pass back and runs the two steps,
    which report every problem. Run it inside one transaction that holds the job's and
    the dataset's row locks, like ``import_job_execute``.
    """

    def __init__(self, job: ImportJob, *, progress: Progress | None = None) -> None:
        if connection.vendor != "postgresql":
            raise RuntimeError("The one-pass import copies with PostgreSQL's COPY.")
        super().__init__(job, progress=progress, pipelined=True)
        self.preview: list[dict[str, Any]] = []
        self.now = timezone.now()
        with connection.cursor() as cursor:
            gin_bulk_settings(cursor)
            # The foreign keys' checks (a trigger per row and key, deferred to the commit
            # by default, where they run alone) run as each chunk is written instead,
            # while Python checks the next chunks.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def finish(self) -> None:
        """After the last row: merge the GIN pending lists (see ``gin_merge_pending``)."""
        with connection.cursor() as cursor:
            gin_merge_pending(cursor, Sample)

    def add_row(self, clean: CleanRow) -> None:
        if clean.document_hash:  # only document imports tie rows to documents
            raise RowRefused(f"row {clean.row} refers to a source document")
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append(clean.preview())
        super().add_row(clean)

    def add_document(self, document: CleanDocument) -> None:
        raise RowRefused(f"row {document.row} is a source document")

    def add_errors(self, errors: Iterable[RowError]) -> None:
        raise RowRefused("; ".join(f"row {e.row}: {e.field} {e.message}" for e in errors))

    def report(self) -> None:
        # Only the caller's progress: the job row's counts would not be seen before the
        # pass commits, and updating it would make this thread wait for the writer.
        if self.progress is not None:
            self.progress(self.rows_total, None)

    def _write_rows(self, rows: list[CleanRow], *, raw=None) -> None:
        job, now = self.job, self.now
        real, accepted = Sample.Origin.REAL, Sample.Status.ACCEPTED
        from_import = Sample.DifficultySource.IMPORT
        _copy(
            Sample,
            _SAMPLE_COPY_COLUMNS,
            (
                (
                    job.dataset_id,
                    r.external_id,
                    _json(r.input),
                    _json(r.expected),
                    r.text,
                    real,
                    _json(r.tags),
                    r.difficulty,
                    from_import if r.difficulty else "",
                    "",
                    accepted,
                    "",
                    r.content_hash,
                    r.source_group,
                    job.pk,
                    job.file_name,
                    r.row,
                    r.source_passage,
                    r.passage_start,
                    r.passage_end,
                    "",
                    "",
                    "",
                    "{}",
                    now,
                    "",
                    "",
                    "{}",
                    "",
                )
                for r in rows
            ),
            raw=raw,
        )


def stage_sample_rows(stager: Stager, spec: RowSpec, rows: Iterable[RawRow]) -> None:
    """Clean every row of a reader and stage it (or its errors)."""
    unreadable = ImportRowError.Kind.UNREADABLE
    clean = spec.clean
    try:
        for raw in rows:
            stager.counted()
            if raw.data is None:
                stager.add_errors([RowError(raw.row, "", raw.problem, raw.excerpt, unreadable)])
                continue
            outcome = clean(raw.row, raw.data)
            if isinstance(outcome, list):
                stager.add_errors(outcome)
            else:
                stager.add_row(outcome)
        stager.flush()
    finally:
        # Also when the file turns out unreadable half-way: the caller's cleanup must not
        # meet a COPY still running on the connection.
        stager.close()
    stager.report()


# --- Duplicates, set-based -------------------------------------------------------------


def _work_mem(cursor) -> None:
    # The duplicate checks sort a million staged rows; the default 4 MB spills to disk.
    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL work_mem = '64MB'")


# GIN upkeep during a bulk insert (Sample's tags; SampleSearch's trigrams when the search
# task copies an import's texts; imported samples skip Sample's partial trigram index),
# for the rest of the transaction only. Each inserted row appends its keys to the index's pending
# list; when the list passes gin_pending_list_limit (4 MB by default) the inserting
# backend merges it into the index, accumulating at most work_mem of keys per pass. A
# bigger list merged with more memory touches each trigram's posting tree fewer times:
# about 10% less database CPU for the insert, measured in bench/import_bench.py's
# conditions.
_GIN_PENDING_LIMIT = "64MB"
_GIN_WORK_MEM = "256MB"


def gin_bulk_settings(cursor) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(f"SET LOCAL work_mem = '{_GIN_WORK_MEM}'")
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{_GIN_WORK_MEM}'")
        cursor.execute(f"SET LOCAL gin_pending_list_limit = '{_GIN_PENDING_LIMIT}'")


def gin_merge_pending(cursor, model) -> None:
    """Merge what the import left in the GIN indexes' pending lists into the indexes.

    Otherwise up to _GIN_PENDING_LIMIT of keys would wait there after commit: every text
    search would scan them, and the next single-row insert (a generated sample) would pay
    for the merge. Searches are correct either way (they read the pending list too), so
    where the database user does not own the indexes the merge is left to autovacuum.
    """
    if connection.vendor != "postgresql":
        return
    cursor.execute(
        """
        SELECT gin_clean_pending_list(i.indexrelid)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam
        WHERE i.indrelid = %s::regclass AND a.amname = 'gin'
          -- Only the index's owner (or a superuser) may merge; skip rather than fail.
          AND pg_has_role(current_user, c.relowner, 'USAGE')
        """,
        [model._meta.db_table],
    )


def analyze_staging() -> None:
    """Refresh the planner's statistics of the staging tables (PostgreSQL), after staging.

    The staging tables are empty between imports, so statistics taken then (an ANALYZE of
    the database, autovacuum) say "no rows", and the duplicate checks were then planned as
    nested loops over the staged rows: a 200k-row dry run ran for over ten minutes instead
    of half a second. An ANALYZE samples at most 30k rows (about 0.4 s here); a user that
    does not own the tables gets a warning, not an error.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {_table(ImportStagedRow)}, {_table(ImportStagedDocument)}")


def find_duplicates(job: ImportJob) -> None:
    """Store a row error for every staged row that duplicates a sample or an earlier row.

    Same rules and wording as ``rowspec.duplicate_errors``: existing canonical samples
    first, then the first row of the file with the same content; the same for ids.
    Replaces the job's previous duplicate errors, so it can run again before executing.
    """
    staged = _table(ImportStagedRow)
    errors = _table(ImportRowError)
    samples = _table(Sample)
    kind = ImportRowError.Kind.DUPLICATE
    with transaction.atomic(), connection.cursor() as cursor:
        _work_mem(cursor)
        ImportRowError.objects.filter(job=job, kind=kind).delete()
        cursor.execute(
            f"""
            WITH t AS (
                SELECT s.row, s.content_hash,
                       MIN(s.row) OVER (PARTITION BY s.content_hash) AS first_row
                FROM {staged} s WHERE s.job_id = %s
            )
            INSERT INTO {errors} (job_id, row, field, message, excerpt, kind)
            SELECT %s, t.row, 'input',
                   CASE WHEN x.id IS NOT NULL THEN {SQL_SAME_CONTENT_AS_SAMPLE}
                        ELSE {SQL_SAME_CONTENT_AS_ROW} END,
                   SUBSTR(s2.text, 1, {DUPLICATE_EXCERPT_CHARS}), %s
            FROM t
            LEFT JOIN {samples} x
              ON x.dataset_id = %s AND x.content_hash = t.content_hash
             AND x.duplicate_of_id IS NULL
            JOIN {staged} s2 ON s2.job_id = %s AND s2.row = t.row
            WHERE x.id IS NOT NULL OR t.row > t.first_row
            ORDER BY t.row
            """,  # noqa: S608 - names from model meta, values are parameters
            [job.pk, job.pk, kind, job.dataset_id, job.pk],
        )
        cursor.execute(
            f"""
            WITH t AS (
                SELECT s.row, s.external_id,
                       MIN(s.row) OVER (PARTITION BY s.external_id) AS first_row
                FROM {staged} s WHERE s.job_id = %s AND s.external_id <> ''
            )
            INSERT INTO {errors} (job_id, row, field, message, excerpt, kind)
            SELECT %s, t.row, 'id',
                   CASE WHEN x.id IS NOT NULL THEN {SQL_ID_USED_BY_SAMPLE}
                        ELSE {SQL_ID_REPEATS_ROW} END,
                   SUBSTR(s2.text, 1, {DUPLICATE_EXCERPT_CHARS}), %s
            FROM t
            LEFT JOIN {samples} x
              ON x.dataset_id = %s AND x.external_id = t.external_id AND x.external_id <> ''
            JOIN {staged} s2 ON s2.job_id = %s AND s2.row = t.row
            WHERE x.id IS NOT NULL OR t.row > t.first_row
            ORDER BY t.row
            """,  # noqa: S608 - names from model meta, values are parameters
            [job.pk, job.pk, kind, job.dataset_id, job.pk],
        )


def error_counts(job: ImportJob) -> tuple[int, int]:
    """(number of row errors, number of distinct rows with at least one)."""
    with connection.cursor() as cursor:
        table = _table(ImportRowError)
        cursor.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT row) FROM {table} WHERE job_id = %s",  # noqa: S608
            [job.pk],
        )
        errors, rows = cursor.fetchone()
    return int(errors), int(rows)


def clear_staging(job: ImportJob) -> None:
    ImportStagedRow.objects.filter(job=job).delete()
    ImportStagedDocument.objects.filter(job=job).delete()


# --- Execution -------------------------------------------------------------------------


def _empty_json() -> str:
    return "'{}'::jsonb" if connection.vendor == "postgresql" else "'{}'"


def insert_documents(job: ImportJob) -> tuple[int, int]:
    """Move staged documents into SourceDocument; (new, reused) counts.

    A document whose content hash the dataset already has is not copied: the existing one
    is reused (the unique constraint decides, so a concurrent identical import is safe).
    Call inside the execution transaction.
    """
    staged = _table(ImportStagedDocument)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {staged} WHERE job_id = %s", [job.pk])  # noqa: S608
        total = int(cursor.fetchone()[0])
        cursor.execute(
            f"""
            INSERT INTO {_table(SourceDocument)}
                (dataset_id, title, text, origin, external_id, content_hash, import_job_id,
                 tags, created_at)
            SELECT %s, d.title, d.text, d.origin, d.external_id, d.content_hash, %s, d.tags, %s
            FROM {staged} d
            WHERE d.job_id = %s
            ORDER BY d.row
            ON CONFLICT (dataset_id, content_hash) DO NOTHING
            """,  # noqa: S608 - names from model meta, values are parameters
            [job.dataset_id, job.pk, now, job.pk],
        )
        inserted = max(int(cursor.rowcount), 0)
    return inserted, total - inserted


def insert_samples(job: ImportJob, *, progress: Progress | None = None) -> int:
    """Move the staged rows without errors into Sample, in file order; the count.

    Rows tied to a document get its id by content hash (the documents are inserted
    first). Runs in slices of rows so a command-line progress bar can move; call inside
    the execution transaction.
    """
    staged = _table(ImportStagedRow)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COALESCE(MAX(s.row), 0), COUNT(*) FROM {staged} s
            WHERE s.job_id = %s AND NOT EXISTS (
                SELECT 1 FROM {_table(ImportRowError)} e WHERE e.job_id = %s AND e.row = s.row)
            """,  # noqa: S608 - names from model meta, values are parameters
            [job.pk, job.pk],
        )
        last_row, total = cursor.fetchone()
        gin_bulk_settings(cursor)
        inserted = 0
        low = 0
        while low < last_row:
            high = low + INSERT_CHUNK_ROWS
            cursor.execute(
                f"""
                INSERT INTO {_table(Sample)} (
                    dataset_id, external_id, input, expected, text, origin, tags,
                    difficulty, difficulty_source, difficulty_rationale, status, split,
                    content_hash, source_group, import_job_id, source_file, source_row,
                    source_document_id, source_passage, passage_start, passage_end,
                    method, generation_model, prompt_version, slot_values, created_at,
                    difficulty_auto, difficulty_auto_rationale, difficulty_features,
                    review_status)
                SELECT %s, s.external_id, s.input, s.expected, s.text, %s, s.tags,
                    s.difficulty, CASE WHEN s.difficulty <> '' THEN %s ELSE '' END, '', %s, '',
                    s.content_hash, s.source_group, %s, %s, s.row,
                    d.id, s.source_passage, s.passage_start, s.passage_end,
                    '', '', '', {_empty_json()}, %s,
                    '', '', {_empty_json()}, ''
                FROM {staged} s
                LEFT JOIN {_table(SourceDocument)} d
                  ON s.document_hash <> '' AND d.dataset_id = %s
                 AND d.content_hash = s.document_hash
                WHERE s.job_id = %s AND s.row > %s AND s.row <= %s
                  AND NOT EXISTS (
                    SELECT 1 FROM {_table(ImportRowError)} e
                    WHERE e.job_id = %s AND e.row = s.row)
                ORDER BY s.row
                """,  # noqa: S608 - names from model meta, values are parameters
                [
                    job.dataset_id,
                    Sample.Origin.REAL,
                    Sample.DifficultySource.IMPORT,
                    Sample.Status.ACCEPTED,
                    job.pk,
                    job.file_name,
                    now,
                    job.dataset_id,
                    job.pk,
                    low,
                    high,
                    job.pk,
                ],
            )
            inserted += max(int(cursor.rowcount), 0)
            low = high
            if progress is not None:
                progress(inserted, int(total))
        gin_merge_pending(cursor, Sample)
    return inserted


def staged_preview(job: ImportJob) -> list[dict[str, Any]]:
    """The first rows as they will be stored: staged, and without errors.

    Samples when the job has any (samples, SQuAD questions), documents otherwise.
    """
    bad_rows = ImportRowError.objects.filter(job=job, row=OuterRef("row"))
    rows = (
        ImportStagedRow.objects.filter(job=job)
        .exclude(Exists(bad_rows))
        .order_by("row")[:PREVIEW_ROWS]
    )
    preview = [
        sample_preview(
            row=r.row,
            external_id=r.external_id,
            input=r.input,
            expected=r.expected,
            tags=r.tags,
            difficulty=r.difficulty,
        )
        for r in rows
    ]
    if preview:
        return preview
    documents = ImportStagedDocument.objects.filter(job=job).order_by("row")[:PREVIEW_ROWS]
    return [
        CleanDocument(
            row=d.row,
            title=d.title,
            text=d.text,
            origin=d.origin,
            external_id=d.external_id,
            content_hash=d.content_hash,
            tags=d.tags,
        ).preview()
        for d in documents
    ]
