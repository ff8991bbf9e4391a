"""Where routing keeps what it learns: breakers, throughput buckets, retry budgets, the live
canary step and the guard's counters.

`State` is a handful of primitives (values, counters, windowed counters, token buckets,
claims, events); breakers, budgets and canaries are written once on top of them.

* `MemoryState` (the default) keeps them in this process: nothing is shared.
* `RedisState` (``[portal] state = "redis://..."``) shares them across processes and
  replicas. The hot path never waits on Redis except where atomicity is the point:

  - reads (``get``, ``counters``, ``window``) come from a local copy that a background
    thread refreshes every ``refresh_ms`` (default 100 ms) — so another process's breaker
    trip or canary rollback is seen within about that long;
  - writes (``set``, ``incr``, ``hit``, ``give``) apply to the local copy at once and are
    flushed to Redis by the same thread, in one pipeline per cycle;
  - ``take`` (committed-throughput buckets) is one atomic Lua call per attempt, and only for
    targets that have a commitment: a shared commitment cannot be honoured from a cache.
    The sync client uses redis-py's sync client, the async client redis-py's asyncio one;
  - ``claim`` (the half-open probe, at most once per cooldown per target) is one ``SET NX``;
  - ``remember`` / ``recall`` (short-lived values, many keys: which target holds a cached
    prompt prefix) are a queued ``SET PX``; a read is local, refreshed by the next cycle
    for the keys read during the last one (so the refresh costs what the traffic reads),
    and a key this process has not fetched for `RECALL_STALE_S` is read with one ``GET``
    at once (a prefix another replica served is found). Both the local copy and the keys
    tracked are bounded;
  - ``reserve`` and ``settle`` (budget reservations) are one atomic Lua call each, and
    ``spend`` reads Redis directly: a shared budget cannot be kept from a cache either.
    Reservations expire (``ttl_s``): a process that dies mid-call releases what it held.

  If Redis is unreachable, everything falls back to the local copy (routing keeps working,
  per process) and the log says so once; the thread keeps trying to reconnect.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["BucketDim", "MemoryState", "RedisState", "State", "StateUnavailable", "open_state"]

log = logging.getLogger("portal.routing")

#: one dimension of a token bucket: (name, amount to take, refill per second, capacity)
BucketDim = tuple[str, float, float, float]

#: windowed counters keep one-second slots for at most this long
MAX_WINDOW_S = 3600.0
#: short-lived values (`State.remember`) one process keeps at most; the oldest go first
MAX_REMEMBERED = 100_000
#: keys whose last fetch a `RedisState` tracks for `State.recall` (the oldest go first), and
#: how old a fetch may be before a read goes to Redis itself
MAX_RECALLED = 10_000
RECALL_STALE_S = 5.0


class StateUnavailable(Exception):
    """The shared state could not be reached for an operation that must be atomic there."""

    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = url
        super().__init__(f"shared routing state at {url} is unreachable ({type(cause).__name__})")


@runtime_checkable
class State(Protocol):
    """The primitives routing needs; see the module docstring for their consistency."""

    clock: Callable[[], float]
    shared: bool

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> None: ...

    def delete(self, key: str) -> None: ...

    def remember(self, key: str, value: Any, ttl_s: float) -> None: ...

    def recall(self, key: str) -> Any: ...

    def claim(self, key: str, ttl_s: float) -> bool: ...

    def incr(self, key: str, field: str, amount: float = 1.0) -> None: ...

    def counters(self, key: str) -> dict[str, float]: ...

    def reset(self, key: str) -> None: ...

    def forget(self, key: str) -> None: ...

    def hit(self, key: str, fields: Mapping[str, float]) -> None: ...

    def window(self, key: str, window_s: float) -> dict[str, float]: ...

    def take(self, key: str, dims: Sequence[BucketDim]) -> bool: ...

    async def atake(self, key: str, dims: Sequence[BucketDim]) -> bool: ...

    def give(self, key: str, dims: Sequence[BucketDim]) -> None: ...

    def levels(self, key: str, dims: Sequence[BucketDim]) -> dict[str, float]: ...

    def push_event(self, key: str, event: Mapping[str, Any], keep: int = 100) -> None: ...

    def events(self, key: str, n: int = 20) -> list[dict[str, Any]]: ...

    def reserve(
        self, key: str, field: str, amount: float, limit: float, ttl_s: float, rid: str
    ) -> tuple[bool, float, float]: ...

    def settle(self, key: str, field: str, rid: str, cost: float, final: bool = True) -> None: ...

    def spend(self, key: str, field: str) -> tuple[float, float]: ...

    def close(self) -> None: ...


# =============================================================================== memory


class MemoryState:
    """In-process state. ``clock`` is injectable so tests move time without sleeping."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._values: dict[str, tuple[Any, float | None]] = {}
        self._counters: dict[str, dict[str, float]] = {}
        self._windows: dict[str, dict[int, dict[str, float]]] = {}
        #: the longest window read per key: older slots are dropped (MAX_WINDOW_S until read)
        self._spans: dict[str, float] = {}
        self._buckets: dict[str, dict[str, float]] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        #: budget holds per key: "field|reservation id" -> (amount, expires at)
        self._holds: dict[str, dict[str, tuple[float, float]]] = {}
        #: short-lived values, oldest write first (bounded by MAX_REMEMBERED)
        self._remembered: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    # -- values -----------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and self.clock() >= expires:
            self._values.pop(key, None)
            return None
        return value

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        self._values[key] = (value, None if ttl_s is None else self.clock() + ttl_s)

    def delete(self, key: str) -> None:
        self._values.pop(key, None)

    def remember(self, key: str, value: Any, ttl_s: float) -> None:
        """A value that expires after ``ttl_s`` and may be forgotten earlier: at most
        `MAX_REMEMBERED` are kept, the least recently written go first. For many short-lived
        keys (one per cached prompt prefix) that `set` would keep until read again."""
        with self._lock:
            vals = self._remembered
            vals.pop(key, None)
            vals[key] = (value, self.clock() + ttl_s)
            while len(vals) > MAX_REMEMBERED:
                vals.pop(next(iter(vals)), None)

    def recall(self, key: str) -> Any:
        """What `remember` kept under ``key``, or None once it expired or was forgotten."""
        item = self._remembered.get(key)
        if item is None:
            return None
        if self.clock() >= item[1]:
            self._remembered.pop(key, None)
            return None
        return item[0]

    def claim(self, key: str, ttl_s: float) -> bool:
        with self._lock:
            if self.get(key) is not None:
                return False
            self.set(key, 1, ttl_s)
            return True

    # -- counters ---------------------------------------------------------------------------
    def incr(self, key: str, field: str, amount: float = 1.0) -> None:
        with self._lock:
            c = self._counters.setdefault(key, {})
            c[field] = c.get(field, 0.0) + amount

    def counters(self, key: str) -> dict[str, float]:
        return self._counters.get(key) or {}

    def reset(self, key: str) -> None:
        self._counters.pop(key, None)

    def forget(self, key: str) -> None:
        """This process no longer needs ``key``'s counters (a day that ended): drop them."""
        self._counters.pop(key, None)
        self._holds.pop(key, None)

    def hit(self, key: str, fields: Mapping[str, float]) -> None:
        slot = int(self.clock())
        with self._lock:
            slots = self._windows.setdefault(key, {})
            cur = slots.get(slot)
            if cur is None:
                cur = slots[slot] = {}
                # keep only what a reader can ask for: a breaker's 30 s window must not
                # hold an hour of one-second slots (that grew a busy process for an hour)
                keep = math.ceil(self._spans.get(key, MAX_WINDOW_S))
                if len(slots) > keep:
                    self._prune(slots, slot - keep)
            for f, v in fields.items():
                cur[f] = cur.get(f, 0.0) + v

    @staticmethod
    def _prune(slots: dict[int, dict[str, float]], oldest_dropped: int) -> None:
        for s in [s for s in slots if s <= oldest_dropped]:
            del slots[s]

    def window(self, key: str, window_s: float) -> dict[str, float]:
        span = min(window_s, MAX_WINDOW_S)
        if self._spans.get(key, 0.0) < span:
            with self._lock:
                self._spans[key] = max(span, self._spans.get(key, 0.0))
        slots = self._windows.get(key)
        if not slots:
            return {}
        oldest = int(self.clock()) - math.ceil(window_s) + 1
        out: dict[str, float] = {}
        for s, fields in list(slots.items()):
            if s >= oldest:
                for f, v in fields.items():
                    out[f] = out.get(f, 0.0) + v
        return out

    # -- token buckets ----------------------------------------------------------------------
    def _refilled(self, key: str, dims: Sequence[BucketDim], now: float) -> dict[str, float]:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = {name: cap for name, _, _, cap in dims} | {"t": now}
        dt = max(0.0, now - b["t"])
        for name, _, rate, cap in dims:
            b[name] = min(cap, b.get(name, cap) + dt * rate)
        b["t"] = now
        return b

    def take(self, key: str, dims: Sequence[BucketDim]) -> bool:
        """Take every dimension's amount, or nothing if any is short (atomic per bucket)."""
        with self._lock:
            b = self._refilled(key, dims, self.clock())
            if any(b[name] < min(amount, cap) for name, amount, _, cap in dims):
                return False
            for name, amount, _, _ in dims:
                b[name] -= amount
            return True

    async def atake(self, key: str, dims: Sequence[BucketDim]) -> bool:
        return self.take(key, dims)

    def give(self, key: str, dims: Sequence[BucketDim]) -> None:
        """Add ``amount`` back (negative: take more, e.g. when real usage beat the estimate)."""
        with self._lock:
            b = self._refilled(key, dims, self.clock())
            for name, amount, _, cap in dims:
                b[name] = min(cap, b[name] + amount)

    def levels(self, key: str, dims: Sequence[BucketDim]) -> dict[str, float]:
        with self._lock:
            b = self._refilled(key, dims, self.clock())
            return {name: b[name] for name, _, _, _ in dims}

    # -- events -----------------------------------------------------------------------------
    def push_event(self, key: str, event: Mapping[str, Any], keep: int = 100) -> None:
        with self._lock:
            items = self._events.setdefault(key, [])
            items.insert(0, dict(event))
            del items[keep:]

    def events(self, key: str, n: int = 20) -> list[dict[str, Any]]:
        return list(self._events.get(key, [])[:n])

    # -- budget reservations ------------------------------------------------------------------
    def reserve(
        self, key: str, field: str, amount: float, limit: float, ttl_s: float, rid: str
    ) -> tuple[bool, float, float]:
        """Hold ``amount`` against ``limit`` if what was spent plus what is held plus it fits;
        returns (held it, spent, held). Expired holds (their process died) are released
        first. Spent is ``key``'s counter ``spent|field``, held ``held|field``."""
        with self._lock:
            now = self.clock()
            self._expire_holds(key, now)
            c = self._counters.setdefault(key, {})
            spent, held = c.get("spent|" + field, 0.0), c.get("held|" + field, 0.0)
            if spent + held + amount > limit + _USD_EPSILON:
                return False, spent, held
            c["held|" + field] = held + amount
            self._holds.setdefault(key, {})[f"{field}|{rid}"] = (amount, now + ttl_s)
            return True, spent, held + amount

    def settle(self, key: str, field: str, rid: str, cost: float, final: bool = True) -> None:
        """Add ``cost`` to what was spent and release as much of the hold; ``final`` releases
        the rest of it (a tool loop settles each step, then the end)."""
        with self._lock:
            c = self._counters.setdefault(key, {})
            c["spent|" + field] = c.get("spent|" + field, 0.0) + cost
            holds = self._holds.get(key, {})
            member = f"{field}|{rid}"
            hold = holds.get(member)
            if hold is None:
                return
            amount, expires = hold
            release = amount if final else min(amount, max(cost, 0.0))
            c["held|" + field] = max(0.0, c.get("held|" + field, 0.0) - release)
            if final or release >= amount:
                holds.pop(member, None)
            else:
                holds[member] = (amount - release, expires)

    def spend(self, key: str, field: str) -> tuple[float, float]:
        """(spent, held) of ``field`` in ``key``."""
        with self._lock:
            self._expire_holds(key, self.clock())
            c = self._counters.get(key) or {}
            return c.get("spent|" + field, 0.0), c.get("held|" + field, 0.0)

    def _expire_holds(self, key: str, now: float) -> None:
        holds = self._holds.get(key)
        if not holds:
            return
        c = self._counters.setdefault(key, {})
        for member, (amount, expires) in list(holds.items()):
            if expires <= now:
                field = member.rpartition("|")[0]
                c["held|" + field] = max(0.0, c.get("held|" + field, 0.0) - amount)
                del holds[member]

    def close(self) -> None:
        return None


# ================================================================================ redis

_TAKE = """
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local mode = ARGV[3]
local ttl = tonumber(ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[1], 't') or ARGV[1])
local dt = math.max(0, now - last)
local lv = {}
local ok = 1
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local name = ARGV[base + 1]
  local amount = tonumber(ARGV[base + 2])
  local rate = tonumber(ARGV[base + 3])
  local cap = tonumber(ARGV[base + 4])
  local cur = tonumber(redis.call('HGET', KEYS[1], name) or ARGV[base + 4])
  cur = math.min(cap, cur + dt * rate)
  lv[i] = cur
  if mode == 'take' and cur < math.min(amount, cap) then ok = 0 end
end
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local amount = tonumber(ARGV[base + 2])
  local cap = tonumber(ARGV[base + 4])
  if mode == 'take' and ok == 1 then lv[i] = lv[i] - amount end
  if mode == 'give' then lv[i] = math.min(cap, lv[i] + amount) end
  redis.call('HSET', KEYS[1], ARGV[4 + (i - 1) * 4 + 1], tostring(lv[i]))
end
redis.call('HSET', KEYS[1], 't', tostring(now))
redis.call('EXPIRE', KEYS[1], ttl)
if mode == 'levels' then
  local out = {}
  for i = 1, n do out[i] = tostring(lv[i]) end
  return out
end
return ok
"""


# KEYS: spend hash, holds zset (member -> expiry), hold amounts hash (member -> amount)
# Expired holds are released first: a process that died mid-call gives back what it held.
_EXPIRE = """
local function expire(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, member in ipairs(gone) do
    local amount = tonumber(redis.call('HGET', KEYS[3], member) or '0')
    local field = string.match(member, '^(.*)|[^|]*$')
    redis.call('HINCRBYFLOAT', KEYS[1], 'held|' .. field, -amount)
    redis.call('HDEL', KEYS[3], member)
    redis.call('ZREM', KEYS[2], member)
  end
end
"""

# ARGV: now, field, amount, limit, ttl_s, rid, key_ttl_s -> {ok, spent, held}
_RESERVE = (
    _EXPIRE
    + """
local now = tonumber(ARGV[1])
expire(now)
local field = ARGV[2]
local amount = tonumber(ARGV[3])
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent|' .. field) or '0')
local held = math.max(0, tonumber(redis.call('HGET', KEYS[1], 'held|' .. field) or '0'))
if spent + held + amount > tonumber(ARGV[4]) + 1e-9 then
  return {0, tostring(spent), tostring(held)}
end
local member = field .. '|' .. ARGV[6]
redis.call('HINCRBYFLOAT', KEYS[1], 'held|' .. field, amount)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), member)
redis.call('HSET', KEYS[3], member, tostring(amount))
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[7])) end
return {1, tostring(spent), tostring(held + amount)}
"""
)

# ARGV: now, field, rid, cost, final (1/0), key_ttl_s
_SETTLE = (
    _EXPIRE
    + """
expire(tonumber(ARGV[1]))
local field = ARGV[2]
local member = field .. '|' .. ARGV[3]
local cost = tonumber(ARGV[4])
redis.call('HINCRBYFLOAT', KEYS[1], 'spent|' .. field, cost)
local amount = tonumber(redis.call('HGET', KEYS[3], member) or '-1')
if amount >= 0 then
  local release = amount
  if ARGV[5] ~= '1' then release = math.min(amount, math.max(cost, 0)) end
  redis.call('HINCRBYFLOAT', KEYS[1], 'held|' .. field, -release)
  if ARGV[5] == '1' or release >= amount then
    redis.call('HDEL', KEYS[3], member)
    redis.call('ZREM', KEYS[2], member)
  else
    redis.call('HSET', KEYS[3], member, tostring(amount - release))
  end
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6])) end
return 1
"""
)

# ARGV: now, field -> {spent, held}
_SPEND = (
    _EXPIRE
    + """
expire(tonumber(ARGV[1]))
local spent = redis.call('HGET', KEYS[1], 'spent|' .. ARGV[2]) or '0'
local held = redis.call('HGET', KEYS[1], 'held|' .. ARGV[2]) or '0'
return {spent, held}
"""
)

#: sums of float dollars drift by ~1e-16 per add: a hold that fits to a billionth of a cent fits
_USD_EPSILON = 1e-9

#: budget keys outlive the longest window (a month) by a week
_BUDGET_KEY_TTL_S = str(38 * 86400)


def _bucket_args(now: float, dims: Sequence[BucketDim], mode: str) -> list[Any]:
    # a bucket idles back to full after capacity / rate seconds; keep it at least that long
    ttl = max((cap / rate if rate > 0 else 60.0) for _, _, rate, cap in dims) + 60
    args: list[Any] = [repr(now), len(dims), mode, int(ttl)]
    for name, amount, rate, cap in dims:
        args += [name, repr(float(amount)), repr(float(rate)), repr(float(cap))]
    return args


class RedisState:
    """Shared state in Redis with a local copy; see the module docstring for consistency."""

    shared = True
    #: queued writes kept while Redis is unreachable (about 5 per call); older ones are dropped
    max_pending = 20_000

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "portal",
        refresh_ms: float = 100.0,
        socket_timeout_s: float = 0.25,
        start: bool = True,
    ) -> None:
        import redis

        from portal.config import MAX_REFRESH_MS, MIN_REFRESH_MS

        if not (MIN_REFRESH_MS <= refresh_ms <= MAX_REFRESH_MS):  # also refuses NaN
            from portal.errors import ConfigError

            raise ConfigError(
                f"RedisState: refresh_ms={refresh_ms!r} must be from {MIN_REFRESH_MS:g} to "
                f"{MAX_REFRESH_MS:g} ms; a smaller period spins the state thread on Redis"
            )
        self.url = _redact(url)
        self.prefix = prefix.rstrip(":") + ":"
        self.refresh_s = refresh_ms / 1000.0
        self.clock: Callable[[], float] = time.time
        self.local = MemoryState(self.clock)
        self._url = url
        self._timeout = socket_timeout_s
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            decode_responses=True,
        )
        self._take_script = self._redis.register_script(_TAKE)
        self._reserve_script = self._redis.register_script(_RESERVE)
        self._settle_script = self._redis.register_script(_SETTLE)
        self._spend_script = self._redis.register_script(_SPEND)
        self._aredis: Any = None
        self._aloop: Any = None
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        #: writes dropped because the queue was full while Redis was unreachable
        self.dropped_writes = 0
        self._drop_logged = False
        self._watch_values: set[str] = set()
        self._watch_counters: set[str] = set()
        self._watch_windows: dict[str, float] = {}
        #: recalled keys: when each was last fetched from Redis (least recent first), and
        #: those read since the last cycle (the next cycle refreshes them)
        self._recall_fetched: dict[str, float] = {}
        self._recall_read: set[str] = set()
        self._lock = threading.Lock()
        self._sync_lock = threading.RLock()
        self._down = False
        self._down_logged = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="portal-state-sync", daemon=True)
            self._thread.start()

    # -- health -----------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return not self._down

    def _failed(self, exc: BaseException) -> None:
        if not self._down_logged:
            log.warning(
                "portal: shared routing state at %s is unreachable (%s); routing continues "
                "on this process's local state until it comes back",
                self.url,
                type(exc).__name__,
            )
            self._down_logged = True
        self._down = True

    def _recovered(self) -> None:
        if self._down:
            log.info("portal: shared routing state at %s is reachable again", self.url)
        self._down = False
        self._drop_logged = False
        self._down_logged = False

    def _k(self, key: str) -> str:
        return self.prefix + key

    # -- values (cached reads, queued writes) ------------------------------------------------
    def get(self, key: str) -> Any:
        if key not in self._watch_values:
            with self._lock:
                self._watch_values.add(key)
            self._first_read()
        return self.local.get(key)

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        self.local.set(key, value, ttl_s)
        self._queue("set", key, value, ttl_s)

    def delete(self, key: str) -> None:
        self.local.delete(key)
        self._queue("delete", key)

    def remember(self, key: str, value: Any, ttl_s: float) -> None:
        self.local.remember(key, value, ttl_s)
        self._queue("remember", key, value, ttl_s)

    def recall(self, key: str) -> Any:
        """The fleet's value: from the local copy, which the next cycle refreshes for the
        keys read in this one; a key not fetched for `RECALL_STALE_S` (or never) is read
        from Redis at once (one ``GET``)."""
        now = self.clock()
        with self._lock:
            fetched = self._recall_fetched.get(key)
            stale = fetched is None or now - fetched > RECALL_STALE_S
            if not stale:
                self._recall_read.add(key)
        if stale and not self._down:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.get(self._k(key))
                pipe.pttl(self._k(key))
                raw, pttl = pipe.execute()
            except Exception as exc:
                self._failed(exc)
            else:
                with self._lock:
                    self._recall_fetched.pop(key, None)
                    self._recall_fetched[key] = now
                    while len(self._recall_fetched) > MAX_RECALLED:
                        self._recall_fetched.pop(next(iter(self._recall_fetched)), None)
                    if raw is not None and pttl is not None and pttl > 0:
                        self.local._remembered.pop(key, None)
                        self.local._remembered[key] = (json.loads(raw), now + pttl / 1000.0)
                    else:
                        self.local._remembered.pop(key, None)
        return self.local.recall(key)

    def claim(self, key: str, ttl_s: float) -> bool:
        if self._down:
            return self.local.claim(key, ttl_s)
        try:
            got = bool(self._redis.set(self._k(key), "1", nx=True, px=max(1, int(ttl_s * 1000))))
        except Exception as exc:
            self._failed(exc)
            return self.local.claim(key, ttl_s)
        if got:
            self.local.set(key, 1, ttl_s)
        return got

    # -- counters -------------------------------------------------------------------------
    def incr(self, key: str, field: str, amount: float = 1.0) -> None:
        self.local.incr(key, field, amount)
        self._queue("incr", key, field, amount)

    def counters(self, key: str) -> dict[str, float]:
        if key not in self._watch_counters:
            with self._lock:
                self._watch_counters.add(key)
            self._first_read()
        return self.local.counters(key)

    def reset(self, key: str) -> None:
        self.local.reset(key)
        self._queue("reset", key)

    def forget(self, key: str) -> None:
        """Stop refreshing ``key``'s counters and drop the local copy; Redis keeps them (its
        own expiry) for other processes. Without this every budget day ever read stayed in
        the refresh pipeline of a long-running process."""
        with self._lock:
            self._watch_counters.discard(key)
            self.local._counters.pop(key, None)

    def hit(self, key: str, fields: Mapping[str, float]) -> None:
        self.local.hit(key, fields)
        self._queue("hit", key, dict(fields), int(self.clock()))

    def window(self, key: str, window_s: float) -> dict[str, float]:
        if self._watch_windows.get(key, 0.0) < window_s:
            with self._lock:
                self._watch_windows[key] = window_s
            self._first_read()
        return self.local.window(key, window_s)

    def _first_read(self) -> None:
        """A key read for the first time in this process: fetch it now (once per key), so a
        fresh process starts from the fleet's view rather than an empty one."""
        if not self._down:
            self.sync()

    # -- buckets (atomic in Redis) -----------------------------------------------------------
    def take(self, key: str, dims: Sequence[BucketDim]) -> bool:
        if self._down:
            return self.local.take(key, dims)
        try:
            ok = self._take_script(
                keys=[self._k(key)], args=_bucket_args(self.clock(), dims, "take")
            )
        except Exception as exc:
            self._failed(exc)
            return self.local.take(key, dims)
        return bool(int(ok))

    async def atake(self, key: str, dims: Sequence[BucketDim]) -> bool:
        if self._down:
            return self.local.take(key, dims)
        client = self._async_client()
        if client is None:  # not on asyncio (trio): run the sync call off the event loop
            import anyio.to_thread

            return await anyio.to_thread.run_sync(self.take, key, dims)
        try:
            ok = await client.evalsha(
                self._take_script.sha, 1, self._k(key), *_bucket_args(self.clock(), dims, "take")
            )
        except Exception as exc:
            if type(exc).__name__ == "NoScriptError":
                try:
                    ok = await client.eval(
                        _TAKE, 1, self._k(key), *_bucket_args(self.clock(), dims, "take")
                    )
                except Exception as exc2:
                    self._failed(exc2)
                    return self.local.take(key, dims)
            else:
                self._failed(exc)
                return self.local.take(key, dims)
        return bool(int(ok))

    def _async_client(self) -> Any:
        try:
            import asyncio

            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if self._aredis is None or self._aloop is not loop:
            import redis.asyncio

            self._aredis = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                decode_responses=True,
            )
            self._aloop = loop
        return self._aredis

    def give(self, key: str, dims: Sequence[BucketDim]) -> None:
        self.local.give(key, dims)
        self._queue("give", key, list(dims), self.clock())

    def levels(self, key: str, dims: Sequence[BucketDim]) -> dict[str, float]:
        if self._down:
            return self.local.levels(key, dims)
        try:
            out = self._take_script(
                keys=[self._k(key)], args=_bucket_args(self.clock(), dims, "levels")
            )
        except Exception as exc:
            self._failed(exc)
            return self.local.levels(key, dims)
        return {d[0]: float(v) for d, v in zip(dims, out, strict=True)}

    # -- events (rare: direct) -----------------------------------------------------------------
    def push_event(self, key: str, event: Mapping[str, Any], keep: int = 100) -> None:
        self.local.push_event(key, event, keep)
        try:
            pipe = self._redis.pipeline()
            pipe.lpush(self._k(key), json.dumps(dict(event), default=str))
            pipe.ltrim(self._k(key), 0, keep - 1)
            pipe.execute()
        except Exception as exc:
            self._failed(exc)

    def events(self, key: str, n: int = 20) -> list[dict[str, Any]]:
        try:
            raw = self._redis.lrange(self._k(key), 0, n - 1)
        except Exception as exc:
            self._failed(exc)
            return self.local.events(key, n)
        return [json.loads(r) for r in raw]

    # -- budget reservations (atomic in Redis; fail closed) ---------------------------------
    def _budget_keys(self, key: str) -> list[str]:
        return [self._k(key), self._k(key + ":holds"), self._k(key + ":amounts")]

    def reserve(
        self, key: str, field: str, amount: float, limit: float, ttl_s: float, rid: str
    ) -> tuple[bool, float, float]:
        """`MemoryState.reserve` across every process sharing this Redis. If Redis cannot
        be reached the hold is refused (raises `StateUnavailable`): a shared budget that
        cannot be checked is not spent."""
        args = [repr(self.clock()), field, repr(float(amount)), repr(float(limit))]
        args += [repr(float(ttl_s)), rid, _BUDGET_KEY_TTL_S]
        try:
            ok, spent, held = self._reserve_script(keys=self._budget_keys(key), args=args)
        except Exception as exc:
            self._failed(exc)
            raise StateUnavailable(self.url, exc) from None
        return bool(int(ok)), float(spent), float(held)

    def settle(self, key: str, field: str, rid: str, cost: float, final: bool = True) -> None:
        args = [repr(self.clock()), field, rid, repr(float(cost)), "1" if final else "0"]
        args.append(_BUDGET_KEY_TTL_S)
        try:
            self._settle_script(keys=self._budget_keys(key), args=args)
        except Exception as exc:
            # the hold expires by its TTL; the spend is retried with the next sync cycle
            self._failed(exc)
            self._queue("settle", key, field, rid, float(cost), final)

    def spend(self, key: str, field: str) -> tuple[float, float]:
        try:
            spent, held = self._spend_script(
                keys=self._budget_keys(key), args=[repr(self.clock()), field]
            )
        except Exception as exc:
            self._failed(exc)
            raise StateUnavailable(self.url, exc) from None
        return float(spent), max(0.0, float(held))

    # -- sync loop --------------------------------------------------------------------------
    def _queue(self, op: str, *args: Any) -> None:
        with self._lock:
            self._pending.append((op, args))
            if len(self._pending) > self.max_pending:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Past `max_pending` queued writes (Redis down for long), the oldest are dropped and
        counted in `dropped_writes`, logged once per outage: memory stays bounded, and the
        local copy (which every write also updates) keeps routing this process. Lock held."""
        excess = len(self._pending) - self.max_pending
        if excess <= 0:
            return
        del self._pending[:excess]
        self.dropped_writes += excess
        if not self._drop_logged:
            self._drop_logged = True
            log.warning(
                "portal: shared routing state at %s is unreachable and %d writes are queued; "
                "dropping the oldest from now on (counted in RedisState.dropped_writes) until "
                "it comes back",
                self.url,
                self.max_pending,
            )

    def sync(self) -> bool:
        """Flush queued writes and refresh the local copy of watched keys: one pipeline.
        Runs every ``refresh_ms`` on the background thread; tests call it directly."""
        with self._sync_lock:
            return self._sync()

    def _sync(self) -> bool:
        with self._lock:
            batch, self._pending = self._pending, []
            values = sorted(self._watch_values)
            counters = sorted(self._watch_counters)
            windows = dict(self._watch_windows)
            recalled = sorted(self._recall_read)
            self._recall_read.clear()
        try:
            pipe = self._redis.pipeline(transaction=False)
            for op, args in batch:
                self._write(pipe, op, args)
            writes = len(pipe.command_stack)
            for key in values:
                pipe.get(self._k(key))
                pipe.pttl(self._k(key))
            for key in counters:
                pipe.hgetall(self._k(key))
            for key in windows:
                pipe.hgetall(self._k("w:" + key))
            for key in recalled:
                pipe.get(self._k(key))
                pipe.pttl(self._k(key))
            replies = pipe.execute()
        except Exception as exc:
            with self._lock:  # keep the writes for the next cycle, within the bound
                self._pending[:0] = batch
                self._drop_oldest()
            self._failed(exc)
            return False
        self._recovered()
        self._apply(replies[writes:], values, counters, windows, recalled)
        return True

    def _write(self, pipe: Any, op: str, args: tuple[Any, ...]) -> None:
        if op == "set":
            key, value, ttl = args
            data = json.dumps(value, default=str)
            if ttl is None:
                pipe.set(self._k(key), data)
            else:
                pipe.set(self._k(key), data, px=max(1, int(ttl * 1000)))
        elif op == "delete":
            pipe.delete(self._k(args[0]))
        elif op == "remember":
            key, value, ttl = args
            pipe.set(self._k(key), json.dumps(value, default=str), px=max(1, int(ttl * 1000)))
        elif op == "incr":
            key, field, amount = args
            pipe.hincrbyfloat(self._k(key), field, amount)
            pipe.expire(self._k(key), 7 * 86400)
        elif op == "reset":
            pipe.delete(self._k(args[0]))
        elif op == "hit":
            key, fields, slot = args
            wkey = self._k("w:" + key)
            for f, v in fields.items():
                pipe.hincrbyfloat(wkey, f"{slot}|{f}", v)
            pipe.expire(wkey, int(MAX_WINDOW_S) + 60)
        elif op == "give":
            key, dims, now = args
            self._take_script(
                keys=[self._k(key)], args=_bucket_args(now, dims, "give"), client=pipe
            )
        elif op == "settle":
            key, field, rid, cost, final = args
            settle_args = [repr(self.clock()), field, rid, repr(cost), "1" if final else "0"]
            self._settle_script(
                keys=self._budget_keys(key),
                args=[*settle_args, _BUDGET_KEY_TTL_S],
                client=pipe,
            )

    def _apply(
        self,
        replies: list[Any],
        values: list[str],
        counters: list[str],
        windows: dict[str, float],
        recalled: Sequence[str] = (),
    ) -> None:
        """Replace the local copy of watched keys with Redis's, then replay writes queued
        since the pipeline left, so none of this process's own updates vanish."""
        it = iter(replies)
        fresh = MemoryState(self.clock)
        now = self.clock()
        for key in values:
            raw, pttl = next(it), next(it)
            if raw is not None:
                ttl = None if pttl is None or pttl < 0 else pttl / 1000.0
                fresh._values[key] = (json.loads(raw), None if ttl is None else now + ttl)
        for key in counters:
            h = next(it) or {}
            fresh._counters[key] = {f: float(v) for f, v in h.items()}
        stale: dict[str, list[str]] = {}
        for key in windows:
            h = next(it) or {}
            slots: dict[int, dict[str, float]] = {}
            for name, v in h.items():
                s, _, f = name.partition("|")
                slot = int(s)
                if slot <= now - MAX_WINDOW_S:
                    stale.setdefault(key, []).append(name)
                    continue
                slots.setdefault(slot, {})[f] = float(v)
            fresh._windows[key] = slots
        for key in recalled:
            raw, pttl = next(it), next(it)
            if raw is not None and pttl is not None and pttl > 0:
                fresh._remembered[key] = (json.loads(raw), now + pttl / 1000.0)
        with self._lock:
            pending = list(self._pending)
            loc = self.local
            for key in values:
                if key in fresh._values:
                    loc._values[key] = fresh._values[key]
                else:
                    loc._values.pop(key, None)
            for key in counters:
                loc._counters[key] = fresh._counters.get(key, {})
            for key in windows:
                loc._windows[key] = fresh._windows.get(key, {})
            for key in recalled:
                loc._remembered.pop(key, None)
                if key in fresh._remembered:
                    loc._remembered[key] = fresh._remembered[key]
                if key in self._recall_fetched:
                    self._recall_fetched[key] = now
            for op, args in pending:
                self._replay(op, args)
        if stale:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for key, names in stale.items():
                    pipe.hdel(self._k("w:" + key), *names)
                pipe.execute()
            except Exception as exc:
                self._failed(exc)

    def _replay(self, op: str, args: tuple[Any, ...]) -> None:
        loc = self.local
        if op == "set":
            loc._values[args[0]] = (args[1], None if args[2] is None else self.clock() + args[2])
        elif op == "delete":
            loc._values.pop(args[0], None)
        elif op == "remember":
            loc._remembered.pop(args[0], None)
            loc._remembered[args[0]] = (args[1], self.clock() + args[2])
        elif op == "incr":
            c = loc._counters.setdefault(args[0], {})
            c[args[1]] = c.get(args[1], 0.0) + args[2]
        elif op == "reset":
            loc._counters.pop(args[0], None)
        elif op == "hit":
            key, fields, slot = args
            cur = loc._windows.setdefault(key, {}).setdefault(slot, {})
            for f, v in fields.items():
                cur[f] = cur.get(f, 0.0) + v

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s if not self._down else 2.0):
            self.sync()

    def clear(self) -> None:
        """Delete every key under this state's prefix (tests, `portal` maintenance)."""
        for key in self._redis.scan_iter(match=self.prefix + "*", count=500):
            self._redis.delete(key)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        try:
            self.sync()
        except Exception:
            pass
        self._redis.close()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def open_state(url: str | None, clock: Callable[[], float] | None = None) -> State:
    """``memory`` (or None) → `MemoryState`; ``redis://host:port/db?prefix=p&refresh_ms=100``
    → `RedisState` (portal's own query parameters are removed before redis-py sees the URL)."""
    if url is None or url == "memory":
        return MemoryState(clock or time.time)
    from portal.config import parse_state_url
    from portal.errors import ConfigError

    try:
        parsed = parse_state_url(url)
    except ValueError as exc:
        raise ConfigError(f"[portal] state: {exc}") from None
    clean, prefix, refresh = parsed.url, parsed.prefix, parsed.refresh_ms
    try:
        import redis  # noqa: F401
    except ImportError:
        from portal._extras import install_hint
        from portal.errors import ConfigError

        raise ConfigError(
            "[portal] state is a redis:// URL but redis-py is not installed; "
            f"{install_hint('redis')}"
        ) from None
    return RedisState(clean, prefix=prefix, refresh_ms=refresh)
