"""Generation batches: the services the views, the command and the tasks call.

- ``batches``: the built-in endpoints and prompts, the cost estimate, creating a batch;
- ``lifecycle``: start, cancel, resume, retry an item, settle a finished batch;
- ``runner``: claim, generate and record items (what a chunk task runs), or a whole batch
  in-process (``batch_run_sync``); ``endpoints``: the engine Endpoint and rate limiter;
- ``lanes``, ``sql``, ``aio``: what the runner's chunks are made of (claims and grouped
  writes, their two statements, the per-process event loop and its database bridge);
- ``reaper``: return work lost with a worker or a broker to the queue;
- ``queue``: sending chunk tasks on commit, and the SYNTHAUG_GENERATION_* settings.
"""

from __future__ import annotations

from datasets.services.generation.batches import (
    KNOWN_CHECKS,
    OFFLINE_GENERATOR,
    OFFLINE_JUDGE,
    CostEstimate,
    batch_create,
    batch_estimate,
    offline_endpoints,
    prompt_default,
)
from datasets.services.generation.endpoints import endpoint_for
from datasets.services.generation.lifecycle import (
    batch_cancel,
    batch_finish_if_complete,
    batch_generation_finished,
    batch_resume,
    batch_start,
    item_retry,
)
from datasets.services.generation.prompts import prompt_version_create
from datasets.services.generation.reaper import ReapOutcome, generation_items_reap
from datasets.services.generation.runner import ChunkOutcome, batch_chunk_run, batch_run_sync

__all__ = [
    "KNOWN_CHECKS",
    "OFFLINE_GENERATOR",
    "OFFLINE_JUDGE",
    "ChunkOutcome",
    "CostEstimate",
    "ReapOutcome",
    "batch_cancel",
    "batch_chunk_run",
    "batch_create",
    "batch_estimate",
    "batch_finish_if_complete",
    "batch_generation_finished",
    "batch_resume",
    "batch_run_sync",
    "batch_start",
    "endpoint_for",
    "generation_items_reap",
    "item_retry",
    "offline_endpoints",
    "prompt_default",
    "prompt_version_create",
]
