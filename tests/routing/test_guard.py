"""The canary guard's statistics: time-uniform bounds, the per-metric tests and the verdicts.

Random data comes from fixed seeds, so every run sees the same numbers."""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any

import pytest

from portal.config import load_config
from portal.routing.canary import CanaryControl
from portal.routing.guard import (
    ArmSample,
    GuardSettings,
    LookSchedule,
    Moments,
    attempt_fields,
    bernoulli_bounds,
    call_fields,
    difference_bounds,
    error_rate_log_e,
    exceedance_threshold,
    excess_share_log_e,
    feedback_fields,
    judge,
    latency_bin,
    mean_bounds,
    quantile_bounds,
)
from portal.routing.state import MemoryState

from .conftest import FakeClock, config, sim_provider

SETTINGS = GuardSettings(metrics=("errors", "p95", "p99", "cost"), min_calls=50)


def _lognormal(rng: random.Random, p50: float, p99: float) -> float:
    sigma = (math.log(p99) - math.log(p50)) / 2.326
    return rng.lognormvariate(math.log(p50), sigma)


def _arm(
    rng: random.Random,
    n: int,
    error_rate: float = 0.01,
    p50: float = 200.0,
    p99: float = 800.0,
    cost: float = 0.001,
    feedback: dict[str, float] | None = None,
) -> ArmSample:
    """One arm alone (no latency thresholds: quantiles can only be shown acceptable)."""
    return _pair(
        rng,
        {},
        {
            "n": n,
            "error_rate": error_rate,
            "p50": p50,
            "p99": p99,
            "cost": cost,
            "feedback": feedback,
        },
        baseline_share=1.0,
    )[0]


def _pair(
    rng: random.Random,
    canary: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    baseline_share: float = 0.95,
    settings: GuardSettings | None = None,
) -> tuple[ArmSample, ArmSample]:
    """Both arms, calls interleaved at random, counted with the guard's own counters; the
    latency thresholds move every 100 calls, as at the guard's looks."""
    spec = {"n": 20_000, "error_rate": 0.01, "p50": 200.0, "p99": 800.0, "cost": 0.001}
    b_spec = spec | (baseline or {})
    c_spec = spec | {"n": 0} | canary
    settings = settings or SETTINGS
    counts: dict[str, dict[str, float]] = {"b": {}, "c": {}}
    left = {"b": int(b_spec["n"]), "c": int(c_spec["n"])}
    thresholds: dict[str, float] = {}
    i = 0
    while left["b"] or left["c"]:
        arm = "b" if (left["b"] and rng.random() < baseline_share) or not left["c"] else "c"
        left[arm] -= 1
        sp = b_spec if arm == "b" else c_spec
        ok = rng.random() >= sp["error_rate"]
        fields = attempt_fields(ok, _lognormal(rng, sp["p50"], sp["p99"]), thresholds)
        fields += call_fields(sp["cost"] * rng.lognormvariate(0, 0.3))
        for name, mean in (sp.get("feedback") or {}).items():
            fields += feedback_fields(name, 1.0 if rng.random() < mean else 0.0)
        c = counts[arm]
        for name, amount in fields:
            c[name] = c.get(name, 0.0) + amount
        i += 1
        if i % 100 == 0:
            thresholds = settings.thresholds(ArmSample.from_counters(counts["b"]))
    return ArmSample.from_counters(counts["b"]), ArmSample.from_counters(counts["c"])


# ------------------------------------------------------------------------- bounds


def test_bernoulli_bounds_hold_at_every_look_for_most_runs() -> None:
    """A confidence sequence covers the true rate at all n at once, not only at the end."""
    rng = random.Random(11)
    p, alpha, misses = 0.03, 0.05, 0
    for _ in range(40):
        k = 0
        for n in range(1, 301):
            k += rng.random() < p
            lo, hi = bernoulli_bounds(k, n, alpha)
            if not lo <= p <= hi:
                misses += 1
                break
    assert misses <= 2  # <= alpha of the runs ever miss, however often they were looked at


def test_bernoulli_bounds_shape() -> None:
    assert bernoulli_bounds(0, 0, 0.01) == (0.0, 1.0)
    lo, hi = bernoulli_bounds(0, 1000, 0.01)
    assert lo == 0.0 and 0.0 < hi < 0.02
    lo, hi = bernoulli_bounds(500, 1000, 0.01)
    assert lo < 0.5 < hi and hi - lo < 0.15
    # more data, narrower
    assert bernoulli_bounds(50, 1000, 0.01)[1] < bernoulli_bounds(5, 100, 0.01)[1]


def test_error_share_evidence_needs_the_canary_to_fail_more() -> None:
    assert excess_share_log_e(0, 100, 10, 1900) == 0.0
    same = excess_share_log_e(5, 1000, 95, 19000)  # the canary's share of errors = its share
    worse = excess_share_log_e(30, 1000, 38, 19000)
    assert same < math.log(10) < math.log(1000) < worse


def test_error_rate_evidence_of_an_acceptable_canary_grows_with_clean_calls() -> None:
    few = error_rate_log_e(0, 200, 0, 4000, 0.01, harm=False)
    many = error_rate_log_e(0, 3000, 0, 60000, 0.01, harm=False)
    assert few < math.log(100) < many
    # a canary already worse by more than the allowed difference is never shown acceptable
    assert error_rate_log_e(40, 1000, 10, 1000, 0.01, harm=False) == 0.0


def test_quantile_bounds_bracket_the_p95() -> None:
    rng = random.Random(5)
    hist: dict[int, float] = {}
    values = sorted(_lognormal(rng, 200, 800) for _ in range(5000))
    for v in values:
        b = latency_bin(v)
        hist[b] = hist.get(b, 0) + 1
    lo, hi = quantile_bounds(hist, 0.95, 0.01)
    assert lo is not None and hi is not None
    true_p95 = 200 * math.exp(1.645 * (math.log(800) - math.log(200)) / 2.326)
    assert lo < true_p95 < hi and hi / lo < 1.3
    # 60 calls cannot bound a p95 from above (the top 5% is 3 calls)
    small = {latency_bin(100.0): 60.0}
    assert quantile_bounds(small, 0.95, 0.005)[1] is None


def test_mean_bounds_wait_for_thirty_values() -> None:
    assert mean_bounds(Moments(29, 29.0, 29.0), 0.01) is None
    lo, hi = mean_bounds(Moments(1000, 1000.0, 1100.0), 0.01) or (0, 0)
    assert lo < 1.0 < hi


# ------------------------------------------------------------------------- verdicts


def test_min_calls_holds_every_verdict() -> None:
    rng = random.Random(1)
    v = judge(SETTINGS, _arm(rng, 2000), _arm(rng, 49, error_rate=0.5))
    assert v.verdict == "hold" and v.metrics == () and "collecting" in v.reason


@pytest.mark.parametrize(
    ("metric", "canary"),
    [
        ("errors", {"error_rate": 0.03}),
        ("p95", {"p50": 260.0, "p99": 1040.0}),
        ("cost", {"cost": 0.0012}),
    ],
)
def test_a_worse_canary_is_rolled_back_for_that_metric(metric: str, canary: dict[str, Any]) -> None:
    rng = random.Random(3)
    base, can = _pair(rng, {"n": 1000, "error_rate": 0.002} | canary, {"error_rate": 0.002})
    v = judge(SETTINGS, base, can)
    assert v.verdict == "rollback"
    bad = v.deciding()
    assert bad is not None and bad.metric == metric
    assert metric in v.reason  # the figures travel with the verdict


def test_feedback_drop_is_rolled_back_and_a_missing_metric_holds() -> None:
    s = GuardSettings(metrics=(), min_calls=50, feedback={"thumbs": (0.05, True)})
    rng = random.Random(9)
    base = _arm(rng, 4000, feedback={"thumbs": 0.8})
    worse = _arm(rng, 1000, feedback={"thumbs": 0.65})
    assert judge(s, base, worse).verdict == "rollback"
    silent = _arm(rng, 1000)  # no scores for the canary yet
    assert judge(s, base, silent).verdict == "hold"


def test_sla_miss_rolls_back_only_when_the_baseline_meets_it() -> None:
    s = GuardSettings(metrics=("p95",), min_calls=50, max_p95_ratio=2.0, sla_p95_ms=500.0)
    rng = random.Random(4)
    base = _arm(rng, 5000, p50=150, p99=500)
    slow = _arm(rng, 1000, p50=250, p99=1000)  # under 2x the baseline, over the SLA
    v = judge(s, base, slow)
    assert v.verdict == "rollback" and v.deciding().metric == "p95_sla"  # type: ignore[union-attr]
    slow_base = _arm(rng, 5000, p50=250, p99=1000)
    assert judge(s, slow_base, slow).verdict != "rollback"


def test_identical_arms_with_enough_data_are_promoted() -> None:
    s = GuardSettings(metrics=("errors", "p95", "cost"), min_calls=50, max_p95_ratio=1.25)
    rng = random.Random(8)
    v = judge(s, _arm(rng, 40_000, error_rate=0.0), _arm(rng, 4000, error_rate=0.0))
    assert v.verdict == "promote", v.reason
    assert {m.metric for m in v.metrics} == {"errors", "p95", "cost"}


def test_unpriced_calls_leave_cost_out() -> None:
    rng = random.Random(2)
    base, can = _arm(rng, 500), _arm(rng, 500)
    base = ArmSample(base.calls, base.attempts, base.errors, base.latency)
    can = ArmSample(can.calls, can.attempts, can.errors, can.latency)
    assert "cost" not in {m.metric for m in judge(SETTINGS, base, can).metrics}


# ---------------------------------------------------------- A/A through the live guard


def _aa_canary(seed: int, calls_per_arm: int, guard: dict[str, Any]) -> bool:
    """One A/A canary through CanaryControl.observe, looked at after every call: True if
    it was rolled back."""
    cfg = load_config(
        config(
            {"a": sim_provider(), "c": sim_provider()},
            {"f": {"primary": "a:m", "canary": {"target": "c:new", "percent": 50, "guard": guard}}},
        )
    )
    control = CanaryControl(cfg, MemoryState(FakeClock()), check_every=1)
    rng = random.Random(seed)
    for _ in range(calls_per_arm):
        for arm in ("baseline", "canary"):
            ok = rng.random() >= 0.02
            control.observe("f", arm, ok, _lognormal(rng, 200, 800), 0.001)
            if control.live("f")["percent"] == 0:
                return True
    return False


def test_identical_arms_are_almost_never_rolled_back() -> None:
    """Two arms that behave alike (2% errors, the same latency), looked at after every call
    for 300 calls each: the old threshold guard rolled back 10-15% of such canaries."""
    rolled = sum(_aa_canary(seed, 300, {"min_calls": 50}) for seed in range(40))
    assert rolled == 0


def test_instant_vendors_are_not_rolled_back() -> None:
    """0 ms against 0 ms is no difference (the old guard rolled back at "0 ms vs 0 ms")."""
    cfg = load_config(
        config(
            {"a": sim_provider(), "c": sim_provider()},
            {"f": {"primary": "a:m", "canary": {"target": "c:new", "percent": 50}}},
        )
    )
    control = CanaryControl(cfg, MemoryState(FakeClock()), check_every=1)
    for _ in range(500):
        control.observe("f", "baseline", True, 0.0, 0.0)
        control.observe("f", "canary", True, 0.0, 0.0)
    assert control.live("f")["percent"] == 50
    assert control.judge("f").verdict != "rollback"


def test_a_disabled_guard_counts_but_never_rolls_back() -> None:
    cfg = load_config(
        config(
            {"a": sim_provider(), "c": sim_provider()},
            {
                "f": {
                    "primary": "a:m",
                    "canary": {"target": "c:new", "percent": 50, "guard": {"enabled": False}},
                }
            },
        )
    )
    control = CanaryControl(cfg, MemoryState(FakeClock()), check_every=1)
    for i in range(400):
        control.observe("f", "baseline", True, 100.0, None)
        control.observe("f", "canary", i % 2 == 0, 100.0, None)  # half the canary fails
    assert control.live("f")["percent"] == 50
    assert control.judge("f").verdict == "rollback"  # what it would say, shown in status
    assert control.arms("f")[1].errors == 200


def test_difference_bounds_see_a_drop_of_a_tenth() -> None:
    rng = random.Random(6)
    c = Moments()
    b = Moments()
    for arm, mean, n in (("c", 0.7, 500), ("b", 0.8, 9500)):
        tot = sq = 0.0
        for _ in range(n):
            v = 1.0 if rng.random() < mean else 0.0
            tot, sq = tot + v, sq + v * v
        if arm == "c":
            c = Moments(n, tot, sq)
        else:
            b = Moments(n, tot, sq)
    d = difference_bounds(c, b, 0.0025)
    assert d is not None and d[1] < 0 < d[1] + 0.2  # the 0.1 drop is seen
    assert difference_bounds(Moments(29, 20.0, 20.0), b, 0.01) is None


def test_exceedance_threshold_waits_for_the_baseline_tail() -> None:
    few = ArmSample(latency={latency_bin(100.0): 399.0})
    assert exceedance_threshold(few, 0.95, 1.1) is None
    enough = ArmSample(latency={latency_bin(100.0): 400.0})
    assert exceedance_threshold(enough, 0.95, 1.1) == pytest.approx(110.0, rel=0.02)
    assert exceedance_threshold(enough, 0.99, 1.2) is None  # a p99 waits for 2,000


def test_looks_thin_out_as_the_step_grows() -> None:
    looks = LookSchedule(10)
    due = [n for n in range(1, 2001) if looks.due()]
    assert due[:3] == [10, 20, 30]
    assert len(due) < 100  # 2,000 calls: tens of looks, not hundreds
    assert all(b - a <= max(10, a // 20) for a, b in itertools.pairwise(due))


@pytest.mark.parametrize(
    ("guard", "message"),
    [
        ({"metrics": ["errors", "p59"]}, "unknown metric 'p59'; did you mean"),
        ({"metrics": ["p95", "p95"]}, "listed twice"),
        ({"false_alarm_rate": 0.5}, "false_alarm_rate"),
        ({"max_p95_ratio": 0.9}, "max_p95_ratio"),
        ({"max_error_rate_delta": float("nan")}, "max_error_rate_delta"),
        ({"feedback": {"bad name": {}}}, "feedback metric 'bad name'"),
    ],
)
def test_bad_guard_config_names_the_key(guard: dict[str, Any], message: str) -> None:
    from portal.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(
            config(
                {"a": sim_provider(), "c": sim_provider()},
                {"f": {"primary": "a:m", "canary": {"target": "c:new", "guard": guard}}},
            )
        )


def test_a_canary_a_fraction_of_a_millisecond_slower_is_not_rolled_back() -> None:
    """Instant vendors (or shadow copies measured on a busy client): 0.9 ms against 0.3 ms
    is three times slower and nothing a user notices; only min_latency_delta_ms = 0 judges
    by the ratio alone."""
    spec = {"n": 20_000, "p50": 0.3, "p99": 0.6}
    slower = {"n": 4000, "p50": 0.9, "p99": 1.8}
    fast = GuardSettings(metrics=("p95",), min_calls=50)
    base, can = _pair(random.Random(5), slower, spec, 0.8, fast)
    assert judge(fast, base, can).verdict != "rollback"
    ratio_only = GuardSettings(metrics=("p95",), min_calls=50, min_latency_delta_ms=0.0)
    base, can = _pair(random.Random(5), slower, spec, 0.8, ratio_only)
    assert judge(ratio_only, base, can).verdict == "rollback"
