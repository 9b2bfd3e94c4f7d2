"""Forms of the review pages. Each decision form carries its claim and an idempotency key."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth import get_user_model

from datasets.models import Difficulty
from review.models import Decision, ReviewItem

_LEVELS = [(value, label) for value, label in Difficulty.choices if value]


class DecisionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            (Decision.Action.APPROVE, "Approve"),
            (Decision.Action.REJECT, "Reject"),
            (Decision.Action.RETAG, "Re-tag difficulty"),
            (Decision.Action.SKIP, "Skip"),
        ]
    )
    claim = forms.IntegerField(min_value=0)
    key = forms.CharField(max_length=64, min_length=8)
    reason = forms.ChoiceField(
        choices=[("", "Reason to reject…"), *Decision.Reason.choices], required=False
    )
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea)
    difficulty = forms.ChoiceField(choices=[("", "Difficulty…"), *_LEVELS], required=False)
    rationale = forms.CharField(required=False, max_length=2000)


class UndoForm(forms.Form):
    key = forms.CharField(max_length=64, min_length=8)


def _ids(value: str) -> list[int]:
    return sorted({int(part) for part in re.findall(r"\d+", value or "")})[:10_000]


class ItemSelectionForm(forms.Form):
    """Items for a lead action: ticked rows, or every undecided item of the queue."""

    items = forms.CharField(required=False, widget=forms.HiddenInput)
    item = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=())
    all_open = forms.BooleanField(required=False, label="Every undecided item in the queue")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Ticked rows arrive as item=<id>; any id is accepted here, the service keeps only
        # the queue's own.
        self.fields["item"].valid_value = lambda value: True

    def item_ids(self, queue) -> list[int]:
        if self.cleaned_data.get("all_open"):
            return list(
                ReviewItem.objects.filter(queue=queue)
                .exclude(state=ReviewItem.State.DONE)
                .values_list("pk", flat=True)
            )
        return sorted(set(self.cleaned_data.get("item") or []) | set(_ids(self.data.get("items"))))


class BulkForm(ItemSelectionForm):
    action = forms.ChoiceField(
        choices=[(Decision.Action.APPROVE, "Approve"), (Decision.Action.REJECT, "Reject")]
    )
    reason = forms.ChoiceField(choices=[("", "Reason…"), *Decision.Reason.choices], required=False)
    comment = forms.CharField(required=False, max_length=2000)
    confirm = forms.BooleanField(
        required=True,
        label="I have checked these items",
        error_messages={
            "required": "Tick the confirmation box: bulk decisions are recorded for each item."
        },
    )


class ReassignForm(ItemSelectionForm):
    to = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), required=False, empty_label="Anyone"
    )

    def __init__(self, *args, members=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if members is not None:
            self.fields["to"].queryset = members


class AddSamplesForm(forms.Form):
    sample_ids = forms.CharField(
        required=False,
        label="Sample ids",
        help_text="Ids separated by spaces or commas.",
    )

    def ids(self) -> list[int]:
        return _ids(self.cleaned_data.get("sample_ids", ""))
