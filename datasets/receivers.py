"""Reactions of the datasets app to the pipeline signals (connected in ``DatasetsConfig``)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from datasets import signals
from datasets.services.dedup import near_dup_index_add

logger = logging.getLogger(__name__)


@receiver(signals.samples_added, dispatch_uid="datasets.near_dup_index")
def index_added_samples(
    sender: Any,
    *,
    dataset_id: int,
    import_job_id: int | None = None,
    sample_ids: list[int] | None = None,
    **kwargs: Any,
) -> None:
    """Add arriving samples to the near-duplicate index.

    Runs where the signal is sent (after the import's commit, in the import's worker):
    indexing is idempotent and chunked, so if it is interrupted, ``manage.py dedup_index``
    completes it.
    """
    if import_job_id is None and sample_ids is None:
        return
    count = near_dup_index_add(
        dataset_id=dataset_id, import_job_id=import_job_id, sample_ids=sample_ids
    )
    logger.info("near-duplicate index: %d samples of dataset %s indexed", count, dataset_id)
