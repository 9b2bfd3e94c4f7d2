"""From an endpoint row to what the LLM seam needs: the engine Endpoint and its rate limiter."""

from __future__ import annotations

import functools
import os

from django.conf import settings

from datasets.models import ModelEndpoint
from datasets.services.generation.ratestore import DatabaseStore
from synthaug.engine import errors
from synthaug.engine.llm import Endpoint
from synthaug.engine.ratelimit import RateLimiter, RateStore, RedisStore
from synthaug.engine.slots import RedisSlots


def endpoint_for(row: ModelEndpoint) -> Endpoint:
    """The engine's Endpoint for a row, its API key read from the environment now.

    Raises PermanentLLMError (reason "auth") when the named variable is not set in this
    process: the key never lives in the database, and a worker without it cannot call.
    """
    key = ""
    if row.api_key_env:
        key = os.environ.get(row.api_key_env, "")
        if not key:
            raise errors.PermanentLLMError(
                f"The environment variable {row.api_key_env}, which endpoint {row.name} names "
                "for its API key, is not set in the worker.",
                reason=errors.AUTH,
            )
    return Endpoint(
        name=row.name,
        base_url=row.base_url,
        model=row.model,
        api_key=key,
        family=row.family,
        timeout=row.timeout_seconds,
        max_concurrency=row.max_concurrency,
        rpm=row.requests_per_minute,
        tpm=row.tokens_per_minute,
        price_in_per_1k=float(row.price_in_per_1k),
        price_out_per_1k=float(row.price_out_per_1k),
        supports_json_schema=row.supports_json_schema,
    )


@functools.cache
def _rate_store(broker_url: str) -> RateStore:
    if _is_redis(broker_url):
        return RedisStore(broker_url)
    # The embedded default has no Redis: the database, which every worker process shares
    # already, holds the windows, so the limits hold for all of them together.
    return DatabaseStore()


def rate_limiter_for(row: ModelEndpoint) -> RateLimiter | None:
    if not row.requests_per_minute and not row.tokens_per_minute:
        return None
    return RateLimiter(
        _rate_store(settings.CELERY_BROKER_URL),
        f"endpoint:{row.pk}",
        rpm=row.requests_per_minute,
        tpm=row.tokens_per_minute,
        window=settings.SYNTHAUG_RATE_WINDOW_SECONDS,
        slack=settings.SYNTHAUG_RATE_SLACK_SECONDS,
    )


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


@functools.cache
def _slots(broker_url: str) -> RedisSlots | None:
    return RedisSlots(broker_url) if _is_redis(broker_url) else None


def concurrency_slots_for(row: ModelEndpoint) -> tuple[RedisSlots, str] | None:
    """The slots that bound an endpoint's calls across every worker, and their key.

    Each chunk task also bounds its own calls; with Redis as the broker the bound holds for
    all workers together. The embedded default runs one worker on one machine, where the
    per-task bound is what there is.
    """
    slots = _slots(settings.CELERY_BROKER_URL)
    if slots is None:
        return None
    # The creation time keeps a recreated database's endpoint 1 off an old endpoint 1's slots.
    return slots, f"endpoint:{row.pk}:{row.created_at.timestamp():.6f}"
