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


class Difficulty(models.TextChoices):
    UNSET = "", "Unset"
    EASY = "easy", "Easy"
    MEDIUM = "medium", "Medium"
    HARD = "hard", "Hard"
    ADVERSARIAL = "adversarial", "Adversarial"


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
    # Verification settings (issue 4). A judge score within ``judge_borderline_band`` of
    # ``judge_threshold`` is borderline and always goes to human review.
    judge_threshold = models.FloatField(default=0.5)
    judge_borderline_band = models.FloatField(default=0.1)
    # rapidfuzz ``fuzz.ratio`` (0-100) at or above which two samples are near-duplicates.
    near_duplicate_threshold = models.FloatField(default=85)
    # Policy categories the safety check looks for, e.g. ["violence", "self-harm", "pii"].
    policy_categories = models.JSONField(default=list, blank=True)
    # Coverage (issue 6): the dimensions the matrix opens on (one or two; empty = the first
    # dimension), every cell's target unless the lead sets its own, and the share of a
    # cell synthetic data may reach before the cell is flagged.
    coverage_dimensions = models.JSONField(default=list, blank=True)
    coverage_default_target = models.PositiveIntegerField(default=20)
    synthetic_ceiling = models.FloatField(default=0.5)
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
        constraints = [
            models.CheckConstraint(
                condition=Q(synthetic_ceiling__gte=0) & Q(synthetic_ceiling__lte=1),
                name="dataset_synthetic_ceiling_is_a_share",
            ),
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
    # Documents identical to one already in the dataset (same content hash): linked, not copied.
    documents_reused = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    # How far the reader is through the file, for a progress bar before the row count is known.
    bytes_processed = models.BigIntegerField(default=0)
    # A problem with the file as a whole (encoding, empty file, not JSON): nothing imported.
    file_error = models.TextField(blank=True)
    # Why a job failed when it is not the file's fault (row errors without "skip bad rows",
    # a conflicting import that landed first, an unexpected error): nothing imported.
    failure_reason = models.TextField(blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The first rows as they will be stored, for the preview before confirming.
    preview = models.JSONField(default=list, blank=True)
    # When the job's samples were copied into SampleSearch (after its commit, by a task);
    # until then text search reads them from Sample directly.
    search_indexed_at = models.DateTimeField(null=True, blank=True)

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

    class Kind(models.TextChoices):
        UNREADABLE = "unreadable", "Row could not be read"
        INVALID = "invalid", "Row breaks a rule"
        # Duplicates depend on what the dataset holds, so they are checked again when the
        # import runs; the other kinds depend on the file alone.
        DUPLICATE = "duplicate", "Duplicate"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.INVALID)
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


class ImportStagedRow(models.Model):
    """A checked sample row waiting for its import to be confirmed (streamed path).

    Validation writes every good row here (COPY on PostgreSQL), duplicates are then found
    with set-based SQL, and confirming moves the rows into Sample with one INSERT ... SELECT
    before deleting them. The table is UNLOGGED on PostgreSQL (migration 0003): it holds
    nothing that cannot be rebuilt from the uploaded file, so it skips the write-ahead log.
    """

    # No database foreign key: the COPY path should not pay a per-row check for a job
    # that is known to exist; the rows are deleted with their job by the import service.
    job = models.ForeignKey(
        ImportJob, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    row = models.IntegerField()
    external_id = models.CharField(max_length=200, blank=True)
    input = models.JSONField()
    expected = models.JSONField(default=dict)
    text = models.TextField()
    tags = models.JSONField(default=dict)
    difficulty = models.CharField(max_length=12, blank=True)
    content_hash = models.CharField(max_length=64)
    source_group = models.CharField(max_length=80)
    # Rows tied to a source document (SQuAD questions) carry the document's content hash;
    # the document's id only exists once the import runs.
    document_hash = models.CharField(max_length=64, blank=True)
    source_passage = models.TextField(blank=True)
    passage_start = models.IntegerField(null=True, blank=True)
    passage_end = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["job", "row"], name="importstagedrow_job_row")]

    def __str__(self) -> str:
        return f"staged row {self.row} of import {self.job_id}"


class ImportStagedDocument(models.Model):
    """A checked source document waiting for its import to be confirmed (UNLOGGED too)."""

    job = models.ForeignKey(
        ImportJob, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    row = models.IntegerField()
    title = models.CharField(max_length=500)
    text = models.TextField()
    origin = models.CharField(max_length=500, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    content_hash = models.CharField(max_length=64)
    tags = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["job", "row"], name="importstageddoc_job_row")]

    def __str__(self) -> str:
        return f"staged document {self.row} of import {self.job_id}"


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


class ModelEndpoint(models.Model):
    """An OpenAI-compatible endpoint, or the built-in offline provider.

    The API key never touches the database: ``api_key_env`` names the environment variable
    that holds it, read by the worker when it calls.
    """

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible API"
        OFFLINE = "offline", "Built-in offline provider"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.OPENAI)
    base_url = models.URLField(max_length=300, blank=True)
    model = models.CharField(max_length=200)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable with the key"
    )
    family = models.CharField(max_length=100, blank=True, help_text="e.g. gpt-4o, llama-3")
    max_concurrency = models.PositiveSmallIntegerField(default=4)
    requests_per_minute = models.PositiveIntegerField(default=0, help_text="0: no limit")
    tokens_per_minute = models.PositiveIntegerField(default=0, help_text="0: no limit")
    timeout_seconds = models.FloatField(default=60)
    price_in_per_1k = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    price_out_per_1k = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    supports_json_schema = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="offline") | ~Q(base_url=""), name="endpoint_url_unless_offline"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"

    @property
    def identity(self) -> str:
        """What provenance records as the generation or judge model."""
        where = "built-in offline provider" if self.kind == self.Kind.OFFLINE else self.base_url
        return f"{self.name}: {self.model} @ {where}"


class RateLimitKey(models.Model):
    """One rate limiter key (an endpoint's limits) on the embedded default, which has no Redis.

    The row is what reservations lock: every worker process that reserves a send time for
    the key first locks this row (``select_for_update`` on PostgreSQL; on SQLite the
    ``IMMEDIATE`` transaction holds the database's write lock), so reading the window and
    adding to it is one atomic step. See ``datasets.services.generation.ratestore``.
    """

    key = models.CharField(max_length=200, primary_key=True)

    def __str__(self) -> str:
        return self.key


class RateReservation(models.Model):
    """A send time reserved for one request within a key's window, and its tokens.

    ``at`` is seconds since the epoch on the store's clock (the database server's on
    PostgreSQL, the one machine's wall clock on SQLite). Rows older than one window are
    deleted by the next reservation for the same key, so a key holds at most one window's
    worth of rows.
    """

    limit = models.ForeignKey(RateLimitKey, on_delete=models.CASCADE, related_name="reservations")
    entry_id = models.CharField(max_length=64)
    at = models.FloatField()
    tokens = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["limit", "at"], name="ratereservation_key_at")]
        constraints = [
            models.UniqueConstraint(fields=["limit", "entry_id"], name="ratereservation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.limit_id} {self.entry_id} at {self.at} ({self.tokens} tokens)"


class PromptTemplate(models.Model):
    """A named prompt for one generation method (or the judge); its text lives in versions."""

    class Purpose(models.TextChoices):
        PARAPHRASE = "paraphrase", "Paraphrase"
        TEMPLATE = "template", "Template expansion"
        ADVERSARIAL = "adversarial", "Adversarial"
        GROUNDED = "grounded", "Source-grounded"
        JUDGE = "judge", "Judge"

    name = models.CharField(max_length=200, unique=True)
    purpose = models.CharField(max_length=12, choices=Purpose)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """One immutable wording of a prompt. Editing a template makes a new version.

    A version that a batch used (``used_at`` set) can never change again: the service
    refuses, and ``save`` refuses as a second line of defence.
    """

    template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    system = models.TextField(blank=True)
    user = models.TextField(help_text="With {placeholders} the method fills in")
    output_schema = models.JSONField(default=dict)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="promptversion_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            stored = PromptVersion.objects.filter(pk=self.pk).values("used_at").first()
            if stored and stored["used_at"] is not None:
                raise ValueError(
                    f"{self} was used by a batch and cannot change; make a new version."
                )
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        """What provenance records as the prompt version."""
        return f"{self.template.name}@v{self.number}"


class Batch(models.Model):
    """A generation batch: the unit of synthetic work and of provenance.

    A batch answers four questions before it runs: which case type it fills (``target_tags``
    and ``target_difficulty``), why synthetic data is right for it (``why_synthetic``), how it
    is judged (``judge``, ``judging_plan``, ``checks``) and what it costs (``cost_estimate``,
    ``budget_cap``). Its progress, tokens and cost are derived from its items.
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
    name = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=12, choices=Method)
    status = models.CharField(max_length=10, choices=Status, default=Status.DRAFT)
    requested_count = models.PositiveIntegerField()
    # The gap cell this batch fills: a tag slice and a difficulty.
    target_tags = models.JSONField(default=dict, blank=True)
    target_difficulty = models.CharField(max_length=12, choices=Difficulty, blank=True)
    why_synthetic = models.TextField(blank=True)
    judging_plan = models.TextField(blank=True)
    generator = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    judge = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="batches"
    )
    # Method parameters: template text and slot values, adversarial kinds, parent filters.
    params = models.JSONField(default=dict, blank=True)
    checks = models.JSONField(default=list, blank=True)
    seed = models.BigIntegerField(default=0)
    cost_estimate = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    budget_cap = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    # Set when generator and judge share a model family: allowed, recorded and shown.
    family_warning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # Checking stage (issue 4): when it ran, and the batch's diversity figures and flags
    # ({"near_copy_share": .., "distinct_2grams": .., "parent_similarity": [...], "flags": [...]}).
    checks_started_at = models.DateTimeField(null=True, blank=True)
    checks_finished_at = models.DateTimeField(null=True, blank=True)
    diversity = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(generator__isnull=True)
                | Q(judge__isnull=True)
                | ~Q(generator=models.F("judge")),
                name="batch_judge_is_not_generator",
            ),
        ]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="batch_dataset_recent")]

    def __str__(self) -> str:
        return self.name or f"Batch {self.pk} ({self.get_method_display()})"

    def get_absolute_url(self) -> str:
        return reverse("datasets:batch", args=[self.dataset.slug, self.pk])


class GenerationItem(models.Model):
    """One slot of a batch: the unit a worker claims, generates and records.

    A worker claims an item with a conditional UPDATE (state pending -> running, a lease) and
    holds no row lock while it calls the model; the sample it makes has the same
    ``(batch, seq)`` and a unique constraint, so a redelivered task cannot make a second
    one. A periodic task returns items whose lease expired (their worker died) to pending.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Generated"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    seq = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # What this slot works from, assigned when the batch starts.
    parent = models.ForeignKey(
        "Sample", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_document = models.ForeignKey(
        SourceDocument, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    slot_values = models.JSONField(default=dict, blank=True)
    sample = models.OneToOneField(
        "Sample", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_item"
    )
    error_reason = models.CharField(max_length=40, blank=True)
    error_detail = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    response_id = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "seq"], name="generationitem_unique_slot"),
        ]
        indexes = [
            models.Index(fields=["batch", "state"], name="generationitem_batch_state"),
            models.Index(
                fields=["lease_until"],
                condition=Q(state="running"),
                name="generationitem_running_lease",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch} #{self.seq} ({self.state})"


class Sample(models.Model):
    class Origin(models.TextChoices):
        REAL = "real", "Real"
        SYNTHETIC = "synthetic", "Synthetic"

    Difficulty = Difficulty

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

    class ReviewStatus(models.TextChoices):
        UNREVIEWED = "", "Not reviewed"
        APPROVED = "approved", "Approved by a reviewer"
        REJECTED = "rejected", "Rejected by a reviewer"

    class Split(models.TextChoices):
        UNSET = "", "Unassigned"
        TRAIN = "train", "Train"
        DEV = "dev", "Dev"
        TEST = "test", "Test"

    # Indexed by the (dataset, -id) indexes below; a lone dataset_id index is redundant.
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="samples", db_index=False
    )
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
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    difficulty_rationale = models.TextField(blank=True)
    # The automatic tag is kept when a person re-tags: ``difficulty`` is what counts,
    # ``difficulty_auto`` what the heuristics and judge rubric said, and why.
    difficulty_auto = models.CharField(max_length=12, choices=Difficulty, blank=True, default="")
    difficulty_auto_rationale = models.TextField(blank=True)
    difficulty_features = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    # Derived from the append-only review decisions (review app); never set by hand.
    review_status = models.CharField(
        max_length=10, choices=ReviewStatus, blank=True, default=ReviewStatus.UNREVIEWED
    )
    split = models.CharField(max_length=5, choices=Split, blank=True, default="")
    # sha256 of the normalised input (NFKC, case-folded, whitespace collapsed).
    content_hash = models.CharField(max_length=64)
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,
        related_name="duplicates",
    )
    # Everything derived from one seed sample or one source document shares this key, and
    # a version keeps a group inside one split.
    source_group = models.CharField(max_length=80)
    # Near-duplicate control (issue 4): the closest earlier sample above the dataset's
    # threshold, its rapidfuzz score, and the family (id of the family's first sample) that
    # a version keeps inside one split.
    near_duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,
        related_name="near_duplicates",
    )
    near_duplicate_score = models.FloatField(null=True, blank=True)
    family = models.BigIntegerField(null=True, blank=True)

    # Provenance of real samples.
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    source_file = models.CharField(max_length=255, blank=True)
    source_row = models.IntegerField(null=True, blank=True)

    # Provenance of synthetic samples (filled by generation).
    batch = models.ForeignKey(
        Batch,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,
        related_name="samples",
    )
    seq = models.IntegerField(null=True, blank=True, help_text="Slot within the batch")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,
        related_name="children",
    )
    source_document = models.ForeignKey(
        SourceDocument,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,
        related_name="samples",
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
            # Keyset pagination (newest first) with and without the common filters. The id
            # ascends (pages read it backwards, as fast): new samples then land at the
            # right-hand end of their dataset's range, where PostgreSQL appends to the last
            # page (and splits it 90/10) instead of splitting the first page of the range
            # 50/50 for every few rows: half the index, and a faster bulk import.
            models.Index(fields=["dataset", "id"], name="sample_dataset_id"),
            models.Index(fields=["dataset", "origin", "id"], name="sample_dataset_origin_id"),
            models.Index(fields=["dataset", "status", "id"], name="sample_dataset_status_id"),
            models.Index(
                fields=["dataset", "difficulty", "id"], name="sample_dataset_difficulty_id"
            ),
            models.Index(fields=["dataset", "source_group"], name="sample_dataset_group"),
            # Foreign keys that most samples leave empty get partial indexes: a bulk import
            # of real samples would otherwise write six btree entries per row for NULLs.
            *(
                models.Index(
                    fields=[fk], condition=Q(**{f"{fk}__isnull": False}), name=f"sample_{fk}"
                )
                for fk in (
                    "difficulty_set_by",
                    "duplicate_of",
                    "near_duplicate_of",
                    "family",
                    "batch",
                    "parent",
                    "source_document",
                )
            ),
        ]

    def __str__(self) -> str:
        return f"Sample {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("datasets:sample", args=[self.dataset.slug, self.pk])


class SampleSearch(models.Model):
    """The searchable text of an imported sample, filled after the import commits.

    The trigram index that serves text search is the costliest index to keep up during a
    bulk insert (more than half of the insert's time: every row adds dozens of trigram
    keys). Imported samples therefore carry no trigram entry in Sample; a task
    (``search_index_pending``) copies each import's texts here, into a table with the
    trigram index, once the import has committed. Until it has, the job's
    ``search_indexed_at`` is NULL and search reads that job's samples from Sample by
    ``import_job_id`` (``datasets.selectors.browse``), so search finds every sample at
    every moment. Samples that arrive otherwise (generation, one at a time) keep a partial
    trigram index on Sample. Sample text is never edited, so a copy cannot go stale.
    """

    sample = models.OneToOneField(
        Sample, primary_key=True, on_delete=models.CASCADE, related_name="search_entry"
    )
    # Deleting a dataset deletes its samples first, and their entries with them.
    dataset = models.ForeignKey(
        Dataset, on_delete=models.DO_NOTHING, db_index=False, related_name="+"
    )
    text = models.TextField()

    def __str__(self) -> str:
        return f"Search entry of sample {self.sample_id}"


class CheckResult(models.Model):
    """One check's verdict on one sample, kept with what produced it (issue 4).

    Rows are appended, never edited: re-running a check adds a row, and the latest row per
    (sample, kind) is the one that counts. A failed check never deletes its sample.
    """

    class Check(models.TextChoices):
        FORMAT = "format", "Format"
        FAITHFULNESS = "faithfulness", "Faithfulness"
        SAFETY = "safety", "Safety"
        JUDGE = "judge", "Judge verdict"
        UNIQUE = "unique", "Unique"

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="checks")
    # Denormalised from the sample so a batch's funnel is one indexed aggregate.
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="check_results"
    )
    kind = models.CharField(max_length=14, choices=Check)
    passed = models.BooleanField()
    score = models.FloatField(null=True, blank=True)
    # Close enough to the threshold that a person must look, whatever ``passed`` says.
    borderline = models.BooleanField(default=False)
    detail = models.TextField(blank=True, help_text="Why: the rationale or the rule that fired")
    # Structured extras: grounding score, attack category, duplicate id, schema errors.
    data = models.JSONField(default=dict, blank=True)
    # What produced the verdict: "endpoint name / model" or "offline rules <version>".
    model = models.CharField(max_length=300, blank=True)
    prompt_version = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sample_id", "kind", "-id"]
        indexes = [
            models.Index(fields=["sample", "kind", "-id"], name="check_sample_latest"),
            models.Index(fields=["batch", "kind", "passed"], name="check_batch_funnel"),
            models.Index(
                fields=["batch"], condition=Q(borderline=True), name="check_batch_borderline"
            ),
        ]

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "fail"
        return f"{self.get_kind_display()} {verdict} for sample {self.sample_id}"


# Near-duplicate index (issue 4) ------------------------------------------------------------

# One column per LSH band of ``synthaug.engine.neardup`` (``BANDS``; a change of the engine's
# band count needs a migration, and ``datasets.services.dedup`` checks they agree).
NEAR_DUP_BAND_FIELDS = tuple(f"b{i}" for i in range(12))


class NearDupSignature(models.Model):
    """A sample's MinHash LSH band keys: the persistent near-duplicate index.

    Two samples are near-duplicate *candidates* when they share a key in the same band;
    rapidfuzz confirms. Each key is a 32-bit hash with the band and the dataset mixed in.

    One row per sample with one indexed integer column per band, measured against one row
    per (band, sample) with a composite key: 12 int4 columns cost 48 bytes of heap and one
    ~20-byte entry per band index, while a band-row table pays a 24-byte tuple header and a
    sample id per band (about 2.5x the disk). The sample is the primary key, so indexing is
    idempotent (``ignore_conflicts``) and "is it indexed?" is one primary-key probe.
    """

    sample = models.OneToOneField(
        Sample, primary_key=True, on_delete=models.CASCADE, related_name="near_dup_signature"
    )
    b0 = models.IntegerField(db_index=True)
    b1 = models.IntegerField(db_index=True)
    b2 = models.IntegerField(db_index=True)
    b3 = models.IntegerField(db_index=True)
    b4 = models.IntegerField(db_index=True)
    b5 = models.IntegerField(db_index=True)
    b6 = models.IntegerField(db_index=True)
    b7 = models.IntegerField(db_index=True)
    b8 = models.IntegerField(db_index=True)
    b9 = models.IntegerField(db_index=True)
    b10 = models.IntegerField(db_index=True)
    b11 = models.IntegerField(db_index=True)

    def __str__(self) -> str:
        return f"near-duplicate signature of sample {self.sample_id}"


# --- coverage (issue 6) -------------------------------------------------------------------


class CoverageTarget(models.Model):
    """The lead's target for one cell: a tag slice crossed with a difficulty.

    ``slice_key`` is the canonical JSON of the slice (``{"locale": "de", "topic": "law"}``,
    keys sorted, see ``synthaug.engine.coverage.slice_key``), so a target set on the
    topic x locale view belongs to that view and not to the topic view.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="coverage_targets")
    slice_key = models.CharField(max_length=1000)
    difficulty = models.CharField(max_length=12, choices=Difficulty)
    target = models.PositiveIntegerField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "slice_key", "difficulty"], name="coveragetarget_unique_cell"
            ),
        ]

    def __str__(self) -> str:
        return f"target {self.target} for {self.slice_key} x {self.difficulty or 'unset'}"


class CoverageCount(models.Model):
    """Kept counts: how many samples share one tag combination and state.

    Rebuilt for a whole dataset by one GROUP BY (``coverage_counts_refresh``), never edited
    row by row; what review decisions move between rebuilds is in ``CoverageChange``. A
    dataset has few distinct combinations, so the coverage page reads a few hundred rows
    instead of scanning a million samples, and projects them onto the view's dimensions
    in SQL. ``tags`` are the sample's tags over the dataset's dimensions (missing and
    empty values left out), so one combination is one value.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    tags = models.JSONField(default=dict)
    difficulty = models.CharField(max_length=12, blank=True)
    origin = models.CharField(max_length=10)
    status = models.CharField(max_length=10)
    review_status = models.CharField(max_length=10, blank=True)
    # The synthetic samples' batch (no foreign key: a rebuild should not need to lock
    # batches), so the matrix "without this batch" is a subtraction, not a scan.
    batch_id = models.BigIntegerField(null=True, blank=True)
    n = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.n} x {self.tags} {self.difficulty} {self.origin}/{self.status}"


class CoverageChange(models.Model):
    """One sample leaving (``n`` -1) or entering (+1) a kept count, by a review decision.

    Written in the decision's transaction (``coverage_changes_record``), keyed like a
    ``CoverageCount`` (``tags`` are the sample's own: the page projects them onto its
    dimensions the same way), so the coverage page, which reads the counts and these rows
    in one statement, is exact while reviewers work, without a rebuild of a million
    samples' counts for each rejection. A rebuild deletes the rows its count has seen, in
    the counting statement. Insert-only between rebuilds: reviewers never wait on each
    other here.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    tags = models.JSONField(default=dict)
    difficulty = models.CharField(max_length=12, blank=True)
    origin = models.CharField(max_length=10)
    status = models.CharField(max_length=10)
    review_status = models.CharField(max_length=10, blank=True)
    batch_id = models.BigIntegerField(null=True, blank=True)
    n = models.SmallIntegerField()

    def __str__(self) -> str:
        return f"{self.n:+d} x {self.tags} {self.difficulty} {self.origin}/{self.status}"


class CoverageState(models.Model):
    """When the count behind a dataset's kept counts started, and whether one is queued.

    ``queued_at`` coalesces refresh requests: the first request of a burst sets it with a
    conditional UPDATE and queues one task; later ones see it set and do nothing. The
    task clears it before it counts, so a change made during a rebuild queues the next one;
    ``started_at`` (when the last rebuild started, set with that clearing) makes the next
    one wait its turn after the rebuild still running, not after the one stored before it.
    A request older than ``COVERAGE_REQUEST_STALE`` counts as lost (a broker restart) and is
    queued again.
    """

    dataset = models.OneToOneField(
        Dataset, on_delete=models.CASCADE, primary_key=True, related_name="coverage_state"
    )
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_seconds = models.FloatField(default=0)
    samples_counted = models.BigIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"coverage of dataset {self.dataset_id} at {self.refreshed_at}"
