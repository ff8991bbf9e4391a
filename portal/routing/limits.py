"""Committed throughput (token buckets per provider) and retry budgets (per target).

Committed throughput: ``[providers.X.throughput] requests_per_min, tokens_per_min``. Each
attempt takes one request and its estimated tokens from the provider's bucket before it is
sent; when the bucket is short the target is skipped and the call overflows to the next one,
instead of queueing behind the vendor's 429s. After the reply the estimate is corrected with
the real usage (an attempt that failed gives its tokens back).

Retry budget: retries on a target may be at most ``retry.budget_ratio`` of its calls over
the last `BUDGET_WINDOW_S` seconds (plus `MIN_RETRIES` per window so a quiet target can still
retry), so an outage does not turn into a retry storm (Finagle's RetryBudget, gRPC's retry
throttling).
"""

from __future__ import annotations

from portal.config import ThroughputConfig
from portal.routing.state import BucketDim, State

__all__ = ["BUDGET_WINDOW_S", "MIN_RETRIES", "Commitments", "RetryBudget"]

BUDGET_WINDOW_S = 10.0
MIN_RETRIES = 3.0


class Commitments:
    """Token buckets per provider, from each provider's ``throughput`` table."""

    def __init__(self, state: State, throughput: dict[str, ThroughputConfig]) -> None:
        self.state = state
        self.throughput = {
            p: t for p, t in throughput.items() if t.requests_per_min or t.tokens_per_min
        }

    def has(self, provider: str) -> bool:
        return provider in self.throughput

    def needs_tokens(self, provider: str) -> bool:
        t = self.throughput.get(provider)
        return t is not None and t.tokens_per_min is not None

    def dims(self, provider: str, tokens: float) -> list[BucketDim]:
        t = self.throughput[provider]
        dims: list[BucketDim] = []
        if t.requests_per_min:
            dims.append(("requests", 1.0, t.requests_per_min / 60.0, t.requests_per_min))
        if t.tokens_per_min:
            dims.append(("tokens", float(tokens), t.tokens_per_min / 60.0, t.tokens_per_min))
        return dims

    @staticmethod
    def key(provider: str) -> str:
        return f"tp:{provider}"

    def correct(self, provider: str, estimated: float, actual: float | None) -> None:
        """Give back (or take more of) the token estimate once the real usage is known;
        ``actual=None`` (the attempt failed, nothing billed) gives the whole estimate back."""
        t = self.throughput.get(provider)
        if t is None or not t.tokens_per_min:
            return
        delta = estimated - (actual or 0.0)
        if delta:
            rate = t.tokens_per_min / 60.0
            self.state.give(self.key(provider), [("tokens", delta, rate, t.tokens_per_min)])

    def levels(self, provider: str) -> dict[str, float]:
        return self.state.levels(self.key(provider), self.dims(provider, 0.0))


class RetryBudget:
    def __init__(self, state: State, window_s: float = BUDGET_WINDOW_S, floor: float = MIN_RETRIES):
        self.state = state
        self.window_s = window_s
        self.floor = floor

    def call(self, target: str) -> None:
        self.state.hit(f"rb:{target}", {"calls": 1.0})

    def allow(self, target: str, ratio: float) -> bool:
        """Spend one retry if the budget has room."""
        w = self.state.window(f"rb:{target}", self.window_s)
        if w.get("retries", 0.0) >= self.floor + ratio * w.get("calls", 0.0):
            return False
        self.state.hit(f"rb:{target}", {"retries": 1.0})
        return True

    def usage(self, target: str) -> tuple[float, float]:
        w = self.state.window(f"rb:{target}", self.window_s)
        return w.get("retries", 0.0), w.get("calls", 0.0)
