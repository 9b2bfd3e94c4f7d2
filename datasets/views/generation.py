"""Generation pages: a dataset's batches, the new-batch form (four questions and a live cost
estimate), the batch page (polled while it runs) with cancel, resume and retry, and the
prompt pages (versions, a new version from an old one, a side-by-side diff).

Every object comes through an access getter (404 outside one's datasets, 403 without the
permission). Reading needs ``datasets.view_batch``; launching, cancelling, resuming,
retrying and editing prompts need ``datasets.add_batch``. Prompts are shared by every
dataset; their pages sit under a dataset so that membership still decides who sees them.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from decimal import Decimal
from itertools import zip_longest
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import (
    Count,
    DecimalField,
    IntegerField,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Substr
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from datasets.access import User, access_dataset
from datasets.forms_generation import BatchForm, PromptCompareForm, PromptVersionForm
from datasets.models import (
    Batch,
    Dataset,
    GenerationItem,
    PromptTemplate,
    PromptVersion,
    Sample,
)
from datasets.selectors import generation as selectors
from datasets.selectors.browse import TEXT_HEAD_CHARS, capped_count
from datasets.services import generation as services

PERM_VIEW = "datasets.view_batch"
PERM_LAUNCH = "datasets.add_batch"
FAILED_PAGE_SIZE = 25
SAMPLES_SHOWN = 50
BATCHES_SHOWN = 100
SETTLED_STATES = (
    GenerationItem.State.DONE,
    GenerationItem.State.FAILED,
    GenerationItem.State.CANCELLED,
)
_MAX_ID = 2**63 - 1


def _wants_fragment(request: HttpRequest) -> bool:
    # htmx restores history with HX-Request set too; that needs the whole page back.
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- access -------------------------------------------------------------------------------


def _access_batch(user: User, slug: str, pk: int, *, perm: str) -> Batch:
    dataset = access_dataset(user, slug, perm=perm)
    batch = (
        Batch.objects.select_related("generator", "judge", "prompt_version__template", "created_by")
        .filter(dataset=dataset, pk=pk)
        .first()
    )
    if batch is None:
        raise Http404("No such batch")
    batch.dataset = dataset
    return batch


def _access_item(user: User, slug: str, pk: int, item_pk: int, *, perm: str) -> GenerationItem:
    batch = _access_batch(user, slug, pk, perm=perm)
    item = GenerationItem.objects.filter(batch=batch, pk=item_pk).first()
    if item is None:
        raise Http404("No such item")
    item.batch = batch
    return item


def _access_prompt_version(
    user: User, slug: str, pk: int, *, perm: str
) -> tuple[Dataset, PromptVersion]:
    dataset = access_dataset(user, slug, perm=perm)
    version = PromptVersion.objects.select_related("template", "created_by").filter(pk=pk).first()
    if version is None:
        raise Http404("No such prompt version")
    return dataset, version


# --- batches ------------------------------------------------------------------------------


@require_GET
def batch_list(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_VIEW)
    batches = list(_with_progress(selectors.batch_list(dataset=dataset))[: BATCHES_SHOWN + 1])
    return render(
        request,
        "datasets/batches.html",
        {
            "dataset": dataset,
            "batches": batches[:BATCHES_SHOWN],
            "more_batches": len(batches) > BATCHES_SHOWN,
            "batches_shown": BATCHES_SHOWN,
        },
    )


def _with_progress(batches: QuerySet[Batch]) -> QuerySet[Batch]:
    """Each batch with its items counted and its cost summed, in the same one query.

    Correlated subqueries rather than a join and GROUP BY, so each walks the
    ``(batch, state)`` index of its own batch only.
    """
    items = GenerationItem.objects.filter(batch=OuterRef("pk")).order_by()
    settled = items.filter(state__in=SETTLED_STATES)

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


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
def batch_new(request: HttpRequest, slug: str) -> HttpResponse:
    """The four questions; a valid answer creates the batch and starts it.

    GET prefills from the query string (the coverage page's "Fill this gap" links). With
    ``HX-Target: method-fields`` (the method select changed) only the method's own fields
    come back: its parameters and the prompt versions written for it.
    """
    dataset = access_dataset(request.user, slug, perm=PERM_LAUNCH)
    if request.method == "POST":
        form = BatchForm(request.POST, dataset=dataset)
        if form.is_valid():
            try:
                # One transaction: a batch that cannot start is not left behind as a draft,
                # and the start's task is sent only once both are committed.
                with transaction.atomic():
                    batch = services.batch_create(
                        dataset=dataset, created_by=request.user, **form.create_kwargs()
                    )
                    batch = services.batch_start(batch=batch, user=request.user)
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"{batch} is queued; this page follows it as it runs.")
                return redirect(batch)
        estimate_form = form
    else:
        generator, judge = services.offline_endpoints()
        form = BatchForm(
            dataset=dataset,
            prefill=request.GET,
            defaults={"generator": generator.pk, "judge": judge.pk},
        )
        if _wants_fragment(request) and request.htmx.target == "method-fields":
            return render(request, "datasets/batch_new.html#method_swap", {"form": form})
        estimate_form = BatchForm(form.as_query(), dataset=dataset)
    # Errors re-render with 200: htmx 2 does not swap 4xx responses.
    context = {"dataset": dataset, "form": form, **_estimate(dataset, estimate_form)}
    return render(request, "datasets/batch_new.html", context)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def batch_estimate(request: HttpRequest, slug: str) -> HttpResponse:
    """The cost estimate for the form as it stands.

    htmx asks for it whenever a field changes and swaps in the fragment; without
    JavaScript the "Recalculate" button posts here and gets the whole form back, filled in
    as it was, with the estimate (and the method's own fields, if the method changed).
    """
    dataset = access_dataset(request.user, slug, perm=PERM_LAUNCH)
    data = request.POST if request.method == "POST" else request.GET
    context = {"dataset": dataset, **_estimate(dataset, BatchForm(data, dataset=dataset))}
    if _wants_fragment(request):
        return render(request, "datasets/batch_new.html#estimate", context)
    context["form"] = BatchForm(dataset=dataset, prefill=data)
    return render(request, "datasets/batch_new.html", context)


def _estimate(dataset: Dataset, form: BatchForm) -> dict[str, Any]:
    kwargs = form.estimate_kwargs()
    if kwargs is None:
        return {"estimate": None, "estimate_problem": "", "budget_cap": None}
    try:
        estimate = services.batch_estimate(dataset=dataset, **kwargs)
    except ValidationError as exc:
        return {
            "estimate": None,
            "estimate_problem": " ".join(exc.messages),
            "budget_cap": None,
        }
    return {
        "estimate": estimate,
        "estimate_problem": "",
        "budget_cap": form.cleaned_data.get("budget_cap"),
        "estimate_offline": kwargs["generator"].kind == "offline"
        and kwargs["judge"].kind == "offline",
    }


@require_GET
@vary_on_headers("HX-Request")
def batch_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The batch page; with HX-Request only its progress fragment, which polls while the
    batch runs. The fragment of a batch that stopped running has no trigger (polling
    stops) and asks htmx to reload the page once, for the final samples and figures."""
    batch = _access_batch(request.user, slug, pk, perm=PERM_VIEW)
    context = _progress_context(batch, failed_after=_cursor(request.GET.get("failed_after")))
    if _wants_fragment(request):
        response = render(request, "datasets/batch_detail.html#progress", context)
        if not context["progress"].is_running:
            response["HX-Refresh"] = "true"
        return response
    context.update(_batch_samples(batch))
    return render(request, "datasets/batch_detail.html", context)


def _cursor(value: str | None) -> int | None:
    try:
        cursor = int(value or "")
    except ValueError:
        return None
    return cursor if 0 <= cursor <= _MAX_ID else None


def _progress_context(batch: Batch, *, failed_after: int | None) -> dict[str, Any]:
    progress = selectors.batch_progress(batch=batch)
    failed, failed_next = _failed_items(batch, after=failed_after)
    counts = progress.counts
    resumable = counts.get("pending", 0) + counts.get("cancelled", 0)
    return {
        "dataset": batch.dataset,
        "batch": batch,
        "progress": progress,
        "percent": round(100 * (progress.done_fraction or 0)),
        "state_counts": [
            (state, label, counts.get(state, 0)) for state, label in GenerationItem.State.choices
        ],
        "eta": _duration(progress.eta_seconds),
        "failed_items": failed,
        "failed_after": failed_after,
        "failed_next": failed_next,
        "can_cancel": batch.status in (Batch.Status.QUEUED, Batch.Status.RUNNING),
        "can_resume": batch.status in (Batch.Status.CANCELLED, Batch.Status.FAILED)
        and resumable > 0,
        "over_budget": batch.budget_cap is not None and progress.cost > batch.budget_cap,
    }


def _failed_items(batch: Batch, *, after: int | None) -> tuple[list[GenerationItem], int | None]:
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


def _batch_samples(batch: Batch) -> dict[str, Any]:
    """The batch's first samples by slot, text cut by the database (two queries)."""
    samples = Sample.objects.filter(batch=batch)
    rows = list(
        samples.order_by("seq", "pk")
        .only("id", "seq", "status", "difficulty", "duplicate_of_id", "tags", "expected")
        .annotate(text_head=Substr("text", 1, TEXT_HEAD_CHARS + 1))[:SAMPLES_SHOWN]
    )
    count = len(rows) if len(rows) < SAMPLES_SHOWN else capped_count(samples)
    return {"samples": rows, "samples_count": count, "samples_shown": SAMPLES_SHOWN}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@require_POST
def batch_cancel(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    batch = _access_batch(request.user, slug, pk, perm=PERM_LAUNCH)
    try:
        services.batch_cancel(batch=batch, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, "Cancelled. Items already generated are kept; Resume picks up the rest."
        )
    return redirect(batch)


@require_POST
def batch_resume(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    batch = _access_batch(request.user, slug, pk, perm=PERM_LAUNCH)
    try:
        services.batch_resume(batch=batch, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Resumed: the items not generated yet are queued again.")
    return redirect(batch)


@require_POST
def item_retry(request: HttpRequest, slug: str, pk: int, item_pk: int) -> HttpResponse:
    item = _access_item(request.user, slug, pk, item_pk, perm=PERM_LAUNCH)
    try:
        services.item_retry(item=item, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Item #{item.seq} is queued again.")
    return redirect(item.batch)


# --- prompts ------------------------------------------------------------------------------


@require_GET
def prompt_list(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_VIEW)
    purpose = request.GET.get("purpose") or None
    if purpose not in PromptTemplate.Purpose.values:
        purpose = None
    templates: dict[int, dict[str, Any]] = {}
    for version in selectors.prompt_versions(purpose=purpose):
        entry = templates.setdefault(
            version.template_id, {"template": version.template, "versions": []}
        )
        entry["versions"].append(version)
    groups = sorted(templates.values(), key=lambda entry: entry["template"].name)
    for entry in groups:
        versions = sorted(entry["versions"], key=lambda version: -version.number)
        # Each version beside the one before it, for the "diff with" links.
        entry["rows"] = list(zip_longest(versions, versions[1:]))
    return render(
        request,
        "datasets/prompt_list.html",
        {
            "dataset": dataset,
            "groups": groups,
            "purpose": purpose,
            "purposes": PromptTemplate.Purpose.choices,
        },
    )


@require_GET
def prompt_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    dataset, version = _access_prompt_version(request.user, slug, pk, perm=PERM_VIEW)
    siblings = list(
        PromptVersion.objects.filter(template_id=version.template_id)
        .only("id", "template_id", "number", "created_at", "used_at")
        .order_by("-number")
    )
    previous = next((v for v in siblings if v.number < version.number), None)
    # Only this dataset's batches: a batch elsewhere is not the reader's to see.
    batches = list(
        Batch.objects.filter(dataset=dataset, prompt_version=version)
        .only("id", "dataset_id", "name", "method", "status", "created_at")
        .order_by("-created_at")[:20]
    )
    return render(
        request,
        "datasets/prompt_detail.html",
        {
            "dataset": dataset,
            "version": version,
            "schema_text": json.dumps(version.output_schema, indent=2, ensure_ascii=False),
            "siblings": siblings,
            "previous": previous,
            "batches": batches,
        },
    )


@require_http_methods(["GET", "POST"])
def prompt_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A new version, starting from this one's text; this one never changes."""
    dataset, base = _access_prompt_version(request.user, slug, pk, perm=PERM_LAUNCH)
    form = PromptVersionForm(request.POST if request.method == "POST" else None, base=base)
    if form.is_valid():
        version = _prompt_version_create(
            template=base.template, created_by=request.user, **form.cleaned_data
        )
        messages.success(
            request, f"Saved as {version.label}. {base.label} is unchanged; batches choose one."
        )
        return redirect("datasets:prompt", dataset.slug, version.pk)
    return render(
        request, "datasets/prompt_edit.html", {"dataset": dataset, "base": base, "form": form}
    )


def _prompt_version_create(
    *,
    template: PromptTemplate,
    created_by: Any,
    system: str,
    user: str,
    output_schema: dict[str, Any],
    notes: str,
) -> PromptVersion:
    """Add the next version of ``template``.

    The template row is locked so two people saving at once get v5 and v6, not a clash on
    the unique (template, number) constraint.
    """
    with transaction.atomic():
        PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()
        last = template.versions.aggregate(last=Max("number"))["last"] or 0
        return PromptVersion.objects.create(
            template=template,
            number=last + 1,
            system=system,
            user=user,
            output_schema=output_schema,
            notes=notes,
            created_by=created_by,
        )


@dataclass(frozen=True)
class DiffRow:
    """One line of a side-by-side diff: ``kind`` is same, changed, removed or added."""

    kind: str
    left_number: int | None
    left: str
    right_number: int | None
    right: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    rows: list[DiffRow]
    added: int
    removed: int
    changed: int

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_lines(left: str, right: str) -> list[DiffRow]:
    """Side-by-side rows of a line diff (difflib). Plain text: the template escapes it."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                DiffRow("same", i + 1, a[i], j + 1, b[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        for i, j in zip_longest(range(i1, i2), range(j1, j2)):
            if i is not None and j is not None:
                rows.append(DiffRow("changed", i + 1, a[i], j + 1, b[j]))
            elif i is not None:
                rows.append(DiffRow("removed", i + 1, a[i], None, ""))
            else:
                rows.append(DiffRow("added", None, "", j + 1, b[j]))
    return rows


def diff_versions(left: PromptVersion, right: PromptVersion) -> list[FieldDiff]:
    diffs = []
    for name, attr in (("System", "system"), ("User", "user"), ("Output schema", None)):
        if attr is None:
            a = json.dumps(left.output_schema, indent=2, ensure_ascii=False, sort_keys=True)
            b = json.dumps(right.output_schema, indent=2, ensure_ascii=False, sort_keys=True)
        else:
            a, b = getattr(left, attr), getattr(right, attr)
        rows = diff_lines(a, b)
        diffs.append(
            FieldDiff(
                name=name,
                rows=rows,
                added=sum(row.kind == "added" for row in rows),
                removed=sum(row.kind == "removed" for row in rows),
                changed=sum(row.kind == "changed" for row in rows),
            )
        )
    return diffs


@require_GET
def prompt_compare(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_VIEW)
    form = PromptCompareForm(request.GET if request.GET else None)
    diffs = None
    if form.is_bound and form.is_valid():
        diffs = diff_versions(form.cleaned_data["a"], form.cleaned_data["b"])
    return render(
        request,
        "datasets/prompt_compare.html",
        {"dataset": dataset, "form": form, "diffs": diffs},
    )
