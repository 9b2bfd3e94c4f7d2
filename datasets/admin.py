"""The Django admin: datasets, documents, import jobs, and samples with import/export.

Samples import through django-import-export (``SampleResource``) with a dry run and a
confirm step; the import form adds the dataset to import into and the column mapping, and
the uploaded file is read by synthaug's own readers, so the admin applies exactly the
checks of the app's import page. An admin import that runs is recorded as an ImportJob.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from datasets.access import datasets_visible_to
from datasets.importing.formats import CsvImport, JsonImport, SafeCSV, SafeXLSX, XlsxImport
from datasets.importing.forms import AdminSampleConfirmImportForm, AdminSampleImportForm
from datasets.importing.mapping import mapping_format
from datasets.importing.readers import FileError
from datasets.models import Dataset, ImportJob, Membership, Sample, SourceDocument
from datasets.resources import SampleResource


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task_type", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    raw_id_fields = ["created_by"]


@admin.register(SourceDocument)
class SourceDocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "dataset", "origin", "created_at"]
    list_filter = ["dataset"]
    search_fields = ["title", "external_id"]
    raw_id_fields = ["import_job"]
    readonly_fields = ["content_hash"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Import jobs are records: viewed here, made by the import page, CLI or sample admin."""

    list_display = [
        "file_name",
        "dataset",
        "kind",
        "status",
        "engine",
        "rows_imported",
        "created_at",
    ]
    list_filter = ["status", "kind", "engine"]
    search_fields = ["file_name", "file_sha256"]
    exclude = ["preview"]
    readonly_fields = ["job_page"]

    @admin.display(description="Rows, problems and preview")
    def job_page(self, obj: ImportJob) -> str:
        # The app's job page lists the row errors (a bad file can have millions).
        return format_html('<a href="{}">Open the import page</a>', obj.get_absolute_url())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Sample)
class SampleAdmin(ImportExportModelAdmin):
    resource_classes = [SampleResource]
    import_form_class = AdminSampleImportForm
    confirm_form_class = AdminSampleConfirmImportForm
    import_formats = [CsvImport, XlsxImport, JsonImport]
    export_formats = [SafeCSV, SafeXLSX, base_formats.JSON]
    list_display = ["id", "dataset", "origin", "status", "difficulty", "split", "created_at"]
    list_filter = ["origin", "status", "difficulty", "split", "dataset"]
    search_fields = ["external_id", "text"]
    raw_id_fields = [
        "dataset",
        "import_job",
        "batch",
        "parent",
        "source_document",
        "duplicate_of",
        "difficulty_set_by",
    ]
    readonly_fields = ["content_hash", "created_at"]

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("datasets.import_data")

    def create_import_form(self, request: HttpRequest):
        form = super().create_import_form(request)
        form.fields["dataset"].queryset = datasets_visible_to(request.user)
        return form

    def create_confirm_form(self, request: HttpRequest, import_form=None):
        form = super().create_confirm_form(request, import_form)
        form.fields["dataset"].queryset = datasets_visible_to(request.user)
        return form

    def get_confirm_form_initial(self, request: HttpRequest, import_form) -> dict[str, Any]:
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["dataset"] = import_form.cleaned_data["dataset"].pk
            initial["mapping"] = mapping_format(import_form.cleaned_data["mapping"])
        return initial

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        form = kwargs.get("form")
        cleaned = getattr(form, "cleaned_data", None) or {}
        return {"dataset": cleaned.get("dataset"), "mapping": cleaned.get("mapping") or {}}

    def add_data_read_fail_error_to_form(self, form, e: Exception) -> None:
        # A file synthaug cannot read says why in words; anything else keeps the default.
        if isinstance(e, FileError):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)


# Endpoints and prompts have their admin in a module of their own.
from datasets import admin_generation  # noqa: E402, F401
