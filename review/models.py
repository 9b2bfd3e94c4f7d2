"""Spot-check queues, claims, decisions and their audit log.

The review app may import datasets; datasets never imports review.

Invariants:

* a queue belongs to one batch (one queue per batch) and is built from a stored seed, so
  rebuilding it picks the same items;
* an item is one sample in one queue, once per ``copy`` (copy 1 exists for the overlap share
  that a second reviewer also judges); the two copies never go to the same person;
* an item is claimed by at most one person at a time: ``claim_seq`` grows with every claim,
  and a decision names the claim it was made under, so a decision on a claim that expired
  and went to someone else is refused (409) rather than recorded;
* decisions are append-only rows: an undo is a new row pointing at the decision it undoes
  (at most once, a unique constraint); a sample's review status and human difficulty are
  derived from the decisions that are not undone;
* every decision and every lead action is in the audit log, with before and after.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from datasets.models import Batch, Dataset, Difficulty, Sample


class ReviewSettings(models.Model):
    """A dataset's spot-check policy. Missing row: the defaults below."""

    dataset = models.OneToOneField(
        Dataset, on_delete=models.CASCADE, related_name="review_settings"
    )
    # Share of each stratum (difficulty x method) sampled, and the minimum per stratum.
    sample_rate = models.FloatField(default=0.1)
    min_per_stratum = models.PositiveIntegerField(default=5)
    # Share of the queue that a second reviewer also judges (inter-annotator agreement).
    overlap_share = models.FloatField(default=0.0)
    lease_seconds = models.PositiveIntegerField(default=600)
    # The judge is unstable below this Cohen's kappa against people, or with fewer than
    # ``judge_min_decisions`` human decisions to measure it on.
    judge_kappa_min = models.FloatField(default=0.6)
    judge_min_decisions = models.PositiveIntegerField(default=10)

    class Meta:
        verbose_name_plural = "review settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0, sample_rate__lte=1), name="reviewsettings_rate"
            ),
            models.CheckConstraint(
                condition=Q(overlap_share__gte=0, overlap_share__lte=1),
                name="reviewsettings_overlap",
            ),
        ]

    def __str__(self) -> str:
        return f"Review settings of {self.dataset}"


class ReviewQueue(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="review_queues")
    batch = models.OneToOneField(Batch, on_delete=models.CASCADE, related_name="review_queue")
    # What the queue was built with, so the sample can be reproduced and explained.
    seed = models.BigIntegerField()
    sample_rate = models.FloatField()
    min_per_stratum = models.PositiveIntegerField()
    overlap_share = models.FloatField(default=0.0)
    lease_seconds = models.PositiveIntegerField(default=600)
    # Per stratum: {"medium / paraphrase": {"population": 40, "sampled": 5}, ...}, plus the
    # borderline and adversarial counts at build time.
    composition = models.JSONField(default=dict, blank=True)
    # How many items the queue holds (kept by ``queue_build`` and ``queue_add_samples``,
    # the only places that add items; none are ever deleted but with the queue), so the
    # item list's "N items" is not a count of a hundred thousand rows on every page.
    item_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("manage_queue", "Can manage spot-check queues (reassign, bulk, add)")]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="reviewqueue_dataset")]

    def __str__(self) -> str:
        return f"Spot check of {self.batch}"

    def get_absolute_url(self) -> str:
        return reverse("review:queue", args=[self.dataset.slug, self.pk])


class ReviewItem(models.Model):
    class Reason(models.TextChoices):
        STRATIFIED = "stratified", "Stratified sample"
        BORDERLINE = "borderline", "Borderline judge result"
        ADVERSARIAL = "adversarial", "Adversarial item"
        ADDED = "added", "Added by a lead"

    class State(models.TextChoices):
        OPEN = "open", "Waiting"
        CLAIMED = "claimed", "Being reviewed"
        DONE = "done", "Decided"

    # Indexed by the (queue, ...) indexes below.
    queue = models.ForeignKey(
        ReviewQueue, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    # Indexed by (sample, queue) below.
    sample = models.ForeignKey(
        Sample, on_delete=models.CASCADE, related_name="review_items", db_index=False
    )
    copy = models.PositiveSmallIntegerField(default=0)
    reason = models.CharField(max_length=12, choices=Reason)
    stratum = models.CharField(max_length=40)
    # Seeded random order; a skip moves the item behind every item not skipped.
    position = models.BigIntegerField()
    state = models.CharField(max_length=8, choices=State, default=State.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    claim_seq = models.PositiveIntegerField(default=0)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["queue", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "sample", "copy"], name="reviewitem_unique_copy"
            ),
            models.CheckConstraint(
                condition=Q(state="open") | Q(claimed_by__isnull=False),
                name="reviewitem_claimed_has_claimer",
            ),
        ]
        indexes = [
            # Claim-next walks this index: the first open items by position.
            models.Index(
                fields=["queue", "position"], condition=Q(state="open"), name="reviewitem_next"
            ),
            models.Index(fields=["queue", "claimed_by", "state"], name="reviewitem_queue_claimer"),
            models.Index(
                fields=["queue", "lease_until"],
                condition=Q(state="claimed"),
                name="reviewitem_lease",
            ),
            # Keyset pages of the queue's items (newest id first), all or by state.
            models.Index(fields=["queue", "-id"], name="reviewitem_queue_id"),
            models.Index(fields=["queue", "state", "-id"], name="reviewitem_queue_state_id"),
            models.Index(fields=["sample", "queue"], name="reviewitem_sample"),
        ]

    def __str__(self) -> str:
        return f"Review of sample {self.sample_id} (copy {self.copy}, {self.state})"


class Decision(models.Model):
    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        RETAG = "retag", "Re-tag difficulty"
        SKIP = "skip", "Skip"
        UNDO = "undo", "Undo"

    class Reason(models.TextChoices):
        UNFAITHFUL = "unfaithful", "Unfaithful"
        UNSAFE = "unsafe", "Unsafe"
        DUPLICATE = "duplicate", "Duplicate"
        WRONG_DIFFICULTY = "wrong_difficulty", "Wrong difficulty"
        MALFORMED = "malformed", "Malformed"
        LOW_QUALITY = "low_quality", "Low quality"
        OTHER = "other", "Other"

    class Via(models.TextChoices):
        REVIEW = "review", "Review page"
        BULK = "bulk", "Bulk action by a lead"

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="decisions")
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="decisions")
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="review_decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=8, choices=Action)
    reason = models.CharField(max_length=16, choices=Reason, blank=True)
    comment = models.TextField(blank=True)
    difficulty = models.CharField(max_length=12, choices=Difficulty, blank=True)
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="undone_by"
    )
    via = models.CharField(max_length=8, choices=Via, default=Via.REVIEW)
    # The claim this decision was made under (see ReviewItem.claim_seq).
    claim_seq = models.PositiveIntegerField(default=0)
    # From the form: a second submit of the same form finds this row instead of adding one.
    idempotency_key = models.CharField(max_length=64, unique=True)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(action="reject") | ~Q(reason=""), name="decision_reject_has_reason"
            ),
            models.CheckConstraint(
                condition=~Q(action="retag") | ~Q(difficulty=""), name="decision_retag_has_level"
            ),
            models.CheckConstraint(
                condition=Q(action="undo", undoes__isnull=False)
                | (~Q(action="undo") & Q(undoes__isnull=True)),
                name="decision_undo_points_back",
            ),
        ]
        indexes = [
            models.Index(fields=["queue", "reviewer", "-id"], name="decision_queue_reviewer"),
            models.Index(fields=["queue", "action"], name="decision_queue_action"),
            models.Index(fields=["sample", "-id"], name="decision_sample_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} of sample {self.sample_id} by {self.reviewer}"


class AuditEntry(models.Model):
    """Who did what, when, with the state before and after. Append-only."""

    class Action(models.TextChoices):
        DECISION = "decision", "Decision"
        QUEUE_BUILT = "queue_built", "Queue built"
        ITEMS_ADDED = "items_added", "Items added"
        REASSIGN = "reassign", "Reassigned"
        BULK = "bulk", "Bulk action"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    # Indexed by (queue, -id) below: the newest entry is the queue's version.
    queue = models.ForeignKey(
        ReviewQueue,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="audit",
        db_index=False,
    )
    decision = models.OneToOneField(
        Decision, null=True, blank=True, on_delete=models.CASCADE, related_name="audit"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=12, choices=Action)
    summary = models.CharField(max_length=300)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["dataset", "-id"], name="auditentry_dataset"),
            models.Index(fields=["queue", "-id"], name="auditentry_queue"),
        ]

    def __str__(self) -> str:
        return self.summary


class QueueFigures(models.Model):
    """A queue's settled figures of one kind (progress or agreement), counted by a task.

    Stored in the database rather than a process's cache so the web processes and the
    Celery workers (SQLite embedded or PostgreSQL) all see the same figures: the worker
    recounts, every page reads one row. ``version`` is the queue's newest audit entry when
    the count started (the figures hold at least everything up to it); a page that sees an
    older version than the queue's shows these with ``computed_at`` and asks for a recount.

    ``requested_at`` coalesces those requests: the first page view that finds the figures
    old sets it with a conditional UPDATE and queues one task; later views see it set and
    do nothing. The task clears it before it counts, so a decision made during a recount
    asks for the next one; ``started_at`` (when the last task's count started, set with that
    clearing) makes the next one wait its turn after the count still running, not after the
    one stored before it. ``detail`` holds what only some views need (the disagreeing
    sample ids), so the page does not load it.
    """

    class Kind(models.TextChoices):
        PROGRESS = "progress", "Progress"
        AGREEMENT = "agreement", "Agreement"

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="figures")
    kind = models.CharField(max_length=10, choices=Kind)
    version = models.BigIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    # How long the last count took: quick figures are recounted inline, slow ones by a
    # task at most every STALE_FACTOR times this.
    seconds = models.FloatField(default=0)
    value = models.JSONField(default=dict)
    detail = models.JSONField(default=dict)
    requested_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # When the last count from scratch started. Agreement figures are otherwise kept up to
    # date by folding in AgreementChange rows; a count from scratch still comes after
    # FIGURES_MAX_AGE, for what no decision records (re-run checks).
    counted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "queue figures"
        constraints = [
            models.UniqueConstraint(fields=["queue", "kind"], name="queuefigures_unique_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of queue {self.queue_id} at version {self.version}"


class AgreementChange(models.Model):
    """How one decision (or a lead's bulk action) moved its queue's agreement tally.

    Written in the decision's transaction, which holds the sample's row lock, so the
    sample's share of the tally before and after is read without a race (see
    ``synthaug.engine.agreement.Tally``). The figures task deletes the rows it folds into
    ``QueueFigures`` in the same statement that reads them: a recount costs what was decided
    since the last one, not every decision in the queue. Insert-only between folds, so
    reviewers deciding at once never wait on each other here.
    """

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="+")
    change = models.JSONField()

    def __str__(self) -> str:
        return f"Agreement change {self.pk} of queue {self.queue_id}"


class ProgressChange(models.Model):
    """How one decision (or a lead's bulk action or added items) moved its queue's progress.

    ``change`` holds the moves: ``strata`` ``{stratum: [items, decided]}``, ``reasons``
    ``{reason: items}`` and ``reviewers`` ``{id: [decided, approved, rejected]}``. Written in
    the transaction that moves them and folded into ``QueueFigures`` like
    ``AgreementChange``, so progress is not recounted over every item of a big queue while
    reviewers work it. Insert-only between folds.
    """

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="+")
    change = models.JSONField()

    def __str__(self) -> str:
        return f"Progress change {self.pk} of queue {self.queue_id}"
