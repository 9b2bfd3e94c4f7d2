"""Importing files into a dataset: create a job, check it (a dry run), confirm, run it.

The job row is the truth: it is created first (``import_job_create``), then a worker fills
it in. ``import_job_validate`` reads and checks every row and stores the row errors and a
preview; nothing reaches Sample or SourceDocument. ``import_job_confirm`` moves a checked
job on; ``import_job_execute`` imports it, all or nothing unless the job skips bad rows.
``import_file`` runs all of it synchronously (command line, demo, benchmarks); a good
all-or-nothing sample file it checks and imports in one pass, with nobody to look at a dry
run in between.

Which engine runs is recorded in ``job.engine``: django-import-export for small CSV, XLSX
and JSON files of samples, the streamed bulk path for everything else (JSONL always, large
files, documents). Both use the same readers and the same ``RowSpec``.

Services never raise for a bad file or bad rows: the job ends FAILED (or VALIDATED with
row errors) and says why. They raise ValidationError only for a request that cannot be
made (a wrong status, an unknown format, a malformed mapping).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import psycopg
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from datasets import signals
from datasets.importing.documents import (
    squad_mapping,
    stage_jsonl_documents,
    stage_squad,
    stage_text_document,
)
from datasets.importing.files import upload_discard, upload_open, upload_remove, upload_store
from datasets.importing.mapping import mapping_check, mapping_clean, mapping_format, mapping_parse
from datasets.importing.readers import (
    CsvReader,
    FileError,
    JsonArrayReader,
    JsonLinesReader,
    XlsxReader,
)
from datasets.importing.rowspec import DocSpec, RowSpec
from datasets.importing.streamed import (
    RowRefused,
    SampleCopier,
    Stager,
    analyze_staging,
    clear_staging,
    error_counts,
    find_duplicates,
    insert_documents,
    insert_samples,
    stage_sample_rows,
    staged_preview,
    write_errors,
)
from datasets.importing.tabular import (
    ImportFailed,
    envelope_dataset,
    tabular_execute,
    tabular_validate,
)
from datasets.models import Dataset, ImportJob, ImportRowError

__all__ = [
    "format_check",
    "format_detect",
    "import_file",
    "import_job_confirm",
    "import_job_create",
    "import_job_execute",
    "import_job_validate",
    "import_mapping_check",
    # The mapping's text form lives with the mapping; re-exported as part of this API.
    "mapping_format",
    "mapping_parse",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
Format = ImportJob.Format

EXTENSIONS: dict[str, str] = {
    ".csv": Format.CSV,
    ".json": Format.JSON,
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
    ".xlsx": Format.XLSX,
    ".txt": Format.TEXT,
    ".text": Format.TEXT,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
}
SAMPLE_FORMATS = (Format.CSV, Format.XLSX, Format.JSON, Format.JSONL)
DOCUMENT_FORMATS = (Format.TEXT, Format.MARKDOWN, Format.JSONL, Format.SQUAD)
TABULAR_FORMATS = (Format.CSV, Format.XLSX, Format.JSON)
# SQuAD files are parsed whole (they hold nested articles); bigger ones must be split.
SQUAD_MAX_CHARS = 64 * 1024 * 1024

# Deadlock and serialization failure: another transaction wrote the same rows.
_CONFLICT_STATES = {"40P01", "40001"}
CONFLICT = (
    "Another import (or generation) added some of the same samples while this import ran, "
    "so nothing was imported. Upload the file again to see which rows are now duplicates."
)


def _line_limit() -> int:
    # Room for a row whose fields are all near the cap, even JSON-escaped; a longer line
    # is a row error and is skipped without being held in memory.
    return 8 * settings.SYNTHAUG_MAX_FIELD_CHARS + 65536


def _document_max_chars() -> int:
    return 25 * settings.SYNTHAUG_MAX_FIELD_CHARS


# --- Formats ---------------------------------------------------------------------------


def format_detect(file_name: str, kind: str) -> str:
    """The format of a file from its extension; for documents a .json file is SQuAD.

    Raises ValidationError when the extension says nothing useful.
    """
    suffix = PurePath(file_name).suffix.lower()
    if suffix == ".xls":
        raise ValidationError(
            "Old Excel .xls files cannot be read; save the sheet as .xlsx or CSV UTF-8."
        )
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        raise ValidationError(
            f"Cannot tell the format of {file_name!r} from its extension; use .csv, .xlsx, "
            ".json, .jsonl, .txt or .md, or choose the format."
        )
    if kind == ImportJob.Kind.DOCUMENTS and fmt == Format.JSON:
        return Format.SQUAD
    return fmt


def format_check(kind: str, fmt: str) -> None:
    """Raise ValidationError unless files of ``fmt`` can bring in ``kind``."""
    if kind not in ImportJob.Kind.values:
        raise ValidationError(f"Unknown kind {kind!r}; choose samples or documents.")
    if fmt not in Format.values:
        raise ValidationError(f"Unknown format {fmt!r}.")
    if kind == ImportJob.Kind.SAMPLES and fmt not in SAMPLE_FORMATS:
        raise ValidationError(
            f"Samples come from CSV, XLSX, JSON or JSON Lines files, not {Format(fmt).label}. "
            "To import text, Markdown or SQuAD files, choose source documents."
        )
    if kind == ImportJob.Kind.DOCUMENTS and fmt not in DOCUMENT_FORMATS:
        raise ValidationError(
            f"Source documents come from text, Markdown, JSON Lines or SQuAD-style JSON files, "
            f"not {Format(fmt).label}."
        )


def import_mapping_check(*, dataset: Dataset, kind: str, fmt: str, mapping: Any) -> dict:
    """The mapping cleaned and checked for this dataset and kind of import.

    Raises ValidationError. Documents other than SQuAD take only tags from a mapping.
    """
    cleaned = mapping_clean(mapping)
    mapping_check(cleaned, tag_dimensions=dataset.tag_dimensions)
    if kind == ImportJob.Kind.DOCUMENTS and fmt != Format.SQUAD:
        extra = sorted(set(cleaned) - {"tags"})
        if extra:
            raise ValidationError(
                f"For {Format(fmt).label} documents a mapping can only set tags, not {extra[0]}."
            )
    return cleaned


# --- Creating --------------------------------------------------------------------------


def import_job_create(
    *,
    dataset: Dataset,
    created_by: AbstractBaseUser | None,
    file: Any,
    file_name: str,
    kind: str = ImportJob.Kind.SAMPLES,
    format: str | None = None,
    mapping: dict | None = None,
    skip_bad_rows: bool = False,
    enqueue: bool = True,
) -> ImportJob:
    """Store the uploaded file and create a PENDING import job for it.

    ``file`` is a Django File/UploadedFile, a binary file object or a pathlib.Path; it is
    copied in chunks. The format comes from the extension when ``format`` is None. When
    ``enqueue``, the validation task is sent once the surrounding transaction commits.
    Raises ValidationError for an unknown format, a format that cannot bring in ``kind``,
    a malformed mapping or a file over the size limit.
    """
    fmt = format or format_detect(file_name, kind)
    format_check(kind, fmt)
    cleaned = import_mapping_check(dataset=dataset, kind=kind, fmt=fmt, mapping=mapping)
    relative, size, digest = upload_store(file, file_name)
    try:
        with transaction.atomic():
            job = ImportJob.objects.create(
                dataset=dataset,
                created_by=created_by if getattr(created_by, "pk", None) else None,
                kind=kind,
                format=fmt,
                file_name=PurePath(file_name).name[:255],
                file_path=relative,
                file_size=size,
                file_sha256=digest,
                mapping=cleaned,
                skip_bad_rows=skip_bad_rows,
                status=ImportJob.Status.PENDING,
            )
            if enqueue:
                from datasets.tasks import import_job_validate_task

                import_job_validate_task.delay_on_commit(job.pk)
    except BaseException:
        upload_discard(relative)
        raise
    return job


# --- Validating ------------------------------------------------------------------------


def _claim_for_validation(job: ImportJob) -> bool:
    """PENDING -> VALIDATING with a conditional UPDATE; True when this call got the job.

    A job stuck in VALIDATING for longer than the task time limit (its worker died) is
    claimed again; any other status means the work is done or under way elsewhere.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimed = (
        ImportJob.objects.filter(pk=job.pk)
        .filter(
            Q(status=ImportJob.Status.PENDING)
            | Q(status=ImportJob.Status.VALIDATING, started_at__lt=stale)
        )
        .update(
            status=ImportJob.Status.VALIDATING,
            started_at=now,
            rows_processed=0,
            bytes_processed=0,
        )
    )
    job.refresh_from_db()
    return claimed == 1


def _engine_for(job: ImportJob) -> str:
    """The engine for a job: a preset one if it can handle the job, else by size and format."""
    tabular_ok = job.kind == ImportJob.Kind.SAMPLES and job.format in TABULAR_FORMATS
    if job.engine == ImportJob.Engine.IMPORT_EXPORT and tabular_ok:
        return job.engine
    if job.engine == ImportJob.Engine.STREAMED:
        return job.engine
    if tabular_ok and job.file_size <= settings.SYNTHAUG_SMALL_IMPORT_MAX_BYTES:
        return ImportJob.Engine.IMPORT_EXPORT
    return ImportJob.Engine.STREAMED


def _sample_reader(job: ImportJob, fh: BinaryIO):
    limit = _line_limit()
    if job.format == Format.CSV:
        # The reader's cell cap only bounds memory; the row spec reports a field over
        # SYNTHAUG_MAX_FIELD_CHARS with its name and length.
        return CsvReader(fh, max_cell_chars=limit, max_line_chars=limit)
    if job.format == Format.XLSX:
        return XlsxReader(fh)
    if job.format == Format.JSON:
        return JsonArrayReader(fh, max_item_chars=limit)
    return JsonLinesReader(fh, max_line_chars=limit)


def _row_spec(job: ImportJob, mapping: dict | None = None) -> RowSpec:
    return RowSpec(
        schema=job.dataset.schema,
        tag_dimensions=job.dataset.tag_dimensions,
        mapping=job.mapping if mapping is None else mapping,
        max_chars=settings.SYNTHAUG_MAX_FIELD_CHARS,
    )


def _unexpected(step: str, exc: Exception) -> str:
    return (
        f"An unexpected error stopped the {step} ({type(exc).__name__}); nothing was imported. "
        "Try again, and tell an administrator if it happens again."
    )


def _fail(job: ImportJob, *, file_error: str = "", failure_reason: str = "") -> ImportJob:
    """End a job as FAILED with nothing imported; a file error replaces any row errors."""
    with transaction.atomic():
        clear_staging(job)
        if file_error:
            ImportRowError.objects.filter(job=job).delete()
        errors = ImportRowError.objects.filter(job=job).count()
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            file_error=file_error,
            failure_reason=failure_reason,
            error_count=errors,
            rows_imported=0,
            finished_at=timezone.now(),
        )
    upload_remove(job)
    job.refresh_from_db()
    return job


def _validate_samples(job: ImportJob, progress: Progress | None) -> None:
    spec = _row_spec(job)
    with upload_open(job) as fh:
        reader = _sample_reader(job, fh)
        if reader.columns is not None:
            spec.check_columns(reader.columns)
        if job.engine == ImportJob.Engine.IMPORT_EXPORT:
            dataset = envelope_dataset(reader, columns=reader.columns, title=job.format)
            if not len(dataset):
                raise FileError("The file has no rows to import.")
            outcome = tabular_validate(job, dataset)
            write_errors(job, outcome.errors)
            job.rows_total = outcome.rows_total
            job.preview = outcome.preview
            if progress is not None:
                progress(outcome.rows_total, None)
            return
        stager = Stager(job, progress=progress, pipelined=True)
        stager.bytes_read = lambda: reader.bytes_read
        stage_sample_rows(stager, spec, reader)
    if stager.rows_total == 0:
        raise FileError("The file has no rows to import.")
    analyze_staging()
    find_duplicates(job)
    job.rows_total = stager.rows_total
    job.preview = staged_preview(job)


def _validate_documents(job: ImportJob, progress: Progress | None) -> None:
    dataset = job.dataset
    doc_spec = DocSpec(tag_dimensions=dataset.tag_dimensions, max_chars=_document_max_chars())
    stager = Stager(job, progress=progress)
    with upload_open(job) as fh:
        if job.format in (Format.TEXT, Format.MARKDOWN):
            stage_text_document(
                stager, fh=fh, job=job, spec=doc_spec, max_chars=_document_max_chars()
            )
        elif job.format == Format.JSONL:
            stage_jsonl_documents(
                stager, fh=fh, job=job, spec=doc_spec, max_line_chars=2 * _document_max_chars()
            )
        else:
            stage_squad(
                stager,
                fh=fh,
                job=job,
                doc_spec=doc_spec,
                row_spec=_row_spec(job, squad_mapping(job.mapping)),
                max_chars=SQUAD_MAX_CHARS,
            )
    analyze_staging()
    find_duplicates(job)
    job.rows_total = stager.rows_total
    job.preview = staged_preview(job)


def import_job_validate(*, job: ImportJob, progress: Progress | None = None) -> ImportJob:
    """Check every row of a PENDING job (a dry run) and leave it VALIDATED or FAILED.

    Stores one ImportRowError per problem, ``rows_total``, ``error_count`` and a preview
    of the first rows as they will be stored; writes nothing to Sample or SourceDocument.
    A file that cannot be read at all ends FAILED with ``file_error``. A job in any other
    status is returned unchanged, so a redelivered task does no harm. ``progress`` is
    called as ``progress(rows_done, rows_total_or_None)`` while rows are read.
    """
    if not _claim_for_validation(job):
        return job
    try:
        # A job claimed again after a crash starts from a clean slate.
        clear_staging(job)
        ImportRowError.objects.filter(job=job).delete()
        job.engine = _engine_for(job)
        ImportJob.objects.filter(pk=job.pk).update(engine=job.engine)
        if job.kind == ImportJob.Kind.SAMPLES:
            _validate_samples(job, progress)
        else:
            _validate_documents(job, progress)
    except FileError as exc:
        return _fail(job, file_error=str(exc))
    except Exception as exc:
        logger.exception("import job %s: validation failed", job.pk)
        return _fail(job, failure_reason=_unexpected("check", exc))
    errors, _bad_rows = error_counts(job)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.VALIDATED,
        rows_total=job.rows_total,
        rows_processed=job.rows_total,
        bytes_processed=job.file_size,
        error_count=errors,
        preview=job.preview,
    )
    job.refresh_from_db()
    return job


# --- Confirming ------------------------------------------------------------------------


def import_job_confirm(
    *,
    job: ImportJob,
    user: AbstractBaseUser | None,
    skip_bad_rows: bool | None = None,
    enqueue: bool = True,
) -> ImportJob:
    """Move a VALIDATED job to IMPORTING and (when ``enqueue``) send the import task on commit.

    ``skip_bad_rows`` (when not None) changes the job's choice before it runs. Raises
    ValidationError when the job is not waiting for confirmation, when it has row errors
    and does not skip bad rows, or when no row at all could be imported.
    """
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != ImportJob.Status.VALIDATED:
            raise ValidationError(
                f"This import is {locked.get_status_display().lower()}; only a checked import "
                "waiting for confirmation can be confirmed."
            )
        if skip_bad_rows is not None:
            locked.skip_bad_rows = skip_bad_rows
        _errors, bad_rows = error_counts(locked)
        if bad_rows >= locked.rows_total:
            raise ValidationError(
                "Every row has problems, so there is nothing to import. Fix the file and "
                "upload it again."
            )
        if bad_rows and not locked.skip_bad_rows:
            raise ValidationError(
                f"{bad_rows:,} of {locked.rows_total:,} rows have problems, and nothing is "
                "imported while any row is bad. Fix them and upload the file again, or choose "
                f"to skip the bad rows and import the other {locked.rows_total - bad_rows:,}."
            )
        locked.status = ImportJob.Status.IMPORTING
        locked.confirmed_by = user if getattr(user, "pk", None) else None
        locked.confirmed_at = timezone.now()
        locked.save(update_fields=["status", "skip_bad_rows", "confirmed_by", "confirmed_at"])
        if enqueue:
            from datasets.tasks import import_job_execute_task

            import_job_execute_task.delay_on_commit(locked.pk)
    return locked


# --- Executing -------------------------------------------------------------------------


def _execute_tabular(job: ImportJob, progress: Progress | None) -> None:
    with upload_open(job) as fh:
        reader = _sample_reader(job, fh)
        dataset = envelope_dataset(reader, columns=reader.columns, title=job.format)
    outcome = tabular_execute(job, dataset)
    ImportRowError.objects.filter(job=job).delete()
    write_errors(job, outcome.errors)
    bad_rows = len({error.row for error in outcome.errors})
    job.error_count = len(outcome.errors)
    if bad_rows and not job.skip_bad_rows:
        # import-export rolled its own savepoint back: no sample was written.
        job.status = ImportJob.Status.FAILED
        job.failure_reason = _row_errors_reason(bad_rows, job.rows_total)
        return
    job.rows_imported = outcome.rows_imported
    job.rows_skipped = bad_rows
    job.status = ImportJob.Status.SUCCEEDED
    if progress is not None:
        progress(outcome.rows_imported, outcome.rows_imported)


def _row_errors_reason(bad_rows: int, total: int) -> str:
    return (
        f"{bad_rows:,} of {total:,} rows have problems (duplicates are checked again when the "
        "import runs, against the dataset as it is then); nothing was imported."
    )


def _execute_streamed(job: ImportJob, progress: Progress | None) -> None:
    find_duplicates(job)
    errors, bad_rows = error_counts(job)
    job.error_count = errors
    if bad_rows and not job.skip_bad_rows:
        job.status = ImportJob.Status.FAILED
        job.failure_reason = _row_errors_reason(bad_rows, job.rows_total)
        clear_staging(job)
        return
    if job.kind == ImportJob.Kind.DOCUMENTS:
        job.documents_imported, job.documents_reused = insert_documents(job)
    inserted = insert_samples(job, progress=progress)
    if job.kind == ImportJob.Kind.DOCUMENTS and job.format != Format.SQUAD:
        inserted = job.documents_imported + job.documents_reused
    job.rows_imported = inserted
    job.rows_skipped = bad_rows
    job.status = ImportJob.Status.SUCCEEDED
    clear_staging(job)


def _lock_dataset(job: ImportJob) -> None:
    """Hold the job's dataset row until the import's transaction ends. NO KEY UPDATE:
    imports into one dataset queue behind each other, while other writers (generation)
    may still insert samples that reference the dataset."""
    list(Dataset.objects.select_for_update(no_key=True).filter(pk=job.dataset_id).values("pk"))


def import_job_execute(*, job: ImportJob, progress: Progress | None = None) -> ImportJob:
    """Import an IMPORTING job in one transaction: every good row, or nothing.

    Holds the job's and the dataset's row locks, so imports into one dataset run one after
    the other and the duplicate checks made here (again: the dataset may have changed since
    validation) hold when the rows are written. Ends SUCCEEDED with counts, or FAILED with
    nothing written: row errors without "skip bad rows", a conflicting write (the unique
    constraints backing the duplicate rules), or an unexpected error. A job in any other
    status is returned unchanged, so a redelivered task does no harm.
    """
    try:
        with transaction.atomic():
            locked = ImportJob.objects.select_for_update().select_related("dataset").get(pk=job.pk)
            if locked.status != ImportJob.Status.IMPORTING:
                return locked
            _lock_dataset(locked)
            if locked.engine == ImportJob.Engine.IMPORT_EXPORT:
                _execute_tabular(locked, progress)
            else:
                _execute_streamed(locked, progress)
            locked.rows_processed = locked.rows_total
            locked.finished_at = timezone.now()
            locked.save()
            if locked.status == ImportJob.Status.SUCCEEDED:
                dataset_id, job_id = locked.dataset_id, locked.pk
                transaction.on_commit(
                    lambda: signals.samples_added.send(
                        sender=ImportJob, dataset_id=dataset_id, import_job_id=job_id
                    )
                )
    except IntegrityError:
        logger.warning("import job %s: conflicting write, nothing imported", job.pk)
        return _fail(job, failure_reason=CONFLICT)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) in _CONFLICT_STATES:
            logger.warning("import job %s: %s, nothing imported", job.pk, exc)
            return _fail(job, failure_reason=CONFLICT)
        logger.exception("import job %s: database error", job.pk)
        return _fail(job, failure_reason=_unexpected("import", exc))
    except FileError as exc:
        return _fail(job, file_error=str(exc))
    except ImportFailed as exc:
        logger.error("import job %s: %s", job.pk, exc.reason)
        return _fail(job, failure_reason=f"The import failed ({exc.reason}); nothing was imported.")
    except Exception as exc:
        logger.exception("import job %s: import failed", job.pk)
        return _fail(job, failure_reason=_unexpected("import", exc))
    upload_remove(locked)
    return locked


# --- All at once -----------------------------------------------------------------------


def _one_pass_suits(job: ImportJob) -> bool:
    """Whether ``import_file`` may try the one pass: samples, all or nothing, the streamed
    engine, PostgreSQL (the pass copies with COPY from a second thread)."""
    return (
        connection.vendor == "postgresql"
        and job.kind == ImportJob.Kind.SAMPLES
        and not job.skip_bad_rows
        and _engine_for(job) == ImportJob.Engine.STREAMED
    )


def _import_one_pass(
    job: ImportJob, *, user: AbstractBaseUser | None, progress: Progress | None
) -> ImportJob | None:
    """Check and import an all-or-nothing sample file in one pass and one transaction.

    With no human between the dry run and the import (``import_file``), the rows need not
    be staged, checked for duplicates twice and copied again: each checked chunk is
    COPY'd straight into Sample while the next one is checked (``SampleCopier``), so the
    database inserts on one core while Python checks on the other. A bad row, or a row
    that repeats another row or a sample (the unique constraints refuse it), rolls the
    whole pass back and returns None: the caller then runs the two steps, which report
    every problem. So a good file is read once and a bad one is read again.
    """
    if not _claim_for_validation(job):
        return job
    job.engine = ImportJob.Engine.STREAMED
    ImportJob.objects.filter(pk=job.pk).update(engine=job.engine)
    try:
        with transaction.atomic():
            locked = ImportJob.objects.select_for_update().select_related("dataset").get(pk=job.pk)
            _lock_dataset(locked)
            spec = _row_spec(locked)
            with upload_open(locked) as fh:
                reader = _sample_reader(locked, fh)
                if reader.columns is not None:
                    spec.check_columns(reader.columns)
                copier = SampleCopier(locked, progress=progress)
                copier.bytes_read = lambda: reader.bytes_read
                stage_sample_rows(copier, spec, reader)
            if copier.rows_total == 0:
                raise FileError("The file has no rows to import.")
            copier.finish()
            now = timezone.now()
            ImportJob.objects.filter(pk=locked.pk).update(
                status=ImportJob.Status.SUCCEEDED,
                rows_total=copier.rows_total,
                rows_processed=copier.rows_total,
                bytes_processed=locked.file_size,
                rows_imported=copier.rows_staged,
                rows_skipped=0,
                error_count=0,
                preview=copier.preview,
                confirmed_by=user if getattr(user, "pk", None) else None,
                confirmed_at=locked.started_at,
                finished_at=now,
            )
            dataset_id, job_id = locked.dataset_id, locked.pk
            transaction.on_commit(
                lambda: signals.samples_added.send(
                    sender=ImportJob, dataset_id=dataset_id, import_job_id=job_id
                )
            )
    except (RowRefused, IntegrityError, psycopg.IntegrityError) as exc:
        logger.info("import job %s: one pass refused (%s); checking in two steps", job.pk, exc)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.PENDING, rows_processed=0, bytes_processed=0
        )
        job.refresh_from_db()
        return None
    except FileError as exc:
        return _fail(job, file_error=str(exc))
    except Exception as exc:
        logger.exception("import job %s: one-pass import failed", job.pk)
        return _fail(job, failure_reason=_unexpected("import", exc))
    upload_remove(job)
    job.refresh_from_db()
    return job


def import_file(
    *,
    dataset: Dataset,
    created_by: AbstractBaseUser | None,
    path: Path | str,
    kind: str = ImportJob.Kind.SAMPLES,
    format: str | None = None,
    mapping: dict | None = None,
    skip_bad_rows: bool = False,
    progress: Progress | None = None,
) -> ImportJob:
    """Create, validate and execute an import of a local file, synchronously.

    An all-or-nothing sample file on PostgreSQL is first tried in one pass
    (``_import_one_pass``); a file with any problem then goes through the same two steps
    as an upload, so the outcome and the report are the same either way.

    Returns the job: SUCCEEDED, or FAILED with ``file_error``, ``failure_reason`` and row
    errors saying why (row errors without ``skip_bad_rows`` fail the job). Raises
    ValidationError only for a request that cannot be made (format, mapping, size).
    """
    path = Path(path)
    job = import_job_create(
        dataset=dataset,
        created_by=created_by,
        file=path,
        file_name=path.name,
        kind=kind,
        format=format,
        mapping=mapping,
        skip_bad_rows=skip_bad_rows,
        enqueue=False,
    )
    if _one_pass_suits(job):
        done = _import_one_pass(job, user=created_by, progress=progress)
        if done is not None:
            return done
    job = import_job_validate(job=job, progress=progress)
    if job.status != ImportJob.Status.VALIDATED:
        return job
    try:
        job = import_job_confirm(job=job, user=created_by, enqueue=False)
    except ValidationError as exc:
        return _fail(job, failure_reason=exc.messages[0])
    return import_job_execute(job=job, progress=progress)
