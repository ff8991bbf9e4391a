"""Sticky canary: split, stickiness across ramp steps, promote/rollback through State, the
guard's automatic rollback and the automatic ramp."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from portal.config import load_config
from portal.errors import ConfigError
from portal.routing.canary import BUCKETS, CanaryControl, bucket, in_canary, parse_duration
from portal.routing.router import AdapterPool, Router
from portal.routing.state import MemoryState

from .conftest import FakeClock, config, faulty, sim_provider

KEYS = [f"user-{i}" for i in range(20_000)]


def canary_cfg(**canary: Any) -> dict[str, Any]:
    return config(
        {"a": sim_provider(), "c": sim_provider()},
        {"f": {"primary": "a:m", "canary": {"target": "c:new", **canary}}},
    )


@pytest.mark.parametrize("percent", [1, 5, 25, 50])
def test_split_is_within_half_a_point_over_20000_keys(percent: float) -> None:
    share = sum(in_canary("f", "c:new", k, percent) for k in KEYS) / len(KEYS)
    assert abs(share - percent / 100) <= 0.005


def test_assignment_is_sticky_across_ramp_steps() -> None:
    steps = [1, 5, 25, 50, 100]
    members = [{k for k in KEYS if in_canary("f", "c:new", k, p)} for p in steps]
    for smaller, larger in itertools.pairwise(members):
        assert smaller <= larger  # in at 5% means in at 25%
    assert len(members[-1]) == len(KEYS)


def test_assignment_is_a_pure_function_of_feature_target_and_key() -> None:
    # the same in every process: crc32 of the triple, not Python's salted hash()
    assert bucket("f", "c:new", "user-1") == bucket("f", "c:new", "user-1")
    assert 0 <= bucket("f", "c:new", "user-1") < BUCKETS
    other = [bucket("g", "c:new", k) for k in KEYS[:200]]
    assert other != [bucket("f", "c:new", k) for k in KEYS[:200]]


def test_router_sends_canary_keys_to_the_canary_first() -> None:
    cfg = load_config(canary_cfg(percent=50))
    router = Router(cfg, AdapterPool(cfg), MemoryState())
    for key in KEYS[:200]:
        route = router.route("f", key, None)
        expect = in_canary("f", "c:new", key, 50)
        assert (route.arm == "canary") == expect
        ids = [t.id for t in route.targets]
        assert ids == (["c:new", "a:m"] if expect else ["a:m"])


def test_promote_walks_the_ramp_and_rollback_sets_zero() -> None:
    cfg = load_config(canary_cfg(percent=1, ramp=[1, 5, 25]))
    state = MemoryState()
    control = CanaryControl(cfg, state)
    router = Router(cfg, AdapterPool(cfg), state, control)
    in_at_1 = {k for k in KEYS[:5000] if router.route("f", k, None).arm == "canary"}
    assert control.promote("f")["percent"] == 5
    in_at_5 = {k for k in KEYS[:5000] if router.route("f", k, None).arm == "canary"}
    assert in_at_1 < in_at_5
    assert control.promote("f")["percent"] == 25
    with pytest.raises(ConfigError, match="last ramp step"):
        control.promote("f")
    control.rollback("f", "bad answers")
    assert all(router.route("f", k, None).arm == "baseline" for k in KEYS[:2000])
    events = state.events("canary:f:events")
    assert [e["event"] for e in events] == ["rollback", "promote", "promote"]
    assert events[0]["reason"] == "bad answers"


def test_guard_rolls_back_a_canary_with_more_errors(make: Any, caplog: Any) -> None:
    cfg = canary_cfg(percent=50, guard={"min_calls": 20, "max_error_rate_delta": 0.05})
    c = faulty("c", Fault_flaky())
    r = make(cfg, {"c": c})
    with caplog.at_level("WARNING", logger="portal.routing"):
        for key in KEYS[:300]:
            r.chat(feature="f", key=key)
    control = r.control.canary
    assert control.live("f")["percent"] == 0
    assert "guard" in control.live("f")["reason"]
    assert any("rolled back" in rec.getMessage() for rec in caplog.records)
    # after the rollback, canary keys are served by the baseline without touching c
    before = c.requests
    for key in KEYS[300:400]:
        assert r.chat(feature="f", key=key).arm == "baseline"
    assert c.requests == before


def Fault_flaky() -> Any:
    from portal.stress.faults import Fault

    return Fault("flaky", status=500, rate=0.5)


def test_guard_rolls_back_on_p95_ratio(clock: FakeClock) -> None:
    cfg = load_config(canary_cfg(percent=10, guard={"min_calls": 50, "max_p95_ratio": 1.25}))
    control = CanaryControl(cfg, MemoryState(clock), check_every=1)
    # replies are judged against 1.25 x the baseline's p95 once the baseline has 400
    for i in range(400):
        control.observe("f", "baseline", True, 100.0 + i % 10, 0.001)
    for i in range(49):
        control.observe("f", "baseline", True, 100.0 + i % 10, 0.001)
        control.observe("f", "canary", True, 200.0 + i % 10, 0.001)
    assert control.live("f")["percent"] == 10  # 49 canary calls: not enough to judge
    control.observe("f", "canary", True, 200.0, 0.001)
    assert control.live("f")["percent"] == 0
    assert "p95" in control.live("f")["reason"]


def test_healthy_canary_is_not_rolled_back(clock: FakeClock) -> None:
    cfg = load_config(canary_cfg(percent=10, guard={"min_calls": 50}))
    control = CanaryControl(cfg, MemoryState(clock), check_every=1)
    for i in range(100):
        control.observe("f", "baseline", i % 50 != 0, 100.0, None)
        control.observe("f", "canary", i % 50 != 0, 105.0, None)
    assert control.live("f")["percent"] == 10
    assert control.verdict("f") is None


def test_ramp_every_promotes_while_the_guard_is_healthy(clock: FakeClock) -> None:
    cfg = load_config(
        canary_cfg(
            percent=1,
            ramp=[1, 5, 25],
            ramp_every="1h",
            guard={"min_calls": 10, "metrics": ["p95"]},
        )
    )
    control = CanaryControl(cfg, MemoryState(clock), check_every=1)

    def traffic() -> None:
        # promotion needs each metric shown within its allowed difference: a p95 needs a
        # few hundred calls per arm for that
        for _ in range(300):
            control.observe("f", "baseline", True, 100.0, None)
            control.observe("f", "canary", True, 100.0, None)

    traffic()
    assert control.live("f")["percent"] == 1  # the ramp clock starts now
    clock.advance(1800)
    traffic()
    assert control.live("f")["percent"] == 1  # not an hour yet
    clock.advance(1801)
    traffic()
    assert control.live("f")["percent"] == 5
    assert control.arms("f")[1].calls < 300  # the new step is judged on its own calls only
    traffic()
    assert control.live("f")["percent"] == 5  # healthy, but not an hour on this step yet
    clock.advance(3601)
    traffic()
    assert control.live("f")["percent"] == 25


def test_a_new_step_forgets_the_last_steps_guard_counters(clock: FakeClock) -> None:
    """Each step is judged on its own calls; a canary ramped for weeks keeps two counters."""
    cfg = load_config(canary_cfg(percent=1, ramp=[1, 5, 25]))
    state = MemoryState(clock)
    control = CanaryControl(cfg, state, check_every=1000)
    for arm in ("baseline", "canary"):
        control.observe("f", arm, True, 100.0, None)
    assert sorted(state._counters) == ["guard:f:0:baseline", "guard:f:0:canary"]
    control.promote("f")
    control.observe("f", "canary", True, 100.0, None)
    assert sorted(state._counters) == ["guard:f:1:canary"]
    assert control.arms("f")[1].calls == 1


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1d", 86400), ("250ms", 0.25)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="30m"):
        parse_duration("soon")
