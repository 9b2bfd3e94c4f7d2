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

    An import's samples are indexed by a task of their own (``near_dup_index_task``):
    the MinHash keys cost about 0.2 ms a sample, minutes for a million-row import, which
    would otherwise hold the import's worker (and ``import_file``) after the samples are
    already committed and visible. Samples named by id (the checks stage, which indexed
    them already in ``duplicates_find``) cost one query and stay inline. Indexing is
    idempotent and chunked, so if it is interrupted, ``manage.py dedup_index`` completes it.
    """
    if import_job_id is not None:
        from datasets.tasks import near_dup_index_task

        # Sent after commit: the signal itself is sent on commit, and outside a
        # transaction delay_on_commit sends at once.
        near_dup_index_task.delay_on_commit(dataset_id, import_job_id)
        return
    if sample_ids is None:
        return
    count = near_dup_index_add(dataset_id=dataset_id, sample_ids=sample_ids)
    logger.info("near-duplicate index: %d samples of dataset %s indexed", count, dataset_id)


@receiver(signals.samples_added, dispatch_uid="datasets.search_index")
def index_imported_texts(
    sender: Any, *, dataset_id: int, import_job_id: int | None = None, **kwargs: Any
) -> None:
    """Queue the copy of an import's texts into the search table (``SampleSearch``).

    Other samples are in Sample's own trigram index already. One task per dataset does all
    its waiting imports; until it has run, search reads them from Sample.
    """
    if import_job_id is None:
        return
    from datasets.tasks import search_index_task

    search_index_task.delay_on_commit(dataset_id)
