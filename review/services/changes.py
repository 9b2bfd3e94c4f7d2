"""The change rows decisions write for the figures task to fold (``AgreementChange``,
``ProgressChange``): taking them, and deleting them in a count's snapshot.

A fold and a count from scratch hold the figures row's lock, and each deletes the change
rows it accounts for in the statement that reads them (one snapshot: a decision committed
meanwhile is either in the count, its change row deleted with it, or left for the next
fold). On PostgreSQL that is a data-modifying CTE; on SQLite the transaction took the
write lock at BEGIN (``transaction_mode`` IMMEDIATE), so nothing commits in between.
"""

from __future__ import annotations

import json

from django.db import connections, models, router

from review.models import ReviewQueue

_VERSION_SQL = "SELECT MAX(id) FROM review_auditentry WHERE queue_id = %s"


def changes_take(model: type[models.Model], queue: ReviewQueue) -> tuple[list[dict], int]:
    """Delete and return the queue's ``model`` rows' changes (in the order written) and the
    version (the queue's newest audit entry) they bring the figures up to, in one snapshot."""
    connection = connections[router.db_for_write(model)]
    table = model._meta.db_table
    take = f"DELETE FROM {table} WHERE queue_id = %s RETURNING id, change"  # noqa: S608
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH gone AS ({take}) SELECT id, change::text FROM gone "  # noqa: S608
                f"UNION ALL SELECT NULL, ({_VERSION_SQL})::text",
                [queue.pk, queue.pk],
            )
            rows = cursor.fetchall()
        else:
            cursor.execute(take, [queue.pk])
            rows = cursor.fetchall()
            cursor.execute(_VERSION_SQL, [queue.pk])
            rows.append((None, str(cursor.fetchone()[0] or 0)))
    version = int(next(text for pk, text in rows if pk is None) or 0)
    changes = sorted((pk, json.loads(text)) for pk, text in rows if pk is not None)
    return [change for _, change in changes], version


def changes_gone(model: type[models.Model], queue: ReviewQueue) -> tuple[str, list] | None:
    """Delete the queue's ``model`` rows in the snapshot of the count about to run: on
    PostgreSQL the CTE to run in the counting statement (``"gone AS (...), "`` and its
    parameters); on SQLite they are deleted now, and None."""
    connection = connections[router.db_for_write(model)]
    delete = f"DELETE FROM {model._meta.db_table} WHERE queue_id = %s"  # noqa: S608
    if connection.vendor == "postgresql":
        return f"gone AS ({delete}), ", [queue.pk]
    with connection.cursor() as cursor:
        cursor.execute(delete, [queue.pk])
    return None
