"""Forms of the browsing pages: creating a dataset, filtering and paging samples."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from datasets.models import Dataset, Sample
from datasets.selectors.browse import SampleFilters
from datasets.services.datasets import DEFAULT_SCHEMA, check_schema, check_tag_dimensions

# Dimension names end up in URLs (?tag_topic=...) and export keys: keep them plain.
_DIMENSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
# Ids are bigints; anything larger is not a cursor, it is a typo or a probe.
_MAX_ID = 2**63 - 1


def parse_named_lists(
    text: str,
    *,
    name_pattern: re.Pattern[str],
    line_hint: str,
    name_hint: str,
    require_values: bool,
) -> dict[str, list[str]]:
    """``name: a, b`` per line -> ``{"name": ["a", "b"]}``, for every "lists by name" field.

    Raises ValidationError naming each line at fault (``line_hint`` when the colon is
    missing, ``name_hint`` for a bad name). Blank lines are ignored, a name may appear once,
    repeated values are kept once in the order given; ``require_values`` refuses ``name:``.
    """
    parsed: dict[str, list[str]] = {}
    errors = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, colon, values = line.partition(":")
        name = name.strip()
        if not colon:
            errors.append(f"Line {number}: {line_hint}")
        elif not name_pattern.match(name):
            errors.append(f"Line {number}: {name_hint}")
        elif name in parsed:
            errors.append(f"Line {number}: “{name}” is already listed.")
        else:
            picked = [value.strip() for value in values.split(",") if value.strip()]
            if require_values and not picked:
                errors.append(f"Line {number}: “{name}” has no values.")
            parsed[name] = list(dict.fromkeys(picked))
    if errors:
        raise ValidationError(errors)
    return parsed


def parse_tag_dimensions(text: str) -> dict[str, list[str]]:
    """``topic: health, law`` per line -> ``{"topic": ["health", "law"]}``; ``locale:`` -> []."""
    return parse_named_lists(
        text,
        name_pattern=_DIMENSION_NAME,
        line_hint="write “dimension: value, value” (or “dimension:” for any value).",
        name_hint=(
            "a dimension name is letters, digits, “_” or “-” "
            "(up to 50, starting with a letter or digit)."
        ),
        require_values=False,
    )


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100, help_text="Short name used in addresses, e.g. truthful-qa."
    )
    task_type = forms.ChoiceField(choices=Dataset.TaskType.choices, initial=Dataset.TaskType.QA)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    license_note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Where the data comes from and under which licence it may be used.",
    )
    tag_dimensions = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "topic: health, law, history\nlocale:"}
        ),
        required=False,
        help_text="One dimension per line: “topic: health, law, history” restricts the "
        "values; “locale:” accepts any value.",
    )
    schema = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "class": "mono", "spellcheck": "false"}),
        initial=json.dumps(DEFAULT_SCHEMA, indent=2),
        help_text="JSON Schema for one sample, an object with “input” and “expected”.",
    )

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Dataset.objects.filter(slug=slug).exists():
            raise ValidationError("A dataset with this slug already exists; choose another.")
        return slug

    def clean_tag_dimensions(self) -> dict[str, list[str]]:
        dimensions = parse_tag_dimensions(self.cleaned_data["tag_dimensions"])
        check_tag_dimensions(dimensions)
        return dimensions

    def clean_schema(self) -> dict[str, Any]:
        try:
            schema = json.loads(self.cleaned_data["schema"])
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        check_schema(schema)
        return schema


class CursorForm(forms.Form):
    """``?after=<id>`` (older page) or ``?before=<id>`` (newer page); junk is ignored."""

    after = forms.IntegerField(min_value=1, max_value=_MAX_ID, required=False)
    before = forms.IntegerField(min_value=1, max_value=_MAX_ID, required=False)

    def cursor(self) -> dict[str, int | None]:
        """The valid cursor arguments for a selector's ``after=``/``before=``."""
        self.is_valid()
        return {
            "after": self.cleaned_data.get("after"),
            "before": self.cleaned_data.get("before"),
        }


def _blank_first(choices: list[tuple[str, str]], label: str) -> list[tuple[str, str]]:
    return [("", label), *((value, name) for value, name in choices if value)]


class SampleFilterForm(CursorForm):
    """The filters above the samples table, one field per tag dimension of the dataset.

    Always bound to ``request.GET``. Invalid fields are reported and left out of the
    filters; the valid ones still apply.
    """

    origin = forms.ChoiceField(
        choices=_blank_first(Sample.Origin.choices, "Any origin"), required=False
    )
    status = forms.ChoiceField(
        choices=_blank_first(Sample.Status.choices, "Any status"), required=False
    )
    difficulty = forms.ChoiceField(
        choices=[("", "Any difficulty"), *Sample.Difficulty.choices[1:], ("unset", "Unset")],
        required=False,
    )
    q = forms.CharField(
        label="Text",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search the input"}),
    )

    # Comma-separated dimensions: samples lacking a value in any of them (from coverage).
    untagged = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    TAG_PREFIX = "tag_"
    FILTER_FIELDS = ("origin", "status", "difficulty", "q", "untagged")

    def __init__(self, data: QueryDict, *, dataset: Dataset) -> None:
        super().__init__(data)
        self.dimensions: list[str] = []
        for dimension, allowed in sorted((dataset.tag_dimensions or {}).items()):
            name = self.TAG_PREFIX + dimension
            if allowed:
                self.fields[name] = forms.ChoiceField(
                    label=dimension,
                    choices=[("", f"Any {dimension}"), *((v, v) for v in allowed)],
                    required=False,
                )
            else:
                self.fields[name] = forms.CharField(label=dimension, max_length=200, required=False)
            self.dimensions.append(dimension)

    @property
    def tag_fields(self) -> list[forms.BoundField]:
        return [self[self.TAG_PREFIX + dimension] for dimension in self.dimensions]

    @property
    def main_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("origin", "status", "difficulty")]

    def filters(self) -> SampleFilters:
        self.is_valid()
        data = self.cleaned_data
        tags = {
            dimension: value
            for dimension in self.dimensions
            if (value := data.get(self.TAG_PREFIX + dimension, "").strip())
        }
        difficulty = data.get("difficulty") or None
        return SampleFilters(
            origin=data.get("origin") or None,
            status=data.get("status") or None,
            # "unset" stands for the empty difficulty, since "" in the form means "any".
            difficulty="" if difficulty == "unset" else difficulty,
            tags=tags,
            q=data.get("q", "").strip(),
            untagged=self._untagged(data.get("untagged", "")),
        )

    def _untagged(self, text: str) -> tuple[str, ...]:
        # Unknown dimensions are ignored: every sample lacks a tag nobody declared.
        wanted = [name.strip() for name in text.split(",")]
        return tuple(dict.fromkeys(name for name in wanted if name in self.dimensions))

    def filter_query(self) -> QueryDict:
        """The non-empty filter parameters, for pager links that keep the filters."""
        query = QueryDict(mutable=True)
        for name in (*self.FILTER_FIELDS, *(self.TAG_PREFIX + d for d in self.dimensions)):
            if value := self.data.get(name, ""):
                query[name] = value
        return query
