"""What to do after an attempt fails: retry the same target, fail over, or raise. One table.

=====================================  ==================================================
error                                  action
=====================================  ==================================================
RateLimited (429), Overloaded (503,    retry on the same target with backoff (tenacity's
529), ServerError (5xx),               ``wait_random_exponential``: full jitter), up to
ProviderTimeout,                       ``retry.attempts`` (tenacity's ``stop_after_attempt``)
ProviderConnectionError,               and the call's deadline (``stop_before_delay``),
InvalidResponse, StreamInterrupted     then fail over. A Retry-After is waited instead of
before any text                        the backoff, up to ``retry_after_cap_s``; beyond the
                                       cap or the deadline: fail over at once
ContextTooLong                         fail over, only to targets with a larger context
                                       window
ContentFiltered                        raise, or fail over with
                                       ``retry.on_content_filter = "failover"``
AuthenticationError (401/403),         raise, and open that target's breaker (the target
NotFound (404)                         is broken, not the request)
BadRequest (400/422)                   raise: the request itself is wrong
StreamInterrupted after text           raise: the caller has seen text; never duplicate
                                       or silently truncate it
any other ProviderError                fail over
=====================================  ==================================================

The retry budget (`portal.routing.limits.RetryBudget`) can still turn a "retry" into a
failover when the target's retries are over their share of its calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tenacity import RetryCallState
from tenacity.stop import stop_after_attempt, stop_base, stop_before_delay
from tenacity.wait import wait_base, wait_random_exponential

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

__all__ = ["Action", "Decision", "RetryPolicy", "decide"]

Action = Literal["retry", "failover", "failover_larger", "raise"]


@dataclass(frozen=True)
class RetryPolicy:
    """A feature's retry settings as tenacity strategy objects (built once per feature)."""

    attempts: int = 2
    base_wait_s: float = 0.2
    max_wait_s: float = 8.0
    retry_after_cap_s: float = 20.0
    budget_ratio: float = 0.2
    on_content_filter: Literal["raise", "failover"] = "raise"
    wait: wait_base = field(init=False, compare=False, repr=False)
    stop: stop_base = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "wait", wait_random_exponential(multiplier=self.base_wait_s, max=self.max_wait_s)
        )
        object.__setattr__(self, "stop", stop_after_attempt(self.attempts))


@dataclass(slots=True, frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    reason: str = ""
    unhealthy: bool = False  # the target itself is broken (bad key, unknown model)


def _state(attempt: int, elapsed_s: float, upcoming_sleep: float) -> RetryCallState:
    """A tenacity call state without tenacity's run loop: the flow is the loop."""
    rs = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    rs.attempt_number = attempt
    rs.start_time = 0.0
    rs.outcome_timestamp = elapsed_s
    rs.upcoming_sleep = upcoming_sleep
    return rs


#: the code of a `ProviderTimeout` for an attempt with no first token in time: it moves on to
#: the next target (the same target is as slow again)
FIRST_TOKEN_TIMEOUT = "first_token_timeout"


def decide(
    err: ProviderError,
    attempt: int,
    policy: RetryPolicy,
    time_left_s: float | None,
    elapsed_s: float = 0.0,
    rng: Any = None,
) -> Decision:
    """The single table of error → action (the module docstring and docs/routing.md show it).

    ``attempt`` counts attempts on this target (1 = the first); ``elapsed_s`` is the time
    since the call started and ``time_left_s`` the time to its deadline (None: no deadline).
    """
    if isinstance(err, ContextTooLong):
        return Decision("failover_larger", reason="context too long: needs a larger window")
    if isinstance(err, ContentFiltered):
        if policy.on_content_filter == "failover":
            return Decision("failover", reason="content filtered (on_content_filter = failover)")
        return Decision("raise", reason="content filtered")
    if isinstance(err, (AuthenticationError, NotFound)):
        return Decision("raise", reason=type(err).__name__, unhealthy=True)
    if isinstance(err, BadRequest):
        return Decision("raise", reason="the request itself is invalid")
    if isinstance(err, StreamInterrupted) and err.partial_text:
        return Decision("raise", reason="the stream already delivered text")
    if err.code == FIRST_TOKEN_TIMEOUT:
        return Decision("failover", reason="no first token within first_token_timeout_s")
    retryable = err.retryable or isinstance(
        err, (ProviderTimeout, ProviderConnectionError, RateLimited, InvalidResponse)
    )
    if not retryable:
        return Decision("failover", reason=type(err).__name__)
    name = type(err).__name__
    if policy.stop(_state(attempt, elapsed_s, 0.0)):
        return Decision("failover", reason=f"{name} after {attempt} attempt(s)")
    if err.retry_after is not None:
        if err.retry_after > policy.retry_after_cap_s:
            return Decision(
                "failover",
                reason=f"Retry-After {err.retry_after:g}s is over the cap of "
                f"{policy.retry_after_cap_s:g}s",
            )
        delay = float(err.retry_after)
    else:
        delay = policy.wait(_state(attempt, elapsed_s, 0.0))
    if time_left_s is not None:
        deadline = stop_before_delay(elapsed_s + time_left_s)
        if deadline(_state(attempt, elapsed_s, delay)):
            return Decision(
                "failover", reason=f"waiting {delay:.2f}s would pass the call's deadline"
            )
    return Decision("retry", delay_s=delay, reason=name)
