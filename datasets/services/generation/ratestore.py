"""The rate limiter's store on the database, for the embedded default (no Redis).

Every worker process shares the database, so an endpoint's limits hold for all of them
together, as they do with `RedisStore`. A reservation is one transaction: lock the key's row,
read the clock, delete the reservations that left the window, read the rest, compute the send
time with the engine's `earliest_reservation`, insert it.

Atomicity. On PostgreSQL the key's row is locked with ``SELECT ... FOR UPDATE``, so
reservations for one key queue behind each other and other keys do not wait. On SQLite
``select_for_update`` does nothing, and what serialises is the transaction itself: settings open
every SQLite transaction with ``BEGIN IMMEDIATE``, which takes the database's write lock before
the first read. (A deferred transaction that reads and then writes can fail at once with
"database is locked" when another connection wrote in between, instead of waiting.)

The clock is one clock for every process: the database server's ``clock_timestamp()`` on
PostgreSQL (read after the lock is held, so a reservation that waited for the lock is not
stamped with the time it started waiting), and the wall clock on SQLite, whose file lives on the
one machine whose processes share it. ``time.monotonic`` would not do: each process has its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connections, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from datasets.models import RateLimitKey, RateReservation
from synthaug.engine.ratelimit import earliest_reservation


class DatabaseStore:
    """A `RateStore` shared through the database by every process that uses it.

    Precondition on SQLite: the connection's ``transaction_mode`` is ``IMMEDIATE`` (settings
    set it). `clock` replaces the shared clock in tests of the algorithm.
    """

    def __init__(self, *, using: str = "default", clock: Callable[[], float] | None = None) -> None:
        self.using = using
        self._clock = clock

    def reserve(
        self, key: str, *, rpm: int, tpm: int, window: float, tokens: int, entry_id: str
    ) -> float:
        now, at = self.reserve_at(
            key, rpm=rpm, tpm=tpm, window=window, tokens=tokens, entry_id=entry_id
        )
        return max(0.0, at - now)

    def reserve_at(
        self, key: str, *, rpm: int, tpm: int, window: float, tokens: int, entry_id: str
    ) -> tuple[float, float]:
        """`reserve`, returning the store's clock reading and the reserved send time on it.

        The absolute times let a test check the reservations of many processes against one
        another on the clock that made them.
        """
        with transaction.atomic(using=self.using):
            limit, _ = (
                RateLimitKey.objects.using(self.using).select_for_update().get_or_create(key=key)
            )
            now = self._now()
            reservations = RateReservation.objects.using(self.using).filter(limit=limit)
            reservations.filter(at__lte=now - window).delete()
            log = list(reservations.order_by("at", "id").values_list("at", "tokens"))
            at = earliest_reservation(
                now=now,
                log=log,
                total=sum(spent for _, spent in log),
                rpm=rpm,
                tpm=tpm,
                window=window,
                tokens=tokens,
            )
            RateReservation.objects.using(self.using).create(
                limit=limit, entry_id=entry_id, at=at, tokens=tokens
            )
        self._done()
        return now, at

    def adjust(self, key: str, *, entry_id: str, delta: int) -> None:
        # One UPDATE is atomic on its own; a reservation already pruned matches no row.
        RateReservation.objects.using(self.using).filter(limit_id=key, entry_id=entry_id).update(
            tokens=Greatest(F("tokens") + delta, 0)
        )
        self._done()

    def _done(self) -> None:
        """End of a unit of work, as a request or task end is: honour CONN_MAX_AGE on a server.

        The async LLM client calls the store from its executor's threads, whose connections
        neither requests nor Celery ever close; without this each such thread would keep a
        PostgreSQL connection for as long as the worker runs. SQLite is left open: there a
        connection is a file handle, the executor's threads are few, and reopening (with the
        WAL pragmas) cost about 18 ms a reservation against 2 ms kept open (measured side by
        side, under load).
        """
        connection = connections[self.using]
        if connection.vendor != "sqlite" and not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()

    def clear(self, key: str) -> None:
        """Forget a key's reservations (tests, or an endpoint whose limits changed)."""
        RateLimitKey.objects.using(self.using).filter(key=key).delete()

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT extract(epoch FROM clock_timestamp())")
                return float(cursor.fetchone()[0])
        return time.time()
