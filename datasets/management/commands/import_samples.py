"""manage.py import_samples DATASET FILE: real samples from CSV, XLSX, JSON or JSON Lines.

Checks every row first and imports all of them or none (unless --skip-bad-rows), with a
progress bar on stderr; exits non-zero when the import fails, printing the first problems.
"""

from __future__ import annotations

from datasets.importing.cli import ImportCommand
from datasets.models import ImportJob


class Command(ImportCommand):
    help = "Import real samples from a CSV, XLSX, JSON or JSON Lines file into a dataset."
    kind = ImportJob.Kind.SAMPLES
    formats = ["csv", "xlsx", "json", "jsonl"]
