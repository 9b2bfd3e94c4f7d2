"""Signals between the stages of the pipeline, so each app owns its own reaction.

``batch_checks_finished``
    Sent (after commit) once a batch's checking stage has run and the batch is READY for
    review. Keyword argument ``batch``. The review app builds the batch's spot-check queue.

``samples_added``
    Sent (after commit) when samples arrive in a dataset, by import or by generation.
    Keyword arguments ``dataset_id`` and ``sample_ids`` (a list, possibly large) or
    ``import_job_id``. The near-duplicate index adds them; kept coverage counts follow.

``samples_changed``
    Sent (after commit) when samples' status, review status, difficulty or tags change
    outside a batch's checking stage (e.g. a review decision). Keyword arguments
    ``dataset_id`` and ``sample_ids``, and ``changes`` when the sender knows them:
    ``{sample_id: (before, after)}``, the fields it set. A sender that passes ``changes``
    has recorded how they move the kept coverage counts itself, in its transaction
    (``coverage_changes_record``); without them, the counts are rebuilt.
"""

from __future__ import annotations

from django.dispatch import Signal

batch_checks_finished = Signal()
samples_added = Signal()
samples_changed = Signal()
