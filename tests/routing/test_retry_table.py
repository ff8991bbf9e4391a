"""The error → action table (portal.routing.retry.decide), one row per case."""

from __future__ import annotations

import random

import pytest

from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InvalidResponse,
    NotFound,
    Overloaded,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamInterrupted,
)
from portal.routing.retry import RetryPolicy, decide

POLICY = RetryPolicy(attempts=3, base_wait_s=0.5, max_wait_s=4.0, retry_after_cap_s=20.0)


@pytest.mark.parametrize(
    ("err", "action"),
    [
        (RateLimited("429", status=429), "retry"),
        (Overloaded("503", status=503), "retry"),
        (Overloaded("529", status=529), "retry"),
        (ServerError("500", status=500), "retry"),
        (ProviderTimeout("slow"), "retry"),
        (ProviderConnectionError("refused"), "retry"),
        (InvalidResponse("garbled"), "retry"),
        (StreamInterrupted("cut before text"), "retry"),
        (StreamInterrupted("cut after text", partial_text="Hel"), "raise"),
        (ContextTooLong("too long", status=400), "failover_larger"),
        (ContentFiltered("filtered"), "raise"),
        (AuthenticationError("401", status=401), "raise"),
        (NotFound("404", status=404), "raise"),
        (BadRequest("400", status=400), "raise"),
    ],
)
def test_first_failure(err: ProviderError, action: str) -> None:
    assert decide(err, 1, POLICY, None).action == action


def test_401_and_404_mark_the_target_unhealthy_but_400_does_not() -> None:
    assert decide(AuthenticationError("x", status=401), 1, POLICY, None).unhealthy
    assert decide(NotFound("x", status=404), 1, POLICY, None).unhealthy
    assert not decide(BadRequest("x", status=400), 1, POLICY, None).unhealthy


def test_content_filter_can_fail_over_by_config() -> None:
    policy = RetryPolicy(on_content_filter="failover")
    assert decide(ContentFiltered("x"), 1, policy, None).action == "failover"


def test_attempts_then_failover() -> None:
    err = Overloaded("503", status=503)
    assert decide(err, 2, POLICY, None).action == "retry"
    d = decide(err, 3, POLICY, None)
    assert d.action == "failover" and "3 attempt" in d.reason


def test_backoff_is_full_jitter_exponential_capped() -> None:
    random.seed(7)
    err = ServerError("500", status=500)
    policy = RetryPolicy(attempts=10, base_wait_s=0.5, max_wait_s=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 4.0)]:
        delays = [decide(err, attempt, policy, None).delay_s for _ in range(300)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # the window really widens (not a fixed wait)


@pytest.mark.parametrize(
    ("retry_after", "action", "delay"),
    [(1.0, "retry", 1.0), (20.0, "retry", 20.0), (20.5, "failover", 0.0), (120.0, "failover", 0.0)],
)
def test_retry_after_is_honoured_up_to_the_cap(
    retry_after: float, action: str, delay: float
) -> None:
    d = decide(RateLimited("429", status=429, retry_after=retry_after), 1, POLICY, None)
    assert (d.action, d.delay_s) == (action, delay)


def test_a_wait_past_the_deadline_fails_over() -> None:
    err = RateLimited("429", status=429, retry_after=3.0)
    assert decide(err, 1, POLICY, time_left_s=5.0, elapsed_s=1.0).action == "retry"
    d = decide(err, 1, POLICY, time_left_s=2.0, elapsed_s=1.0)
    assert d.action == "failover" and "deadline" in d.reason
