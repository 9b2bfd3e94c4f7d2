"""Formatting filters for sample and document content. They format; they never query.

Sample content is hostile by default (prompt-injection sets are full of markup, bidi
overrides and zero-width characters), so every filter that returns markup builds it from
escaped text and fixed, known strings only.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from datasets.selectors.browse import COUNT_CAP, TEXT_HEAD_CHARS
from synthaug.engine.text import flatten

register = template.Library()

# Characters that render as nothing or change the direction of what follows: zero-width
# spaces and joiners, bidi embeddings, overrides and isolates, word joiners and invisible
# operators, the BOM, fillers that look like blanks, and the Unicode "tag" block used to
# smuggle hidden instructions into prompts. Shown as a labelled badge, never obeyed.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def _label(match: re.Match[str]) -> str:
    return f'<span class="invisible-char">U+{ord(match.group()):04X}</span>'


@register.filter
def show_invisible(value: Any) -> SafeString:
    """Escape ``value``, then make invisible and bidi control characters visible.

    Escaping comes first and always (even for strings already marked safe): the only markup
    in the result is the badge built in ``_label`` from a code point number.
    """
    text = "" if value is None else str(value)
    return mark_safe(INVISIBLE.sub(_label, escape(text)))  # noqa: S308 - built from escaped text


@register.filter
def has_invisible(value: Any) -> bool:
    return value is not None and INVISIBLE.search(str(value)) is not None


@register.filter
def clip(value: Any, length: int = TEXT_HEAD_CHARS) -> str:
    """The first ``length`` characters, with "…" when there were more. Plain text out.

    The default matches the ``text_head`` the samples table gets from ``sample_page``.
    """
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[:length] + "…"


@register.filter
def flat(value: Any) -> str:
    """A JSON value as one readable string (the same flattening search and hashing use)."""
    return flatten(value)


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON, non-ASCII kept readable. Plain text: escape it (or use show_invisible)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@register.filter
def is_long(value: Any, lines: int = 8) -> bool:
    """Whether a value is long enough to be clamped behind a "Show all" button."""
    text = "" if value is None else str(value)
    return len(text) > lines * 60 or text.count("\n") >= lines


@register.filter
def tag_pairs(tags: Any) -> list[tuple[str, str]]:
    """Tags as sorted (dimension, value) pairs, lists joined with commas.

    A filter rather than ``tags.items`` in the template: a tag dimension named "items"
    would otherwise be looked up as a key.
    """
    if not isinstance(tags, dict):
        return []
    pairs = []
    for key in sorted(tags, key=str):
        value = tags[key]
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        pairs.append((str(key), "" if value is None else str(value)))
    return pairs


@register.filter
def capped(count: int | None) -> str:
    """A capped count for display: "1,234", or "10,000+" past the cap."""
    if count is None:
        return "0"
    if count > COUNT_CAP:
        return f"{intcomma(COUNT_CAP)}+"
    return intcomma(count)


@register.filter
def roles(user) -> list[str]:
    """The names of the user's roles, read with their permissions (``synthaug.auth``)."""
    from synthaug.auth import role_names

    return role_names(user)
