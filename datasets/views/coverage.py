"""The coverage page: the matrix of a dataset's tag slices x difficulty, its gaps, and the
way from a gap to a batch; the lead's targets and settings; a manual refresh of the counts.

Reading needs ``datasets.view_sample`` (annotators see the matrix too); "Fill this gap"
needs ``datasets.add_batch``; targets, settings and refreshes need
``datasets.change_dataset``. The counts are kept (see ``datasets.services.coverage``):
the page never scans the samples.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets.access import access_dataset
from datasets.forms_coverage import (
    CoverageSettingsForm,
    CoverageTargetsForm,
    CoverageViewForm,
    requested_dimensions,
)
from datasets.selectors.coverage import coverage_view, dimensions_for
from datasets.services.coverage import (
    coverage_refresh_request,
    coverage_settings_update,
    coverage_targets_set,
)

PERM_VIEW = "datasets.view_sample"
PERM_EDIT = "datasets.change_dataset"


def _coverage_url(slug: str, dimensions: tuple[str, ...]) -> str:
    query = urlencode({"dims": ",".join(dimensions)}) if dimensions else ""
    return reverse("datasets:coverage", args=[slug]) + (f"?{query}" if query else "")


@require_GET
def coverage(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_VIEW)
    dimensions = dimensions_for(dataset=dataset, requested=requested_dimensions(request.GET))
    view_form = CoverageViewForm(request.GET, dataset=dataset, dimensions=dimensions)
    context = {"dataset": dataset, "dimensions": dimensions, "view_form": view_form}
    if dimensions:
        context["coverage"] = coverage_view(
            dataset=dataset, dimensions=dimensions, compare_batch=view_form.compare_batch()
        )
    return render(request, "datasets/coverage.html", context)


@require_POST
def coverage_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM_EDIT)
    queued = coverage_refresh_request(dataset_id=dataset.pk)
    messages.success(
        request,
        "The counts are being rebuilt; reload in a few seconds."
        if queued
        else "A rebuild of the counts is already queued; reload in a few seconds.",
    )
    dimensions = dimensions_for(dataset=dataset, requested=requested_dimensions(request.POST))
    return redirect(_coverage_url(dataset.slug, dimensions))


@require_http_methods(["GET", "POST"])
def coverage_targets(request: HttpRequest, slug: str) -> HttpResponse:
    """The dataset's coverage settings and the per-cell targets of one view."""
    dataset = access_dataset(request.user, slug, perm=PERM_EDIT)
    query = request.POST if request.method == "POST" else request.GET
    dimensions = dimensions_for(dataset=dataset, requested=requested_dimensions(query))
    data = request.POST if request.method == "POST" else None
    settings_form = CoverageSettingsForm(
        data if data and "save_settings" in data else None, dataset=dataset
    )
    coverage = coverage_view(dataset=dataset, dimensions=dimensions) if dimensions else None
    targets_form = (
        CoverageTargetsForm(data if data and "save_targets" in data else None, coverage=coverage)
        if coverage
        else None
    )
    if data and "save_settings" in data and settings_form.is_valid():
        coverage_settings_update(
            dataset=dataset,
            dimensions=settings_form.cleaned_data["default_dims"],
            default_target=settings_form.cleaned_data["default_target"],
            ceiling=settings_form.cleaned_data["ceiling"],
        )
        messages.success(request, "Saved the coverage settings.")
        return redirect(_coverage_url(dataset.slug, dimensions))
    if data and "save_targets" in data and targets_form is not None and targets_form.is_valid():
        written = coverage_targets_set(
            dataset=dataset, targets=targets_form.targets(), user=request.user
        )
        (messages.success(request, f"Saved the targets ({written} cells changed)."),)
        return redirect(_coverage_url(dataset.slug, dimensions))
    # Errors re-render with 200: htmx 2 does not swap 4xx responses.
    return render(
        request,
        "datasets/coverage_targets.html",
        {
            "dataset": dataset,
            "dimensions": dimensions,
            "dims_value": ",".join(dimensions),
            "settings_form": settings_form,
            "targets_form": targets_form,
        },
    )
