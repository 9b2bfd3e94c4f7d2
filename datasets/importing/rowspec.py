"""The one definition of a good sample row and a good source document.

Both import engines (django-import-export for small tabular files, the streamed bulk path
for everything else) call ``RowSpec.clean`` on every row, so they cannot disagree about
what a row becomes or why it is refused. The wording of duplicate errors lives here too,
both as Python (the in-memory check of the import-export engine) and as SQL expressions
(the set-based check of the streamed engine), side by side so they change together; a test
feeds the same files through both engines and compares the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fastjsonschema

from datasets.importing.mapping import mapping_columns, schema_fields
from datasets.importing.readers import FileError, excerpt_of
from datasets.models import ImportRowError, Sample
from synthaug.engine.text import content_hash, flatten, text_hash

DIFFICULTIES = tuple(value for value in Sample.Difficulty.values if value)
EXTERNAL_ID_MAX = Sample._meta.get_field("external_id").max_length
TAG_VALUE_MAX = 200
TITLE_MAX = 500
PREVIEW_ROWS = 20
_PREVIEW_CHARS = 300
_EMPTY_HASH = content_hash("")
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one row, as stored in ImportRowError and shown to the user."""

    row: int
    field: str
    message: str
    excerpt: str = ""
    kind: str = ImportRowError.Kind.INVALID


@dataclass(slots=True)
class CleanRow:
    """A row that passed every per-row rule, with the sample fields it will be stored as."""

    row: int
    external_id: str
    input: Any
    expected: Any
    tags: dict[str, str]
    difficulty: str
    text: str
    content_hash: str
    source_group: str
    # Rows tied to a source document (SQuAD questions).
    document_hash: str = ""
    source_passage: str = ""
    passage_start: int | None = None
    passage_end: int | None = None

    def preview(self) -> dict[str, Any]:
        return sample_preview(
            row=self.row,
            external_id=self.external_id,
            input=self.input,
            expected=self.expected,
            tags=self.tags,
            difficulty=self.difficulty,
        )


@dataclass(slots=True)
class CleanDocument:
    row: int
    title: str
    text: str
    origin: str
    external_id: str
    content_hash: str
    tags: dict[str, str] = field(default_factory=dict)

    def preview(self) -> dict[str, Any]:
        return {
            "kind": "document",
            "row": self.row,
            "title": self.title,
            "text": _truncate(self.text),
            "origin": self.origin,
            "tags": self.tags,
        }


def _truncate(value: Any) -> Any:
    """A copy with long strings shortened, so the stored preview stays small."""
    if isinstance(value, str):
        return value if len(value) <= _PREVIEW_CHARS else value[: _PREVIEW_CHARS - 1] + "…"
    if isinstance(value, dict):
        return {key: _truncate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_truncate(item) for item in value[:20]]
    return value


def sample_preview(
    *, row: int, external_id: str, input: Any, expected: Any, tags: dict, difficulty: str
) -> dict[str, Any]:
    """A sample as the preview shows it; both engines build their preview with this."""
    return {
        "kind": "sample",
        "row": row,
        "id": external_id,
        "input": _truncate(input),
        "expected": _truncate(expected),
        "tags": dict(tags),
        "difficulty": difficulty,
    }


# --- Duplicates: the messages, in Python and in SQL ------------------------------------
#
# In SQL, ``x`` is the existing sample, ``s`` the staged row and ``first_row`` the first
# row of the file with the same content or id.


def msg_same_content_as_sample(sample_id: int, external_id: str) -> str:
    suffix = f" (id {external_id})" if external_id else ""
    return f"same content as sample #{sample_id}{suffix}"


SQL_SAME_CONTENT_AS_SAMPLE = (
    "'same content as sample #' || CAST(x.id AS TEXT) || "
    "CASE WHEN x.external_id <> '' THEN ' (id ' || x.external_id || ')' ELSE '' END"
)


def msg_same_content_as_row(row: int) -> str:
    return f"same content as row {row}"


SQL_SAME_CONTENT_AS_ROW = "'same content as row ' || CAST(t.first_row AS TEXT)"


def msg_id_used_by_sample(external_id: str, sample_id: int) -> str:
    return f'id "{external_id}" is already used by sample #{sample_id}'


SQL_ID_USED_BY_SAMPLE = (
    "'id \"' || t.external_id || '\" is already used by sample #' || CAST(x.id AS TEXT)"
)


def msg_id_repeats_row(external_id: str, row: int) -> str:
    return f'id "{external_id}" is also used by row {row}'


SQL_ID_REPEATS_ROW = (
    "'id \"' || t.external_id || '\" is also used by row ' || CAST(t.first_row AS TEXT)"
)

# The excerpt of a duplicate error is the start of the row's input text.
DUPLICATE_EXCERPT_CHARS = 200


def duplicate_errors(
    rows: list[CleanRow],
    *,
    existing_by_hash: dict[str, tuple[int, str]],
    existing_by_id: dict[str, int],
) -> dict[int, list[RowError]]:
    """Duplicate errors for clean rows, given what the dataset already holds.

    ``existing_by_hash``: content hash -> (sample id, external id) of canonical samples;
    ``existing_by_id``: external id -> sample id. Rules (the streamed engine's SQL follows
    the same ones): a row with the content of an existing sample names that sample, else a
    row with the content of an earlier row names the first such row; the same for ids.
    """
    first_by_hash: dict[str, int] = {}
    first_by_id: dict[str, int] = {}
    for clean in rows:
        first_by_hash.setdefault(clean.content_hash, clean.row)
        if clean.external_id:
            first_by_id.setdefault(clean.external_id, clean.row)
    found: dict[int, list[RowError]] = {}
    kind = ImportRowError.Kind.DUPLICATE
    for clean in rows:
        excerpt = clean.text[:DUPLICATE_EXCERPT_CHARS]
        errors = []
        if clean.content_hash in existing_by_hash:
            sample_id, external_id = existing_by_hash[clean.content_hash]
            message = msg_same_content_as_sample(sample_id, external_id)
            errors.append(RowError(clean.row, "input", message, excerpt, kind))
        elif first_by_hash[clean.content_hash] != clean.row:
            message = msg_same_content_as_row(first_by_hash[clean.content_hash])
            errors.append(RowError(clean.row, "input", message, excerpt, kind))
        if clean.external_id:
            if clean.external_id in existing_by_id:
                message = msg_id_used_by_sample(
                    clean.external_id, existing_by_id[clean.external_id]
                )
                errors.append(RowError(clean.row, "id", message, excerpt, kind))
            elif first_by_id[clean.external_id] != clean.row:
                message = msg_id_repeats_row(clean.external_id, first_by_id[clean.external_id])
                errors.append(RowError(clean.row, "id", message, excerpt, kind))
        if errors:
            found[clean.row] = errors
    return found


# --- Checks shared by samples and documents --------------------------------------------


def _check_tags(
    tags: Any, tag_dimensions: dict[str, list[str]], errors: list[tuple[str, str]]
) -> dict[str, str]:
    """Tags as {dimension: value}, each checked against the dataset's dimensions."""
    if tags is None or tags == "":
        return {}
    if not isinstance(tags, dict):
        errors.append(("tags", "must be an object of dimension -> value"))
        return {}
    cleaned: dict[str, str] = {}
    for name, value in tags.items():
        if value is None or value == "":
            continue
        path = f"tags.{name}"
        if name not in tag_dimensions:
            known = ", ".join(sorted(tag_dimensions)) or "none"
            errors.append((path, f"the dataset has no tag dimension {name!r} (it has: {known})"))
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors.append((path, "must be text"))
            continue
        text = str(value).strip()
        allowed = tag_dimensions[name]
        if len(text) > TAG_VALUE_MAX:
            errors.append((path, f"is longer than {TAG_VALUE_MAX} characters"))
        elif "\x00" in text:
            errors.append((path, "contains a NUL character (\\u0000), which cannot be stored"))
        elif allowed and text not in allowed:
            listed = ", ".join(allowed)
            errors.append((path, f"{text!r} is not an allowed value (allowed: {listed})"))
        elif text:
            cleaned[name] = text
    return cleaned


def _check_id(value: Any, errors: list[tuple[str, str]]) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.append(("id", "must be text or a whole number"))
        return ""
    text = str(value).strip()
    if len(text) > EXTERNAL_ID_MAX:
        errors.append(("id", f"is longer than {EXTERNAL_ID_MAX} characters"))
    elif "\x00" in text:
        errors.append(("id", "contains a NUL character (\\u0000), which cannot be stored"))
    return text


def _check_strings(value: Any, path: str, limit: int, errors: list[tuple[str, str]]) -> None:
    """Every string inside a value within the length cap and storable (no NUL)."""
    if isinstance(value, str):
        if len(value) > limit:
            errors.append((path, f"is {len(value):,} characters long; the limit is {limit:,}"))
        elif "\x00" in value:
            errors.append((path, "contains a NUL character (\\u0000), which cannot be stored"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(item, f"{path}.{key}", limit, errors)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]", limit, errors)


def _schema_problem(
    exc: fastjsonschema.JsonSchemaValueException, columns: dict[str, str]
) -> tuple[str, str]:
    """(field, message) for a schema failure, in the user's terms, naming the column."""
    name = exc.name or "data"
    path = name[5:] if name.startswith("data.") else ("" if name == "data" else name)
    if exc.rule == "required":
        present = exc.value if isinstance(exc.value, dict) else {}
        missing = [key for key in exc.rule_definition or () if key not in present]
        if missing:
            path = f"{path}.{missing[0]}" if path else missing[0]
        column = columns.get(path)
        message = f"is required, but column {column!r} is empty" if column else "is required"
        return path, message
    message = exc.message
    if message.startswith(name + " "):
        message = message[len(name) + 1 :]
    if exc.rule == "minLength" and exc.rule_definition == 1:
        message = "must not be empty"
    column = columns.get(path)
    if column:
        message = f"{message} (column {column!r})"
    return path, message


def compile_schema(schema: dict[str, Any]):
    """The dataset's JSON Schema compiled to Python once per import (fastjsonschema)."""
    try:
        return fastjsonschema.compile(schema or {})
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise FileError(f"The dataset's schema is not valid JSON Schema ({exc}).") from None


def _required_of(schema: dict[str, Any], part: str) -> list[str]:
    node = (schema.get("properties") or {}).get(part) or {}
    required = node.get("required") if isinstance(node, dict) else None
    return list(required) if isinstance(required, list) else []


class RowSpec:
    """How one raw row (column -> value) becomes the fields of one real sample.

    Build one per import (the schema is compiled here), then call ``clean`` on every row.
    Empty cells and nulls count as absent. Per row, in this order: map, check the length
    and storability of every string, the JSON Schema, tags against the dataset's tag
    dimensions, difficulty against Sample.Difficulty, the id; then flatten and hash.
    """

    def __init__(
        self,
        *,
        schema: dict[str, Any],
        tag_dimensions: dict[str, list[str]],
        mapping: dict[str, Any],
        max_chars: int,
    ) -> None:
        self.schema = schema or {}
        self._validate = compile_schema(self.schema)
        self.tag_dimensions = tag_dimensions or {}
        self.mapping = mapping
        self.max_chars = max_chars
        self.input_fields = schema_fields(self.schema, "input")
        self.expected_fields = schema_fields(self.schema, "expected")
        # target path -> column, for messages ("column 'Best Answer' is empty").
        self.columns_of = dict(mapping_columns(mapping))

    def check_columns(self, columns: list[str]) -> None:
        """Refuse a tabular file whose header cannot satisfy the mapping (FileError).

        Checked once, up front: a missing column would otherwise fail every row alike.
        """
        available = ", ".join(repr(c) for c in columns if c) or "none"
        missing = [column for _, column in mapping_columns(self.mapping) if column not in columns]
        if missing:
            names = ", ".join(repr(c) for c in dict.fromkeys(missing))
            raise FileError(
                f"The mapping reads column {names}, which the file does not have. "
                f"The file's columns are: {available}."
            )
        for part, fields in (("input", self.input_fields), ("expected", self.expected_fields)):
            if part in self.mapping or part in columns:
                continue
            required = _required_of(self.schema, part) or fields[:1]
            if required and not any(name in columns for name in fields or required):
                raise FileError(
                    f"No column is named like the {part} fields of the dataset schema "
                    f"({', '.join(fields or required)}). The file's columns are: {available}. "
                    f"Map them, for example {part}.{required[0]} = <column>."
                )

    @staticmethod
    def _value(source: Any, data: dict[str, Any]) -> Any:
        value = source["const"] if isinstance(source, dict) else data.get(source)
        if value is None or value == "":
            return _ABSENT
        return value

    def _group(self, part: str, fields: list[str], data: dict[str, Any]) -> Any:
        """The input or expected value of a row, mapped or automatic."""
        if part in self.mapping:
            built = {}
            for name, source in self.mapping[part].items():
                value = self._value(source, data)
                if value is not _ABSENT:
                    built[name] = value
            return built
        own = data.get(part)
        if own is not None and own != "":
            return own
        return {
            name: data[name] for name in fields if data.get(name) is not None and data[name] != ""
        }

    def _single(self, target: str, data: dict[str, Any]) -> Any:
        if target in self.mapping:
            value = self._value(self.mapping[target], data) if self.mapping[target] else _ABSENT
        else:
            value = data.get(target)
            value = _ABSENT if value is None or value == "" else value
        return None if value is _ABSENT else value

    def _tags(self, data: dict[str, Any]) -> Any:
        if "tags" in self.mapping:
            built = {}
            for name, source in self.mapping["tags"].items():
                value = self._value(source, data)
                if value is not _ABSENT:
                    built[name] = value
            return built
        own = data.get("tags")
        if isinstance(own, dict):
            return own
        return {
            name: data[name] for name in self.tag_dimensions if data.get(name) not in (None, "")
        }

    def clean(self, row: int, data: dict[str, Any]) -> CleanRow | list[RowError]:
        """The sample fields of one row, or every problem found with it."""
        problems: list[tuple[str, str]] = []
        input_value = self._group("input", self.input_fields, data)
        expected_value = self._group("expected", self.expected_fields, data)
        _check_strings(input_value, "input", self.max_chars, problems)
        _check_strings(expected_value, "expected", self.max_chars, problems)
        if not problems:
            try:
                self._validate({"input": input_value, "expected": expected_value})
            except fastjsonschema.JsonSchemaValueException as exc:
                problems.append(_schema_problem(exc, self.columns_of))
        tags = _check_tags(self._tags(data), self.tag_dimensions, problems)
        difficulty = self._single("difficulty", data)
        if difficulty is not None:
            difficulty = str(difficulty).strip().lower()
            if difficulty not in DIFFICULTIES:
                problems.append(
                    (
                        "difficulty",
                        f"{str(self._single('difficulty', data))!r} is not a difficulty; "
                        f"use {', '.join(DIFFICULTIES)} (or leave it empty)",
                    )
                )
        external_id = _check_id(self._single("id", data), problems)
        text = ""
        digest = ""
        if not problems:
            text = flatten(input_value)
            digest = text_hash(text)  # content_hash(input_value), without flattening twice
            if not text.strip() or digest == _EMPTY_HASH:
                problems.append(("input", "is empty; a sample needs some input text"))
        if problems:
            excerpt = excerpt_of(data)
            return [RowError(row, path, message, excerpt) for path, message in problems]
        return CleanRow(
            row=row,
            external_id=external_id,
            input=input_value,
            expected=expected_value,
            tags=tags,
            difficulty=difficulty or "",
            text=text,
            content_hash=digest,
            source_group=f"sample:{digest[:16]}",
        )


class DocSpec:
    """How one document (title, text, optional id and tags) is checked before it is stored."""

    def __init__(self, *, tag_dimensions: dict[str, list[str]], max_chars: int) -> None:
        self.tag_dimensions = tag_dimensions or {}
        self.max_chars = max_chars

    def clean(
        self,
        row: int,
        *,
        title: Any,
        text: Any,
        origin: str,
        external_id: Any = None,
        tags: Any = None,
        excerpt_from: Any = None,
    ) -> CleanDocument | list[RowError]:
        problems: list[tuple[str, str]] = []
        if not isinstance(title, str) or not title.strip():
            problems.append(("title", "is required"))
        elif len(title.strip()) > TITLE_MAX:
            problems.append(("title", f"is longer than {TITLE_MAX} characters"))
        if not isinstance(text, str) or not text.strip():
            problems.append(("text", "is required (the document has no text)"))
        else:
            _check_strings(text, "text", self.max_chars, problems)
        cleaned_tags = _check_tags(tags, self.tag_dimensions, problems)
        cleaned_id = _check_id(external_id, problems)
        if problems:
            excerpt = excerpt_of(excerpt_from if excerpt_from is not None else text or title)
            return [RowError(row, path, message, excerpt) for path, message in problems]
        return CleanDocument(
            row=row,
            title=title.strip(),
            text=text,
            origin=origin[:500],
            external_id=cleaned_id,
            content_hash=content_hash(text),
            tags=cleaned_tags,
        )
