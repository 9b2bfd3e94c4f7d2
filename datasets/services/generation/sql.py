"""The two statements a chunk sends most, in SQL the ORM cannot say in one round trip.

``items_claim``: the conditional UPDATE that claims items, returning the rows it won.
``items_mark_done``: answered items DONE with their samples and usage, one statement per
item pipelined by executemany. Every value is a parameter; table and column names come
from the model, so both run on PostgreSQL and on SQLite (3.35+ for RETURNING).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from datasets.models import GenerationItem

State = GenerationItem.State


@dataclass(frozen=True)
class DoneRow:
    item_id: int
    sample_id: int
    response_id: str
    input_tokens: int
    output_tokens: int
    cost: Decimal


def _column(name: str) -> str:
    return connection.ops.quote_name(GenerationItem._meta.get_field(name).column)


def _table() -> str:
    return connection.ops.quote_name(GenerationItem._meta.db_table)


def items_claim(
    *,
    batch_id: int,
    seqs: list[int],
    worker: str,
    now: datetime,
    lease_until: datetime,
    max_attempts: int,
) -> list[GenerationItem]:
    """PENDING -> RUNNING for the items of ``seqs`` still claimable; the rows this won.

    Raw SQL because the ORM's update() returns a count, not rows; PostgreSQL and SQLite
    (3.35+) both have UPDATE ... RETURNING. Every value is a parameter; the table and
    column names come from the model.
    """
    ops = connection.ops
    column = _column
    marks = ", ".join(["%s"] * len(seqs))
    sql = (
        f"UPDATE {_table()} SET {column('state')} = %s, "  # noqa: S608
        f"{column('attempts')} = {column('attempts')} + 1, {column('lease_until')} = %s, "
        f"{column('worker')} = %s, {column('started_at')} = %s "
        f"WHERE {column('batch')} = %s AND {column('seq')} IN ({marks}) "
        f"AND {column('state')} = %s AND {column('attempts')} < %s RETURNING *"
    )
    params = [
        State.RUNNING,
        ops.adapt_datetimefield_value(lease_until),
        worker,
        ops.adapt_datetimefield_value(now),
        batch_id,
        *seqs,
        State.PENDING,
        max_attempts,
    ]
    return sorted(GenerationItem.objects.raw(sql, params), key=lambda item: item.seq)


def items_mark_done(rows: list[DoneRow]) -> None:
    """Items answered and written: DONE, their sample set, their usage added.

    One statement per item sent with executemany, which psycopg pipelines (one round
    trip for the group); a bulk_update would build a CASE per field and row, which costs
    more CPU than the rest of the write.
    """
    ops = connection.ops
    column = _column
    cost = GenerationItem._meta.get_field("cost")
    tokens_in, tokens_out, paid = column("input_tokens"), column("output_tokens"), column("cost")
    sql = (
        f"UPDATE {_table()} SET {column('state')} = %s, "  # noqa: S608
        f"{column('sample')} = %s, {column('lease_until')} = NULL, "
        f"{column('finished_at')} = %s, {column('error_reason')} = '', "
        f"{column('error_detail')} = '', {column('response_id')} = %s, "
        f"{tokens_in} = {tokens_in} + %s, {tokens_out} = {tokens_out} + %s, "
        f"{paid} = {paid} + %s WHERE {column('id')} = %s"
    )
    now = ops.adapt_datetimefield_value(timezone.now())
    params = [
        (
            State.DONE,
            row.sample_id,
            now,
            row.response_id[:200],
            row.input_tokens,
            row.output_tokens,
            ops.adapt_decimalfield_value(row.cost, cost.max_digits, cost.decimal_places),
            row.item_id,
        )
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
