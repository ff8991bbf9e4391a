"""Rolling latency per target in this process: an EWMA for ``fastest`` and a p50/p95 over the
last `SAMPLES` calls for ``cheapest`` within an SLA and for hedging after the p95.

Latency is observed locally, never shared: each process ranks targets by what it sees.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["SAMPLES", "LatencyStats"]

SAMPLES = 256


class _Series:
    __slots__ = ("ewma", "samples", "since_sort", "sorted_cache")

    def __init__(self) -> None:
        self.ewma: float | None = None
        self.samples: deque[float] = deque(maxlen=SAMPLES)
        self.sorted_cache: list[float] = []
        self.since_sort = 0


class LatencyStats:
    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()

    def observe(self, target: str, latency_ms: float) -> None:
        with self._lock:
            s = self._series.get(target)
            if s is None:
                s = self._series[target] = _Series()
            s.ewma = latency_ms if s.ewma is None else s.ewma + self.alpha * (latency_ms - s.ewma)
            s.samples.append(latency_ms)
            s.since_sort += 1

    def ewma(self, target: str) -> float | None:
        s = self._series.get(target)
        return None if s is None else s.ewma

    def quantile(self, target: str, q: float) -> float | None:
        s = self._series.get(target)
        if s is None or not s.samples:
            return None
        # re-sort at most every 16 samples: the quantile moves slowly
        if s.since_sort >= 16 or not s.sorted_cache:
            with self._lock:
                s.sorted_cache = sorted(s.samples)
                s.since_sort = 0
        data = s.sorted_cache
        return data[min(len(data) - 1, int(q * len(data)))]

    def count(self, target: str) -> int:
        s = self._series.get(target)
        return 0 if s is None else len(s.samples)
