"""Generation pages: a dataset's batches, the new-batch form (four questions and a live cost
estimate), the batch page (polled while it runs) with cancel, resume and retry, and the
prompt pages (versions, a new version from an old one, a side-by-side diff).

Every object comes through an access getter (404 outside one's datasets, 403 without the
permission). Reading needs ``datasets.view_batch``; launching, cancelling, resuming,
retrying and editing prompts need ``datasets.add_batch``. Prompts are shared by every
dataset; their pages sit under a dataset so that membership still decides who sees them.
"""

from __future__ import annotations

import json
from itertools import zip_longest
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from datasets.access import (
    access_batch,
    access_dataset,
    access_generation_item,
    access_prompt_version,
)
from datasets.forms_generation import BatchForm, PromptCompareForm, PromptVersionForm
from datasets.models import (
    Batch,
    Dataset,
    GenerationItem,
    PromptTemplate,
    PromptVersion,
)
from datasets.selectors import generation as selectors
from datasets.selectors import verification as verification_selectors
from datasets.services import generation as services

PERM_VIEW = "datasets.view_batch"
PERM_LAUNCH = "datasets.add_batch"
BATCHES_SHOWN = 100
_MAX_ID = 2**63 - 1


def _wants_fragment(request: HttpRequest) -> bool:
    # htmx restores history with HX-Request set too; that needs the whole page back.
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- access -------------------------------------------------------------------------------


# --- batches ------------------------------------------------------------------------------


@require_GET
def batch_list(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_VIEW)
    batches = list(
        selectors.batches_with_progress(selectors.batch_list(dataset=dataset))[: BATCHES_SHOWN + 1]
    )
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
    batch = access_batch(request.user, slug, pk, perm=PERM_VIEW)
    context = _progress_context(batch, failed_after=_cursor(request.GET.get("failed_after")))
    if _wants_fragment(request):
        response = render(request, "datasets/batch_detail.html#progress", context)
        if not context["progress"].is_running:
            response["HX-Refresh"] = "true"
        return response
    context.update(selectors.batch_samples(batch=batch))
    context["funnel"] = verification_selectors.batch_funnel(batch=batch)
    return render(request, "datasets/batch_detail.html", context)


def _cursor(value: str | None) -> int | None:
    try:
        cursor = int(value or "")
    except ValueError:
        return None
    return cursor if 0 <= cursor <= _MAX_ID else None


def _progress_context(batch: Batch, *, failed_after: int | None) -> dict[str, Any]:
    progress = selectors.batch_progress(batch=batch)
    failed, failed_next = selectors.batch_failed_items(batch=batch, after=failed_after)
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
        "checks_progress": (
            verification_selectors.batch_checks_progress(batch=batch)
            if batch.status == Batch.Status.CHECKING
            else None
        ),
    }


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
    batch = access_batch(request.user, slug, pk, perm=PERM_LAUNCH)
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
    batch = access_batch(request.user, slug, pk, perm=PERM_LAUNCH)
    try:
        services.batch_resume(batch=batch, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Resumed: the items not generated yet are queued again.")
    return redirect(batch)


@require_POST
def item_retry(request: HttpRequest, slug: str, pk: int, item_pk: int) -> HttpResponse:
    item = access_generation_item(request.user, slug, pk, item_pk, perm=PERM_LAUNCH)
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
    dataset, version = access_prompt_version(request.user, slug, pk, perm=PERM_VIEW)
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
    dataset, base = access_prompt_version(request.user, slug, pk, perm=PERM_LAUNCH)
    form = PromptVersionForm(request.POST if request.method == "POST" else None, base=base)
    if form.is_valid():
        version = services.prompt_version_create(
            template=base.template, created_by=request.user, **form.cleaned_data
        )
        messages.success(
            request, f"Saved as {version.label}. {base.label} is unchanged; batches choose one."
        )
        return redirect("datasets:prompt", dataset.slug, version.pk)
    return render(
        request, "datasets/prompt_edit.html", {"dataset": dataset, "base": base, "form": form}
    )


@require_GET
def prompt_compare(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_VIEW)
    form = PromptCompareForm(request.GET if request.GET else None)
    diffs = None
    if form.is_bound and form.is_valid():
        diffs = selectors.prompt_version_diff(
            left=form.cleaned_data["a"], right=form.cleaned_data["b"]
        )
    return render(
        request,
        "datasets/prompt_compare.html",
        {"dataset": dataset, "form": form, "diffs": diffs},
    )
