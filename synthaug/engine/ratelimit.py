"""Requests-per-minute and tokens-per-minute limits for one endpoint, shared by every worker.

The algorithm is a sliding log with reservations. Each `acquire` reserves a send time `t` for its
request, at or after every earlier reservation (first come, first served), and the earliest such
that, counting the new request, the window `(t - window, t]` holds at most `rpm` requests and
`tpm` tokens. Because reservations never go back in time, that one window is the fullest one the
new request is part of, so the limits hold over every window of that length, not merely on
average. The caller sleeps the returned delay and sends; it need not ask again.

Token counts are estimates at reservation time (an upper bound: prompt plus `max_tokens`), and
`settle` corrects the reservation with what the response reported. A request bigger than `tpm`
on its own waits for an empty window.

`slack` widens the window slightly so that a sender whose sleep ran a little late, or whose
request took a little longer to leave, still keeps the provider's window. It costs throughput
in proportion to slack / window, so it should be no wider than senders are late: requests
reserved for the same instant reach the server spread over tens of milliseconds (measured
against the loopback server: 50 ms of slack let 5% through into a full window, 100 ms none).
The app takes it from `SYNTHAUG_RATE_SLACK_SECONDS`.

Stores implement the two-method `RateStore` protocol: `MemoryStore` (one process, tests) and
`RedisStore` (atomic Lua, shared by processes and machines, using the Redis server's clock).
The embedded default, which has no Redis, uses the database store in
`datasets.services.generation.ratestore` (a row locked for update per key); it lives in the app
because the engine does not touch the ORM.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis

# Bound on reservations awaiting `settle` per limiter: a caller that never settles cannot grow
# memory without end (an unsettled reservation simply keeps its estimate).
MAX_PENDING = 10_000


class RateStore(Protocol):
    def reserve(
        self, key: str, *, rpm: int, tpm: int, window: float, tokens: int, entry_id: str
    ) -> float:
        """Record a request of `tokens` at the earliest allowed time; return seconds from now.

        `rpm`/`tpm` of 0 mean no limit on that dimension. Must be atomic with respect to every
        other caller sharing `key`.
        """
        ...

    def adjust(self, key: str, *, entry_id: str, delta: int) -> None:
        """Add `delta` (may be negative; the result floors at 0) to a reservation's tokens.

        A reservation that already left the window is ignored.
        """
        ...


class RateLimiter:
    """One endpoint's limits over a store shared by all the workers that call it.

    Safe to share between threads. `rpm`/`tpm` of 0 mean no limit; with neither, `acquire`
    returns 0 without touching the store.
    """

    def __init__(
        self,
        store: RateStore,
        key: str,
        rpm: int,
        tpm: int,
        *,
        window: float = 60.0,
        slack: float = 0.25,
    ) -> None:
        if rpm < 0 or tpm < 0 or window <= 0 or slack < 0:
            raise ValueError("rpm, tpm and slack must be >= 0 and window > 0")
        self.store = store
        self.key = key
        self.rpm = rpm
        self.tpm = tpm
        self.window = window
        self.slack = slack
        self._lock = threading.Lock()
        self._pending: dict[int, deque[str]] = {}
        self._pending_count = 0

    @property
    def unlimited(self) -> bool:
        return self.rpm == 0 and self.tpm == 0

    def acquire(self, tokens_estimate: int) -> float:
        """Reserve a slot; return the seconds to wait before sending (0: send now)."""
        if self.unlimited:
            return 0.0
        entry_id = uuid.uuid4().hex
        wait = self.store.reserve(
            self.key,
            rpm=self.rpm,
            tpm=self.tpm,
            window=self.window + self.slack,
            tokens=max(0, int(tokens_estimate)),
            entry_id=entry_id,
        )
        self._remember(int(tokens_estimate), entry_id)
        return wait

    def settle(self, actual_tokens: int, estimated_tokens: int) -> None:
        """Correct a reservation made with `estimated_tokens` to what was really used.

        Corrects this limiter's oldest unsettled reservation with that estimate. When requests
        with equal estimates overlap, that may be another caller's reservation; it is never
        a newer one than the caller's own, which is what keeps a correction from letting more
        through than the limits allow.
        """
        if self.unlimited:
            return
        entry_id = self._forget(int(estimated_tokens))
        delta = int(actual_tokens) - int(estimated_tokens)
        if entry_id is None or delta == 0:
            return
        self.store.adjust(self.key, entry_id=entry_id, delta=delta)

    def _remember(self, estimate: int, entry_id: str) -> None:
        with self._lock:
            if self._pending_count >= MAX_PENDING:
                return
            self._pending.setdefault(estimate, deque()).append(entry_id)
            self._pending_count += 1

    def _forget(self, estimate: int) -> str | None:
        with self._lock:
            entries = self._pending.get(estimate)
            if not entries:
                return None
            entry_id = entries.popleft()
            if not entries:
                del self._pending[estimate]
            self._pending_count -= 1
            return entry_id


def earliest_reservation(
    *,
    now: float,
    log: list[tuple[float, int]],
    total: int,
    rpm: int,
    tpm: int,
    window: float,
    tokens: int,
) -> float:
    """The reservation time for a new request, given the live log (oldest first).

    `MemoryStore` and the database store call it; the Lua script in `RedisStore` is a
    transcription of it: change both together.
    """
    t = max(now, log[-1][0]) if log else now
    if rpm > 0 and len(log) >= rpm:
        t = max(t, log[len(log) - rpm][0] + window)
    need = min(tokens, tpm)
    if tpm > 0 and total + need > tpm:
        remaining = total
        for stamp, spent in log:
            remaining -= spent
            if remaining + need <= tpm:
                t = max(t, stamp + window)
                break
    return t


@dataclass
class _Log:
    entries: deque[tuple[float, str]] = field(default_factory=deque)
    tokens: dict[str, int] = field(default_factory=dict)
    total: int = 0


class MemoryStore:
    """A store for one process (threads share it); `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}

    def reserve(
        self, key: str, *, rpm: int, tpm: int, window: float, tokens: int, entry_id: str
    ) -> float:
        with self._lock:
            now = self._clock()
            log = self._logs.setdefault(key, _Log())
            while log.entries and log.entries[0][0] <= now - window:
                _, old = log.entries.popleft()
                log.total -= log.tokens.pop(old, 0)
            t = earliest_reservation(
                now=now,
                log=[(stamp, log.tokens[eid]) for stamp, eid in log.entries],
                total=log.total,
                rpm=rpm,
                tpm=tpm,
                window=window,
                tokens=tokens,
            )
            log.entries.append((t, entry_id))
            log.tokens[entry_id] = tokens
            log.total += tokens
            return t - now

    def adjust(self, key: str, *, entry_id: str, delta: int) -> None:
        with self._lock:
            log = self._logs.get(key)
            if log is None or entry_id not in log.tokens:
                return
            new = max(0, log.tokens[entry_id] + delta)
            log.total += new - log.tokens[entry_id]
            log.tokens[entry_id] = new


# KEYS: 1 log (zset: entry id -> reserved time), 2 tokens (hash: entry id -> tokens),
#       3 total (tokens of every live entry).
# ARGV: rpm, tpm, window, tokens, entry id.
# Returns the wait in seconds, as a string (Lua numbers become Redis integers).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local id = ARGV[5]
local cutoff = now - window

while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, 500)
  if #old == 0 then break end
  local spent = redis.call('HMGET', KEYS[2], unpack(old))
  local freed = 0
  for i = 1, #spent do freed = freed + (tonumber(spent[i]) or 0) end
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('DECRBY', KEYS[3], freed)
end

local n = redis.call('ZCARD', KEYS[1])
local at = now
if n > 0 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  at = math.max(at, tonumber(last[2]))
end
if rpm > 0 and n >= rpm then
  local e = redis.call('ZRANGE', KEYS[1], n - rpm, n - rpm, 'WITHSCORES')
  at = math.max(at, tonumber(e[2]) + window)
end
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local need = math.min(tokens, tpm)
if tpm > 0 and total + need > tpm then
  local remaining = total
  local start = 0
  local done = false
  while not done do
    local chunk = redis.call('ZRANGE', KEYS[1], start, start + 499, 'WITHSCORES')
    if #chunk == 0 then break end
    local ids = {}
    for i = 1, #chunk, 2 do ids[#ids + 1] = chunk[i] end
    local spent = redis.call('HMGET', KEYS[2], unpack(ids))
    for i = 1, #ids do
      remaining = remaining - (tonumber(spent[i]) or 0)
      if remaining + need <= tpm then
        at = math.max(at, tonumber(chunk[2 * i]) + window)
        done = true
        break
      end
    end
    start = start + 500
  end
end

redis.call('ZADD', KEYS[1], at, id)
redis.call('HSET', KEYS[2], id, tokens)
redis.call('INCRBY', KEYS[3], tokens)
local ttl = math.ceil((at - now + window) * 1000) + 1000
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return tostring(at - now)
"""

# KEYS as above. ARGV: entry id, delta.
_ADJUST = """
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return 0 end
cur = tonumber(cur)
local new = math.max(0, cur + tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], ARGV[1], new)
redis.call('INCRBY', KEYS[3], new - cur)
return 1
"""


class RedisStore:
    """A store shared by processes and machines, atomic through Lua, on the server's clock.

    Keys live under `{prefix}{key}` with a hash tag, so they share a slot on Redis Cluster, and
    expire one window after their last reservation.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "synthaug:rl:",
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisStore needs a redis URL or a client")
            client = redis.Redis.from_url(url)
        self.client = client
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._adjust = client.register_script(_ADJUST)

    def _keys(self, key: str) -> list[str]:
        base = f"{self.prefix}{{{key}}}"
        return [f"{base}:log", f"{base}:tokens", f"{base}:total"]

    def reserve(
        self, key: str, *, rpm: int, tpm: int, window: float, tokens: int, entry_id: str
    ) -> float:
        wait = self._reserve(
            keys=self._keys(key), args=[rpm, tpm, repr(float(window)), tokens, entry_id]
        )
        return max(0.0, float(wait))

    def adjust(self, key: str, *, entry_id: str, delta: int) -> None:
        self._adjust(keys=self._keys(key), args=[entry_id, delta])

    def clear(self, key: str) -> None:
        """Forget a key's reservations (tests, or an endpoint whose limits changed)."""
        self.client.delete(*self._keys(key))
