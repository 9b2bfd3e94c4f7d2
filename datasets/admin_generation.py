"""Admin for generation: model endpoints (with "Test connection") and prompt templates.

Prompt versions are edited inline under their template; a version a batch has used is
shown read-only (it is frozen, and ``PromptVersion.save`` refuses to change it anyway), and
a new row becomes the next version number. The app's prompt pages make new versions too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Max, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from datasets.models import ModelEndpoint, PromptTemplate, PromptVersion
from datasets.services.generation import endpoint_for
from synthaug.engine.errors import LLMError
from synthaug.engine.llm import LLMClient

# An admin request should not hang on an endpoint that never answers.
TEST_TIMEOUT_CAP = 30.0


def endpoint_test(row: ModelEndpoint) -> tuple[bool, str]:
    """One real call to the endpoint; (worked, what to tell the admin)."""
    if row.kind == ModelEndpoint.Kind.OFFLINE:
        return True, f"{row.name}: built-in, no network: nothing to test."
    try:
        # The key is read from this process's environment, as a worker reads it from its own.
        endpoint = endpoint_for(row)
    except LLMError as exc:
        return False, f"{row.name}: not called: {exc.message}"
    endpoint = replace(endpoint, timeout=min(endpoint.timeout, TEST_TIMEOUT_CAP))
    try:
        with LLMClient(endpoint) as client:
            result = client.test_connection()
    except LLMError as exc:
        status = f" (HTTP {exc.status})" if exc.status is not None else ""
        return False, f"{row.name}: failed, {exc.reason}{status}: {exc.message}"
    return True, (
        f"{row.name}: connected. Model {result.model or row.model}, "
        f"{result.latency_s * 1000:.0f} ms, "
        f"{result.input_tokens} input + {result.output_tokens} output tokens."
    )


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "model", "family", "base_url", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "model", "family"]
    actions = ["test_connection"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "is_active"]}),
        ("Where", {"fields": ["base_url", "model", "family", "api_key_env"]}),
        (
            "Limits",
            {
                "fields": [
                    "max_concurrency",
                    "requests_per_minute",
                    "tokens_per_minute",
                    "timeout_seconds",
                    "supports_json_schema",
                ]
            },
        ),
        ("Prices per 1,000 tokens", {"fields": ["price_in_per_1k", "price_out_per_1k"]}),
    ]

    @admin.action(description="Test connection (one real call each)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[ModelEndpoint]) -> None:
        for row in queryset.order_by("name"):
            worked, message = endpoint_test(row)
            self.message_user(request, message, messages.SUCCESS if worked else messages.ERROR)


class PromptVersionForm(ModelForm):
    """A used version's fields are disabled: whatever is posted for them is ignored."""

    class Meta:
        model = PromptVersion
        fields = ["system", "user", "output_schema", "notes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # {} is a valid schema here ("the method's built-in one"), not a missing value.
        self.fields["output_schema"].required = False
        for field in self.fields.values():
            if hasattr(field, "strip"):
                field.strip = False  # a prompt's whitespace is part of what the model reads
        self.frozen = bool(self.instance.pk and self.instance.used_at is not None)
        if self.frozen:
            for field in self.fields.values():
                field.disabled = True

    @property
    def changed_data(self) -> list[str]:
        # forms.JSONField compares posted data even when disabled: a frozen row never changes.
        return [] if self.frozen else super().changed_data


class PromptVersionInline(admin.StackedInline):
    model = PromptVersion
    form = PromptVersionForm
    extra = 0
    can_delete = False
    readonly_fields = ["number", "used_at", "created_by", "created_at"]
    fields = ["number", "system", "user", "output_schema", "notes", "used_at", "created_by"]
    ordering = ["-number"]


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "purpose", "created_at"]
    list_filter = ["purpose"]
    search_fields = ["name"]
    inlines = [PromptVersionInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not PromptVersion:
            super().save_formset(request, form, formset, change)
            return
        with transaction.atomic():
            template = PromptTemplate.objects.select_for_update().get(pk=form.instance.pk)
            last = template.versions.aggregate(last=Max("number"))["last"] or 0
            for version in formset.save(commit=False):
                if version.pk is None:
                    last += 1
                    version.number = last
                    version.created_by = request.user
                    version.save()
                elif version.used_at is None:
                    version.save()
            formset.save_m2m()
