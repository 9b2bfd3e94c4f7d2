"""From an endpoint row to what the LLM seam needs: the engine Endpoint and its rate limiter."""

from __future__ import annotations

import functools
import os

from django.conf import settings

from datasets.models import ModelEndpoint
from synthaug.engine import errors
from synthaug.engine.llm import Endpoint
from synthaug.engine.ratelimit import MemoryStore, RateLimiter, RateStore, RedisStore


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
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(broker_url)
    # The embedded default has no Redis: each worker process keeps its own window, so N
    # worker processes may together send up to N times an endpoint's limits. Run Redis
    # (CELERY_BROKER_URL) for limits shared exactly by every worker.
    return MemoryStore()


def rate_limiter_for(row: ModelEndpoint) -> RateLimiter | None:
    if not row.requests_per_minute and not row.tokens_per_minute:
        return None
    return RateLimiter(
        _rate_store(settings.CELERY_BROKER_URL),
        f"endpoint:{row.pk}",
        rpm=row.requests_per_minute,
        tpm=row.tokens_per_minute,
    )
