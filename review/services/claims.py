"""Claiming queue items with a lease, safely under concurrency.

An item is claimable when it is open, or claimed under a lease that ran out: expiry is part
of the claim's predicate, so no sweep runs before each claim and an expired item goes to the
next claimer as it is asked for (its old claimer keeps the claim until then). Items whose
lease ran out come first, then open items by position.

On PostgreSQL a claim is one statement: ``UPDATE ... WHERE id = COALESCE((SELECT ...
FOR UPDATE SKIP LOCKED), (SELECT ... FOR UPDATE SKIP LOCKED)) RETURNING ...``. Concurrent
claimers each skip the rows the others hold and never wait on one another; the open branch
walks the partial index ``reviewitem_next`` and the expired branch ``reviewitem_lease``, so a
claim costs the same at any queue size and one round trip. On a database without row locks
(SQLite, the embedded default) the claim is a conditional ``UPDATE`` that names the claim
number it saw; its row count says who won, and the loser tries again. Either way an item is
claimed by one person at a time.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from django.db import connections, router
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from review.models import ReviewItem, ReviewQueue

# Items a reviewer holds at once: the one on screen and the next ones, prefetched.
HAND_SIZE = 3
_SQLITE_ATTEMPTS = 50


def leases_expire(*, queue: ReviewQueue, now=None) -> int:
    """Return items whose lease ran out to the queue (claimer and claim number are kept, so
    the claimer may still decide until somebody else claims it).

    Claims do not need this (they take expired items directly); it is an explicit sweep
    for whoever wants the stored states tidy, e.g. before a bulk action.
    """
    now = now or timezone.now()
    return ReviewItem.objects.filter(
        queue=queue, state=ReviewItem.State.CLAIMED, lease_until__lt=now
    ).update(state=ReviewItem.State.OPEN)


def _expired(now) -> Q:
    return Q(state=ReviewItem.State.CLAIMED, lease_until__lt=now)


def _claimable(queue: ReviewQueue, user, now) -> list:
    """The candidates for ``user``, as two querysets tried in turn: expired leases, then open
    items, each by position."""
    items = ReviewItem.objects.filter(queue=queue).filter(
        Q(assigned_to__isnull=True) | Q(assigned_to=user)
    )
    if queue.overlap_share > 0:
        # The two copies of an overlapping item go to two different people.
        other_copy = ReviewItem.objects.filter(
            queue_id=queue.pk, sample_id=OuterRef("sample_id"), claimed_by=user
        ).exclude(pk=OuterRef("pk"))
        items = items.filter(~Exists(other_copy))
    return [
        items.filter(_expired(now)).order_by("position"),
        items.filter(state=ReviewItem.State.OPEN).order_by("position"),
    ]


# One statement: lock the first expired item, else the first open one (COALESCE evaluates
# its second subquery only when the first found nothing), claim it, and return the row.
#
# Its commit does not wait for the write-ahead log to reach the disk (``synchronous_commit``
# off for this transaction only, set by the one-row FROM item): a claim is a lease, and the
# flush was a good part of its latency with ten reviewers committing at once. What a crash
# can lose is the last few claims, which is what an expired lease does anyway: the item is
# open again and a decision sent under the lost claim is refused as stale (409). Nothing
# durable depends on it: a decision's commit flushes the log up to and including the claim
# it was made under, and decisions keep the synchronous commit. Only a claim that is its
# own transaction does this: inside a caller's transaction the setting would reach
# whatever else that transaction writes.
_CLAIM_SQL = """
UPDATE review_reviewitem
SET state = 'claimed', claimed_by_id = %(user)s, claimed_at = %(now)s,
    lease_until = %(until)s, claim_seq = claim_seq + 1
{lease_only}
WHERE id = COALESCE(
    (SELECT i.id FROM review_reviewitem i
     WHERE i.queue_id = %(queue)s AND i.state = 'claimed' AND i.lease_until < %(now)s
       AND {mine}
     ORDER BY i.position LIMIT 1 FOR UPDATE SKIP LOCKED),
    (SELECT i.id FROM review_reviewitem i
     WHERE i.queue_id = %(queue)s AND i.state = 'open' AND {mine}
     ORDER BY i.position LIMIT 1 FOR UPDATE SKIP LOCKED)
)
RETURNING {columns}
"""
_LEASE_ONLY = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS lease_only"
_MINE = "(i.assigned_to_id IS NULL OR i.assigned_to_id = %(user)s)"
# A probe of the candidate's other copy through ``reviewitem_sample`` (a couple of index
# pages). OFFSET 0 keeps it a per-candidate subplan, and COALESCE keeps the planner off the
# (queue, claimed_by) index: either way it would read every row the user ever claimed in
# the queue, a cost that grows with each item they decide.
_NOT_OTHER_COPY = (
    " AND NOT EXISTS (SELECT 1 FROM review_reviewitem o WHERE o.sample_id = i.sample_id"
    " AND o.queue_id = i.queue_id AND o.id <> i.id"
    " AND COALESCE(o.claimed_by_id, 0) = %(user)s OFFSET 0)"
)


@cache
def _claim_sql(overlap: bool, own_transaction: bool) -> tuple[str, list[str]]:
    """The claim statement (built once per variant) and the columns it returns."""
    fields = [f.attname for f in ReviewItem._meta.concrete_fields]
    sql = _CLAIM_SQL.format(
        lease_only=_LEASE_ONLY if own_transaction else "",
        mine=_MINE + (_NOT_OTHER_COPY if overlap else ""),
        columns=", ".join(f'"{n}"' for n in fields),
    )
    return sql, fields


def _claim_in_one_statement(queue: ReviewQueue, user, now, until, db: str):
    own_transaction = not connections[db].in_atomic_block
    sql, fields = _claim_sql(queue.overlap_share > 0, own_transaction)
    params = {"user": user.pk, "now": now, "until": until, "queue": queue.pk}
    with connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else ReviewItem.from_db(db, fields, row)


def _claim_conditionally(queue: ReviewQueue, user, now, until):
    claimed = {
        "state": ReviewItem.State.CLAIMED,
        "claimed_by": user,
        "claimed_at": now,
        "lease_until": until,
        "claim_seq": F("claim_seq") + 1,
    }
    for _ in range(_SQLITE_ATTEMPTS):
        item = next((found for qs in _claimable(queue, user, now) if (found := qs.first())), None)
        if item is None:
            return None
        # Won only if nobody claimed it since we read it (the claim number moves with every
        # claim) and it is still claimable (a holder may have renewed the lease).
        won = (
            ReviewItem.objects.filter(pk=item.pk, claim_seq=item.claim_seq)
            .filter(Q(state=ReviewItem.State.OPEN) | _expired(now))
            .update(**claimed)
        )
        if won:
            item.state = ReviewItem.State.CLAIMED
            item.claimed_by = user
            item.claimed_at = now
            item.lease_until = until
            item.claim_seq += 1
            return item
    return None


def item_claim_next(*, queue: ReviewQueue, user, now=None) -> ReviewItem | None:
    """Claim the next item of ``queue`` for ``user``; None when nothing is left for them.

    The claim lasts ``queue.lease_seconds``; ``claim_seq`` moves on, and the decision form
    carries it back.
    """
    now = now or timezone.now()
    until = now + timedelta(seconds=queue.lease_seconds)
    db = router.db_for_write(ReviewItem)
    if connections[db].vendor == "postgresql":
        item = _claim_in_one_statement(queue, user, now, until, db)
    else:
        item = _claim_conditionally(queue, user, now, until)
    if item is not None:
        item.queue = queue
        item.claimed_by = user
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
        # Only rows still ours: one whose lease ran out may have gone to someone meanwhile.
        ReviewItem.objects.filter(
            pk__in=[item.pk for item in held], claimed_by=user, state=ReviewItem.State.CLAIMED
        ).update(lease_until=lease_until)
        for item in held:
            item.lease_until = lease_until
    while len(held) < size:
        item = item_claim_next(queue=queue, user=user, now=now)
        if item is None:
            break
        held.append(item)
    return held
