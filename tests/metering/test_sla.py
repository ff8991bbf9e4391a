"""SLA accounting on a hand-built ledger: who missed what, by how much, how many calls, and
the credit the contract gives."""

from __future__ import annotations

from typing import Any

import pytest

from portal.config import load_config
from portal.metering.ledger import LedgerRecord
from portal.metering.report import build_report
from portal.metering.sla import account, window_start

H0 = 1_760_000_400.0 - (1_760_000_400.0 % 3600)  # the start of an hour
H1 = H0 + 3600

CONFIG = load_config(
    {
        "portal": {"ledger": "none"},
        "providers": {
            "fast": {
                "kind": "sim",
                "sla": {"p99_ms": 1000, "availability": 0.99, "credit_percent": 10},
            },
            "slow": {"kind": "sim", "sla": {"p95_ms": 500}},  # no credit in its terms
        },
        "features": {
            "f": {
                "primary": "fast:sim-small",
                "fallbacks": ["slow:sim-small"],
                "sla": {"p50_ms": 300, "availability": 0.95},
            }
        },
    }
)


def _att(
    ts: float,
    provider: str,
    latency: float,
    cost: float = 0.01,
    outcome: str = "ok",
    error: str | None = None,
    call_id: str = "",
) -> LedgerRecord:
    return LedgerRecord(
        ts=ts,
        kind="attempt",
        call_id=call_id,
        feature="f",
        target=f"{provider}:sim-small",
        provider=provider,
        model="sim-small",
        attempt=1,
        outcome=outcome,
        error=error,
        cost_usd=cost,  # type: ignore[arg-type]
        latency_ms=latency,
    )


def _call(ts: float, latency: float, outcome: str = "ok") -> LedgerRecord:
    return LedgerRecord(
        ts=ts,
        kind="call",
        feature="f",
        target="fast:sim-small",
        provider="fast",
        model="sim-small",
        attempt=1,
        outcome=outcome,
        cost_usd=0.01,
        latency_ms=latency,
    )  # type: ignore[arg-type]


def _ledger() -> list[LedgerRecord]:
    recs: list[LedgerRecord] = []
    # hour 0: "fast" has 100 attempts, 2 of them slower than 1000 ms -> p99 over the terms;
    # 2 ServerErrors of 102 -> availability 98.0% < 99%; one 429 does not count against it
    for i in range(98):
        recs.append(_att(H0 + i, "fast", 100.0))
    recs.append(_att(H0 + 100, "fast", 3000.0))
    recs.append(_att(H0 + 101, "fast", 5000.0))
    recs.append(_att(H0 + 102, "fast", 50.0, cost=0.0, outcome="error", error="ServerError"))
    recs.append(_att(H0 + 103, "fast", 50.0, cost=0.0, outcome="error", error="ServerError"))
    recs.append(_att(H0 + 104, "fast", 10.0, cost=0.0, outcome="error", error="RateLimited"))
    # "slow": p95 600 ms > 500, but its terms give no credit
    for i in range(20):
        recs.append(_att(H0 + i, "slow", 600.0))
    # hour 1: "fast" meets its terms
    for i in range(50):
        recs.append(_att(H1 + i, "fast", 200.0))
    # feature calls, hour 0: p50 400 > 300 (6 of 10 over), 1 failure of 11 (90.9% < 95%)
    for i, lat in enumerate([100, 200, 250, 280, 350, 400, 450, 500, 600, 700]):
        recs.append(_call(H0 + i, float(lat)))
    recs.append(_call(H0 + 20, 50.0, outcome="error"))
    recs.append(_call(H0 + 21, 50.0, outcome="cancelled"))  # not counted either way
    # hour 1: within the SLA
    for i in range(10):
        recs.append(_call(H1 + i, 100.0))
    return recs


def _find(report: Any, scope: str, name: str, metric: str) -> Any:
    return next(b for b in report.breaches if (b.scope, b.name, b.metric) == (scope, name, metric))


def test_provider_breaches_and_credit() -> None:
    rep = account(_ledger(), CONFIG, window="hour")
    p99 = _find(rep, "provider", "fast", "p99_ms")
    assert p99.window_start == H0
    assert p99.target == 1000
    assert p99.actual > 1000 and p99.over_by == pytest.approx(p99.actual - 1000)
    assert p99.affected == 2  # the two attempts over 1000 ms
    assert p99.calls == 102  # the 429 is left out: quota, not the vendor's fault
    avail = _find(rep, "provider", "fast", "availability")
    assert avail.actual == pytest.approx(100 / 102)
    assert avail.affected == 2
    assert avail.over_by == pytest.approx(0.99 - 100 / 102)
    slow = _find(rep, "provider", "slow", "p95_ms")
    assert slow.actual == 600.0 and slow.affected == 20
    # hour 1 is clean
    assert not [b for b in rep.breaches if b.window_start == H1]
    # one credit per provider per window that missed, only where the terms give one
    assert len(rep.credits) == 1
    credit = rep.credits[0]
    assert credit.provider == "fast" and credit.window_start == H0
    assert sorted(credit.metrics) == ["availability", "p99_ms"]
    assert credit.spend_usd == pytest.approx(100 * 0.01)
    assert credit.credit_usd == pytest.approx(0.10)
    assert rep.credit_usd == pytest.approx(0.10)


def test_feature_breaches() -> None:
    rep = account(_ledger(), CONFIG, window="hour")
    p50 = _find(rep, "feature", "f", "p50_ms")
    assert p50.actual == pytest.approx(375.0)  # median of the 10 successful calls
    assert p50.over_by == pytest.approx(75.0)
    assert p50.affected == 6  # 350, 400, 450, 500, 600, 700
    avail = _find(rep, "feature", "f", "availability")
    assert avail.actual == pytest.approx(10 / 11)
    assert avail.affected == 1 and avail.calls == 11


def test_day_window_merges_the_hours() -> None:
    rep = account(_ledger(), CONFIG, window="day")
    starts = {b.window_start for b in rep.breaches}
    assert starts == {window_start(H0, "day")}
    credit = rep.credits[0]
    assert credit.spend_usd == pytest.approx(150 * 0.01)  # both hours' spend with "fast"
    # 152 attempts, 2 vendor failures: 98.7% still misses 99%
    assert _find(rep, "provider", "fast", "availability").actual == pytest.approx(150 / 152)


def test_report_carries_the_breaches_and_credits() -> None:
    rep = build_report(_ledger(), CONFIG, by="provider")
    sla = rep["sla"]
    assert sla["credit_usd"] == pytest.approx(0.10)
    metrics = {(b["scope"], b["name"], b["metric"]) for b in sla["breaches"]}
    assert ("provider", "slow", "p95_ms") in metrics and ("feature", "f", "p50_ms") in metrics


def test_bad_window_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'hour' or 'day'"):
        account([], CONFIG, window="week")  # type: ignore[arg-type]
