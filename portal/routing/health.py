"""Target health as the router sees it: a circuit breaker per target, in memory.

Opens after ``consecutive_failures`` failures in a row, stays open for ``cooldown_s``, then
lets one probe through (half-open); a success closes it. Targets that answered 401/404 are
marked unhealthy for the cooldown too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Breaker", "Health"]


@dataclass(slots=True)
class Breaker:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Health:
    def __init__(
        self,
        consecutive_failures: int = 5,
        cooldown_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = consecutive_failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()

    def allow(self, target: str) -> bool:
        b = self._breakers.get(target)
        if b is None or b.opened_at is None:
            return True
        with self._lock:
            if self.clock() - b.opened_at >= self.cooldown_s and not b.probing:
                b.probing = True  # half-open: one probe
                return True
            return False

    def success(self, target: str) -> None:
        b = self._breakers.get(target)
        if b is not None and (b.failures or b.opened_at is not None):
            with self._lock:
                b.failures = 0
                b.opened_at = None
                b.probing = False

    def failure(self, target: str) -> None:
        with self._lock:
            b = self._breakers.setdefault(target, Breaker())
            b.failures += 1
            if b.probing or b.failures >= self.threshold:
                b.opened_at = self.clock()
                b.probing = False

    def trip(self, target: str) -> None:
        with self._lock:
            b = self._breakers.setdefault(target, Breaker())
            b.opened_at = self.clock()
            b.probing = False

    def state(self, target: str) -> str:
        b = self._breakers.get(target)
        if b is None or b.opened_at is None:
            return "closed"
        return "half-open" if b.probing else "open"
