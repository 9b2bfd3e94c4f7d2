"""Build the spot-check queue of every checked batch that has none yet.

The checks-finished signal does this through a worker; this command does it in-process, for
the demo (``manage.py demo`` calls it, so a queue waits for the demo annotator without a
worker having run) and for batches checked before the review app was installed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from datasets.models import Batch
from review.services import queue_build


class Command(BaseCommand):
    help = "Build the spot-check queue of every READY batch that has none (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", help="Only this dataset (slug)")

    def handle(self, *args, dataset: str | None = None, **options) -> None:
        batches = Batch.objects.select_related("dataset").filter(
            status__in=(Batch.Status.READY, Batch.Status.DONE), review_queue__isnull=True
        )
        if dataset:
            batches = batches.filter(dataset__slug=dataset)
        for batch in batches.order_by("pk"):
            queue, created = queue_build(batch=batch, created_by=batch.created_by)
            if created:
                self.stdout.write(
                    f"Spot-check queue for {batch}: {queue.composition.get('items', 0)} items."
                )
