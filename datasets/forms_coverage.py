"""Forms of the coverage page: which view to show, the lead's settings and cell targets."""

from __future__ import annotations

import json

from django import forms
from django.http import QueryDict

from datasets.models import Dataset
from datasets.selectors.coverage import TARGET_DIFFICULTIES, Coverage
from synthaug.engine.coverage import slice_key, slice_of

MAX_TARGET = 1_000_000
TIMES = "\u00d7"  # the multiplication sign between crossed values


def requested_dimensions(query: QueryDict) -> list[str]:
    """``?dims=topic,locale``, ``?dims=topic&dims=locale`` or the page's form
    (``?dims=topic&cross=locale``); blanks dropped."""
    values = [*query.getlist("dims"), *query.getlist("cross")]
    return [d.strip() for value in values for d in value.split(",") if d.strip()]


class CoverageViewForm(forms.Form):
    """The GET form above the matrix: a dimension, another to cross it with, a batch."""

    dims = forms.ChoiceField(label="Rows by", required=False)
    cross = forms.ChoiceField(label="crossed with", required=False)
    batch = forms.IntegerField(label="Before/after batch", required=False, min_value=1)

    def __init__(self, query: QueryDict, *, dataset: Dataset, dimensions: tuple[str, ...]):
        data = {
            "dims": dimensions[0] if dimensions else "",
            "cross": dimensions[1] if len(dimensions) > 1 else "",
            "batch": query.get("batch", ""),
        }
        super().__init__(data)
        names = [(d, d) for d in sorted(dataset.tag_dimensions or {})]
        self.fields["dims"].choices = names
        self.fields["cross"].choices = [("", "nothing"), *names]

    def compare_batch(self) -> int | None:
        self.is_valid()
        return self.cleaned_data.get("batch")


class CoverageSettingsForm(forms.Form):
    default_dims = forms.MultipleChoiceField(
        label="Open the matrix on",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="One dimension, or two to cross. None ticked: the first dimension.",
    )
    default_target = forms.IntegerField(
        label="Default target per cell",
        min_value=0,
        max_value=MAX_TARGET,
        help_text="How many approved samples each tag slice x difficulty cell should have.",
    )
    ceiling = forms.FloatField(
        label="Synthetic ceiling",
        min_value=0,
        max_value=1,
        help_text="The share of a cell synthetic samples may reach before it is flagged "
        "(0.5 = at most half).",
    )

    def __init__(self, data: QueryDict | None = None, *, dataset: Dataset) -> None:
        initial = {
            "default_dims": dataset.coverage_dimensions,
            "default_target": dataset.coverage_default_target,
            "ceiling": dataset.synthetic_ceiling,
        }
        super().__init__(data, initial=initial, prefix="settings")
        self.fields["default_dims"].choices = [(d, d) for d in sorted(dataset.tag_dimensions)]

    def clean_default_dims(self) -> list[str]:
        dims = self.cleaned_data["default_dims"]
        if len(dims) > 2:
            raise forms.ValidationError("Pick one dimension, or two to cross.")
        return dims


class CoverageTargetsForm(forms.Form):
    """One number per cell of the current view; blank = the dataset's default target.

    Field ``c<i>`` holds the target of the cell whose slice and difficulty travel in the
    hidden field ``k<i>``, so a POST names its cells and does not depend on row order.
    """

    def __init__(self, data: QueryDict | None = None, *, coverage: Coverage) -> None:
        super().__init__(data, prefix="targets")
        self.rows: list[tuple[str, list[tuple[forms.BoundField, forms.BoundField]]]] = []
        i = 0
        for row in coverage.rows:
            if row.untagged:
                continue
            fields = []
            key = slice_key(slice_of(row.key, coverage.dimensions))
            for view in row.cells:
                if not view.has_target:
                    continue
                self.fields[f"k{i}"] = forms.CharField(
                    widget=forms.HiddenInput,
                    initial=json.dumps([key, view.difficulty]),
                )
                self.fields[f"c{i}"] = forms.IntegerField(
                    label=view.difficulty,
                    required=False,
                    min_value=0,
                    max_value=MAX_TARGET,
                    initial=view.cell.target if view.own_target else None,
                    widget=forms.NumberInput(
                        attrs={"placeholder": str(coverage.dataset.coverage_default_target)}
                    ),
                )
                fields.append((self[f"k{i}"], self[f"c{i}"]))
                i += 1
            label = f" {TIMES} ".join(value for _, value in row.labels)
            self.rows.append((label, fields))
        self.count = i

    def targets(self) -> dict[tuple[str, str], int | None]:
        """``{(slice_key, difficulty): target or None}`` for the posted cells."""
        found = {}
        for i in range(self.count):
            try:
                key, difficulty = json.loads(self.cleaned_data.get(f"k{i}") or "")
                tags = json.loads(key)
            except (ValueError, TypeError):
                continue
            if difficulty not in TARGET_DIFFICULTIES or not isinstance(tags, dict):
                continue
            found[(slice_key(tags), difficulty)] = self.cleaned_data.get(f"c{i}")
        return found
