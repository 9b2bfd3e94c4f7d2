"""Create and start a generation batch from the command line, then follow it.

    manage.py generate demo --method grounded --count 20 --tags category=Normans \\
        --difficulty medium --why "few passage questions on this topic" \\
        --judging "answer must be a span of the passage" [--sync]

The built-in offline endpoints are the default generator and judge. Without ``--sync`` the
batch runs on the Celery workers and this command polls the database with a progress bar
(``--no-wait`` returns at once); with ``--sync`` it runs every item in this process, no
worker needed. The exit status is non-zero when the batch fails or is cancelled.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from datasets.models import Batch, Dataset, Difficulty, ModelEndpoint, PromptVersion
from datasets.selectors.generation import batch_progress
from datasets.selectors.verification import batch_funnel
from datasets.services.generation import (
    KNOWN_CHECKS,
    batch_create,
    batch_run_sync,
    batch_start,
    offline_endpoints,
)


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{what} must look like key=value, not {value!r}.")
        pairs.append((key.strip(), rest))
    return pairs


def _param_value(text: str) -> Any:
    """JSON when it parses (numbers, lists, objects, true), else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def parse_params(values: list[str]) -> dict[str, Any]:
    """``--param`` values: ``key=JSON-or-text``; ``slots.NAME=a,b,c`` adds one slot's values;
    ``kinds=a,b`` is a list."""
    params: dict[str, Any] = {}
    for key, raw in _pairs(values, "--param"):
        if key.startswith("slots."):
            slots = params.setdefault("slots", {})
            slots[key.removeprefix("slots.")] = [v.strip() for v in raw.split(",") if v.strip()]
            continue
        value = _param_value(raw)
        if key == "kinds" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        params[key] = value
    return params


def _messages(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"  {field}: {message}"
            for field, errors in error.message_dict.items()
            for message in errors
        )
    return "\n".join(f"  {message}" for message in error.messages)


class Command(BaseCommand):
    help = "Create and start a generation batch, then follow it with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="The dataset's slug.")
        parser.add_argument("--method", required=True, choices=Batch.Method.values)
        parser.add_argument("--count", type=int, required=True, help="Items to generate.")
        parser.add_argument(
            "--tags",
            nargs="+",
            action="extend",
            default=[],
            metavar="DIMENSION=VALUE",
            help="The target slice.",
        )
        parser.add_argument(
            "--difficulty", required=True, choices=[v for v in Difficulty.values if v]
        )
        parser.add_argument("--why", default="", help="Why synthetic data is right here.")
        parser.add_argument("--judging", default="", help="How the items will be judged.")
        parser.add_argument("--generator", default="", help="Endpoint name (default: offline).")
        parser.add_argument("--judge", default="", help="Endpoint name (default: offline).")
        parser.add_argument("--prompt", default="", help="NAME@vN (default: the method's).")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A method parameter: template=..., slots.NAME=a,b,c, kinds=a,b, "
            "temperature=0.7; values are JSON when they parse.",
        )
        parser.add_argument(
            "--checks",
            default=",".join(KNOWN_CHECKS),
            help=f"Comma-separated (default: {','.join(KNOWN_CHECKS)}).",
        )
        parser.add_argument("--budget", default=None, help="Budget cap, e.g. 1.50.")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--name", default="")
        parser.add_argument("--user", default="", help="Username recorded as the creator.")
        parser.add_argument("--no-wait", action="store_true", help="Return once queued.")
        parser.add_argument(
            "--sync", action="store_true", help="Generate in this process (no worker)."
        )
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between polls.")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset {options['dataset']!r}.")
        offline_generator, offline_judge = offline_endpoints()
        generator = self._endpoint(options["generator"], offline_generator)
        judge = self._endpoint(options["judge"], offline_judge)
        budget = None
        if options["budget"] is not None:
            try:
                budget = Decimal(options["budget"])
            except InvalidOperation:
                raise CommandError(f"--budget {options['budget']!r} is not a number.") from None
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        try:
            with transaction.atomic():
                batch = batch_create(
                    dataset=dataset,
                    created_by=user,
                    method=options["method"],
                    requested_count=options["count"],
                    target_tags=dict(_pairs(options["tags"], "--tags")),
                    target_difficulty=options["difficulty"],
                    why_synthetic=options["why"],
                    judging_plan=options["judging"],
                    generator=generator,
                    judge=judge,
                    prompt_version=self._prompt(options["prompt"]),
                    params=parse_params(options["param"]),
                    checks=[c.strip() for c in options["checks"].split(",") if c.strip()],
                    budget_cap=budget,
                    seed=options["seed"],
                    name=options["name"],
                )
                batch = batch_start(batch=batch, user=user, enqueue=not options["sync"])
        except ValidationError as exc:
            raise CommandError("The batch was not created:\n" + _messages(exc)) from None

        items = batch.items.count()
        self.stdout.write(
            f"Batch {batch.pk} ({batch.get_method_display()}): {items} item(s) "
            f"{'starting here' if options['sync'] else 'queued'}; estimated cost "
            f"{batch.cost_estimate}."
        )
        if batch.family_warning:
            self.stderr.write(f"Warning: {batch.family_warning}")
        if options["no_wait"] and not options["sync"]:
            self.stdout.write("Not waiting; the batch page and the database show its progress.")
            return

        stream = getattr(self.stderr, "_out", sys.stderr)
        with tqdm(total=items, unit="item", file=stream, dynamic_ncols=True) as bar:

            def show(*_: Any) -> None:
                progress = batch_progress(batch=batch)
                bar.n = progress.settled
                bar.set_postfix(done=progress.done, failed=progress.failed, refresh=False)
                bar.refresh()

            if options["sync"]:
                batch = batch_run_sync(batch=batch, on_progress=show)
            else:
                while True:
                    batch.refresh_from_db()
                    show()
                    if batch.status not in (
                        Batch.Status.QUEUED,
                        Batch.Status.RUNNING,
                        Batch.Status.CHECKING,
                    ):
                        break
                    time.sleep(options["poll"])
            show()
        self._report(batch)

    def _endpoint(self, name: str, default: ModelEndpoint) -> ModelEndpoint:
        if not name:
            return default
        endpoint = ModelEndpoint.objects.filter(name=name).first()
        if endpoint is None:
            known = ", ".join(ModelEndpoint.objects.values_list("name", flat=True))
            raise CommandError(f"No endpoint {name!r} (known: {known}).")
        return endpoint

    def _prompt(self, label: str) -> PromptVersion | None:
        if not label:
            return None
        name, sep, number = label.rpartition("@v")
        if not sep or not number.isdigit():
            raise CommandError(f"--prompt must look like NAME@vN, not {label!r}.")
        version = (
            PromptVersion.objects.select_related("template")
            .filter(template__name=name, number=int(number))
            .first()
        )
        if version is None:
            raise CommandError(f"No prompt version {label!r}.")
        return version

    def _report(self, batch: Batch) -> None:
        progress = batch_progress(batch=batch)
        self.stdout.write(
            f"Batch {batch.pk} is {batch.get_status_display().lower()}: {progress.done} "
            f"generated, {progress.failed} failed, {progress.cancelled} cancelled; cost "
            f"{progress.cost}."
        )
        reasons = "\n".join(
            f"  {reason}: {count} (e.g. {example[:200]})"
            for reason, count, example in progress.errors_by_reason
        )
        if batch.checks_finished_at is not None:
            funnel = batch_funnel(batch=batch)
            reasons_rejected = ", ".join(f"{r.label.lower()} {r.failed}" for r in funnel.reasons)
            self.stdout.write(
                f"Checks: {funnel.accepted} accepted, {funnel.rejected} rejected"
                + (f" (failed: {reasons_rejected})" if reasons_rejected else "")
                + f", {funnel.borderline} borderline for human review."
            )
        if batch.status in (Batch.Status.FAILED, Batch.Status.CANCELLED):
            detail = f"\n{batch.error}" if batch.error else ""
            raise CommandError(
                f"Batch {batch.pk} {batch.get_status_display().lower()}.{detail}\n{reasons}"
            )
        if batch.error:
            self.stderr.write(batch.error)
        if reasons:
            self.stderr.write("Items not generated, by reason:\n" + reasons)
