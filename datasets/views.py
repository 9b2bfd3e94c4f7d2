from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def dataset_list(request: HttpRequest) -> HttpResponse:
    return render(request, "datasets/list.html", {})
