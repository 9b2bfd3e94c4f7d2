"""Template expansion: fill `{slot}` placeholders with distinct combinations."""

from __future__ import annotations

import random
import re

from synthaug.engine.offline.items import (
    TemplateItem,
)

# --- template expansion --------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_slots(template: str) -> list[str]:
    """The slot names a template uses, in order of first appearance."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name and name not in names:
            names.append(name)
    return names


def _fill(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found == "{{":
            return "{"
        if found == "}}":
            return "}"
        return values[match.group(1)]

    # A regex, not str.format: a template must not reach attributes ("{x.__class__}").
    return _PLACEHOLDER.sub(replace, template)


def template_expand(
    *, template: str, slots: dict[str, list[str]], count: int, seed: int
) -> list[TemplateItem]:
    """Up to `count` items, each a distinct combination of slot values, in a seeded order.

    Only slots the template uses are filled and recorded. Asking for more items than there are
    combinations returns every combination once (repeats would only be removed as duplicates).
    `{{` and `}}` are literal braces.
    """
    names = template_slots(template)
    missing = [name for name in names if name not in slots]
    if missing:
        raise ValueError(f"no values for slot(s): {', '.join(missing)}")
    choices: list[list[str]] = []
    for name in names:
        values = list(dict.fromkeys(v for v in slots[name] if v.strip()))
        if not values:
            raise ValueError(f"slot {name!r} has no values")
        choices.append(values)
    total = 1
    for values in choices:
        total *= len(values)
    rng = random.Random(seed)
    items: list[TemplateItem] = []
    seen: set[str] = set()
    # Sampling indices of the combination space avoids building it: it can be huge.
    for index in rng.sample(range(total), min(max(count, 0), total)):
        picked: dict[str, str] = {}
        for name, values in zip(reversed(names), reversed(choices), strict=True):
            index, position = divmod(index, len(values))
            picked[name] = values[position]
        ordered = {name: picked[name] for name in names}
        text = _fill(template, ordered)
        if text in seen:  # two combinations can spell the same text ("a b"+"c", "a"+"b c")
            continue
        seen.add(text)
        items.append(TemplateItem(text=text, slots=ordered, template=template))
    return items
