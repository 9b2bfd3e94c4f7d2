"""Prompt versions: a new version of a template; existing versions never change."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from datasets.models import PromptTemplate, PromptVersion


def prompt_version_create(
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
