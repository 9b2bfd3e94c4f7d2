"""The import_samples and import_documents commands: options, progress bar, summary."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.importing.mapping import mapping_clean, mapping_parse
from datasets.models import Dataset, ImportJob, ImportRowError
from datasets.services.imports import import_file, import_job_create, import_job_validate

ERRORS_PRINTED = 20


class _Bar:
    """A tqdm progress bar on stderr, one per phase (checking rows, importing)."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self.bar = None
        self.phase = ""

    def __call__(self, done: int, total: int | None) -> None:
        from tqdm import tqdm

        phase = "check" if total is None else "import"
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(
                total=total,
                desc="Checking rows" if phase == "check" else "Importing",
                unit=" rows",
                unit_scale=True,
                file=sys.stderr,
                disable=self.disable,
                leave=True,
            )
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ImportCommand(BaseCommand):
    kind = ImportJob.Kind.SAMPLES
    formats: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="Slug of the dataset to import into")
        parser.add_argument("file", type=Path, help="The file to import")
        parser.add_argument(
            "--format", choices=self.formats, help="Override the format guessed from the name"
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="TARGET=SOURCE",
            help='A mapping line, e.g. --map "input.question=Question" --map \'tags.locale="en"\'',
        )
        parser.add_argument(
            "--mapping-file",
            type=Path,
            help="A file of mapping lines (target = column), or a JSON mapping object",
        )
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="Import the good rows and report the bad ones (default: all or nothing)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only check the file: report problems and import nothing",
        )
        parser.add_argument("--user", help="Record this user as the one who imported")

    def _mapping(self, options: dict[str, Any]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        try:
            if options["mapping_file"]:
                text = options["mapping_file"].read_text(encoding="utf-8-sig")
                if text.lstrip().startswith("{"):
                    mapping = mapping_clean(json.loads(text))
                else:
                    mapping = mapping_parse(text)
            if options["map"]:
                extra = mapping_parse("\n".join(options["map"]))
                for key, value in extra.items():
                    if isinstance(value, dict):
                        mapping.setdefault(key, {}).update(value)
                    else:
                        mapping[key] = value
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"Cannot read the mapping file: {exc}") from None
        except ValidationError as exc:
            raise CommandError(f"Bad mapping: {' '.join(exc.messages)}") from None
        return mapping

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with the slug {options['dataset']!r}.")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        mapping = self._mapping(options)
        bar = _Bar(disable=options["verbosity"] < 1)
        started = time.monotonic()
        try:
            if options["dry_run"]:
                job = import_job_create(
                    dataset=dataset,
                    created_by=user,
                    file=path,
                    file_name=path.name,
                    kind=self.kind,
                    format=options["format"],
                    mapping=mapping,
                    skip_bad_rows=options["skip_bad_rows"],
                    enqueue=False,
                )
                job = import_job_validate(job=job, progress=bar)
            else:
                job = import_file(
                    dataset=dataset,
                    created_by=user,
                    path=path,
                    kind=self.kind,
                    format=options["format"],
                    mapping=mapping,
                    skip_bad_rows=options["skip_bad_rows"],
                    progress=bar,
                )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        finally:
            bar.close()
        self._report(job, elapsed=time.monotonic() - started, dry_run=options["dry_run"])

    def _report(self, job: ImportJob, *, elapsed: float, dry_run: bool) -> None:
        where = (
            f"{job.file_name} into {job.dataset.slug} (job #{job.pk}, {job.get_engine_display()})"
        )
        errors = list(ImportRowError.objects.filter(job=job).order_by("row", "id")[:ERRORS_PRINTED])
        for error in errors:
            field = f" {error.field}:" if error.field else ""
            self.stderr.write(f"  row {error.row}:{field} {error.message}")
        if job.error_count > len(errors):
            self.stderr.write(
                f"  ... and {job.error_count - len(errors):,} more "
                f"(all of them: {job.get_absolute_url()}errors.csv)"
            )
        if job.status == ImportJob.Status.FAILED:
            reason = job.file_error or job.failure_reason
            raise CommandError(f"Import of {where} failed, nothing imported: {reason}")
        if dry_run:
            bad = ImportRowError.objects.filter(job=job).values("row").distinct().count()
            self.stdout.write(
                f"Dry run of {where}: {job.rows_total:,} rows checked, "
                f"{job.rows_total - bad:,} would be imported, {bad:,} have problems. "
                f"Nothing imported ({elapsed:.1f} s). The job waits for confirmation at "
                f"{job.get_absolute_url()}"
            )
            if bad and not job.skip_bad_rows:
                raise CommandError(
                    f"{bad:,} rows have problems: fix them, or run with --skip-bad-rows."
                )
            return
        self.stdout.write(self.style.SUCCESS(self._success(job, where, elapsed)))

    def _success(self, job: ImportJob, where: str, elapsed: float) -> str:
        skipped = f", skipped {job.rows_skipped:,} bad rows" if job.rows_skipped else ""
        return f"Imported {job.rows_imported:,} samples from {where}{skipped} in {elapsed:.1f} s."
