"""Text normalisation and content hashing shared by import, dedup and export."""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from typing import Any

import orjson

_WHITESPACE = re.compile(r"\s+")
# Every format character (Unicode category Cf), as one character class built once: a
# million-row import normalises every row, and a per-character loop costs 3x more.
_FORMAT_CHARS = re.compile(
    "["
    + "".join(
        re.escape(chr(cp))
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) == "Cf"
    )
    + "]"
)


def flatten(value: Any) -> str:
    """One readable string for a JSON value: strings as they are, objects by sorted key.

    Used for search and for the content hash, so two samples whose fields hold the same
    text in the same places flatten identically.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(flatten(value[key]) for key in sorted(value))
    if isinstance(value, list):
        return "\n".join(flatten(item) for item in value)
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def normalise(text: str) -> str:
    """NFKC, case-folded, invisible format characters removed, whitespace collapsed.

    Format characters (Unicode category Cf: zero-width spaces and joiners, bidi controls)
    are dropped so that a copy hidden behind them still counts as the same text.
    """
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = _FORMAT_CHARS.sub("", text)
    return _WHITESPACE.sub(" ", text.casefold()).strip()


def content_hash(value: Any) -> str:
    """SHA-256 hex digest of the normalised, flattened value."""
    return text_hash(flatten(value))


def text_hash(flat: str) -> str:
    """``content_hash`` of a value whose ``flatten`` the caller already has."""
    return hashlib.sha256(normalise(flat).encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Stable bytes for hashing and export: sorted keys, UTF-8, no whitespace."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
