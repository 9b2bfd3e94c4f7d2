"""django-import-export resources: samples in and out through the admin and the app.

``SampleResource`` does not map file columns itself: every row arrives in an envelope
(``__row__``, ``__data__``, ``__problem__``, ``__excerpt__``, built by
``datasets.importing.tabular.envelope_dataset`` from the shared readers) and is cleaned by
the same ``RowSpec`` the streamed engine uses. Its duplicate checks follow the same rules
(``rowspec.duplicate_errors``), so both engines report the same errors for the same file.
"""

from __future__ import annotations

from typing import Any

import tablib
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from import_export import resources
from import_export.results import Result, RowResult

from datasets.importing.mapping import mapping_clean
from datasets.importing.readers import FileError
from datasets.importing.rowspec import CleanRow, RowError, RowSpec, duplicate_errors
from datasets.models import Dataset, ImportJob, ImportRowError, Sample

ROW, DATA, PROBLEM, EXCERPT = "__row__", "__data__", "__problem__", "__excerpt__"
ENVELOPE_HEADERS = [ROW, DATA, PROBLEM, EXCERPT]
_LOOKUP_CHUNK = 1000


def existing_samples(
    dataset: Dataset, rows: list[CleanRow]
) -> tuple[dict[str, tuple[int, str]], dict[str, int]]:
    """What the dataset already holds for these rows: (by content hash, by external id)."""
    hashes = sorted({row.content_hash for row in rows})
    ids = sorted({row.external_id for row in rows if row.external_id})
    by_hash: dict[str, tuple[int, str]] = {}
    by_id: dict[str, int] = {}
    samples = Sample.objects.filter(dataset=dataset)
    for start in range(0, len(hashes), _LOOKUP_CHUNK):
        chunk = hashes[start : start + _LOOKUP_CHUNK]
        for digest, pk, external_id in samples.filter(
            content_hash__in=chunk, duplicate_of__isnull=True
        ).values_list("content_hash", "pk", "external_id"):
            by_hash[digest] = (pk, external_id)
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        for external_id, pk in samples.filter(external_id__in=chunk).values_list(
            "external_id", "pk"
        ):
            by_id[external_id] = pk
    return by_hash, by_id


class SampleResource(resources.ModelResource):
    """Real samples from an enveloped tablib Dataset, checked by the shared RowSpec.

    Construct with the target ``dataset`` (None only to list fields, as the admin does
    before a dataset is chosen), the job's ``mapping``, the ``job`` the samples belong to
    (the admin import creates one when it runs for real) and ``skip_bad_rows``.
    """

    class Meta:
        model = Sample
        fields = (
            "id",
            "external_id",
            "input",
            "expected",
            "tags",
            "difficulty",
            "source_file",
            "source_row",
        )
        # Rows always create new samples; ids in files are external ids, never pks.
        force_init_instance = True
        use_bulk = True
        batch_size = 1000
        use_transactions = True
        clean_model_instances = False
        report_skipped = True

    def __init__(
        self,
        *,
        dataset: Dataset | None = None,
        mapping: dict[str, Any] | None = None,
        job: ImportJob | None = None,
        file_name: str = "",
        skip_bad_rows: bool = False,
        max_chars: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.mapping = mapping_clean(mapping)
        self.job = job
        self.file_name = file_name or (job.file_name if job else "")
        self.skip_bad_rows = skip_bad_rows
        self.max_chars = max_chars
        self.outcomes: dict[int, CleanRow | list[RowError]] = {}
        self._dry_run = True
        # True when this resource made the job (an admin import) and so must finish it;
        # the import service finishes the jobs it passes in.
        self._owns_job = False

    # -- the import workflow

    def import_data(self, dataset: tablib.Dataset, dry_run: bool = False, **kwargs: Any) -> Result:
        # before_import() does not receive dry_run; the admin job is only made for real.
        self._dry_run = dry_run
        return super().import_data(dataset, dry_run=dry_run, **kwargs)

    def before_import(self, dataset: tablib.Dataset, **kwargs: Any) -> None:
        """Clean and duplicate-check every row up front (a few queries, not one per row)."""
        from django.conf import settings

        if self.dataset is None:
            raise FileError("Choose the dataset to import into.")
        if list(dataset.headers or []) != ENVELOPE_HEADERS:
            raise FileError("Rows must come through synthaug's readers (CSV, XLSX or JSON).")
        spec = RowSpec(
            schema=self.dataset.schema,
            tag_dimensions=self.dataset.tag_dimensions,
            mapping=self.mapping,
            max_chars=self.max_chars or settings.SYNTHAUG_MAX_FIELD_CHARS,
        )
        columns = getattr(dataset, "synthaug_columns", None)
        if columns is not None:
            spec.check_columns(columns)
        clean_rows: list[CleanRow] = []
        self.outcomes = {}
        for number, data, problem, excerpt in dataset:
            if problem:
                self.outcomes[number] = [
                    RowError(number, "", problem, excerpt, ImportRowError.Kind.UNREADABLE)
                ]
                continue
            outcome = spec.clean(number, data)
            self.outcomes[number] = outcome
            if isinstance(outcome, CleanRow):
                clean_rows.append(outcome)
        by_hash, by_id = existing_samples(self.dataset, clean_rows)
        duplicates = duplicate_errors(clean_rows, existing_by_hash=by_hash, existing_by_id=by_id)
        self.outcomes.update(duplicates)
        if not self._dry_run and self.job is None:
            self.job = self._admin_job(dataset, kwargs.get("user"), kwargs.get("file_name"))
            self._owns_job = True

    def _admin_job(self, dataset: tablib.Dataset, user: Any, file_name: str | None) -> ImportJob:
        """The job of record for an import run from the admin (created inside its transaction)."""
        now = timezone.now()
        user = user if getattr(user, "is_authenticated", False) else None
        self.file_name = self.file_name or file_name or "admin upload"
        fmt = dataset.title if dataset.title in ImportJob.Format.values else ImportJob.Format.CSV
        return ImportJob.objects.create(
            dataset=self.dataset,
            created_by=user,
            confirmed_by=user,
            confirmed_at=now,
            started_at=now,
            kind=ImportJob.Kind.SAMPLES,
            format=fmt,
            engine=ImportJob.Engine.IMPORT_EXPORT,
            file_name=self.file_name[:255],
            file_size=getattr(dataset, "synthaug_size", 0),
            file_sha256=getattr(dataset, "synthaug_sha256", ""),
            mapping=self.mapping,
            status=ImportJob.Status.IMPORTING,
            rows_total=len(dataset),
        )

    def import_instance(self, instance: Sample, row: dict[str, Any], **kwargs: Any) -> None:
        outcome = self.outcomes[row[ROW]]
        if isinstance(outcome, list):
            errors: dict[str, list[str]] = {}
            for error in outcome:
                errors.setdefault(error.field or NON_FIELD_ERRORS, []).append(error.message)
            raise ValidationError(errors)
        instance.dataset = self.dataset
        instance.external_id = outcome.external_id
        instance.input = outcome.input
        instance.expected = outcome.expected
        instance.text = outcome.text
        instance.tags = outcome.tags
        instance.difficulty = outcome.difficulty
        instance.difficulty_source = (
            Sample.DifficultySource.IMPORT if outcome.difficulty else Sample.DifficultySource.UNSET
        )
        instance.content_hash = outcome.content_hash
        instance.source_group = outcome.source_group
        instance.origin = Sample.Origin.REAL
        instance.status = Sample.Status.ACCEPTED
        instance.import_job = self.job
        instance.source_file = self.file_name[:255]
        instance.source_row = outcome.row

    def skip_row(
        self,
        instance: Sample,
        original: Sample | None,
        row: dict[str, Any],
        import_validation_errors: dict | None = None,
    ) -> bool:
        # With "skip bad rows", a bad row is skipped (and reported from self.outcomes)
        # instead of failing the import.
        return bool(self.skip_bad_rows and import_validation_errors)

    def after_import(self, dataset: tablib.Dataset, result: Result, **kwargs: Any) -> None:
        """Finish the admin job. Deliberately no sequence reset (unlike ModelResource).

        ModelResource resets the primary key sequence to MAX(id) after an import; ids here
        always come from the sequence, and a reset while another transaction is inserting
        could hand out an id twice.
        """
        job = self.job
        if self._dry_run or job is None or not self._owns_job:
            return
        job.status = ImportJob.Status.SUCCEEDED
        job.finished_at = timezone.now()
        job.rows_processed = len(dataset)
        job.rows_imported = result.totals[RowResult.IMPORT_TYPE_NEW]
        job.rows_skipped = result.totals[RowResult.IMPORT_TYPE_SKIP]
        job.save()

    # -- errors, in one place for both callers

    def row_errors(self) -> list[RowError]:
        """Every problem found by before_import, in row order."""
        found: list[RowError] = []
        for number in sorted(self.outcomes):
            outcome = self.outcomes[number]
            if isinstance(outcome, list):
                found.extend(outcome)
        return found


class FastSampleResource(SampleResource):
    """The app's own import: no per-row diff (the preview comes from the row spec)."""

    class Meta(SampleResource.Meta):
        skip_diff = True
        skip_html_diff = True
