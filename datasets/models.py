"""Datasets, their source documents and samples, and the jobs that bring data in.

Invariants the code relies on are database constraints, not conventions:

* a dataset holds at most one *canonical* sample per normalised content hash; every other
  sample with the same hash links to it through ``duplicate_of`` (duplicates are linked,
  never silently dropped or merged);
* a real sample's external id is unique within its dataset;
* a synthetic sample's ``(batch, seq)`` is unique, so a redelivered task cannot create a
  second sample for the same slot;
* real samples carry their import provenance; synthetic samples carry their batch.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


class Dataset(models.Model):
    class TaskType(models.TextChoices):
        QA = "qa", "Question answering"
        GROUNDED_QA = "grounded_qa", "Grounded question answering"
        CLASSIFICATION = "classification", "Classification"
        GENERATION = "generation", "Open generation"
        SAFETY = "safety", "Safety / refusal"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    task_type = models.CharField(max_length=20, choices=TaskType, default=TaskType.QA)
    # JSON Schema for one sample: an object with "input" and "expected".
    schema = models.JSONField(default=dict)
    # Tag dimensions and their allowed values: {"topic": ["health", ...], "locale": []}.
    # An empty list accepts any value for that dimension.
    tag_dimensions = models.JSONField(default=dict)
    license_note = models.TextField(blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="datasets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("import_data", "Can import samples and source documents"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("datasets:detail", args=[self.slug])


class Membership(models.Model):
    """Who may see a dataset. What they may do in it comes from their role (group)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.dataset}"


class ImportJob(models.Model):
    """One file brought into a dataset; the row of record for what was imported or skipped."""

    class Kind(models.TextChoices):
        SAMPLES = "samples", "Samples"
        DOCUMENTS = "documents", "Source documents"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSON = "json", "JSON"
        JSONL = "jsonl", "JSON Lines"
        XLSX = "xlsx", "Excel (XLSX)"
        TEXT = "text", "Text"
        MARKDOWN = "markdown", "Markdown"
        SQUAD = "squad", "SQuAD-style JSON"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        VALIDATING = "validating", "Checking rows"
        VALIDATED = "validated", "Checked, waiting for confirmation"
        IMPORTING = "importing", "Importing"
        SUCCEEDED = "succeeded", "Imported"
        FAILED = "failed", "Failed, nothing imported"

    class Engine(models.TextChoices):
        IMPORT_EXPORT = "import_export", "django-import-export"
        STREAMED = "streamed", "Streamed bulk import"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.SAMPLES)
    format = models.CharField(max_length=10, choices=Format)
    engine = models.CharField(max_length=20, choices=Engine, blank=True)
    file_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=500, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    file_size = models.BigIntegerField(default=0)
    # Which columns become input fields, expected fields, tags, the external id.
    mapping = models.JSONField(default=dict, blank=True)
    skip_bad_rows = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status, default=Status.PENDING)
    rows_total = models.IntegerField(default=0)
    rows_processed = models.IntegerField(default=0)
    rows_imported = models.IntegerField(default=0)
    rows_skipped = models.IntegerField(default=0)
    documents_imported = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    # A problem with the file as a whole (encoding, empty file, not JSON): nothing imported.
    file_error = models.TextField(blank=True)
    # The first rows as they will be stored, for the preview before confirming.
    preview = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="importjob_dataset_recent")]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("datasets:import_detail", args=[self.dataset.slug, self.pk])

    @property
    def is_running(self) -> bool:
        return self.status in {self.Status.PENDING, self.Status.VALIDATING, self.Status.IMPORTING}


class ImportRowError(models.Model):
    """One problem with one row of an import file. A skipped row has at least one."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row = models.IntegerField(
        help_text="1-based row (CSV/XLSX: data row after the header; JSONL: line)"
    )
    field = models.CharField(max_length=200, blank=True)
    message = models.TextField()
    # A short excerpt of the offending row, so the report is readable without the file.
    excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["row", "id"]
        indexes = [models.Index(fields=["job", "row"], name="importrowerror_job_row")]

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


class SourceDocument(models.Model):
    """A real document that grounded generation draws questions and answers from."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=500)
    text = models.TextField()
    origin = models.CharField(max_length=500, blank=True, help_text="File, URL or upstream id")
    external_id = models.CharField(max_length=200, blank=True)
    content_hash = models.CharField(max_length=64)
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.PROTECT, related_name="documents"
    )
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "content_hash"], name="sourcedocument_unique_content"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Batch(models.Model):
    """A generation batch: the unit of synthetic work and of provenance.

    Generation itself (methods, endpoints, workers) fills this in; the foundation needs the
    row so that every synthetic sample can point at the batch that made it.
    """

    class Method(models.TextChoices):
        PARAPHRASE = "paraphrase", "Paraphrase"
        TEMPLATE = "template", "Template expansion"
        ADVERSARIAL = "adversarial", "Adversarial"
        GROUNDED = "grounded", "Source-grounded"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        CHECKING = "checking", "Checking"
        READY = "ready", "Ready for review"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="batches")
    method = models.CharField(max_length=12, choices=Method)
    status = models.CharField(max_length=10, choices=Status, default=Status.DRAFT)
    requested_count = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.get_method_display()})"


class Sample(models.Model):
    class Origin(models.TextChoices):
        REAL = "real", "Real"
        SYNTHETIC = "synthetic", "Synthetic"

    class Difficulty(models.TextChoices):
        UNSET = "", "Unset"
        EASY = "easy", "Easy"
        MEDIUM = "medium", "Medium"
        HARD = "hard", "Hard"
        ADVERSARIAL = "adversarial", "Adversarial"

    class DifficultySource(models.TextChoices):
        UNSET = "", "Unset"
        IMPORT = "import", "Imported with the data"
        AUTO = "auto", "Automatic"
        HUMAN = "human", "Set by a person"

    class Status(models.TextChoices):
        # Real samples are accepted when imported; synthetic ones start pending and the
        # checks accept or reject them. Review decisions are separate rows.
        PENDING = "pending", "Pending checks"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    class Split(models.TextChoices):
        UNSET = "", "Unassigned"
        TRAIN = "train", "Train"
        DEV = "dev", "Dev"
        TEST = "test", "Test"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="samples")
    external_id = models.CharField(max_length=200, blank=True)
    input = models.JSONField()
    expected = models.JSONField(default=dict)
    # The input flattened to one searchable string (also what near-dup checks compare).
    text = models.TextField()
    origin = models.CharField(max_length=10, choices=Origin)
    tags = models.JSONField(default=dict, blank=True)
    difficulty = models.CharField(max_length=12, choices=Difficulty, blank=True, default="")
    difficulty_source = models.CharField(
        max_length=8, choices=DifficultySource, blank=True, default=""
    )
    difficulty_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    difficulty_rationale = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    split = models.CharField(max_length=5, choices=Split, blank=True, default="")
    # sha256 of the normalised input (NFKC, case-folded, whitespace collapsed).
    content_hash = models.CharField(max_length=64)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates"
    )
    # Everything derived from one seed sample or one source document shares this key, and
    # a version keeps a group inside one split.
    source_group = models.CharField(max_length=80)

    # Provenance of real samples.
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    source_file = models.CharField(max_length=255, blank=True)
    source_row = models.IntegerField(null=True, blank=True)

    # Provenance of synthetic samples (filled by generation).
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    seq = models.IntegerField(null=True, blank=True, help_text="Slot within the batch")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    source_document = models.ForeignKey(
        SourceDocument, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    source_passage = models.TextField(blank=True)
    passage_start = models.IntegerField(null=True, blank=True)
    passage_end = models.IntegerField(null=True, blank=True)
    method = models.CharField(max_length=12, choices=Batch.Method, blank=True)
    generation_model = models.CharField(max_length=300, blank=True)
    prompt_version = models.CharField(max_length=100, blank=True)
    slot_values = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "content_hash"],
                condition=Q(duplicate_of__isnull=True),
                name="sample_one_canonical_per_hash",
            ),
            models.UniqueConstraint(
                fields=["dataset", "external_id"],
                condition=~Q(external_id=""),
                name="sample_unique_external_id",
            ),
            models.UniqueConstraint(
                fields=["batch", "seq"],
                condition=Q(batch__isnull=False),
                name="sample_unique_batch_seq",
            ),
            models.CheckConstraint(
                condition=Q(origin="synthetic", batch__isnull=False)
                | Q(origin="real", batch__isnull=True),
                name="sample_batch_iff_synthetic",
            ),
            models.CheckConstraint(
                condition=~Q(duplicate_of=models.F("id")), name="sample_not_own_duplicate"
            ),
        ]
        indexes = [
            # Keyset pagination (newest first) with and without the common filters.
            models.Index(fields=["dataset", "-id"], name="sample_dataset_id"),
            models.Index(fields=["dataset", "origin", "-id"], name="sample_dataset_origin_id"),
            models.Index(fields=["dataset", "status", "-id"], name="sample_dataset_status_id"),
            models.Index(
                fields=["dataset", "difficulty", "-id"], name="sample_dataset_difficulty_id"
            ),
            models.Index(fields=["dataset", "source_group"], name="sample_dataset_group"),
        ]

    def __str__(self) -> str:
        return f"Sample {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("datasets:sample", args=[self.dataset.slug, self.pk])
