"""Slow-vendor ejection as pure bookkeeping: a target slow or burning its error budget in both
windows is shifted away (fleet-wide through the state), keeps an exploration share, and comes
back once its short window recovers. Time is a fake clock; no client, no sleeping."""

from __future__ import annotations

import random
from typing import Any

import pytest

from portal.config import load_config
from portal.errors import ConfigError
from portal.routing.ejection import Ejection, EjectPolicy, judge
from portal.routing.state import MemoryState

from .conftest import config, memory, sim_provider

POLICY = EjectPolicy(slow_ms=1000.0, error_budget=0.01)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(policy: EjectPolicy | None = POLICY, seed: int = 1) -> tuple[Ejection, Clock]:
    clock = Clock()
    ej = Ejection(MemoryState(clock), lambda f: policy, rng=random.Random(seed).random)
    return ej, clock


def drive(
    ej: Ejection, clock: Clock, seconds: float, rps: int, latency_ms: float, failed: bool = False
) -> None:
    for _ in range(int(seconds * rps)):
        clock.t += 1.0 / rps
        ej.observe("f", "a:m", latency_ms, failed)


def test_a_target_slow_in_both_windows_is_ejected_and_comes_back() -> None:
    ej, clock = make()
    drive(ej, clock, 40, 20, 200)  # healthy for longer than the long window
    assert not ej.ejected("f", "a:m")
    drive(ej, clock, 3, 20, 2500)  # slow, but the long window still says fine
    assert not ej.ejected("f", "a:m")
    drive(ej, clock, 8, 20, 2500)  # the long window is now past 25% slow too
    assert ej.ejected("f", "a:m")
    drive(ej, clock, 6, 20, 200)  # recovered: the short window is clean
    assert not ej.ejected("f", "a:m")


def test_failures_over_the_burn_rate_eject_too() -> None:
    ej, clock = make()
    drive(ej, clock, 40, 20, 200)
    for _ in range(20):  # 50% failures: burn rate 50x against a 1% budget
        drive(ej, clock, 0.5, 20, 200)
        drive(ej, clock, 0.5, 20, 200, failed=True)
    assert ej.ejected("f", "a:m")


def test_a_blip_shorter_than_the_long_window_does_not_eject() -> None:
    ej, clock = make()
    drive(ej, clock, 40, 20, 200)
    drive(ej, clock, 4, 20, 2500)
    drive(ej, clock, 10, 20, 200)
    assert not ej.ejected("f", "a:m")


def test_too_few_calls_are_not_judged() -> None:
    verdict = judge(POLICY, {"calls": 5, "slow": 5}, {"calls": 5, "slow": 5})
    assert not verdict.eject and verdict.reason == "too few calls in the short window"


def test_the_verdict_says_why() -> None:
    verdict = judge(POLICY, {"calls": 20, "slow": 10}, {"calls": 100, "slow": 40})
    assert verdict.eject
    assert verdict.reason == (
        "50% of calls over the SLA p95 of 1000 ms (40% over the long window; threshold 25%)"
    )


def test_an_ejected_target_goes_last_but_keeps_its_exploration_share() -> None:
    ej, clock = make()
    ej.state.set("ej:f:a:m:out", clock())
    firsts = [ej.order("f", ["a:m", "b:m"], str)[0] for _ in range(4000)]
    share = firsts.count("a:m") / len(firsts)
    assert 0.04 < share < 0.06  # explore = 5%
    assert ej.order("f", ["a:m"], str) == ["a:m"]  # nothing else: it still serves


def test_the_flag_is_shared_through_the_state() -> None:
    clock = Clock()
    state = MemoryState(clock)
    one = Ejection(state, lambda f: POLICY)
    two = Ejection(state, lambda f: POLICY)
    for _ in range(40 * 20):
        clock.t += 0.05
        one.observe("f", "a:m", 2500, False)
    assert two.ejected("f", "a:m")


def test_features_without_eject_cost_nothing() -> None:
    ej, _clock = make(policy=None)
    ej.observe("f", "a:m", 99999, True)
    assert ej.state.window("ej:f:a:m", 60) == {}
    assert ej.order("f", ["a:m", "b:m"], str) == ["a:m", "b:m"]


@pytest.mark.parametrize(
    ("eject", "message"),
    [
        ({"slow_rate": 0}, "features.f.eject.slow_rate: must be > 0, got 0"),
        ({"slow_rate": 1.5}, "features.f.eject.slow_rate: must be <= 1, got 1.5"),
        ({"explore": 2}, "features.f.eject.explore: must be <= 1, got 2"),
        (
            {"short_window_s": 60},
            "features.f.eject: short_window_s = 60 must be shorter than long_window_s = 30",
        ),
    ],
)
def test_bad_thresholds_name_the_key(eject: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"features": {"f": {"primary": "openai:m", "eject": eject}}})
    assert str(info.value) == f"config: {message}"


def test_the_router_shifts_a_feature_away_from_an_ejected_target(make: Any, clock: Any) -> None:
    """Wired into routing: every attempt is counted for the feature's windows, and an
    ejected primary goes after its fallback (and comes first again once readmitted)."""
    cfg = config(
        {"a": sim_provider(), "b": sim_provider()},
        {
            "f": {
                "primary": "a:m",
                "fallbacks": ["b:m"],
                "sla": {"p95_ms": 1000},
                "eject": {"min_calls": 5},
            }
        },
    )
    r = make(cfg, state=memory(clock))
    r.control.ejection._rng = lambda: 0.99  # never explore in this test
    for _ in range(3):
        assert r.chat(feature="f").target == "a:m"
    assert r.control.state.window("ej:f:a:m", 60)["calls"] == 3
    for _ in range(40 * 4):  # a:m answers, slowly, for 40 s
        clock.advance(0.25)
        r.control.ejection.observe("f", "a:m", 2500.0, False)
    assert r.control.ejection.ejected("f", "a:m")
    assert r.chat(feature="f").target == "b:m"
    for _ in range(10 * 4):
        clock.advance(0.25)
        r.control.ejection.observe("f", "a:m", 100.0, False)
    assert not r.control.ejection.ejected("f", "a:m")
    assert r.chat(feature="f").target == "a:m"


def test_features_without_eject_keep_their_order_and_windows(make: Any) -> None:
    cfg = config({"a": sim_provider(), "b": sim_provider()}, {"f": {"primary": "a:m"}})
    r = make(cfg)
    r.chat(feature="f")
    assert r.control.state.window("ej:f:a:m", 60) == {}


def test_a_hedge_lane_lost_after_the_slow_threshold_counts_as_a_slow_call() -> None:
    """A primary slow enough to lose every hedge ends each attempt as ``hedge_lost``; counted
    as a slow call once it ran past the threshold, it is shifted away instead of being
    hedged (and waited on) forever."""
    ej, clock = make()
    for _ in range(40 * 20):  # 40 s of lost lanes, each cancelled after 1.5 s
        clock.t += 1.0 / 20
        ej.observe_lost("f", "a:m", 1500.0)
    assert ej.ejected("f", "a:m")
    fresh, clock = make()
    for _ in range(40 * 20):  # lost lanes cancelled early say nothing about the target
        clock.t += 1.0 / 20
        fresh.observe_lost("f", "a:m", 300.0)
    assert fresh.state.window("ej:f:a:m", 60).get("calls", 0) == 0
    assert not fresh.ejected("f", "a:m")


def test_routing_counts_a_slow_lost_hedge_lane_for_ejection(make: Any, clock: Any) -> None:
    from portal.contracts.responses import Attempt
    from portal.routing.call import Call

    cfg = config(
        {"a": sim_provider(), "b": sim_provider()},
        {
            "f": {
                "primary": "a:m",
                "fallbacks": ["b:m"],
                "sla": {"p95_ms": 1000},
                "eject": {"min_calls": 5},
                "hedge": {"after_ms": 500},
            }
        },
    )
    r = make(cfg, state=memory(clock))
    control = r.control
    route = control.router.route("f", None, None)
    target = route.targets[0]
    call = Call("chat", route, None)  # type: ignore[arg-type]
    lost = Attempt(target=target.id, outcome="hedge_lost", latency_ms=1500.0, number=1)
    control.attempt_done(call, target, lost, None)
    quick = Attempt(target=target.id, outcome="hedge_lost", latency_ms=200.0, number=1)
    control.attempt_done(call, target, quick, None)
    window = control.state.window("ej:f:a:m", 60)
    assert window["calls"] == 1 and window["slow"] == 1
