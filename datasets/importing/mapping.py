"""Which column of a file becomes which sample field.

A mapping is a JSON-serialisable dict stored on the import job::

    {"id": "ID",
     "input": {"question": "Question"},
     "expected": {"answer": "Best Answer"},
     "tags": {"topic": "Category", "locale": {"const": "en"}},
     "difficulty": ""}

Values name a column (or a key of a JSON row); ``{"const": value}`` is a constant; ``""``
for ``id`` or ``difficulty`` means "none". Each of the five targets that the mapping leaves
out is taken automatically (see ``RowSpec``): a JSON row's own ``input``/``expected``/
``tags``/``id``/``difficulty`` keys, else the columns named like the dataset schema's
properties and tag dimensions. An empty mapping is entirely automatic.

The text form, one ``target = source`` per line, is what people type in the import form
and on the command line::

    input.question = Question
    tags.locale = "en"
    id =

(quoted text is a constant, an empty source means none, lines starting with # are
comments; a ``#`` later in a line is part of the column name).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError

TARGETS = ("id", "input", "expected", "tags", "difficulty")
_GROUPS = ("input", "expected", "tags")
_SINGLE = ("id", "difficulty")


def _is_source(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return (
        isinstance(value, dict)
        and set(value) == {"const"}
        and isinstance(value["const"], str | int | float | bool)
    )


def mapping_clean(mapping: dict[str, Any] | None) -> dict[str, Any]:
    """The mapping checked for shape and normalised (column names stripped).

    Raises ValidationError naming the first problem. Does not look at the dataset: see
    ``mapping_check`` for that.
    """
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ValidationError("The mapping must be an object of target -> column.")
    unknown = sorted(set(mapping) - set(TARGETS))
    if unknown:
        raise ValidationError(
            f"Unknown mapping target {unknown[0]!r}; the targets are "
            "id, input, expected, tags and difficulty."
        )
    cleaned: dict[str, Any] = {}
    for target in TARGETS:
        if target not in mapping:
            continue
        value = mapping[target]
        if target in _SINGLE:
            if value is None:
                value = ""
            if not _is_source(value):
                raise ValidationError(
                    f"{target} must name a column (or be empty), not {json.dumps(value)}."
                )
            cleaned[target] = value.strip() if isinstance(value, str) else value
            continue
        if not isinstance(value, dict):
            raise ValidationError(f"{target} must be an object of field -> column.")
        group: dict[str, Any] = {}
        for name, source in value.items():
            if not isinstance(name, str) or not name.strip():
                raise ValidationError(f"Every {target} field needs a name.")
            if not _is_source(source) or source == "":
                raise ValidationError(
                    f"{target}.{name} must name a column or be a constant "
                    f'{{"const": ...}}, not {json.dumps(source)}.'
                )
            group[name.strip()] = source.strip() if isinstance(source, str) else source
        cleaned[target] = group
    return cleaned


def mapping_columns(mapping: dict[str, Any]) -> list[tuple[str, str]]:
    """(target path, column) for every column the mapping reads, in mapping order."""
    found = []
    for target in TARGETS:
        value = mapping.get(target)
        if target in _SINGLE:
            if isinstance(value, str) and value:
                found.append((target, value))
        elif isinstance(value, dict):
            found.extend(
                (f"{target}.{name}", source)
                for name, source in value.items()
                if isinstance(source, str)
            )
    return found


def mapping_check(mapping: dict[str, Any], *, tag_dimensions: dict[str, list[str]]) -> None:
    """Check a cleaned mapping against a dataset's tag dimensions.

    Raises ValidationError for a tag dimension the dataset does not have, or a constant tag
    value it does not allow; those would fail every row, so they are refused up front.
    """
    for name, source in (mapping.get("tags") or {}).items():
        if name not in tag_dimensions:
            known = ", ".join(sorted(tag_dimensions)) or "none"
            raise ValidationError(
                f"tags.{name}: the dataset has no tag dimension {name!r} (it has: {known})."
            )
        allowed = tag_dimensions[name]
        if isinstance(source, dict) and allowed and str(source["const"]) not in allowed:
            raise ValidationError(
                f"tags.{name}: {source['const']!r} is not an allowed value "
                f"(allowed: {', '.join(allowed)})."
            )
    if "input" in mapping and not mapping["input"]:
        raise ValidationError("Map at least one input field, e.g. input.question = Question.")


def _parse_source(text: str, line_no: int) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        if text[0] == '"':
            try:
                return {"const": json.loads(text)}
            except json.JSONDecodeError:
                raise ValidationError(
                    f"Line {line_no}: the quoted constant {text} is not a valid string."
                ) from None
        return {"const": text[1:-1]}
    return text


def mapping_parse(text: str) -> dict[str, Any]:
    """The mapping dict of its text form: ``target = column`` lines, ``#`` comments.

    Targets are ``id``, ``difficulty``, ``input.<field>``, ``expected.<field>`` and
    ``tags.<dimension>``; a quoted source ("en") is a constant, an empty one means none.
    Raises ValidationError naming the line of the first problem.
    """
    mapping: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValidationError(
                f"Line {line_no}: write target = column (for example input.question = Question)."
            )
        target, _, source = line.partition("=")
        target = target.strip()
        if target in seen:
            raise ValidationError(
                f"Line {line_no}: {target} is mapped twice (lines {seen[target]} and {line_no})."
            )
        seen[target] = line_no
        value = _parse_source(source, line_no)
        if target in _SINGLE:
            mapping[target] = value
            continue
        group, dot, name = target.partition(".")
        if group not in _GROUPS or not dot or not name.strip():
            raise ValidationError(
                f"Line {line_no}: {target!r} is not a target; use input.<field>, "
                "expected.<field>, tags.<dimension>, id or difficulty."
            )
        if value == "":
            raise ValidationError(f"Line {line_no}: {target} needs a column name or a constant.")
        mapping.setdefault(group, {})[name.strip()] = value
    return mapping_clean(mapping)


def _format_source(source: Any) -> str:
    if isinstance(source, dict):
        const = source["const"]
        return json.dumps(const if isinstance(const, str) else str(const), ensure_ascii=False)
    return source


def mapping_format(mapping: dict[str, Any]) -> str:
    """The text form of a mapping (the inverse of ``mapping_parse``)."""
    lines = []
    for target in TARGETS:
        if target not in mapping:
            continue
        value = mapping[target]
        if target in _SINGLE:
            lines.append(f"{target} = {_format_source(value)}".rstrip())
        else:
            lines.extend(
                f"{target}.{name} = {_format_source(source)}" for name, source in value.items()
            )
    return "\n".join(lines)


def schema_fields(schema: dict[str, Any], part: str) -> list[str]:
    """The property names of ``input`` or ``expected`` in a sample schema (may be empty)."""
    node = (schema.get("properties") or {}).get(part) or {}
    props = node.get("properties") if isinstance(node, dict) else None
    return list(props) if isinstance(props, dict) else []


def mapping_template(*, schema: dict[str, Any], tag_dimensions: dict[str, Any]) -> str:
    """A commented starting point for the mapping textarea, built from the dataset schema.

    Every line is a comment, so leaving it as it is means "automatic"; uncommenting and
    editing lines maps columns with other names.
    """
    inputs = schema_fields(schema, "input") or ["question"]
    expected = schema_fields(schema, "expected") or ["answer"]
    lines = [
        "# Leave as is to map automatically: JSON rows with input/expected objects are",
        "# taken as they are; otherwise columns named "
        + ", ".join([*inputs, *expected, *tag_dimensions, "id", "difficulty"])
        + " are used.",
        "# To map other column names, remove the # and edit (quoted text is a constant):",
    ]
    lines += [f"# input.{name} = {name}" for name in inputs]
    lines += [f"# expected.{name} = {name}" for name in expected]
    lines += [f"# tags.{name} = {name}" for name in tag_dimensions]
    lines += ["# id = id", "# difficulty = difficulty"]
    return "\n".join(lines)
