"""A report as text cells: every table's title, headers and rows, formatted once for the
plain, console and HTML renderers."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from typing import Any

from portal.metering.report.model import COLUMNS

__all__ = [
    "BRIEF_COLUMNS",
    "DEMO_COLUMNS",
    "HEADERS",
    "Section",
    "VENDOR_COLUMNS",
    "canary_section",
    "fmt_cell",
    "fmt_usd",
    "headline_lines",
    "metric_text",
    "report_sections",
    "report_title",
    "sla_verdict",
    "traffic_notes",
    "vendor_section",
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
    rows = [[fmt_cell(c, r.get(c)) for c in columns] for r in [*report["rows"], report["total"]]]
    heads = [HEADERS[c] or f"by {report['by']}" for c in columns]
    out: list[Section] = [(f"calls by {report['by']}", heads, rows)]
    if report.get("vendors"):
        out.append(vendor_section(report))
    if report.get("errors"):
        heads = [f"by {report['by']}", "error", "calls failed", "attempts failed"]
        rows = [
            [e["group"], e["error"], f"{e['calls']:,}", f"{e['attempts']:,}"]
            for e in report["errors"]
        ]
        out.append((f"errors by {report['by']}", heads, rows))
    if report["canary"]:
        out.append(canary_section(report))
    out.extend(_sla_sections(report.get("sla")))
    if report.get("economics"):
        out.extend(economics_sections(report["economics"]))
    return out


def economics_sections(eco: dict[str, Any]) -> list[Section]:
    """Unit economics: cost per user action, per 1,000 successful calls, wasted spend and
    cache savings (`portal.metering.report.economics`)."""
    out: list[Section] = []
    if eco["actions"]:
        heads = ["feature", "actions", "calls/action", "$/action", "p95 $/action", "unpriced"]
        rows = [
            [
                a["feature"],
                f"{a['actions']:,}",
                f"{a['calls_per_action']:.2f}",
                fmt_usd(a["cost_per_action_usd"]),
                fmt_usd(a["p95_action_usd"]),
                f"{a['unpriced_actions']:,}",
            ]
            for a in eco["actions"]
        ]
        out.append(("cost per user action (tool steps, retries, failovers, hedges)", heads, rows))
    if eco["per_1k_successful"]:
        heads = ["feature", "target", "calls", "successful", "cost", "$ per 1,000 ok", "unpriced"]
        rows = [
            [
                r["feature"],
                r["target"],
                f"{r['calls']:,}",
                f"{r['successful']:,}",
                fmt_usd(r["cost_usd"]),
                fmt_usd(r["cost_per_1k_successful_usd"]),
                f"{r['unpriced_calls']:,}",
            ]
            for r in eco["per_1k_successful"]
        ]
        out.append(("cost per 1,000 successful calls", heads, rows))
    w = eco["waste"]
    if w["spend_usd"]:
        by = w["by_outcome_usd"]
        heads = ["attempt spend", "wasted", "share", "failed", "cancelled", "hedge lost", "invalid"]
        share = "-" if w["wasted_share"] is None else f"{100 * w['wasted_share']:.1f}%"
        rows = [
            [
                fmt_usd(w["spend_usd"]),
                fmt_usd(w["wasted_usd"]),
                share,
                fmt_usd(by["error"]),
                fmt_usd(by["cancelled"]),
                fmt_usd(by["hedge_lost"]),
                fmt_usd(by["invalid_output"]),
            ]
        ]
        out.append(("spend wasted on attempts that did not answer", heads, rows))
    cache = eco.get("cache")
    for kind, column in (("features", "feature"), ("targets", "target")):
        if not cache or not cache.get(kind):
            continue
        heads = [
            column,
            "input tokens",
            "cache reads",
            "cache writes",
            "hit rate",
            "saved",
            "write premium",
            "storage",
            "net saved",
            "misses expected",
        ]
        rows = [
            [
                t[column],
                f"{t['input_tokens']:,}",
                f"{t['cached_input_tokens']:,}",
                f"{t['cache_write_tokens']:,}",
                "-" if t["hit_rate"] is None else f"{100 * t['hit_rate']:.1f}%",
                fmt_usd(t["saved_usd"]),
                fmt_usd(t["write_premium_usd"]),
                fmt_usd(t["storage_usd"]) + (" (unpriced)" if t["unpriced_storage"] else ""),
                fmt_usd(t["net_saved_usd"]),
                f"{t['cache_misses_expected']:,}",
            ]
            for t in cache[kind]
        ]
        out.append((f"prompt cache by {column} (savings at today's prices)", heads, rows))
    return out


#: the per-vendor table: (key, header)
VENDOR_COLUMNS = (
    ("vendor", "vendor"),
    ("calls_served", "calls served"),
    ("served_share", "share"),
    ("attempts", "attempts"),
    ("failure_rate", "failed%"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("ttft_p50_ms", "ttft p50"),
    ("cost_usd", "cost"),
    ("cost_share", "of spend"),
    ("sla_breaches", "SLA misses"),
)


def vendor_section(report: dict[str, Any]) -> Section:
    """What each vendor did over every attempt (retries and failovers included)."""
    heads = [h for _, h in VENDOR_COLUMNS]
    rows = []
    for v in report["vendors"]:
        cells = []
        for key, _ in VENDOR_COLUMNS:
            value = v.get(key)
            if key in ("served_share", "failure_rate", "cost_share"):
                cells.append("-" if value is None else f"{100 * value:.1f}%")
            elif key == "cost_usd":
                cells.append(fmt_usd(value) + ("*" if v.get("unknown_cost_attempts") else ""))
            else:
                cells.append(fmt_cell(key, value))
        rows.append(cells)
    return ("vendors (every attempt)", heads, rows)


def canary_section(report: dict[str, Any]) -> Section:
    """Canary and baseline side by side, per feature: one metric per row."""
    heads = ["feature", "metric", "baseline", "canary", "change"]
    rows = []
    for c in report["canary"]:
        b, k = c["baseline"], c["canary"]
        lines = (
            ("calls", fmt_cell("calls", b["calls"]), fmt_cell("calls", k["calls"]), ""),
            (
                "error rate",
                fmt_cell("error_rate", b["error_rate"]),
                fmt_cell("error_rate", k["error_rate"]),
                _pct_pts(c["error_rate_delta"]),
            ),
            (
                "p95 ms",
                fmt_cell("p95_ms", b["p95_ms"]),
                fmt_cell("p95_ms", k["p95_ms"]),
                _ratio(c["p95_ratio"]),
            ),
            (
                "cost per action",
                fmt_usd(b["cost_per_call_usd"]),
                fmt_usd(k["cost_per_call_usd"]),
                _ratio(c["cost_per_call_ratio"]),
            ),
        )
        for i, (metric, base, canary, change) in enumerate(lines):
            rows.append([c["feature"] if i == 0 else "", metric, base, canary, change])
    return ("canary vs baseline", heads, rows)


def _sla_sections(sla: dict[str, Any] | None) -> list[Section]:
    if sla is None:
        return []
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
    out: list[Section] = [(f"SLA breaches (per {sla['window']})", heads, rows)]
    if sla["credits"]:
        heads = ["window (UTC)", "provider", "missed", "credit %", "spend", "credit"]
        rows = [
            [
                when(c["window_start"]),
                c["provider"],
                ", ".join(c["metrics"]),
                f"{c['credit_percent']:g}",
                fmt_usd(c["spend_usd"]),
                fmt_usd(c["credit_usd"]),
            ]
            for c in sla["credits"]
        ]
        rows.append(["total", "", "", "", "", fmt_usd(sla["credit_usd"])])
        out.append(("SLA credits", heads, rows))
    return out


def _pct_pts(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f} pts"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def metric_text(metric: str, v: float) -> str:
    return f"{100 * v:.2f}%" if metric == "availability" else f"{v:,.0f} ms"


def fmt_usd(v: float | None) -> str:
    """Dollars with three significant digits below $1 (``$0.000200``, ``$0.0123``), cents
    above (``$1,234.50``); ``unpriced`` when the price is unknown, never $0."""
    if v is None:
        return "unpriced"
    if v == 0:
        return "$0"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(v))))
    return f"${v:,.{decimals}f}"


def report_title(report: dict[str, Any]) -> str:
    m = report["meta"]
    span = ""
    if m.get("first_ts") is not None:
        span = f", {when(m['first_ts'])} to {when(m['last_ts'])} UTC"
    return f"portal report: {m.get('calls', 0):,} calls{span}"


def sla_verdict(row: dict[str, Any], window: str = "hour") -> str:
    """One feature's SLA in words: met, missed (how often and the worst miss), or not set."""
    terms = row.get("sla_terms") or {}
    if not terms:
        return "no SLA set"
    promised = ", ".join(_term(k, v) for k, v in terms.items())
    if row["sla_met"]:
        return f"SLA met ({promised})"
    worst = row["worst_breach"]
    return (
        f"SLA MISSED in {row['missed_windows']} of {row['windows']} {window}s ({promised}; worst "
        f"{worst['metric'].removesuffix('_ms')} {metric_text(worst['metric'], worst['actual'])})"
    )


def _term(metric: str, value: float) -> str:
    if metric == "availability":
        return f"availability >= {100 * value:g}%"
    return f"{metric.removesuffix('_ms')} <= {value:,.0f} ms"


def headline_lines(report: dict[str, Any]) -> list[str]:
    """The headline as a few lines of text: what a manager reads first."""
    h = report.get("headline")
    if not h:
        return []
    cost = fmt_usd(h["cost_usd"])
    if h["unknown_cost_calls"]:
        cost += f" (+{h['unknown_cost_calls']:,} unpriced calls)"
    lines = [
        f"  cost {cost}; {fmt_usd(h['cost_per_action_usd'])} per user action "
        f"({fmt_usd(h['cost_per_1k_calls_usd'])} per 1,000)",
        f"  errors {fmt_cell('error_rate', h['error_rate'])} of calls; p95 "
        f"{fmt_cell('p95_ms', h['p95_ms'])} ms; served by a fallback "
        f"{fmt_cell('fallback_share', h['fallback_share'])}",
    ]
    for row in h["features"]:
        lines.append(f"  {row['feature']}: {sla_verdict(row, h['window'])}")
    lines.extend(f"  {note}" for note in traffic_notes(report))
    return lines


def traffic_notes(report: dict[str, Any]) -> list[str]:
    """What the report left out (load tests, game days) and how to include it."""
    traffic = report.get("traffic") or {}
    left = traffic.get("left_out_calls") or {}
    if not left:
        return []
    parts = ", ".join(f"{n:,} {source}" for source, n in left.items())
    counted = traffic.get("counted")
    return [f"left out: {parts} call(s) (showing {counted} traffic; --traffic all counts them)"]
