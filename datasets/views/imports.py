"""Import pages: upload, a dataset's imports, the job page (polled while it runs), confirm,
and the CSV of every row error.

Every view goes through the access getters (404 outside the dataset, 403 without the
import permission), and does at most: form, one service call, render or redirect.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets.access import access_dataset, access_import_job
from datasets.importing.forms import ImportConfirmForm, ImportUploadForm
from datasets.importing.mapping import mapping_format
from datasets.importing.selectors import (
    ERRORS_SHOWN,
    import_job_bad_rows,
    import_job_errors_all,
    import_job_errors_head,
    import_jobs_recent,
)
from datasets.models import ImportJob
from datasets.services.imports import import_job_confirm, import_job_create

PERM = "datasets.import_data"
# Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@require_http_methods(["GET", "POST"])
def import_new(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM)
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES, dataset=dataset)
    else:
        form = ImportUploadForm(dataset=dataset)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            job = import_job_create(
                dataset=dataset,
                created_by=request.user,
                file=data["file"],
                file_name=data["file"].name,
                kind=data["kind"],
                format=data["format"],
                mapping=data["mapping"],
                skip_bad_rows=data["skip_bad_rows"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(job)
    return render(request, "datasets/import_new.html", {"dataset": dataset, "form": form})


@require_GET
def import_list(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, slug, perm=PERM)
    jobs = import_jobs_recent(dataset)
    return render(request, "datasets/import_list.html", {"dataset": dataset, "jobs": jobs})


@require_GET
def import_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The job page; with HX-Request only its status fragment, which polls while running."""
    job = access_import_job(request.user, slug, pk, perm=PERM)
    settled = not job.is_running
    bad_rows = import_job_bad_rows(job) if settled and job.error_count else 0
    context = {
        "dataset": job.dataset,
        "job": job,
        "mapping_text": mapping_format(job.mapping),
        "errors": import_job_errors_head(job) if settled and job.error_count else [],
        "errors_shown": ERRORS_SHOWN,
        "bad_rows": bad_rows,
        "good_rows": max(job.rows_total - bad_rows, 0),
        "percent": _percent(job),
    }
    template = "datasets/import_detail.html"
    if request.htmx:
        template += "#job"
    return render(request, template, context)


def _percent(job: ImportJob) -> int | None:
    """How far a running job is, when it can be told (bytes read while checking)."""
    if job.status == ImportJob.Status.VALIDATING and job.file_size and job.bytes_processed:
        return min(99, int(100 * job.bytes_processed / job.file_size))
    return None


@require_POST
def import_confirm(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    job = access_import_job(request.user, slug, pk, perm=PERM)
    form = ImportConfirmForm(request.POST)
    skip = form.cleaned_data["skip_bad_rows"] if form.is_valid() else False
    try:
        import_job_confirm(job=job, user=request.user, skip_bad_rows=skip or None)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "The import has started; this page follows it.")
    return redirect(job)


def _neutralise(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
def import_errors_csv(request: HttpRequest, slug: str, pk: int) -> StreamingHttpResponse:
    """Every row error as CSV (streamed); cells that look like formulas are neutralised."""
    job = access_import_job(request.user, slug, pk, perm=PERM)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        # A BOM so spreadsheet programs read the file as UTF-8.
        yield "\ufeff" + writer.writerow(["row", "field", "problem", "kind", "excerpt"])
        for error in import_job_errors_all(job):
            yield writer.writerow(
                [
                    error.row,
                    _neutralise(error.field),
                    _neutralise(error.message),
                    error.kind,
                    _neutralise(error.excerpt),
                ]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
