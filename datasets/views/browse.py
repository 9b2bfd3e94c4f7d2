"""Browsing: the datasets list, creating a dataset, samples, and source documents.

Every object comes through an ``access_*`` getter (404 outside one's datasets, 403 without
the permission); anonymous users never get here (LoginRequiredMiddleware).
"""

from __future__ import annotations

from django.contrib import messages
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from datasets.access import access_dataset, access_document, access_sample, check_perm
from datasets.forms import CursorForm, DatasetForm, SampleFilterForm
from datasets.selectors import browse as selectors
from datasets.selectors import verification as verification_selectors
from datasets.selectors.browse import SampleFilters
from datasets.selectors.dedup import sample_family
from datasets.services.datasets import dataset_create


def _wants_fragment(request: HttpRequest) -> bool:
    # htmx restores history with HX-Request set too; that needs the whole page back.
    return bool(request.htmx) and not request.htmx.history_restore_request


@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = selectors.dataset_list(user=request.user)
    return render(request, "datasets/list.html", {"datasets": datasets})


@require_http_methods(["GET", "POST"])
def dataset_new(request: HttpRequest) -> HttpResponse:
    check_perm(request.user, "datasets.add_dataset")
    form = DatasetForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            dataset = dataset_create(created_by=request.user, **form.cleaned_data)
        except IntegrityError:
            # Two people creating the same slug at once: the second loses the race here.
            form.add_error("slug", "A dataset with this slug already exists; choose another.")
        else:
            messages.success(request, f"Created {dataset.name}. Next: import its samples.")
            return redirect(dataset)
    # Errors re-render with 200: htmx 2 does not swap 4xx responses.
    return render(request, "datasets/new.html", {"form": form})


@require_GET
@vary_on_headers("HX-Request")
def dataset_detail(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm="datasets.view_sample")
    form = SampleFilterForm(request.GET, dataset=dataset)
    filters = form.filters()
    page = selectors.sample_page(dataset=dataset, filters=filters, **form.cursor())
    context = {"dataset": dataset, "form": form, "filters": filters, "page": page}
    if _wants_fragment(request):
        return render(request, "datasets/detail.html#samples", context)
    context["counts"] = selectors.dataset_counts(dataset=dataset)
    return render(request, "datasets/detail.html", context)


@require_GET
def sample_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    sample = access_sample(request.user, slug, pk, perm="datasets.view_sample")
    checks = verification_selectors.sample_checks(sample=sample)
    family = sample_family(sample=sample)
    return render(
        request,
        "datasets/sample.html",
        {"dataset": sample.dataset, "sample": sample, "checks": checks, "family": family},
    )


@require_GET
def document_list(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm="datasets.view_sourcedocument")
    page = selectors.document_page(dataset=dataset, **CursorForm(request.GET).cursor())
    return render(request, "datasets/documents.html", {"dataset": dataset, "page": page})


@require_GET
def document_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    document = access_document(request.user, slug, pk, perm="datasets.view_sourcedocument")
    page = selectors.sample_page(
        dataset=document.dataset,
        filters=SampleFilters(document=document.pk),
        **CursorForm(request.GET).cursor(),
    )
    return render(
        request,
        "datasets/document.html",
        {"dataset": document.dataset, "document": document, "page": page},
    )
