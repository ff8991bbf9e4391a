"""Unit economics in `portal report`: cost per user action (tool steps, retries, failovers
and hedges included), cost per 1,000 successful calls per feature and target, the share of
spend wasted on failed or cancelled attempts, and what caching saved."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import portal
from portal.metering.ledger import LedgerRecord, read_records
from portal.metering.prices import Price
from portal.metering.report import build_report, render_text
from portal.metering.report.economics import (
    cache_savings,
    cost_per_1k_successful,
    cost_per_action,
    wasted_spend,
)


def rec(**kw: Any) -> LedgerRecord:
    base: dict[str, Any] = {"kind": "call", "feature": "f", "target": "p:m", "provider": "p"}
    base.update(kw)
    base.setdefault("model", "m")
    return LedgerRecord(**base)


def test_cost_per_action_groups_tool_steps_and_keeps_unpriced_apart() -> None:
    calls = [
        rec(call_id="a1", action_id="a1", cost_usd=0.01),
        rec(call_id="a2", action_id="a1", cost_usd=0.02),  # a tool step of the same action
        rec(call_id="b1", cost_usd=0.05),
        rec(call_id="c1", cost_usd=None),  # unpriced: counted apart, not as $0
    ]
    (row,) = cost_per_action(calls)
    assert row["actions"] == 3 and row["unpriced_actions"] == 1
    assert row["calls_per_action"] == pytest.approx(4 / 3)
    assert row["cost_per_action_usd"] == pytest.approx((0.03 + 0.05) / 2)


def test_cost_per_1k_successful_charges_failures_to_the_answers() -> None:
    calls = [rec(call_id=str(i), cost_usd=0.002, outcome="ok") for i in range(3)]
    calls.append(rec(call_id="x", cost_usd=0.002, outcome="error"))
    calls.append(rec(call_id="y", target="q:n", cost_usd=None, outcome="ok"))
    rows = {r["target"]: r for r in cost_per_1k_successful(calls)}
    assert rows["p:m"]["cost_per_1k_successful_usd"] == pytest.approx(1000 * 0.008 / 3)
    assert rows["q:n"]["cost_usd"] is None and rows["q:n"]["unpriced_calls"] == 1


def test_wasted_spend_share() -> None:
    attempts = [
        rec(kind="attempt", outcome="ok", cost_usd=0.06),
        rec(kind="attempt", outcome="hedge_lost", cost_usd=0.03),
        rec(kind="attempt", outcome="cancelled", cost_usd=0.01),
        rec(kind="attempt", outcome="error", cost_usd=0.0),
        rec(kind="attempt", outcome="error", cost_usd=None),
    ]
    w = wasted_spend(attempts)
    assert w["wasted_usd"] == pytest.approx(0.04)
    assert w["wasted_share"] == pytest.approx(0.4)
    assert w["by_outcome_usd"]["hedge_lost"] == pytest.approx(0.03)
    assert w["unpriced_attempts"] == 1


def test_cache_savings_net_of_write_premiums() -> None:
    sonnet = Price(3.0, 15.0, cached_input=0.3, cache_write=3.75, cache_write_1h=6.0)
    attempts = [
        rec(
            kind="attempt",
            target="anthropic:claude-sonnet-4-5",
            provider="anthropic",
            model="claude-sonnet-4-5",
            cached_input_tokens=1_000_000,
            cache_write_tokens=300_000,
            cache_write_1h_tokens=100_000,
        )
    ]
    got = cache_savings(attempts, lambda p, m: sonnet)
    (row,) = got["targets"]
    assert row["saved_usd"] == pytest.approx(2.70)  # 1M reads at 0.30 instead of 3
    # 200k 5-minute writes at +0.75, 100k 1-hour writes at +3.00
    assert row["write_premium_usd"] == pytest.approx(0.15 + 0.30)
    assert got["net_saved_usd"] == pytest.approx(2.25)


def test_cache_savings_subtract_the_storage_of_explicit_caches() -> None:
    flash = Price(0.30, 2.50, cached_input=0.03, cache_storage=1.0)
    created = rec(
        kind="attempt",
        target="gcp:gemini-2.5-flash",
        provider="gcp",
        model="gemini-2.5-flash",
        input_tokens=2 * 100_000,
        cached_input_tokens=100_000,
        cache_write_tokens=100_000,
        cache_storage_token_hours=100_000.0,  # 100k tokens kept for an hour
    )
    reads = [replace(created, cache_write_tokens=0, cache_storage_token_hours=0.0)] * 3
    got = cache_savings([created, *reads], lambda p, m: flash)
    (row,) = got["targets"]
    assert row["saved_usd"] == pytest.approx(4 * 100_000 * 0.27e-6)
    assert row["write_premium_usd"] == 0.0  # Gemini bills the creation at the input price
    assert row["storage_usd"] == pytest.approx(0.10) and row["unpriced_storage"] == 0
    assert got["net_saved_usd"] == pytest.approx(0.108 - 0.10)
    # without a cache_storage price the storage is left out and the row says so
    bare = cache_savings([created, *reads], lambda p, m: Price(0.30, 2.50, cached_input=0.03))
    (row,) = bare["targets"]
    assert row["storage_usd"] == 0.0 and row["unpriced_storage"] == 1
    assert row["net_saved_usd"] == pytest.approx(0.108)


def _cache_attempts() -> list[LedgerRecord]:
    def a(feature: str, target: str, inp: int, read: int, write: int, **kw: Any) -> LedgerRecord:
        provider, _, model = target.partition(":")
        return rec(
            kind="attempt",
            feature=feature,
            target=target,
            provider=provider,
            model=model,
            input_tokens=inp,
            cached_input_tokens=read,
            cache_write_tokens=write,
            **kw,
        )

    return [
        a("docs", "a:m", 10_000, 0, 10_000),
        a("docs", "a:m", 10_000, 9_000, 1_000),
        a("docs", "b:m", 10_000, 0, 10_000, cache_miss_expected="failover"),
        a("chat", "a:m", 2_000, 1_000, 0),
        a("plain", "c:m", 5_000, 0, 0),  # no cache activity: no row
    ]


def test_cache_rows_per_feature_and_target_with_hit_rate_and_savings() -> None:
    price = Price(3.0, 15.0, cached_input=0.3, cache_write=3.75)
    got = cache_savings(_cache_attempts(), lambda p, m: price)
    features = {r["feature"]: r for r in got["features"]}
    targets = {r["target"]: r for r in got["targets"]}
    assert set(features) == {"chat", "docs"} and set(targets) == {"a:m", "b:m"}
    docs = features["docs"]
    assert (docs["input_tokens"], docs["cached_input_tokens"], docs["cache_write_tokens"]) == (
        30_000,
        9_000,
        21_000,
    )
    assert docs["hit_rate"] == pytest.approx(0.3)
    assert docs["saved_usd"] == pytest.approx(9_000 * 2.7e-6)  # reads at 0.30 instead of 3
    assert docs["write_premium_usd"] == pytest.approx(21_000 * 0.75e-6)
    assert docs["cache_misses_expected"] == 1
    a = targets["a:m"]
    assert a["input_tokens"] == 22_000 and a["cached_input_tokens"] == 10_000
    assert a["hit_rate"] == pytest.approx(10_000 / 22_000)
    assert targets["b:m"]["hit_rate"] == 0.0
    assert got["net_saved_usd"] == pytest.approx(sum(r["net_saved_usd"] for r in got["targets"]))


def test_every_renderer_shows_the_cache_columns(tmp_path: Any) -> None:
    import json

    from portal.config import load_config
    from portal.metering.report import render_html

    price_cfg = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
    cfg = load_config(
        {
            "portal": {"ledger": "none"},
            "providers": {n: {"kind": "sim", "prices": {"m": price_cfg}} for n in "abc"},
            "features": {f: {"primary": "a:m"} for f in ("docs", "chat", "plain")},
        }
    )
    calls = [rec(call_id=str(i), feature="docs", target="a:m") for i in range(3)]
    report = build_report([*calls, *_cache_attempts()], cfg)
    cache = report["economics"]["cache"]
    assert json.loads(json.dumps(cache, default=str))["features"][1]["hit_rate"] == 0.3
    text = render_text(report)
    for head in ("prompt cache by feature", "prompt cache by target", "hit rate", "30.0%"):
        assert head in text
    assert "45.5%" in text  # a:m: 10,000 of 22,000 input tokens read from the cache
    html = render_html(report).lower()
    for head in ("prompt cache by feature", "prompt cache by target", "hit rate", "30.0%"):
        assert head in html


def test_portal_report_shows_unit_economics(tmp_path: Any) -> None:
    ledger = f"jsonl:///{tmp_path / 'l.jsonl'}"
    cfg = {
        "portal": {"ledger": ledger},
        "providers": {"a": {"kind": "sim", "options": {"seed": 3, "time_scale": 0}}},
        "features": {"f": {"primary": "a:sim-small", "max_tokens": 50}},
    }
    client = portal.Client(cfg)

    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return "shipped"

    client.chat(feature="f", messages=[portal.user("where is 1?")], tools=[lookup_order])
    for i in range(3):
        client.chat(feature="f", messages=[portal.user(f"hi {i}")])
    client.close()
    records = read_records(ledger)
    report = build_report(records, portal.config.load_config(cfg))
    eco = report["economics"]
    (action,) = eco["actions"]
    assert action["actions"] == 4 and action["calls_per_action"] > 1  # the tool loop's steps
    assert action["cost_per_action_usd"] > 0
    text = render_text(report)
    assert "cost per user action" in text and "per 1,000 successful calls" in text
    assert "wasted" in text
