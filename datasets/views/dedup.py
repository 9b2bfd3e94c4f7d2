"""The near-duplicate side-by-side page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from datasets.access import access_sample
from datasets.selectors.dedup import duplicate_side_by_side


@require_GET
def sample_duplicate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    sample = access_sample(request.user, slug, pk, perm="datasets.view_sample")
    pair = duplicate_side_by_side(sample=sample)
    return render(
        request,
        "datasets/duplicate.html",
        {"dataset": sample.dataset, "sample": sample, "pair": pair},
    )
