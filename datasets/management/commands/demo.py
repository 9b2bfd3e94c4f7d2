"""Build the demo: real TruthfulQA questions and XQuAD passages, a lead and an annotator.

Runs through the same import path a user would, so the demo's samples carry real import
provenance. Safe to run again: an existing demo is kept, and the demo users get new
passwords printed (there are no default passwords to remember).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from datasets.models import Dataset, ImportJob
from datasets.services.datasets import dataset_create, membership_add, user_create
from datasets.services.imports import import_file
from synthaug import roles

DATA_DIR = Path(__file__).resolve().parents[2] / "demo_data"
SLUG = "demo"
LEAD = "demo-lead"
ANNOTATOR = "demo-annotator"

SCHEMA = {
    "type": "object",
    "required": ["input", "expected"],
    "properties": {
        "input": {
            "type": "object",
            "required": ["question"],
            "properties": {"question": {"type": "string", "minLength": 1}},
        },
        "expected": {
            "type": "object",
            "required": ["answer"],
            "properties": {
                "answer": {"type": "string", "minLength": 1},
                "correct_answers": {"type": "string"},
                "incorrect_answers": {"type": "string"},
                "answer_start": {"type": "integer", "minimum": 0},
                "source": {"type": "string"},
            },
        },
    },
}
TAG_DIMENSIONS = {
    "task": ["truthfulness", "reading_comprehension"],
    "category": [],
    "locale": ["en", "de", "es", "zh"],
}
TRUTHFULQA_MAPPING = {
    "id": "",
    "input": {"question": "Question"},
    "expected": {
        "answer": "Best Answer",
        "correct_answers": "Correct Answers",
        "incorrect_answers": "Incorrect Answers",
        "source": "Source",
    },
    "tags": {
        "task": {"const": "truthfulness"},
        "category": "Category",
        "locale": {"const": "en"},
    },
    "difficulty": "",
}
XQUAD_MAPPING = {
    "tags": {
        "task": {"const": "reading_comprehension"},
        "category": "title",
        "locale": {"const": "en"},
    },
}
LICENSE_NOTE = (
    "TruthfulQA: Apache-2.0 (sylinrl/TruthfulQA). XQuAD: CC BY-SA 4.0 (google-deepmind/xquad); "
    "items derived from XQuAD passages must carry CC BY-SA 4.0 with attribution. "
    "See datasets/demo_data/SOURCE.md."
)


class Command(BaseCommand):
    help = "Load the demo dataset (TruthfulQA + XQuAD-en) and create a demo lead and annotator."

    def handle(self, *args, **options) -> None:
        lead, lead_password = self._user(LEAD, roles.LEAD)
        annotator, annotator_password = self._user(ANNOTATOR, roles.ANNOTATOR)
        dataset = Dataset.objects.filter(slug=SLUG).first()
        if dataset is None:
            dataset = self._build(lead)
        membership_add(dataset=dataset, user=lead)
        membership_add(dataset=dataset, user=annotator)
        samples = dataset.samples.count()
        documents = dataset.documents.count()
        self.stdout.write(
            f"Demo dataset {dataset.name!r}: {samples} samples, {documents} source documents."
        )
        self.stdout.write("Log in as (the passwords are new each time this runs):")
        self.stdout.write(f"  lead       {LEAD:<16} {lead_password}")
        self.stdout.write(f"  annotator  {ANNOTATOR:<16} {annotator_password}")
        # Last, after anything that makes demo batches: each checked batch gets its
        # spot-check queue now rather than when a worker runs (called by name: datasets
        # does not import the review app).
        call_command("queues_build", dataset=SLUG, stdout=self.stdout)

    def _user(self, username: str, role: str):
        """The demo user with a fresh random password (created when missing)."""
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            return user_create(username=username, role=role)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
        return user, password

    def _build(self, lead) -> Dataset:
        with transaction.atomic():
            dataset = dataset_create(
                name="Demo: TruthfulQA + XQuAD",
                slug=SLUG,
                created_by=lead,
                task_type=Dataset.TaskType.QA,
                description=(
                    "Real questions to grow with synthetic data: TruthfulQA (truthfulness, 38 "
                    "categories) and XQuAD-en (reading comprehension over Wikipedia passages)."
                ),
                schema=SCHEMA,
                tag_dimensions=TAG_DIMENSIONS,
                license_note=LICENSE_NOTE,
            )
        # XQuAD-en asks five questions twice about the same paragraph: real duplicates. The
        # demo skips them, and the import job shows exactly which rows and why.
        for path, kind, mapping, skip in (
            (DATA_DIR / "TruthfulQA.csv", ImportJob.Kind.SAMPLES, TRUTHFULQA_MAPPING, False),
            (DATA_DIR / "xquad.en.json", ImportJob.Kind.DOCUMENTS, XQUAD_MAPPING, True),
        ):
            self.stdout.write(f"Importing {path.name} ...")
            job = import_file(
                dataset=dataset,
                created_by=lead,
                path=path,
                kind=kind,
                mapping=mapping,
                skip_bad_rows=skip,
            )
            if job.status != ImportJob.Status.SUCCEEDED:
                errors = "; ".join(f"row {e.row}: {e.message}" for e in job.row_errors.all()[:5])
                raise CommandError(f"Importing {path.name} failed: {job.file_error or errors}")
            if job.rows_skipped:
                self.stdout.write(
                    f"  skipped {job.rows_skipped} rows (duplicates), listed on the import page"
                )
        return dataset
