"""Claiming queue items with a lease, safely under concurrency.

On PostgreSQL the next open item is locked with ``SELECT ... FOR UPDATE SKIP LOCKED``:
concurrent claimers each skip the rows the others hold and never wait on one another. On a
database without row locks (SQLite, the embedded default) the claim is a conditional
``UPDATE ... WHERE state = 'open'`` and its row count says who won; the loser tries the next
item. Either way an item is claimed by one person at a time.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from review.models import ReviewItem, ReviewQueue

# Items a reviewer holds at once: the one on screen and the next ones, prefetched.
HAND_SIZE = 3
_SQLITE_ATTEMPTS = 50


def leases_expire(*, queue: ReviewQueue, now=None) -> int:
    """Return items whose lease ran out to the queue (claimer and claim number are kept, so
    the claimer may still decide until somebody else claims it)."""
    now = now or timezone.now()
    return ReviewItem.objects.filter(
        queue=queue, state=ReviewItem.State.CLAIMED, lease_until__lt=now
    ).update(state=ReviewItem.State.OPEN)


def _claimable(queue: ReviewQueue, user) -> object:
    items = ReviewItem.objects.filter(queue=queue, state=ReviewItem.State.OPEN).filter(
        Q(assigned_to__isnull=True) | Q(assigned_to=user)
    )
    if queue.overlap_share > 0:
        # The two copies of an overlapping item go to two different people.
        other_copy = ReviewItem.objects.filter(
            queue_id=queue.pk, sample_id=OuterRef("sample_id"), claimed_by=user
        ).exclude(pk=OuterRef("pk"))
        items = items.filter(~Exists(other_copy))
    return items.order_by("position")


def item_claim_next(*, queue: ReviewQueue, user, now=None) -> ReviewItem | None:
    """Claim the next open item of ``queue`` for ``user``; None when nothing is left for them.

    The claim lasts ``queue.lease_seconds``; ``claim_seq`` moves on, and the decision form
    carries it back.
    """
    now = now or timezone.now()
    leases_expire(queue=queue, now=now)
    lease_until = now + timedelta(seconds=queue.lease_seconds)
    claimed = {
        "state": ReviewItem.State.CLAIMED,
        "claimed_by": user,
        "claimed_at": now,
        "lease_until": lease_until,
        "claim_seq": F("claim_seq") + 1,
    }
    candidates = _claimable(queue, user)
    if connections[candidates.db].features.has_select_for_update_skip_locked:
        with transaction.atomic():
            item = candidates.select_for_update(skip_locked=True).first()
            if item is None:
                return None
            ReviewItem.objects.filter(pk=item.pk).update(**claimed)
    else:
        for _ in range(_SQLITE_ATTEMPTS):
            item = candidates.first()
            if item is None:
                return None
            won = ReviewItem.objects.filter(pk=item.pk, state=ReviewItem.State.OPEN).update(
                **claimed
            )
            if won:
                break
        else:
            return None
    # We hold the claim: the row now says what we wrote (no second read needed).
    item.state = ReviewItem.State.CLAIMED
    item.claimed_by = user
    item.claimed_at = now
    item.lease_until = lease_until
    item.claim_seq += 1
    return item


def review_hand(*, queue: ReviewQueue, user, size: int = HAND_SIZE, now=None) -> list[ReviewItem]:
    """The items ``user`` holds in ``queue`` (oldest claim first), topped up to ``size``.

    The first is the one to show; the others are prefetched so the next one appears at once.
    Held leases are renewed: a reviewer who is still working keeps their items.
    """
    now = now or timezone.now()
    held_items = ReviewItem.objects.filter(
        queue=queue, claimed_by=user, state=ReviewItem.State.CLAIMED
    )
    held = list(held_items.order_by("claimed_at", "position")[:size])
    if held:
        lease_until = now + timedelta(seconds=queue.lease_seconds)
        ReviewItem.objects.filter(pk__in=[item.pk for item in held]).update(lease_until=lease_until)
        for item in held:
            item.lease_until = lease_until
    while len(held) < size:
        item = item_claim_next(queue=queue, user=user, now=now)
        if item is None:
            break
        held.append(item)
    return held
