"""The report a manager reads: headline, per-vendor view, time series with gaps, money in
dollars, synthetic traffic left out, every column on the console, canary arms side by side."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from portal.config import load_config
from portal.metering.ledger import LedgerRecord, read_records
from portal.metering.report import COLUMNS, build_report, print_rich, render_text
from portal.metering.report.cells import HEADERS, fmt_usd
from portal.metering.report.html import _canary_figure, _money_axis
from portal.metering.report.overview import time_grid

H0 = 1_760_000_400.0 - (1_760_000_400.0 % 3600)

CONFIG = load_config(
    {
        "providers": {
            "acme": {"kind": "sim", "sla": {"p99_ms": 1000, "credit_percent": 10}},
            "cirrus": {"kind": "sim"},
        },
        "features": {
            "support": {"primary": "acme:sim-small", "sla": {"p95_ms": 1500}},
            "search": {"primary": "acme:sim-small", "sla": {"p95_ms": 5000}},
            "summarize": {"primary": "acme:sim-small", "fallbacks": ["cirrus:sim-small"]},
        },
    }
)


def _pair(
    ts: float,
    feature: str = "support",
    provider: str = "acme",
    latency: float = 300.0,
    cost: float | None = 0.0002,
    **kw: Any,
) -> list[LedgerRecord]:
    common: dict[str, Any] = dict(
        call_id=f"{feature}-{ts}",
        feature=feature,
        target=f"{provider}:sim-small",
        provider=provider,
        model="sim-small",
        latency_ms=latency,
        cost_usd=cost,
        input_tokens=100,
        output_tokens=20,
        **kw,
    )
    return [
        LedgerRecord(ts=ts, kind="attempt", attempt=1, **common),
        LedgerRecord(ts=ts, kind="call", attempt=1, **common),
    ]


def _records() -> list[LedgerRecord]:
    """Support in hours 0 and 2 (nothing in hour 1), slow in hour 2; search always fast;
    summarize fails over from acme to cirrus once."""
    out: list[LedgerRecord] = []
    for h in (0, 2):
        for i in range(20):
            slow = 2500.0 if h == 2 and i % 2 else 300.0
            out += _pair(H0 + h * 3600 + i * 60, latency=slow)
            out += _pair(H0 + h * 3600 + i * 60 + 1, feature="search")
    ts = H0 + 30
    out.append(
        LedgerRecord(
            ts=ts,
            kind="attempt",
            call_id="sum-1",
            feature="summarize",
            target="acme:sim-small",
            provider="acme",
            attempt=1,
            outcome="error",
            error="ServerError",
            cost_usd=0.0,
            latency_ms=50,
        )
    )
    out.append(
        LedgerRecord(
            ts=ts,
            kind="attempt",
            call_id="sum-1",
            feature="summarize",
            target="cirrus:sim-small",
            provider="cirrus",
            attempt=2,
            cost_usd=0.0011,
            latency_ms=400,
        )
    )
    out.append(
        LedgerRecord(
            ts=ts,
            kind="call",
            call_id="sum-1",
            feature="summarize",
            target="cirrus:sim-small",
            provider="cirrus",
            attempt=2,
            cost_usd=0.0011,
            latency_ms=450,
        )
    )
    return sorted(out, key=lambda r: r.ts)


def test_latency_series_leaves_empty_buckets_as_gaps() -> None:
    report = build_report(_records(), CONFIG)
    series = report["latency_series"]
    acme = series["providers"]["acme"]
    assert len(series["t"]) == len(acme["p95"]) == len(acme["n"])
    gap = [i for i, n in enumerate(acme["n"]) if n == 0]
    assert gap, "hour 1 had no traffic"
    assert all(acme["p95"][i] is None for i in gap)  # never an interpolated value
    assert series["t"] == sorted(series["t"])
    steps = {b - a for a, b in zip(series["t"], series["t"][1:], strict=False)}
    assert steps == {series["bucket_s"]}  # one evenly spaced grid, gaps included
    # the cost series shares the grid and sums to the priced calls' cost
    cost = report["cost_series"]
    assert cost["t"] == series["t"]
    total = sum(sum(v) for v in cost["features"].values())
    assert total == pytest.approx(report["total"]["cost_usd"])


def test_time_grid_covers_first_to_last_record() -> None:
    recs = _records()
    grid = time_grid(recs)
    assert grid is not None and grid.count <= 61
    assert grid.start <= recs[0].ts and grid.index(recs[-1].ts) == grid.count - 1
    assert time_grid([]) is None


def test_headline_says_which_sla_was_met() -> None:
    h = build_report(_records(), CONFIG)["headline"]
    rows = {f["feature"]: f for f in h["features"]}
    assert rows["support"]["sla_met"] is False
    assert rows["support"]["windows"] == 2 and rows["support"]["missed_windows"] == 1
    assert rows["support"]["worst_breach"]["metric"] == "p95_ms"
    assert rows["search"]["sla_met"] is True
    assert rows["summarize"]["sla_met"] is None and rows["summarize"]["sla_terms"] == {}
    assert h["calls"] == 81
    assert h["cost_per_action_usd"] == pytest.approx(h["cost_usd"] / 81)
    text = render_text(build_report(_records(), CONFIG))
    assert "support: SLA MISSED in 1 of 2 hours (p95 <= 1,500 ms; worst p95 2,500 ms)" in text
    assert "search: SLA met (p95 <= 5,000 ms)" in text
    assert "summarize: no SLA set" in text


def test_vendor_view_counts_every_attempt() -> None:
    report = build_report(_records(), CONFIG)
    v = {row["vendor"]: row for row in report["vendors"]}
    assert v["acme"]["attempts"] == 81 and v["acme"]["failed_attempts"] == 1
    assert v["acme"]["failure_rate"] == pytest.approx(1 / 81)
    assert v["cirrus"]["calls_served"] == 1 and v["acme"]["calls_served"] == 80
    assert v["acme"]["served_share"] == pytest.approx(80 / 81)
    assert v["cirrus"]["cost_usd"] == pytest.approx(0.0011)
    assert sum(row["cost_share"] for row in v.values()) == pytest.approx(1.0)
    assert v["acme"]["sla_breaches"] >= 1  # p99 1,000 ms missed in hour 2
    assert "vendors (every attempt):" in render_text(report)


def test_synthetic_traffic_is_left_out_unless_asked_for() -> None:
    recs = _records()
    synthetic = _pair(H0 + 100, feature="support", tags={"source": "loadtest"})
    synthetic += _pair(H0 + 101, feature="support", tags={"source": "gameday", "gameday": "x"})
    recs = sorted(recs + synthetic, key=lambda r: r.ts)
    prod = build_report(recs, CONFIG, traffic="production")
    assert prod["total"]["calls"] == 81
    assert prod["traffic"]["left_out_calls"] == {"gameday": 1, "loadtest": 1}
    assert "left out: 1 gameday, 1 loadtest call(s)" in render_text(prod)
    assert build_report(recs, CONFIG, traffic="synthetic")["total"]["calls"] == 2
    assert build_report(recs, CONFIG, traffic="all")["total"]["calls"] == 83
    with pytest.raises(ValueError, match="--traffic must be one of"):
        build_report(recs, CONFIG, traffic="prod")


def test_loadtest_calls_are_tagged_and_left_out_of_production(tmp_path: Path) -> None:
    from portal.stress import loadtest
    from portal.stress.arrivals import LengthDist, PromptSource
    from portal.stress.engine import LoadSpec

    cfg = load_config(
        {
            "providers": {"acme": {"kind": "sim", "options": {"time_scale": 0}}},
            "features": {"chat": {"primary": "acme:sim-small", "tags": {"team": "support"}}},
        }
    )
    ledger = f"jsonl:///{tmp_path / 'ledger.jsonl'}"
    spec = LoadSpec(
        feature="chat",
        rps=40.0,
        duration_s=0.5,
        prompts=PromptSource(LengthDist.parse("fixed:20")),
        seed=3,
        drain_s=5.0,
    )
    anyio.run(lambda: loadtest.run_loadtest(cfg, spec, ledger=ledger))
    recs = list(read_records(ledger))
    calls = [r for r in recs if r.kind == "call"]
    assert calls and all(r.tags.get("source") == "loadtest" for r in recs)
    report = build_report(recs, cfg, traffic="production")
    assert report["total"]["calls"] == 0
    assert report["traffic"]["left_out_calls"] == {"loadtest": len(calls)}
    assert build_report(recs, cfg, traffic="synthetic")["total"]["calls"] == len(calls)


def test_console_table_shows_every_column() -> None:
    buf = io.StringIO()
    assert print_rich(build_report(_records(), CONFIG), buf)
    text = buf.getvalue()
    for column in COLUMNS[1:]:
        assert HEADERS[column] in text, column
    for dropped in ("errors", "att/call", "ttft p95", "in tok", "out tok", "no price"):
        assert dropped in text


def test_money_is_dollars_with_enough_decimals() -> None:
    assert fmt_usd(0.0002) == "$0.000200"
    assert fmt_usd(0.0123) == "$0.0123"
    assert fmt_usd(1234.5) == "$1,234.50"
    assert fmt_usd(None) == "unpriced" and fmt_usd(0) == "$0"
    axis = _money_axis([0.0002, 0.0011, None])
    assert axis["tickprefix"] == "$" and axis["exponentformat"] == "none"
    assert axis["tickformat"] == ",.4f"  # $0.0011: two significant digits at the top
    assert _money_axis([12.0])["tickformat"] == ",.2f"


def _canary_records(errors: bool) -> list[LedgerRecord]:
    out: list[LedgerRecord] = []
    for i in range(20):
        arm = "canary" if i % 4 == 0 else "baseline"
        failed = errors and i % 5 == 0
        out += _pair(
            H0 + i,
            provider="cirrus" if arm == "canary" else "acme",
            arm=arm,
            outcome="error" if failed else "ok",
            error="ServerError" if failed else None,
        )
    return out


def test_canary_arms_side_by_side_without_an_empty_error_chart() -> None:
    report = build_report(_canary_records(errors=False), CONFIG)
    titles = [a.text for a in _canary_figure(report).layout.annotations]
    assert titles == ["p95 latency (ms)", "cost per user action"]
    with_errors = build_report(_canary_records(errors=True), CONFIG)
    titles = [a.text for a in _canary_figure(with_errors).layout.annotations]
    assert titles[0] == "error rate (%)"
    text = render_text(report)
    block = text.split("canary vs baseline:", 1)[1]
    assert re.search(r"feature\s+metric\s+baseline\s+canary\s+change", block)
    assert re.search(r"support\s+calls\s+15\s+5", block)
    assert re.search(r"cost per action\s+\$0\.000200\s+\$0\.000200\s+1\.00x", block)
