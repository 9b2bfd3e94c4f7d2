"""Reads for the generation pages: batches, their progress, endpoints and prompt versions.

Progress is derived from the items (one GROUP BY), never from counters kept on the batch:
there is nothing to drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connections
from django.db.models import (
    Count,
    DecimalField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from datasets.models import (
    Batch,
    Dataset,
    GenerationItem,
    ModelEndpoint,
    PromptVersion,
    Sample,
    SourceDocument,
)
from datasets.selectors.browse import TEXT_HEAD_CHARS, SampleFilters, capped_count, samples_matching
from synthaug.engine.textdiff import FieldDiff, field_diff

State = GenerationItem.State
_SETTLED = (State.DONE, State.FAILED, State.CANCELLED)


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands.

    ``counts`` maps every item state to its count; ``done_fraction`` is the share of items
    settled (done, failed or cancelled); ``errors_by_reason`` lists (reason, count, an example
    detail) for failed and cancelled items, most frequent first; ``eta_seconds`` extrapolates
    the rate at which items settled since the batch started (None when not running or not
    known yet).
    """

    counts: dict[str, int]
    total: int
    done_fraction: float
    input_tokens: int
    output_tokens: int
    cost: Decimal
    errors_by_reason: list[tuple[str, int, str]]
    eta_seconds: float | None
    is_running: bool

    @property
    def pending(self) -> int:
        return self.counts[State.PENDING]

    @property
    def running(self) -> int:
        return self.counts[State.RUNNING]

    @property
    def done(self) -> int:
        return self.counts[State.DONE]

    @property
    def failed(self) -> int:
        return self.counts[State.FAILED]

    @property
    def cancelled(self) -> int:
        return self.counts[State.CANCELLED]

    @property
    def settled(self) -> int:
        return sum(self.counts[state] for state in _SETTLED)


def batch_progress(*, batch: Batch) -> BatchProgress:
    """The batch's progress from its items, in one query."""
    started = batch.started_at
    annotations = {
        "n": Count("pk"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost"),
        "example": Max("error_detail"),
    }
    if started is not None:
        annotations["recent"] = Count("pk", filter=Q(finished_at__gte=started))
    rows = (
        GenerationItem.objects.filter(batch_id=batch.pk)
        .order_by()  # the model's ordering would join the GROUP BY
        .values("state", "error_reason")
        .annotate(**annotations)
    )
    counts = {state: 0 for state in State.values}
    input_tokens = output_tokens = recent = 0
    cost = Decimal(0)
    reasons: dict[str, list] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + row["n"]
        input_tokens += row["input_tokens"] or 0
        output_tokens += row["output_tokens"] or 0
        cost += row["cost"] or Decimal(0)
        if row["state"] in _SETTLED:
            recent += row.get("recent", 0)
        if row["state"] in (State.FAILED, State.CANCELLED) and row["error_reason"]:
            entry = reasons.setdefault(row["error_reason"], [0, ""])
            entry[0] += row["n"]
            entry[1] = entry[1] or row["example"] or ""
    total = sum(counts.values())
    settled = sum(counts[state] for state in _SETTLED)
    generating = batch.status in (Batch.Status.QUEUED, Batch.Status.RUNNING)
    # Checking is work in progress too: the page keeps polling until the batch is READY.
    is_running = generating or batch.status == Batch.Status.CHECKING
    eta = None
    if generating and started is not None and recent:
        elapsed = (timezone.now() - started).total_seconds()
        if elapsed > 0:
            eta = (counts[State.PENDING] + counts[State.RUNNING]) / (recent / elapsed)
    return BatchProgress(
        counts=counts,
        total=total,
        done_fraction=settled / total if total else 0.0,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
        errors_by_reason=sorted(
            ((reason, n, example) for reason, (n, example) in reasons.items()),
            key=lambda entry: (-entry[1], entry[0]),
        ),
        eta_seconds=eta,
        is_running=is_running,
    )


def batch_spent(*, batch_id: int) -> Decimal:
    """What a batch's items were billed so far, failed attempts included."""
    total = GenerationItem.objects.filter(batch_id=batch_id).aggregate(c=Sum("cost"))["c"]
    return total or Decimal(0)


def batch_list(*, dataset: Dataset) -> QuerySet[Batch]:
    """The dataset's batches, newest first, with their endpoints and prompt joined."""
    return (
        Batch.objects.filter(dataset=dataset)
        .select_related("generator", "judge", "prompt_version__template", "created_by")
        .order_by("-created_at", "-pk")
    )


def endpoint_list() -> QuerySet[ModelEndpoint]:
    """Endpoints a batch may use (switched-on ones), by name.

    The built-in offline pair comes from migration 0005 (and ``offline_endpoints()``).
    """
    return ModelEndpoint.objects.filter(is_active=True).order_by("name")


def prompt_versions(*, purpose: str | None = None) -> QuerySet[PromptVersion]:
    """Prompt versions by template name, newest version first; ``purpose`` narrows them."""
    versions = PromptVersion.objects.select_related("template").order_by(
        "template__name", "-number"
    )
    if purpose is not None:
        versions = versions.filter(template__purpose=purpose)
    return versions


# What a batch works from ------------------------------------------------------------


def _tag_filtered(queryset: QuerySet, tags: dict[str, str]) -> QuerySet:
    """Rows whose ``tags`` hold every (dimension, value) of ``tags`` (PostgreSQL or SQLite)."""
    vendor = connections[queryset.db].vendor
    for position, (dimension, value) in enumerate(sorted(tags.items())):
        if vendor == "postgresql":
            queryset = queryset.filter(tags__contains={dimension: value})
        else:
            alias = f"tag_filter_{position}"
            queryset = queryset.alias(**{alias: KeyTransform(dimension, "tags")}).filter(
                **{alias: value}
            )
    return queryset


def slice_parents(*, dataset: Dataset, target_tags: dict[str, str]) -> QuerySet[Sample]:
    """Real, canonical samples of the slice: what paraphrase and adversarial work from."""
    filters = SampleFilters(origin=Sample.Origin.REAL, tags=target_tags)
    return samples_matching(dataset=dataset, filters=filters).filter(duplicate_of__isnull=True)


def slice_documents(*, dataset: Dataset, target_tags: dict[str, str]) -> list[int]:
    """Documents of the slice (tagged with it, or behind real samples of it); else all."""
    documents = SourceDocument.objects.filter(dataset=dataset)
    if target_tags:
        linked = samples_matching(
            dataset=dataset, filters=SampleFilters(origin=Sample.Origin.REAL, tags=target_tags)
        ).filter(source_document__isnull=False)
        ids = set(
            documents.filter(pk__in=linked.values("source_document_id")).values_list(
                "pk", flat=True
            )
        )
        ids |= set(_tag_filtered(documents, target_tags).values_list("pk", flat=True))
        if ids:
            return sorted(ids)
    return list(documents.order_by("pk").values_list("pk", flat=True))


# --- for the pages ---------------------------------------------------------------------

FAILED_PAGE_SIZE = 25
SAMPLES_SHOWN = 50


def batches_with_progress(batches: QuerySet[Batch]) -> QuerySet[Batch]:
    """Each batch with its items counted and its cost summed, in the same one query.

    Correlated subqueries rather than a join and GROUP BY, so each walks the
    ``(batch, state)`` index of its own batch only.
    """
    items = GenerationItem.objects.filter(batch=OuterRef("pk")).order_by()
    settled = items.filter(state__in=_SETTLED)

    def count(queryset: QuerySet) -> Subquery:
        return Subquery(
            queryset.values("batch").annotate(n=Count("pk")).values("n"),
            output_field=IntegerField(),
        )

    return batches.annotate(
        items_total=Coalesce(count(items), 0),
        items_settled=Coalesce(count(settled), 0),
        spent=Coalesce(
            Subquery(
                items.values("batch").annotate(c=Sum("cost")).values("c"),
                output_field=DecimalField(max_digits=12, decimal_places=6),
            ),
            Value(Decimal(0)),
            output_field=DecimalField(max_digits=12, decimal_places=6),
        ),
    )


def batch_failed_items(
    *, batch: Batch, after: int | None
) -> tuple[list[GenerationItem], int | None]:
    """One keyset page of the batch's failed items by slot (one query, the state index)."""
    items = GenerationItem.objects.filter(batch=batch, state=GenerationItem.State.FAILED)
    if after is not None:
        items = items.filter(seq__gt=after)
    rows = list(
        items.order_by("seq").only(
            "id", "batch_id", "seq", "attempts", "error_reason", "error_detail", "finished_at"
        )[: FAILED_PAGE_SIZE + 1]
    )
    page = rows[:FAILED_PAGE_SIZE]
    return page, (page[-1].seq if len(rows) > FAILED_PAGE_SIZE else None)


def batch_samples(*, batch: Batch) -> dict[str, Any]:
    """The batch's first samples by slot, text cut by the database (two queries)."""
    samples = Sample.objects.filter(batch=batch)
    rows = list(
        samples.order_by("seq", "pk")
        .only("id", "seq", "status", "difficulty", "duplicate_of_id", "tags", "expected")
        .annotate(text_head=Substr("text", 1, TEXT_HEAD_CHARS + 1))[:SAMPLES_SHOWN]
    )
    count = len(rows) if len(rows) < SAMPLES_SHOWN else capped_count(samples)
    return {"samples": rows, "samples_count": count, "samples_shown": SAMPLES_SHOWN}


def prompt_version_diff(*, left: PromptVersion, right: PromptVersion) -> list[FieldDiff]:
    """The two versions' system, user and output-schema texts, diffed line by line."""
    diffs = []
    for name, attr in (("System", "system"), ("User", "user"), ("Output schema", None)):
        if attr is None:
            a = json.dumps(left.output_schema, indent=2, ensure_ascii=False, sort_keys=True)
            b = json.dumps(right.output_schema, indent=2, ensure_ascii=False, sort_keys=True)
        else:
            a, b = getattr(left, attr), getattr(right, attr)
        diffs.append(field_diff(name, a, b))
    return diffs
