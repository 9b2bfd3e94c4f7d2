"""Writes of the review app: queues (build, add, reassign), claims, decisions, bulk actions.

Services take keyword-only arguments and own their transactions. Views call them; tasks
call them by id.
"""

from review.services.claims import item_claim_next, review_hand
from review.services.decisions import (
    DecisionRefused,
    StaleClaim,
    bulk_decide,
    decision_record,
    decision_undo,
)
from review.services.queues import (
    queue_add_samples,
    queue_build,
    queue_reassign,
    review_settings_for,
)

__all__ = [
    "DecisionRefused",
    "StaleClaim",
    "bulk_decide",
    "decision_record",
    "decision_undo",
    "item_claim_next",
    "queue_add_samples",
    "queue_build",
    "queue_reassign",
    "review_hand",
    "review_settings_for",
]
