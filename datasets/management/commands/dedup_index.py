"""manage.py dedup_index DATASET [--rebuild]: (re)build a dataset's near-duplicate index.

Without ``--rebuild`` it adds whatever is missing (indexing is idempotent); with it, the
dataset's index is dropped and rebuilt in one transaction. A progress bar goes to stderr.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from datasets.models import Dataset
from datasets.services.dedup import (
    near_dup_index_add,
    near_dup_index_rebuild,
    near_dup_index_size,
)


class Command(BaseCommand):
    help = "Build or rebuild the near-duplicate (MinHash LSH) index of a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="Slug of the dataset")
        parser.add_argument(
            "--rebuild", action="store_true", help="Drop the dataset's index and build it anew"
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with the slug {options['dataset']!r}.")
        total = dataset.samples.count()
        started = time.monotonic()
        with tqdm(
            total=total,
            desc="Indexing",
            unit=" samples",
            unit_scale=True,
            file=sys.stderr,
            disable=options["no_progress"],
        ) as bar:
            build = near_dup_index_rebuild if options["rebuild"] else near_dup_index_add
            done = build(dataset_id=dataset.pk, progress=bar.update)
        self.stdout.write(
            f"Near-duplicate index of {dataset.slug}: {done} samples processed in "
            f"{time.monotonic() - started:.1f} s; "
            f"{near_dup_index_size(dataset_id=dataset.pk)} samples indexed."
        )
