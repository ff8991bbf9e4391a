"""A report as text cells: every table's title, headers and rows, formatted once for the
plain, console and HTML renderers."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from portal.metering.report.model import COLUMNS

__all__ = [
    "BRIEF_COLUMNS",
    "DEMO_COLUMNS",
    "HEADERS",
    "Section",
    "fmt_cell",
    "metric_text",
    "report_sections",
    "report_title",
    "when",
]


def fmt_cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key in ("error_rate", "fallback_share"):
        return f"{100 * v:.1f}%"
    if key.endswith("_ms"):
        return f"{v:,.0f}"
    if key == "cost_usd" or key == "cost_per_1k_calls_usd":
        return f"{v:,.4f}"
    if key == "cost_per_call_usd":
        return f"{v:.6f}"
    if key in ("attempts_per_call", "tokens_per_call"):
        return f"{v:,.2f}" if key == "attempts_per_call" else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


HEADERS = {
    "group": "",
    "calls": "calls",
    "errors": "errors",
    "error_rate": "err%",
    "attempts_per_call": "att/call",
    "fallback_share": "fallback",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "ttft_p50_ms": "ttft p50",
    "ttft_p95_ms": "ttft p95",
    "input_tokens": "in tok",
    "output_tokens": "out tok",
    "tokens_per_call": "tok/call",
    "cost_usd": "cost $",
    "cost_per_call_usd": "$/call",
    "cost_per_1k_calls_usd": "$/1k calls",
    "unknown_cost_calls": "no price",
}
BRIEF_COLUMNS = (
    "group",
    "calls",
    "error_rate",
    "fallback_share",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "ttft_p50_ms",
    "tokens_per_call",
    "cost_per_call_usd",
    "cost_per_1k_calls_usd",
    "cost_usd",
)

#: `portal demo`'s columns: the brief ones plus what the demo exercises (errors, retries)
DEMO_COLUMNS = ("group", "calls", "errors", "attempts_per_call", *BRIEF_COLUMNS[2:])


def when(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M")


Section = tuple[str, list[str], list[list[str]]]


def report_sections(report: dict[str, Any], columns: Sequence[str] = COLUMNS) -> list[Section]:
    """(title, headers, rows) of every table in the report, as text cells."""
    out: list[Section] = []
    rows = [[fmt_cell(c, r.get(c)) for c in columns] for r in [*report["rows"], report["total"]]]
    heads = [HEADERS[c] or f"by {report['by']}" for c in columns]
    out.append((f"calls by {report['by']}", heads, rows))
    if report.get("errors"):
        heads = [f"by {report['by']}", "error", "calls failed", "attempts failed"]
        rows = [
            [e["group"], e["error"], f"{e['calls']:,}", f"{e['attempts']:,}"]
            for e in report["errors"]
        ]
        out.append((f"errors by {report['by']}", heads, rows))
    if report["canary"]:
        heads = [
            "feature",
            "arm",
            "calls",
            "err%",
            "p95 ms",
            "$/call",
            "err delta",
            "p95 ratio",
            "$ ratio",
        ]
        rows = []
        for c in report["canary"]:
            for arm in ("baseline", "canary"):
                s = c[arm]
                extra = (
                    [
                        _pct_pts(c["error_rate_delta"]),
                        _ratio(c["p95_ratio"]),
                        _ratio(c["cost_per_call_ratio"]),
                    ]
                    if arm == "canary"
                    else ["", "", ""]
                )
                rows.append(
                    [
                        c["feature"] if arm == "baseline" else "",
                        arm,
                        fmt_cell("calls", s["calls"]),
                        fmt_cell("error_rate", s["error_rate"]),
                        fmt_cell("p95_ms", s["p95_ms"]),
                        fmt_cell("cost_per_call_usd", s["cost_per_call_usd"]),
                        *extra,
                    ]
                )
        out.append(("canary vs baseline", heads, rows))
    sla = report.get("sla")
    if sla is not None:
        heads = [
            "window (UTC)",
            "scope",
            "name",
            "metric",
            "target",
            "actual",
            "over by",
            "calls",
            "affected",
        ]
        rows = [
            [
                when(b["window_start"]),
                b["scope"],
                b["name"],
                b["metric"],
                metric_text(b["metric"], b["target"]),
                metric_text(b["metric"], b["actual"]),
                metric_text(b["metric"], b["over_by"]),
                f"{b['calls']:,}",
                f"{b['affected']:,}",
            ]
            for b in sla["breaches"]
        ]
        out.append((f"SLA breaches (per {sla['window']})", heads, rows))
        if sla["credits"]:
            heads = ["window (UTC)", "provider", "missed", "credit %", "spend $", "credit $"]
            rows = [
                [
                    when(c["window_start"]),
                    c["provider"],
                    ", ".join(c["metrics"]),
                    f"{c['credit_percent']:g}",
                    f"{c['spend_usd']:.4f}",
                    f"{c['credit_usd']:.4f}",
                ]
                for c in sla["credits"]
            ]
            rows.append(["total", "", "", "", "", f"{sla['credit_usd']:.4f}"])
            out.append(("SLA credits", heads, rows))
    return out


def _pct_pts(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f} pts"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def metric_text(metric: str, v: float) -> str:
    return f"{100 * v:.2f}%" if metric == "availability" else f"{v:,.0f} ms"


def report_title(report: dict[str, Any]) -> str:
    m = report["meta"]
    span = ""
    if m.get("first_ts") is not None:
        span = f", {when(m['first_ts'])} to {when(m['last_ts'])} UTC"
    return f"portal report: {m.get('calls', 0):,} calls{span}"
