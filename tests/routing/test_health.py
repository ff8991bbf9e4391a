"""Circuit breakers, committed-throughput overflow and retry budgets, on injected time."""

from __future__ import annotations

from typing import Any

import pytest

from portal.errors import AllTargetsFailed
from portal.routing.breaker import Breakers
from portal.routing.limits import MIN_RETRIES, RetryBudget
from portal.routing.state import MemoryState
from portal.stress.faults import Fault

from .conftest import FakeClock, config, faulty, sim_provider


def breaker_cfg(**breaker: Any) -> dict[str, Any]:
    return config(
        {"a": {**sim_provider(), "breaker": breaker}, "b": sim_provider()},
        {"f": {"primary": "a:m", "fallbacks": ["b:m"], "retry": {"attempts": 1}}},
    )


def test_breaker_opens_skips_and_recovers_through_a_probe(make: Any, clock: FakeClock) -> None:
    a = faulty("a", Fault("outage", status=503))
    r = make(breaker_cfg(consecutive_failures=3, cooldown_s=30), {"a": a}, MemoryState(clock))
    for _ in range(3):
        assert r.chat(feature="f").target == "b:m"
    assert a.requests == 3
    assert r.control.breakers.status("a:m") == "open"
    # open: a is skipped without a call
    for _ in range(5):
        resp = r.chat(feature="f")
        assert [x.target for x in resp.attempts] == ["b:m"]
    assert a.requests == 3
    # after the cooldown one probe goes through; a failed probe re-opens it
    clock.advance(30)
    assert r.control.breakers.status("a:m") == "half-open"
    r.chat(feature="f")
    assert a.requests == 4
    assert r.control.breakers.status("a:m") == "open"
    # a recovers: the next probe closes the breaker and traffic returns
    a.set_faults([])
    clock.advance(30)
    assert r.chat(feature="f").target == "a:m"
    assert r.control.breakers.status("a:m") == "closed"
    assert r.chat(feature="f").target == "a:m"


def test_breaker_opens_on_failure_rate_with_min_calls(clock: FakeClock) -> None:
    b = Breakers(MemoryState(clock))
    from portal.config import BreakerConfig

    b._configs["t"] = BreakerConfig(
        consecutive_failures=100, failure_rate=0.5, window_s=10, min_calls=10, cooldown_s=5
    )
    for _ in range(4):  # 4 failures, alternating: never 2 in a row
        b.failure("t")
        b.success("t")
    assert b.status("t") == "closed"  # 8 calls < min_calls
    b.failure("t")
    assert b.status("t") == "closed"  # 9 calls
    b.failure("t")  # 10 calls, 6 failures: 60% >= 50%
    assert b.status("t") == "open"
    clock.advance(5)
    assert b.allow("t") is True  # the probe
    assert b.allow("t") is False  # only one probe at a time
    b.success("t")
    assert b.status("t") == "closed"


def test_breaker_window_forgets_old_failures(clock: FakeClock) -> None:
    from portal.config import BreakerConfig

    b = Breakers(MemoryState(clock))
    b._configs["t"] = BreakerConfig(
        consecutive_failures=100, failure_rate=0.5, window_s=10, min_calls=4, cooldown_s=5
    )
    b.failure("t")
    b.failure("t")
    b.success("t")
    clock.advance(11)  # those three fell out of the window
    b.success("t")
    b.failure("t")
    b.success("t")
    b.success("t")
    assert b.status("t") == "closed"


def test_all_breakers_open_tries_the_least_recently_failed(make: Any, clock: FakeClock) -> None:
    cfg = config(
        {
            "a": {**sim_provider(), "breaker": {"consecutive_failures": 1, "cooldown_s": 60}},
            "b": {**sim_provider(), "breaker": {"consecutive_failures": 1, "cooldown_s": 60}},
        },
        {"f": {"primary": "a:m", "fallbacks": ["b:m"], "retry": {"attempts": 1}}},
    )
    a = faulty("a", Fault("outage", status=503, first=1))
    b = faulty("b", Fault("outage", status=503, first=1))
    r = make(cfg, {"a": a, "b": b}, MemoryState(clock))
    with pytest.raises(AllTargetsFailed):
        r.chat(feature="f")  # a fails at t, b fails at t+1 (clock moved below)
    assert r.control.breakers.status("a:m") == "open"
    # make b the more recent failure
    r.control.breakers.state.set("br:b:m:last_failure", clock() + 1)
    clock.advance(2)
    resp = r.chat(feature="f")
    assert [x.target for x in resp.attempts] == ["a:m"]  # a failed longest ago
    assert resp.target == "a:m"


def test_overflow_when_the_commitment_is_used_up(make: Any, clock: FakeClock) -> None:
    cfg = config(
        {"a": {**sim_provider(), "throughput": {"requests_per_min": 3}}, "b": sim_provider()},
        {"f": {"primary": "a:m", "fallbacks": ["b:m"]}},
    )
    a = faulty("a")
    r = make(cfg, {"a": a}, MemoryState(clock))
    targets = [r.chat(feature="f").target for _ in range(5)]
    assert targets == ["a:m", "a:m", "a:m", "b:m", "b:m"]
    assert a.requests == 3  # no request queued behind a 429
    clock.advance(20)  # 3/min refills one request every 20 s
    assert r.chat(feature="f").target == "a:m"
    assert r.chat(feature="f").target == "b:m"


def test_token_commitment_is_estimated_then_corrected(make: Any, clock: FakeClock) -> None:
    cfg = config(
        {
            "a": {**sim_provider(output_tokens=20), "throughput": {"tokens_per_min": 10_000}},
            "b": sim_provider(),
        },
        {"f": {"primary": "a:m", "fallbacks": ["b:m"]}},
    )
    r = make(cfg, state=MemoryState(clock))
    resp = r.chat(feature="f", max_tokens=5000)
    assert resp.target == "a:m"
    left = r.control.commitments.levels("a")["tokens"]
    # 5000 max_tokens were reserved up front, then the real usage was charged instead
    assert left == pytest.approx(10_000 - resp.usage.total_tokens)
    # a request whose reservation does not fit overflows
    assert r.chat(feature="f", max_tokens=9_990).target == "b:m"


def test_retry_budget_limits_retries_during_an_outage(
    make: Any, clock: FakeClock, sleeps: list[float]
) -> None:
    cfg = config(
        {
            "a": {**sim_provider(), "breaker": {"consecutive_failures": 1000, "min_calls": 1000}},
            "b": sim_provider(),
        },
        {
            "f": {
                "primary": "a:m",
                "fallbacks": ["b:m"],
                "retry": {"attempts": 5, "budget_ratio": 0.2, "base_wait_s": 0.001},
            }
        },
    )
    a = faulty("a", Fault("outage", status=503))
    r = make(cfg, {"a": a}, MemoryState(clock))
    calls = 50
    for _ in range(calls):
        assert r.chat(feature="f").target == "b:m"
    retries = a.requests - calls
    # without a budget this would be 4 retries per call = 200
    assert retries <= MIN_RETRIES + 0.2 * calls
    assert retries >= 0.2 * calls - 1  # the budget is spent, not ignored


def test_retry_budget_refills_as_the_window_slides(clock: FakeClock) -> None:
    budget = RetryBudget(MemoryState(clock), window_s=10, floor=0)
    for _ in range(10):
        budget.call("t")
    assert budget.allow("t", 0.2) and budget.allow("t", 0.2)
    assert not budget.allow("t", 0.2)
    clock.advance(11)
    for _ in range(5):
        budget.call("t")
    assert budget.allow("t", 0.2)
    assert not budget.allow("t", 0.2)
