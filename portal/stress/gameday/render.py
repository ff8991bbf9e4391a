"""A game day's document as text: one scenario's phases, timings, events and verdict, and a
suite's summary table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portal.stress.results import fmt_ms, fmt_usd, render_rows

__all__ = ["render", "render_suite"]


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def render(doc: dict[str, Any]) -> list[str]:
    sc = doc["scenario"]
    lines = [
        f"game day {doc['name']}: {sc['kind']} on {sc['provider']} "
        f"({', '.join(sc['faulted_targets'])}) from {sc['at_s']:g}s for {sc['for_s']:g}s, "
        f"feature {doc['feature']}, {doc['load']['requests']['sent']} requests, "
        f"{sc['injected']} faults injected",
        "",
    ]
    rows = [["phase", "requests", "errors", "p50", "p95", "p99", "on target", "$/request"]]
    for name in ("before", "during", "after"):
        p = doc["phases"][name]
        share = p["served_by_faulted_share"]
        rows.append(
            [
                name,
                str(p["requests"]),
                f"{p['errors']} ({100 * p['error_rate']:.1f}%)",
                fmt_ms(p["latency_ms"]["p50"]),
                fmt_ms(p["latency_ms"]["p95"]),
                fmt_ms(p["latency_ms"]["p99"]),
                "-" if share is None else f"{100 * share:.0f}%",
                fmt_usd(p["cost_per_request_usd"]),
            ]
        )
    lines += render_rows(rows)
    lines.append("")
    cost = doc["cost"]
    delta = "-" if cost["delta_pct"] is None else f"{cost['delta_pct']:+.1f}%"
    moved, opened, rec = doc["failover_s"], doc["breaker_opened_s"], doc["recovery_s"]
    lines.append(
        (
            "traffic stayed on the target"
            if moved is None
            else f"traffic moved off the target {_s(moved)} into the fault"
        )
        + (
            "; its breaker stayed closed"
            if opened is None
            else f"; its breaker opened {_s(opened)} into the fault"
        )
        + (
            "; not recovered by the end of the run"
            if rec is None
            else f"; recovered {_s(rec)} after the fault ended"
        )
    )
    lines.append(f"cost per request during the fault vs without: {delta}")
    for e in doc["breaker_events"]:
        lines.append(f"  breaker {e['target']}: {e['from']} -> {e['to']} at {e['t_s']:.2f}s")
    for e in doc["canary_events"]:
        lines.append(f"  canary: {e['from']}% -> {e['to']}% at {e['t_s']:.2f}s")
    lines.append(f"verdict: {'PASS' if doc['passed'] else 'FAIL'}")
    for c in doc["checks"]:
        m, lim = c["measured"], c["limit"]
        if c["metric"].endswith("_ms"):
            shown = f"{fmt_ms(m)} vs {fmt_ms(lim)}"
        elif c["metric"].endswith("_s"):
            shown = f"{_s(m)} vs {_s(lim)}"
        else:
            shown = "-" if m is None else f"{m:.4f} vs {lim:.4f}"
        lines.append(
            f"  {c['metric']} (during the fault): {shown}  {'ok' if c['ok'] else 'FAILED'}"
        )
    return lines


def render_suite(docs: Sequence[dict[str, Any]]) -> list[str]:
    rows = [
        [
            "scenario",
            "kind",
            "target",
            "errors during",
            "p95 during",
            "p99 during",
            "moved",
            "recovered",
            "cost delta",
            "result",
        ]
    ]
    for d in docs:
        during = d["phases"]["during"]
        delta = d["cost"]["delta_pct"]
        rows.append(
            [
                d["name"],
                d["scenario"]["kind"],
                d["scenario"]["target"],
                f"{100 * during['error_rate']:.1f}%",
                fmt_ms(during["latency_ms"]["p95"]),
                fmt_ms(during["latency_ms"]["p99"]),
                _s(d["failover_s"]),
                _s(d["recovery_s"]),
                "-" if delta is None else f"{delta:+.1f}%",
                "PASS" if d["passed"] else "FAIL",
            ]
        )
    return render_rows(rows)
