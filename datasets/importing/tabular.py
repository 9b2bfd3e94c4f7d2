"""The django-import-export engine: small CSV, XLSX and JSON files of samples.

The shared readers turn the file into an enveloped tablib Dataset (one row per file row:
its number, its data or the reason it could not be read, an excerpt), and
``FastSampleResource`` imports it: a dry run to validate and preview, a real run (inside
the caller's transaction) to import. The whole file is held in memory, which is why only
files up to ``SYNTHAUG_SMALL_IMPORT_MAX_BYTES`` come this way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tablib
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import IntegrityError
from import_export.results import Result, RowResult

from datasets.importing.readers import FileError, RawRow
from datasets.importing.rowspec import PREVIEW_ROWS, RowError, sample_preview
from datasets.models import ImportJob, ImportRowError
from datasets.resources import ENVELOPE_HEADERS, FastSampleResource


def envelope_dataset(
    rows: Iterable[RawRow], *, columns: list[str] | None, title: str
) -> tablib.Dataset:
    """A tablib Dataset of the file's rows, each wrapped as (number, data, problem, excerpt).

    Wrapping keeps a row's own shape (JSON objects with nested values, rows of different
    keys, ragged CSV rows) intact for the row spec, which tablib's fixed columns would not.
    """
    dataset = tablib.Dataset(headers=list(ENVELOPE_HEADERS), title=title)
    for raw in rows:
        dataset.append((raw.row, raw.data, raw.problem, raw.excerpt))
    # Not tablib API: plain attributes the resource reads (the header, for column checks).
    dataset.synthaug_columns = columns
    return dataset


class ImportFailed(Exception):
    """import-export reported errors that are not row errors (a conflict, a database error)."""

    def __init__(self, reason: str, *, file_error: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.file_error = file_error


@dataclass
class TabularOutcome:
    errors: list[RowError]
    preview: list[dict[str, Any]] = field(default_factory=list)
    rows_total: int = 0
    rows_imported: int = 0


def _raise_base_errors(result: Result) -> None:
    """Re-raise what import-export collected outside row validation.

    A FileError (from the column check) stays one; an IntegrityError (a unique constraint
    lost to a concurrent write) is raised as it is, for the service to report as a
    conflict; anything else becomes ImportFailed.
    """
    for error in result.base_errors:
        if isinstance(error.error, FileError | IntegrityError):
            raise error.error
    if result.base_errors:
        raise ImportFailed(str(result.base_errors[0].error))
    for _number, errors in result.row_errors():
        if isinstance(errors[0].error, IntegrityError):
            raise errors[0].error
        raise ImportFailed(str(errors[0].error))


def _resource(job: ImportJob, *, skip_bad_rows: bool) -> FastSampleResource:
    return FastSampleResource(
        dataset=job.dataset,
        mapping=job.mapping,
        job=job,
        file_name=job.file_name,
        skip_bad_rows=skip_bad_rows,
    )


def tabular_validate(job: ImportJob, dataset: tablib.Dataset) -> TabularOutcome:
    """Dry-run the import: the row errors as import-export reports them, and a preview.

    Nothing is written (import-export rolls its transaction back).
    """
    resource = _resource(job, skip_bad_rows=False)
    result = resource.import_data(
        dataset,
        dry_run=True,
        raise_errors=False,
        use_transactions=True,
        retain_instance_in_row_result=True,
        file_name=job.file_name,
        user=job.created_by,
    )
    _raise_base_errors(result)
    numbers = dataset[ENVELOPE_HEADERS[0]]
    errors: list[RowError] = []
    for invalid in result.invalid_rows:
        number = numbers[invalid.number - 1]
        # Kinds and excerpts are not part of a ValidationError; the resource kept them.
        known = {(e.field, e.message): e for e in resource.outcomes.get(number, [])}
        for name, messages in invalid.error_dict.items():
            path = "" if name == NON_FIELD_ERRORS else name
            for message in messages:
                source = known.get((path, message))
                errors.append(
                    RowError(
                        number,
                        path,
                        message,
                        source.excerpt if source else "",
                        source.kind if source else ImportRowError.Kind.INVALID,
                    )
                )
    preview = []
    for row_result in result.rows:
        sample = row_result.instance
        if row_result.import_type != RowResult.IMPORT_TYPE_NEW or sample is None:
            continue
        preview.append(
            sample_preview(
                row=sample.source_row,
                external_id=sample.external_id,
                input=sample.input,
                expected=sample.expected,
                tags=sample.tags,
                difficulty=sample.difficulty,
            )
        )
        if len(preview) >= PREVIEW_ROWS:
            break
    return TabularOutcome(errors=errors, preview=preview, rows_total=len(dataset))


def tabular_execute(job: ImportJob, dataset: tablib.Dataset) -> TabularOutcome:
    """Import for real; call inside a transaction that holds the job and dataset locks.

    Duplicates are checked again against the dataset as it is now. Returns the row errors
    (the rows skipped, when the job skips bad rows); when there are errors and the job does
    not skip them, nothing was written (import-export rolled back) and the caller fails
    the job.
    """
    resource = _resource(job, skip_bad_rows=job.skip_bad_rows)
    result = resource.import_data(
        dataset,
        dry_run=False,
        raise_errors=False,
        use_transactions=True,
        rollback_on_validation_errors=True,
        file_name=job.file_name,
        user=job.created_by,
    )
    _raise_base_errors(result)
    return TabularOutcome(
        errors=resource.row_errors(),
        rows_total=len(dataset),
        rows_imported=result.totals[RowResult.IMPORT_TYPE_NEW],
    )
