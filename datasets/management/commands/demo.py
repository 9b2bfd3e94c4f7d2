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

from datasets.models import Dataset, ImportJob, Sample
from datasets.selectors.verification import batch_funnel
from datasets.services.coverage import coverage_counts_refresh, coverage_settings_update
from datasets.services.datasets import dataset_create, membership_add, user_create
from datasets.services.dedup import near_dup_index_add
from datasets.services.generation import (
    batch_create,
    batch_run_sync,
    batch_start,
    offline_endpoints,
)
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
COVERAGE_DIMENSIONS = ["task", "locale"]
COVERAGE_TARGET = 25
LICENSE_NOTE = (
    "TruthfulQA: Apache-2.0 (sylinrl/TruthfulQA). XQuAD: CC BY-SA 4.0 (google-deepmind/xquad); "
    "items derived from XQuAD passages must carry CC BY-SA 4.0 with attribution. "
    "See datasets/demo_data/SOURCE.md."
)


DEMO_BATCHES = [
    {
        "name": "Demo: grounded questions on XQuAD passages",
        "method": "grounded",
        "requested_count": 24,
        "target_tags": {"task": "reading_comprehension", "locale": "en"},
        "target_difficulty": "medium",
        "why_synthetic": "Reading comprehension has few real questions per passage; "
        "questions drawn from the passages fill the gap and are easy to check.",
        "judging_plan": "The answer is a span of the recorded passage; the question does not "
        "give it away.",
        "params": {},
    },
    {
        "name": "Demo: paraphrases of misconception questions",
        "method": "paraphrase",
        "requested_count": 12,
        "target_tags": {"task": "truthfulness", "category": "Misconceptions"},
        "target_difficulty": "medium",
        "why_synthetic": "New wordings test whether a model's answer depends on the phrasing.",
        "judging_plan": "Same meaning and answer as the parent; not a near-copy.",
        "params": {},
    },
    {
        # Contact details among the slot values, as they creep into real value lists: the
        # safety check rejects the items that carry personal data, and the funnel says so.
        "name": "Demo: law questions from a template",
        "method": "template",
        "requested_count": 12,
        "target_tags": {"task": "truthfulness", "category": "Law"},
        "target_difficulty": "easy",
        "why_synthetic": "Few real questions ask how to act on a legal problem abroad.",
        "judging_plan": "The question and answer keep the slot values; no personal data.",
        "params": {
            "template": "How should I reach {contact} about a {issue} under {country} law?",
            "answer": "Write to {contact} and keep a copy; {country} law governs the {issue}.",
            "slots": {
                "contact": ["the landlord", "jane.doe@example.com", "my employer"],
                "issue": ["deposit dispute", "late payment"],
                "country": ["French", "Spanish"],
            },
        },
    },
]


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
        if not dataset.batches.exists():
            self._batches(dataset, lead)
        # Counted here rather than left to a worker: the first page the newcomer opens
        # shows the matrix and its gaps even before `make run` has started one.
        coverage_counts_refresh(dataset_id=dataset.pk)
        samples = dataset.samples.filter(origin=Sample.Origin.REAL).count()
        documents = dataset.documents.count()
        self.stdout.write(
            f"Demo dataset {dataset.name!r}: {samples} real samples, {documents} source documents."
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
            # Task x locale: the real data is English only and has no difficulty tags yet,
            # so the matrix opens on visible gaps (other locales, every difficulty).
            coverage_settings_update(
                dataset=dataset,
                dimensions=COVERAGE_DIMENSIONS,
                default_target=COVERAGE_TARGET,
                ceiling=0.5,
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
            # Imports leave their near-duplicate indexing to a task; the demo's batches are
            # checked right below, against the real samples, so index them now (the task
            # then finds nothing left to do).
            near_dup_index_add(dataset_id=dataset.pk, import_job_id=job.pk)
        return dataset

    def _batches(self, dataset: Dataset, lead) -> None:
        """Generate small batches with the built-in provider, through the checks, so the demo
        shows funnels: grounded questions, paraphrases (flagged paraphrase-only) and template
        items, some of which carry personal data that the safety check rejects."""
        generator, judge = offline_endpoints()
        for spec in DEMO_BATCHES:
            batch = batch_create(
                dataset=dataset,
                created_by=lead,
                generator=generator,
                judge=judge,
                prompt_version=None,
                checks=["format", "faithfulness", "safety", "judge"],
                budget_cap=None,
                seed=11,
                **spec,
            )
            batch = batch_start(batch=batch, user=lead, enqueue=False)
            batch = batch_run_sync(batch=batch)
            funnel = batch_funnel(batch=batch)
            self.stdout.write(
                f"Demo batch {batch.pk} ({batch.get_method_display()}): {funnel.generated} "
                f"generated, {funnel.accepted} accepted, {funnel.rejected} rejected by the checks."
            )
