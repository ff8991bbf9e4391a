"""What to do after an attempt fails: retry the same target, fail over, or raise. One table.

Retries use exponential backoff with full jitter; a Retry-After from the vendor is honoured up
to a cap, and a Retry-After beyond the cap (or beyond the time left before the deadline) fails
over at once instead of sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InvalidResponse,
    NotFound,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    StreamInterrupted,
)

__all__ = ["Decision", "RetryPolicy", "decide"]

Action = Literal["retry", "failover", "raise"]


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    attempts: int = 2
    base_wait_s: float = 0.2
    max_wait_s: float = 8.0
    retry_after_cap_s: float = 20.0
    failover_on_content_filter: bool = False

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(max_wait, base * 2**(attempt-1))]."""
        ceiling = min(self.max_wait_s, self.base_wait_s * (2 ** (attempt - 1)))
        return (rng or random).uniform(0.0, ceiling)


@dataclass(slots=True, frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    reason: str = ""
    unhealthy: bool = False  # the target itself is broken (bad key, unknown model)


def decide(
    err: ProviderError,
    attempt: int,
    policy: RetryPolicy,
    time_left_s: float | None,
    rng: random.Random | None = None,
) -> Decision:
    """The single table of error → action (docs/routing.md reproduces it)."""
    if isinstance(err, ContextTooLong):
        return Decision("failover", reason="context too long: try a target with a larger window")
    if isinstance(err, ContentFiltered):
        if policy.failover_on_content_filter:
            return Decision("failover", reason="content filtered")
        return Decision("raise", reason="content filtered")
    if isinstance(err, (AuthenticationError, NotFound)):
        # the table: raise, and mark the target unhealthy so later calls skip it
        return Decision("raise", reason=type(err).__name__, unhealthy=True)
    if isinstance(err, BadRequest):
        return Decision("raise", reason="the request itself is invalid")
    if isinstance(err, StreamInterrupted) and err.partial_text:
        return Decision("raise", reason="stream already delivered text")
    retryable = err.retryable or isinstance(
        err, (ProviderTimeout, ProviderConnectionError, RateLimited, InvalidResponse)
    )
    if not retryable:
        return Decision("failover", reason=type(err).__name__)
    if attempt >= policy.attempts:
        return Decision("failover", reason=f"{type(err).__name__} after {attempt} attempt(s)")
    if err.retry_after is not None:
        if err.retry_after > policy.retry_after_cap_s:
            return Decision(
                "failover", reason=f"retry-after {err.retry_after:g}s is over the cap"
            )
        delay = err.retry_after
    else:
        delay = policy.backoff(attempt, rng)
    if time_left_s is not None and delay >= time_left_s:
        return Decision("failover", reason="no time left to wait before the deadline")
    return Decision("retry", delay_s=delay, reason=type(err).__name__)
