"""What the offline provider returns, and how it labels itself in provenance."""

from __future__ import annotations

from dataclasses import dataclass

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "synthaug-offline"
OFFLINE_VERSION = "1"


@dataclass(frozen=True)
class TemplateItem:
    text: str
    slots: dict[str, str]
    template: str
    provider: str = OFFLINE_PROVIDER
    model: str = OFFLINE_MODEL
    version: str = OFFLINE_VERSION


@dataclass(frozen=True)
class GroundedItem:
    """A question whose answer is `passage[start:end]`, asked from `sentence`."""

    question: str
    answer: str
    start: int
    end: int
    sentence: str
    sentence_start: int
    sentence_end: int
    answer_type: str  # "date", "year", "number", "percentage", "person", "entity"
    provider: str = OFFLINE_PROVIDER
    model: str = OFFLINE_MODEL
    version: str = OFFLINE_VERSION


@dataclass(frozen=True)
class AdversarialItem:
    text: str
    kind: str
    attack: str  # "injection", "jailbreak", "manipulation", "format_breaking", "encoding"
    expected_behaviour: str  # "refuse", "resist_injection", "answer_original"
    original: str
    payload: str = ""  # the injected instruction or marker, when there is one
    provider: str = OFFLINE_PROVIDER
    model: str = OFFLINE_MODEL
    version: str = OFFLINE_VERSION


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    score: float
    detail: str = ""
    provider: str = OFFLINE_PROVIDER
    model: str = OFFLINE_MODEL
    version: str = OFFLINE_VERSION
