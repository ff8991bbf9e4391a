"""Where an adapter keeps the names of the prompt caches it created (Gemini's and Vertex
AI's ``cachedContents``), so a cache is paid for once, not once per process.

An adapter sees a `CacheNames`: ``get`` / ``put`` / ``drop`` the name a prefix key maps
to, and ``claim`` / ``release`` the right to create it (one creation at a time). Adapters
know no routing state, so the store is handed to them from above: a client's engine gives
every adapter one backed by the routing state (``[portal] state``), shared fleet-wide
through Redis. `LocalCacheNames` serves an adapter used on its own (tests, scripts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["CACHE_NAMES_KEPT", "CacheNames", "LocalCacheNames"]

#: names one `LocalCacheNames` keeps at most (the oldest written are forgotten first)
CACHE_NAMES_KEPT = 1000


@runtime_checkable
class CacheNames(Protocol):
    """Prefix key -> the vendor's name of its live cache, and who is creating it."""

    def get(self, key: str) -> str | None:
        """The name while it has time left to serve a request, else None."""
        ...

    def put(self, key: str, name: str, ttl_s: float) -> None:
        """Keep ``name`` for ``ttl_s`` seconds (a little less than the cache's TTL)."""
        ...

    def drop(self, key: str, name: str) -> None:
        """Forget ``name`` (the vendor says it is gone); a newer name is kept."""
        ...

    def claim(self, key: str, ttl_s: float) -> bool:
        """Whether this caller may create the cache now (False: someone else is, for at
        most ``ttl_s``)."""
        ...

    def release(self, key: str) -> None:
        """The creation ended (made or failed): the next caller may claim it."""
        ...


class LocalCacheNames:
    """`CacheNames` in this process only, bounded by `CACHE_NAMES_KEPT`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._names: dict[str, tuple[str, float]] = {}
        self._claims: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        entry = self._names.get(key)
        if entry is None or self.clock() >= entry[1]:
            return None
        return entry[0]

    def put(self, key: str, name: str, ttl_s: float) -> None:
        with self._lock:
            self._names.pop(key, None)
            self._names[key] = (name, self.clock() + ttl_s)
            while len(self._names) > CACHE_NAMES_KEPT:
                self._names.pop(next(iter(self._names)), None)

    def drop(self, key: str, name: str) -> None:
        with self._lock:
            entry = self._names.get(key)
            if entry is not None and entry[0] == name:
                del self._names[key]

    def claim(self, key: str, ttl_s: float) -> bool:
        now = self.clock()
        with self._lock:
            until = self._claims.get(key)
            if until is not None and now < until:
                return False
            self._claims[key] = now + ttl_s
            if len(self._claims) > CACHE_NAMES_KEPT:
                for k in [k for k, u in self._claims.items() if u <= now]:
                    del self._claims[k]
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._claims.pop(key, None)
