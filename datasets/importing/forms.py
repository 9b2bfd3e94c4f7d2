"""Forms of the import pages (the app's own and the admin's)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from import_export.forms import ConfirmImportForm, ImportForm

from datasets.importing.mapping import mapping_parse, mapping_template
from datasets.models import Dataset, ImportJob

AUTO = ""


class ImportUploadForm(forms.Form):
    """Upload a file into a dataset: what it holds, its format, the mapping, bad rows."""

    file = forms.FileField(
        label="File",
        help_text=(
            "Samples: CSV, XLSX, JSON (an array of objects) or JSON Lines. Source documents: "
            "text, Markdown, JSON Lines or SQuAD-style JSON. UTF-8, or UTF-16 with a BOM."
        ),
    )
    kind = forms.ChoiceField(
        label="The file holds", choices=ImportJob.Kind.choices, initial=ImportJob.Kind.SAMPLES
    )
    format = forms.ChoiceField(
        label="Format",
        choices=[(AUTO, "From the file name"), *ImportJob.Format.choices],
        required=False,
    )
    mapping = forms.CharField(
        label="Column mapping",
        required=False,
        widget=forms.Textarea(attrs={"rows": 9, "spellcheck": "false", "class": "mono"}),
        help_text=(
            "One target = column per line: input.<field>, expected.<field>, tags.<dimension>, "
            'id, difficulty. Quoted text ("en") is a constant; lines starting with # are ignored.'
        ),
    )
    skip_bad_rows = forms.BooleanField(
        label="Skip bad rows",
        required=False,
        help_text=(
            "Import the good rows and list the skipped ones. Off: the import is all or "
            "nothing. You can also decide after the check."
        ),
    )

    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dataset = dataset
        self.fields["mapping"].initial = mapping_template(
            schema=dataset.schema, tag_dimensions=dataset.tag_dimensions
        )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.SYNTHAUG_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise ValidationError(
                f"The file is {filesizeformat(upload.size)}; an import takes at most "
                f"{filesizeformat(limit)}."
            )
        if upload.size == 0:
            raise ValidationError("The file is empty.")
        return upload

    def clean_mapping(self) -> dict[str, Any]:
        return mapping_parse(self.cleaned_data.get("mapping") or "")

    def clean(self) -> dict[str, Any]:
        from datasets.services.imports import format_check, format_detect, import_mapping_check

        data = super().clean()
        upload, kind = data.get("file"), data.get("kind")
        if upload is None or not kind:
            return data
        try:
            data["format"] = data.get("format") or format_detect(upload.name, kind)
        except ValidationError as exc:
            self.add_error("format", exc)
            return data
        try:
            format_check(kind, data["format"])
        except ValidationError as exc:
            self.add_error("kind", exc)
            return data
        if "mapping" in data:
            try:
                data["mapping"] = import_mapping_check(
                    dataset=self.dataset, kind=kind, fmt=data["format"], mapping=data["mapping"]
                )
            except ValidationError as exc:
                self.add_error("mapping", exc)
        return data


class ImportConfirmForm(forms.Form):
    skip_bad_rows = forms.BooleanField(required=False)


class AdminSampleImportForm(ImportForm):
    """The admin's import form, plus the dataset to import into and the column mapping."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    mapping = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=(
            'target = column per line (input.question = Question, tags.locale = "en"); '
            "empty: columns named like the schema's fields."
        ),
    )
    field_order = ["resource", "dataset", "import_file", "format", "mapping"]

    def clean_mapping(self) -> dict[str, Any]:
        return mapping_parse(self.cleaned_data.get("mapping") or "")


class AdminSampleConfirmImportForm(ConfirmImportForm):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), widget=forms.HiddenInput)
    mapping = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_mapping(self) -> dict[str, Any]:
        return mapping_parse(self.cleaned_data.get("mapping") or "")
