"""Batches before they run: the built-in endpoints and prompts, the estimate, creation.

A batch answers four questions before it may exist: which slice it fills, why synthetic data
is right for it, how it is judged, and what it costs. ``batch_create`` refuses one that
leaves a question open or breaks a rule, field by field; the lifecycle after creation is in
``lifecycle``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Avg
from django.db.models.functions import Length

from datasets.generation import grounding, methods, prompts
from datasets.models import (
    Batch,
    Dataset,
    Difficulty,
    ModelEndpoint,
    PromptTemplate,
    PromptVersion,
    Sample,
    SourceDocument,
)
from datasets.selectors.generation import slice_parents
from synthaug.engine.offline import OFFLINE_MODEL

log = logging.getLogger(__name__)

Status = Batch.Status

OFFLINE_GENERATOR = "offline-generator"
OFFLINE_JUDGE = "offline-judge"
OFFLINE_JUDGE_MODEL = "synthaug-offline-rules"
MAX_REQUESTED = 100_000
# The checks a batch may ask for (step 4 of the workflow); dedup always runs.
KNOWN_CHECKS = ("format", "faithfulness", "safety", "judge")
# Typical output per call, for the estimate (an expectation, not the max_tokens bound).
TYPICAL_OUTPUT_TOKENS = {
    methods.PARAPHRASE: 60,
    methods.TEMPLATE: 120,
    methods.ADVERSARIAL: 200,
    methods.GROUNDED: 120,
}
JUDGE_OUTPUT_TOKENS = 150
_MICRO = Decimal("0.000001")


# --- built-in rows ---------------------------------------------------------------------------


def offline_endpoints() -> tuple[ModelEndpoint, ModelEndpoint]:
    """The built-in (generator, judge), created when missing (migration 0005 seeds them).

    They share a family on purpose: the rule-based judge is written by the same people as
    the rule-based generator, and the batch records that as a family warning.
    """
    generator, _ = ModelEndpoint.objects.get_or_create(
        name=OFFLINE_GENERATOR,
        defaults={
            "kind": ModelEndpoint.Kind.OFFLINE,
            "model": OFFLINE_MODEL,
            "family": OFFLINE_MODEL,
            "max_concurrency": 1,
            "supports_json_schema": False,
        },
    )
    judge, _ = ModelEndpoint.objects.get_or_create(
        name=OFFLINE_JUDGE,
        defaults={
            "kind": ModelEndpoint.Kind.OFFLINE,
            "model": OFFLINE_JUDGE_MODEL,
            "family": OFFLINE_MODEL,
            "max_concurrency": 1,
            "supports_json_schema": False,
        },
    )
    return generator, judge


def prompt_default(*, purpose: str) -> PromptVersion:
    """The newest version of the default prompt for ``purpose``, creating v1 when missing."""
    spec = prompts.DEFAULT_PROMPTS[purpose]
    template, _ = PromptTemplate.objects.get_or_create(
        name=spec["name"], defaults={"purpose": purpose, "description": spec["description"]}
    )
    version = template.versions.order_by("-number").first()
    if version is None:
        version, _ = PromptVersion.objects.get_or_create(
            template=template,
            number=1,
            defaults={
                "system": spec["system"],
                "user": spec["user"],
                "output_schema": prompts.OUTPUT_SCHEMAS[purpose],
                "notes": "Built-in default.",
            },
        )
    return version


# --- the cost estimate ---------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    """Calls to paying endpoints, their tokens (about 4 characters a token) and cost.

    The built-in offline provider makes no calls and costs nothing.
    """

    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal


def money(value: Decimal) -> Decimal:
    """An amount to the micro-unit the database stores."""
    return value.quantize(_MICRO, rounding=ROUND_HALF_UP)


def _call_cost(endpoint: ModelEndpoint, input_tokens: int, output_tokens: int) -> Decimal:
    return (
        Decimal(input_tokens) * endpoint.price_in_per_1k
        + Decimal(output_tokens) * endpoint.price_out_per_1k
    ) / 1000


def endpoint_cost(endpoint: ModelEndpoint, *, input_tokens: int, output_tokens: int) -> Decimal:
    """What ``endpoint`` bills for these tokens, to the micro-unit (Decimal, never float)."""
    return money(_call_cost(endpoint, input_tokens, output_tokens))


def _data_chars(dataset: Dataset, method: str, params: dict[str, Any]) -> int:
    """Characters of sample content one request carries, on average."""
    if method in methods.PARENT_METHODS:
        real = Sample.objects.filter(dataset=dataset, origin=Sample.Origin.REAL)
        average = real.aggregate(n=Avg(Length("text")))["n"]
        # The question and its reference answer, about as long again.
        return int(2 * (average or 200))
    if method == methods.GROUNDED:
        average = SourceDocument.objects.filter(dataset=dataset).aggregate(n=Avg(Length("text")))
        return min(int(average["n"] or grounding.PASSAGE_CHARS), grounding.PASSAGE_CHARS) + 80
    template = str(params.get("template") or "") + str(params.get("answer") or "")
    slots = params.get("slots") if isinstance(params.get("slots"), dict) else {}
    return 2 * len(template) + 40 * len(slots) + 40


def batch_estimate(
    *,
    dataset: Dataset,
    method: str,
    requested_count: int,
    generator: ModelEndpoint,
    judge: ModelEndpoint,
    prompt_version: PromptVersion | None,
    params: dict[str, Any],
) -> CostEstimate:
    """What a batch would cost: one generator call and one judge call per item.

    Prompt sizes come from the prompt version's text plus the average size of the content it
    carries (parents, passages, the template); outputs from a typical size per method. No
    retries are counted. ``prompt_version=None`` means the method's default prompt.
    """
    if method not in methods.METHODS:
        raise ValidationError({"method": f"Unknown method {method!r}."})
    if requested_count < 1:
        raise ValidationError({"requested_count": "Ask for at least one item."})
    version = prompt_version or prompt_default(purpose=method)
    data = _data_chars(dataset, method, params or {})
    overhead = len(prompts.DATA_NOTE) + 200  # data tags, the schema note, message framing
    gen_in = (len(version.system) + len(version.user) + overhead + data) // 4
    gen_out = TYPICAL_OUTPUT_TOKENS[method]
    judge_spec = prompts.DEFAULT_PROMPTS["judge"]
    judge_in = (
        len(judge_spec["system"]) + len(judge_spec["user"]) + overhead + data + 4 * gen_out
    ) // 4
    calls = input_tokens = output_tokens = 0
    cost = Decimal(0)
    for endpoint, per_in, per_out in (
        (generator, gen_in, gen_out),
        (judge, judge_in, JUDGE_OUTPUT_TOKENS),
    ):
        if endpoint.kind == ModelEndpoint.Kind.OFFLINE:
            continue
        calls += requested_count
        input_tokens += per_in * requested_count
        output_tokens += per_out * requested_count
        cost += _call_cost(endpoint, per_in * requested_count, per_out * requested_count)
    return CostEstimate(
        calls=calls, input_tokens=input_tokens, output_tokens=output_tokens, cost=money(cost)
    )


# --- creating a batch ----------------------------------------------------------------------


def _check_tags(dataset: Dataset, target_tags: Any) -> str | None:
    if not isinstance(target_tags, dict):
        return "The target slice must map tag dimensions to values."
    if not target_tags and dataset.tag_dimensions:
        return (
            "Choose the slice this batch fills: at least one tag. A gap is a case type, "
            "not the whole dataset."
        )
    dimensions = dataset.tag_dimensions or {}
    for dimension, value in target_tags.items():
        if dimension not in dimensions:
            known = ", ".join(sorted(dimensions)) or "none"
            return f"The dataset has no tag dimension {dimension!r} (it has: {known})."
        if not isinstance(value, str) or not value.strip():
            return f"The value of {dimension!r} must be a non-empty text."
        allowed = dimensions[dimension]
        if allowed and value not in allowed:
            return f"{value!r} is not an allowed {dimension} (allowed: {', '.join(allowed)})."
    return None


def _normalised_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _check_endpoints(
    generator: ModelEndpoint, judge: ModelEndpoint, errors: dict[str, list[str]]
) -> str:
    """Add the refusals to ``errors``; return the family warning (empty when none)."""
    for field, endpoint in (("generator", generator), ("judge", judge)):
        if not endpoint.is_active:
            errors.setdefault(field, []).append(f"The endpoint {endpoint.name} is switched off.")
    if generator.pk == judge.pk:
        errors.setdefault("judge", []).append(
            f"The judge must not be the generator: both are {generator.name}. "
            "Choose another endpoint to judge."
        )
        return ""
    same_model = generator.model.strip().lower() == judge.model.strip().lower()
    same_place = _normalised_url(generator.base_url) == _normalised_url(judge.base_url)
    if same_model and same_place and generator.kind == judge.kind:
        errors.setdefault("judge", []).append(
            f"The judge must not be the generator: {judge.name} and {generator.name} are the "
            f"same model ({judge.model}) at the same address. A model judging its own output "
            "agrees with itself."
        )
        return ""
    family = generator.family.strip()
    if family and family.lower() == judge.family.strip().lower():
        return (
            f"The generator ({generator.name}) and the judge ({judge.name}) are both of the "
            f"{family} family: the judge may share the generator's blind spots. Allowed, and "
            "recorded with the batch; weigh the judge's agreement with people accordingly."
        )
    return ""


def _check_prompt(method: str, version: PromptVersion) -> str | None:
    purpose = version.template.purpose
    if purpose != method:
        return (
            f"{version.label} is a {purpose} prompt; this batch's method is {method}. "
            "Choose a prompt written for the method."
        )
    used = prompts.placeholders(version.system + "\n" + version.user)
    missing = sorted(prompts.REQUIRED_PLACEHOLDERS[purpose] - used)
    if missing:
        names = ", ".join("{" + name + "}" for name in missing)
        return f"{version.label} never mentions {names}: the model would not see its material."
    return prompts.schema_problem(purpose, version.output_schema)


def batch_create(
    *,
    dataset: Dataset,
    created_by: AbstractBaseUser | None,
    method: str,
    requested_count: int,
    target_tags: dict[str, str],
    target_difficulty: str,
    why_synthetic: str,
    judging_plan: str,
    generator: ModelEndpoint,
    judge: ModelEndpoint,
    prompt_version: PromptVersion | None,
    params: dict[str, Any],
    checks: list[str],
    budget_cap: Decimal | None,
    seed: int | None = None,
    name: str = "",
) -> Batch:
    """A DRAFT batch that answers the four questions, or ValidationError keyed by field.

    Precondition: the caller checked that ``created_by`` may launch batches in ``dataset``.
    ``prompt_version=None`` takes the method's default prompt (stored on the batch, so its
    samples record a real version). A generator and judge of one model family are allowed and
    the batch records a ``family_warning``; the same endpoint, or the same model at the same
    address, is refused.
    """
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if method not in methods.METHODS:
        refuse("method", f"Unknown method {method!r}.")
    if (
        isinstance(requested_count, bool)
        or not isinstance(requested_count, int)
        or not 1 <= requested_count <= MAX_REQUESTED
    ):
        refuse("requested_count", f"Ask for 1 to {MAX_REQUESTED:,} items.")
    if not (why_synthetic or "").strip():
        refuse("why_synthetic", "Say why synthetic data is right for this gap.")
    if not (judging_plan or "").strip():
        refuse("judging_plan", "Say how the items will be judged.")
    if problem := _check_tags(dataset, target_tags):
        refuse("target_tags", problem)
    if not target_difficulty or target_difficulty not in Difficulty.values:
        refuse("target_difficulty", "Choose the target difficulty of the slice.")
    family_warning = _check_endpoints(generator, judge, errors)
    if prompt_version is None and method in methods.METHODS:
        prompt_version = prompt_default(purpose=method)
    if (
        prompt_version is not None
        and method in methods.METHODS
        and (problem := _check_prompt(method, prompt_version))
    ):
        refuse("prompt_version", problem)
    clean_params: dict[str, Any] = {}
    if method in methods.METHODS and "requested_count" not in errors:
        try:
            clean_params = methods.check_params(method, params, requested_count=requested_count)
        except methods.ParamError as exc:
            refuse("params", str(exc))
    if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
        refuse("checks", "Checks must be a list of check names.")
    elif unknown := [c for c in checks if c not in KNOWN_CHECKS]:
        refuse("checks", f"Unknown check(s): {', '.join(unknown)}.")
    if budget_cap is not None:
        if budget_cap < 0:
            refuse("budget_cap", "A budget cap cannot be negative.")
        elif budget_cap == 0 and generator.kind != ModelEndpoint.Kind.OFFLINE:
            refuse("budget_cap", "A cap of 0 would stop the batch before its first call.")
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**63):
        refuse("seed", "The seed must be a whole number from 0 to 2**63 - 1.")
    if len(name or "") > 200:
        refuse("name", "Keep the name under 200 characters.")
    if (
        not errors
        and method in methods.PARENT_METHODS
        and not slice_parents(dataset=dataset, target_tags=target_tags).exists()
    ):
        refuse(
            "target_tags",
            f"{method.capitalize()} works from real samples of the target slice, and this "
            "slice has none. Choose a slice with real samples, or another method.",
        )
    if (
        not errors
        and method == methods.GROUNDED
        and not SourceDocument.objects.filter(dataset=dataset).exists()
    ):
        refuse(
            "method",
            "Source-grounded generation needs source documents, and this dataset has none. "
            "Import documents first.",
        )
    if errors:
        raise ValidationError(errors)

    estimate = batch_estimate(
        dataset=dataset,
        method=method,
        requested_count=requested_count,
        generator=generator,
        judge=judge,
        prompt_version=prompt_version,
        params=clean_params,
    )
    with transaction.atomic():
        return Batch.objects.create(
            dataset=dataset,
            name=(name or "").strip(),
            method=method,
            status=Status.DRAFT,
            requested_count=requested_count,
            target_tags=dict(target_tags),
            target_difficulty=target_difficulty,
            why_synthetic=why_synthetic.strip(),
            judging_plan=judging_plan.strip(),
            generator=generator,
            judge=judge,
            prompt_version=prompt_version,
            params=clean_params,
            checks=list(checks),
            seed=secrets.randbelow(2**31) if seed is None else seed,
            cost_estimate=estimate.cost,
            budget_cap=budget_cap,
            family_warning=family_warning,
            created_by=created_by,
        )
