"""Forms of the generation pages: a new batch (the four questions), prompt versions.

The batch form is also what the coverage page links to ("Fill this gap"): it takes its
initial values from the query string (``?tag.topic=law&difficulty=hard&method=grounded&
count=25``), so every field's name is the parameter that prefills it.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.urls import reverse

from datasets.forms import parse_named_lists
from datasets.generation import prompts
from datasets.models import Batch, Dataset, Difficulty, ModelEndpoint, PromptVersion
from datasets.selectors.generation import endpoint_list, prompt_versions
from synthaug.engine.offline import ADVERSARIAL_KINDS
from synthaug.engine.offline.templates import template_slots

TAG_PREFIX = "tag."
MAX_COUNT = 10_000
# The checks every item passes, all on unless the lead turns one off (and says why).
CHECK_CHOICES = [
    ("format", "Format: valid against the dataset's JSON Schema"),
    ("faithfulness", "Faithfulness: grounded in its source or parent"),
    ("safety", "Safety: no unwanted content (for attacks: the intended kind, nothing worse)"),
    ("judge", "Judge verdict: a score and a rationale from the judge endpoint"),
]
# Service argument names (as batch_create reports them) -> the form field showing them.
_SERVICE_FIELDS = {
    "requested_count": "count",
    "target_difficulty": "difficulty",
    "name": "name",
    "method": "method",
    "why_synthetic": "why_synthetic",
    "judging_plan": "judging_plan",
    "judge": "judge",
    "generator": "generator",
    "prompt_version": "prompt_version",
    "checks": "checks",
    "budget_cap": "budget_cap",
    "template": "template_text",
    "answer": "answer_template",
    "slots": "slots",
    "kinds": "kinds",
}
_SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_slots(text: str) -> dict[str, list[str]]:
    """``industry: banking, retail`` per line -> ``{"industry": ["banking", "retail"]}``."""
    return parse_named_lists(
        text,
        name_pattern=_SLOT_NAME,
        line_hint="write “slot: value, value, value”.",
        name_hint="a slot name is letters, digits and “_”, not starting with a digit.",
        require_values=True,
    )


def format_slots(slots: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}: {', '.join(values)}" for name, values in slots.items())


class EndpointChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelEndpoint) -> str:
        if obj.kind == ModelEndpoint.Kind.OFFLINE:
            return f"{obj.name}: {obj.model} (built-in, no network, free)"
        family = f", family {obj.family}" if obj.family else ""
        return f"{obj.name}: {obj.model}{family}"


class PromptVersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: PromptVersion) -> str:
        return obj.label + (" (used, frozen)" if obj.used_at else "")


def _queryset(value: Any, model: type) -> Any:
    """A selector's result as a queryset (a ModelChoiceField needs one to look values up)."""
    if hasattr(value, "filter"):
        return value
    return model.objects.filter(pk__in=[obj.pk for obj in value])


class BatchForm(forms.Form):
    """The four questions a lead answers before a batch runs.

    1. Which case type: a tag slice, a target difficulty, a method and a count.
    2. Why synthetic data is right here.
    3. How it will be judged: judge endpoint, judging plan, checks.
    4. What it will cost: generator, prompt version, budget cap (and the live estimate).

    Unbound, it takes initial values from ``prefill`` (a query string); bound, the method's
    parameters are checked in ``clean`` and gathered into ``cleaned_data["params"]``.
    """

    name = forms.CharField(
        max_length=200,
        required=False,
        help_text="Optional; the batch is named after its method and number otherwise.",
    )
    # 1. Which case type (tag fields are added per dimension in __init__).
    difficulty = forms.ChoiceField(
        label="Target difficulty",
        # No preselected value: the difficulty of the gap is a choice, not a default.
        choices=[("", "Choose the difficulty"), *(c for c in Difficulty.choices if c[0])],
    )
    method = forms.ChoiceField(choices=Batch.Method.choices, initial=Batch.Method.GROUNDED)
    count = forms.IntegerField(
        label="How many items",
        min_value=1,
        max_value=MAX_COUNT,
        initial=20,
        help_text="Items to generate; the checks and dedup remove some of them.",
    )
    # Method parameters.
    template_text = forms.CharField(
        label="Template",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "What does {industry} regulation say about {entity}?"}
        ),
        help_text="Text with {slot} placeholders; {{ and }} are literal braces.",
    )
    answer_template = forms.CharField(
        label="Expected answer (optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The reference answer, with the same {slot} placeholders. Empty: the "
        "generator writes one.",
    )
    slots = forms.CharField(
        label="Slot values",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "industry: banking, retail, health\nentity: a bank"}
        ),
        help_text="One slot per line: “slot: value, value, value”.",
    )
    kinds = forms.MultipleChoiceField(
        label="Attack kinds",
        choices=[(kind, kind.replace("_", " ")) for kind in ADVERSARIAL_KINDS],
        initial=list(ADVERSARIAL_KINDS),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    # 2. Why synthetic.
    why_synthetic = forms.CharField(
        label="Why synthetic data is right here",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="E.g. “real questions about law in French are rare and the gap is 40 items”.",
    )
    # 3. How it will be judged.
    judge = EndpointChoiceField(queryset=ModelEndpoint.objects.none(), label="Judge endpoint")
    judging_plan = forms.CharField(
        label="Judging plan",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What makes an item good or bad here, and what the spot check looks for.",
    )
    checks = forms.MultipleChoiceField(
        choices=CHECK_CHOICES,
        initial=[value for value, _ in CHECK_CHOICES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    # 4. What it will cost.
    generator = EndpointChoiceField(
        queryset=ModelEndpoint.objects.none(), label="Generator endpoint"
    )
    prompt_version = PromptVersionChoiceField(
        queryset=PromptVersion.objects.none(),
        required=False,
        empty_label="The method's built-in prompt",
        label="Prompt version",
    )
    budget_cap = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=6,
        help_text="The batch stops before spending more than this. Empty: no cap.",
    )

    def __init__(
        self,
        data: QueryDict | None = None,
        *,
        dataset: Dataset,
        prefill: QueryDict | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data)
        self.dataset = dataset
        self.dimensions: list[str] = []
        for dimension, allowed in sorted((dataset.tag_dimensions or {}).items()):
            name = TAG_PREFIX + dimension
            if allowed:
                self.fields[name] = forms.ChoiceField(
                    label=dimension,
                    choices=[("", f"Any {dimension}"), *((v, v) for v in allowed)],
                    required=False,
                )
            else:
                self.fields[name] = forms.CharField(label=dimension, max_length=200, required=False)
            self.dimensions.append(dimension)

        endpoints = _queryset(endpoint_list(), ModelEndpoint)
        self.fields["generator"].queryset = endpoints
        self.fields["judge"].queryset = endpoints
        self.initial.update(defaults or {})
        if prefill is not None:
            self._prefill(prefill)
        # Not "method": templates look ``form.method`` up as the bound field first.
        self.chosen_method = self._chosen_method()
        self.fields["prompt_version"].queryset = _queryset(
            prompt_versions(purpose=self.chosen_method), PromptVersion
        ).select_related("template")
        # Changing the method swaps in its own fields (parameters, prompt versions).
        self.fields["method"].widget.attrs.update(
            {
                "hx-get": reverse("datasets:batch_new", args=[dataset.slug]),
                "hx-target": "#method-fields",
                "hx-swap": "outerHTML",
                "hx-include": "#method-fields",
                "hx-sync": "this:replace",
            }
        )

    def _prefill(self, query: QueryDict) -> None:
        # A checkbox group the page showed names itself in "shown": there an absent group
        # means "none ticked"; a group the page did not show keeps its default.
        shown = set(query.getlist("shown"))
        for name, field in self.fields.items():
            if isinstance(field, forms.MultipleChoiceField):
                if name in query or name in shown:
                    self.initial[name] = query.getlist(name)
            elif name in query:
                self.initial[name] = query.get(name)

    def _chosen_method(self) -> str:
        source = self.data if self.is_bound else self.initial
        method = source.get("method") or self.fields["method"].initial
        return method if method in Batch.Method.values else Batch.Method.GROUNDED

    # --- layout helpers for the template --------------------------------------------------

    @property
    def tag_fields(self) -> list[forms.BoundField]:
        return [self[TAG_PREFIX + dimension] for dimension in self.dimensions]

    @property
    def free_dimensions(self) -> bool:
        return any(not allowed for allowed in (self.dataset.tag_dimensions or {}).values())

    # --- validation -----------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        method = data.get("method")
        if method == Batch.Method.TEMPLATE:
            data["params"] = self._template_params(data)
        elif method == Batch.Method.ADVERSARIAL:
            if not data.get("kinds"):
                self.add_error("kinds", "Choose at least one kind of attack.")
            data["params"] = {"kinds": list(data.get("kinds") or [])}
        elif method:
            data["params"] = {}
        version = data.get("prompt_version")
        if version is not None and method and version.template.purpose != method:
            self.add_error("prompt_version", "This prompt is not for the chosen method.")
        return data

    def _template_params(self, data: dict[str, Any]) -> dict[str, Any]:
        text = (data.get("template_text") or "").strip()
        if not text:
            self.add_error("template_text", "Template expansion needs a template.")
        try:
            slots = parse_slots(data.get("slots") or "")
        except ValidationError as exc:
            self.add_error("slots", exc)
            slots = {}
        missing = [name for name in template_slots(text) if name not in slots]
        if text and not template_slots(text):
            self.add_error("template_text", "The template has no {slot} placeholder to fill.")
        elif missing and "slots" not in self.errors:
            self.add_error("slots", f"No values for: {', '.join(missing)}.")
        params: dict[str, Any] = {"template": text, "slots": slots}
        answer = (data.get("answer_template") or "").strip()
        if answer:
            extra = [name for name in template_slots(answer) if name not in template_slots(text)]
            if extra:
                self.add_error(
                    "answer_template", f"Slots the template does not use: {', '.join(extra)}."
                )
            params["answer"] = answer
        return params

    # --- what the services get -------------------------------------------------------------

    def target_tags(self) -> dict[str, str]:
        data = self.cleaned_data
        return {
            dimension: value
            for dimension in self.dimensions
            if (value := (data.get(TAG_PREFIX + dimension) or "").strip())
        }

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``batch_create`` (besides dataset and created_by)."""
        data = self.cleaned_data
        return {
            "name": data["name"].strip(),
            "method": data["method"],
            "requested_count": data["count"],
            "target_tags": self.target_tags(),
            "target_difficulty": data["difficulty"],
            "why_synthetic": data["why_synthetic"].strip(),
            "judging_plan": data["judging_plan"].strip(),
            "generator": data["generator"],
            "judge": data["judge"],
            "prompt_version": data.get("prompt_version"),
            "params": data["params"],
            "checks": list(data["checks"]),
            "budget_cap": data.get("budget_cap"),
        }

    def estimate_kwargs(self) -> dict[str, Any] | None:
        """Arguments for ``batch_estimate`` from whatever is valid so far, or None.

        The estimate follows the form as it is typed: the other questions may still be
        unanswered, so only the fields the cost depends on have to be valid.
        """
        self.is_valid()
        data = self.cleaned_data
        if any(data.get(name) is None for name in ("method", "count", "generator", "judge")):
            return None
        return {
            "method": data["method"],
            "requested_count": data["count"],
            "generator": data["generator"],
            "judge": data["judge"],
            "prompt_version": data.get("prompt_version"),
            "params": data.get("params", {}),
        }

    def add_service_errors(self, error: ValidationError) -> None:
        """Put the messages of a service's ValidationError on the fields they are about."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, errors in error.error_dict.items():
            field = _SERVICE_FIELDS.get(key)
            if key == "params":
                field = {"template": "template_text", "adversarial": "kinds"}.get(
                    self.chosen_method
                )
            if key == "target_tags" and self.dimensions:
                field = TAG_PREFIX + self.dimensions[0]
            if field not in self.fields:
                field = None
            self.add_error(field, ValidationError(errors))

    def as_query(self) -> QueryDict:
        """The form's current values as a query string (what a bound copy would receive)."""
        query = QueryDict(mutable=True)
        for name, field in self.fields.items():
            value = field.prepare_value(self[name].value())
            if isinstance(value, list | tuple):
                query.setlist(name, [str(item) for item in value])
            elif value is not None:
                query[name] = str(value)
        return query


class PromptVersionForm(forms.Form):
    """A new version of a prompt, starting from the text of an existing one."""

    # strip=False: a prompt's whitespace is part of what the model reads.
    system = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="Instructions to the model. Sample text never goes here.",
    )
    user = forms.CharField(
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        help_text="The user message, with {placeholders} the method fills in.",
    )
    output_schema = forms.CharField(
        label="Output JSON Schema",
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono", "spellcheck": "false"}),
    )
    notes = forms.CharField(
        label="What changed and why",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, data: QueryDict | None = None, *, base: PromptVersion) -> None:
        initial = {
            "system": base.system,
            "user": base.user,
            "output_schema": json.dumps(base.output_schema, indent=2, ensure_ascii=False),
        }
        super().__init__(data, initial=initial)
        self.base = base

    def clean_output_schema(self) -> dict[str, Any]:
        try:
            schema = json.loads(self.cleaned_data["output_schema"])
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        if not isinstance(schema, dict):
            raise ValidationError("The output schema must be a JSON object.")
        return schema

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        base = self.base
        if (
            data.get("system", "") == base.system
            and data.get("user") == base.user
            and data.get("output_schema") == base.output_schema
        ):
            raise ValidationError(
                "Nothing changed: a new version must differ from v%(n)s.",
                params={"n": base.number},
            )
        # The checks a batch makes when it is launched, made now: a version no batch
        # could use is no use to save.
        purpose = base.template.purpose
        used = prompts.placeholders(data.get("system", "") + "\n" + data["user"])
        missing = sorted(prompts.REQUIRED_PLACEHOLDERS.get(purpose, frozenset()) - used)
        if missing:
            names = ", ".join("{" + name + "}" for name in missing)
            self.add_error("user", f"A {purpose} prompt must mention {names}.")
        if problem := prompts.schema_problem(purpose, data["output_schema"]):
            self.add_error("output_schema", problem)
        return data


class PromptCompareForm(forms.Form):
    a = PromptVersionChoiceField(queryset=PromptVersion.objects.none(), label="Left")
    b = PromptVersionChoiceField(queryset=PromptVersion.objects.none(), label="Right")

    def __init__(self, data: QueryDict) -> None:
        super().__init__(data)
        versions = PromptVersion.objects.select_related("template").order_by(
            "template__name", "-number"
        )
        self.fields["a"].queryset = versions
        self.fields["b"].queryset = versions
