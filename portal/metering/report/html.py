"""The HTML renderer: one self-contained page (plotly's JavaScript inlined, opens offline) that a
manager reads top-down in a minute: the headline (calls, cost, cost per user action, SLA met or
not per feature), features and vendors, latency and cost over time, canary arms side by side,
SLA breaches; the detailed tables follow.

Charts never invent data: empty time buckets are gaps, not lines across them; money axes are
dollars with enough decimals (no SI prefixes such as "200µ"); a chart with nothing to show is a
sentence instead."""

from __future__ import annotations

import datetime as _dt
import html as _html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from portal.metering.report.cells import (
    canary_section,
    fmt_cell,
    fmt_usd,
    metric_text,
    report_sections,
    report_title,
    sla_verdict,
    traffic_notes,
    vendor_section,
    when,
)

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1280px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;font-size:13px} .note{color:#666;font-style:italic}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} th{background:#f5f5f5}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.tile{border:1px solid #e3e3e3;border-radius:8px;padding:10px 16px;min-width:150px}
.tile .label{color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.tile .value{font-size:26px;font-weight:600;margin:2px 0}
.tile .sub{color:#666;font-size:12px}
ul.sla{list-style:none;padding:0;margin:6px 0} ul.sla li{margin:4px 0;font-size:14px}
.badge{display:inline-block;min-width:64px;text-align:center;border-radius:4px;padding:1px 6px;
margin-right:8px;font-size:12px;font-weight:600;color:#fff}
.met{background:#2e7d32} .missed{background:#c62828} .unset{background:#9e9e9e}
td.missed{color:#c62828;font-weight:600;background:none} td.met{color:#2e7d32;background:none}
"""

_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)


def _html_table(
    heads: Sequence[str], rows: Sequence[Sequence[str]], classes: Iterable[str] = ()
) -> str:
    """A table; ``classes`` gives each row's last cell a CSS class (SLA met/missed)."""
    if not rows:
        return '<p class="note">none</p>'
    marks = list(classes)
    h = "".join(f"<th>{_html.escape(x)}</th>" for x in heads)
    body = []
    for i, r in enumerate(rows):
        cells = [f"<td>{_html.escape(c)}</td>" for c in r]
        if i < len(marks) and marks[i]:
            cells[-1] = f'<td class="{marks[i]}">{_html.escape(r[-1])}</td>'
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="wrap">{table}</div>'


# ------------------------------------------------------------------------------ headline


def _tiles(report: dict[str, Any]) -> str:
    h = report["headline"]
    unpriced = h["unknown_cost_calls"]
    tiles = [
        ("Calls", f"{h['calls']:,}", f"{fmt_cell('error_rate', h['error_rate'])} failed"),
        (
            "Cost",
            fmt_usd(h["cost_usd"]) if h["calls"] else "$0",
            f"+{unpriced:,} unpriced calls" if unpriced else "every call priced",
        ),
        (
            "Cost per user action",
            fmt_usd(h["cost_per_action_usd"]),
            f"{fmt_usd(h['cost_per_1k_calls_usd'])} per 1,000",
        ),
        (
            "Latency p95",
            f"{fmt_cell('p95_ms', h['p95_ms'])} ms",
            f"{fmt_cell('fallback_share', h['fallback_share'])} served by a fallback",
        ),
    ]
    met = [f for f in h["features"] if f["sla_met"] is True]
    missed = [f for f in h["features"] if f["sla_met"] is False]
    if met or missed:
        tiles.append(
            (
                "SLAs met",
                f"{len(met)} of {len(met) + len(missed)}",
                "missed: " + ", ".join(f["feature"] for f in missed) if missed else "all met",
            )
        )
    parts = [
        f'<div class="tile"><div class="label">{_html.escape(label)}</div>'
        f'<div class="value">{_html.escape(value)}</div>'
        f'<div class="sub">{_html.escape(sub)}</div></div>'
        for label, value, sub in tiles
    ]
    return '<div class="tiles" id="headline">' + "".join(parts) + "</div>"


def _sla_list(report: dict[str, Any]) -> str:
    items = []
    for row in report["headline"]["features"]:
        state = {True: ("met", "met"), False: ("missed", "missed"), None: ("unset", "no SLA")}[
            row["sla_met"]
        ]
        items.append(
            f'<li><span class="badge {state[0]}">{state[1]}</span>'
            f"<b>{_html.escape(row['feature'])}</b>: "
            f"{_html.escape(sla_verdict(row, report['headline']['window']))}</li>"
        )
    return '<ul class="sla">' + "".join(items) + "</ul>" if items else ""


def _features_table(report: dict[str, Any]) -> str:
    heads = ["feature", "calls", "failed", "p95 ms", "cost", "per action", "per 1,000", "SLA"]
    rows, marks = [], []
    per_1k = {r["group"]: r["cost_per_1k_calls_usd"] for r in report["features_cost"]}
    for f in report["headline"]["features"]:
        rows.append(
            [
                f["feature"],
                fmt_cell("calls", f["calls"]),
                fmt_cell("error_rate", f["error_rate"]),
                fmt_cell("p95_ms", f["p95_ms"]),
                fmt_usd(f["cost_usd"]) + ("*" if f["unknown_cost_calls"] else ""),
                fmt_usd(f["cost_per_action_usd"]),
                fmt_usd(per_1k.get(f["feature"])),
                {True: "met", False: "MISSED", None: "-"}[f["sla_met"]],
            ]
        )
        marks.append({True: "met", False: "missed", None: ""}[f["sla_met"]])
    return _html_table(heads, rows, marks)


# ------------------------------------------------------------------------------ charts


def _times(ts: Sequence[float]) -> list[_dt.datetime]:
    return [_dt.datetime.fromtimestamp(t, _dt.UTC) for t in ts]


def _bucket_name(size: float | None) -> str:
    if not size:
        return ""
    names = {
        60.0: "1-minute",
        300.0: "5-minute",
        900.0: "15-minute",
        3600.0: "hourly",
        86400.0: "daily",
    }
    if size in names:
        return names[size]
    return f"{size / 3600:g}-hour" if size >= 3600 else f"{size:g}-second"


def _money_axis(values: Iterable[float | None]) -> dict[str, Any]:
    """A y axis in dollars with the decimals its largest value needs (two significant
    digits below $1: ``$0.0025``), never SI prefixes ("200µ")."""
    top = max((abs(v) for v in values if v is not None), default=0.0)
    if top >= 100:
        decimals = 0
    elif top >= 1 or top == 0:
        decimals = 2
    else:
        decimals = max(2, 1 - math.floor(math.log10(top)))
    return {
        "tickprefix": "$",
        "tickformat": f",.{decimals}f",
        "exponentformat": "none",
        "rangemode": "tozero",
    }


def _latency_figure(report: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    series = report["latency_series"]
    if not series["providers"]:
        return "no successful attempts in this period"
    fig = go.Figure()
    xs = _times(series["t"])
    dash = {"p50": "dot", "p95": "solid", "p99": "dash"}
    for i, (provider, s) in enumerate(series["providers"].items()):
        for q in ("p50", "p95", "p99"):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=s[q],
                    name=f"{provider} {q}",
                    mode="lines+markers",
                    connectgaps=False,  # an empty bucket is a gap, not a line across it
                    marker={"size": 4},
                    line={"color": _PALETTE[i % len(_PALETTE)], "dash": dash[q]},
                    legendgroup=provider,
                    visible=True if q != "p99" else "legendonly",
                    customdata=s["n"],
                    hovertemplate="%{y:,.0f} ms (%{customdata} attempts)"
                    "<extra>%{fullData.name}</extra>",
                )
            )
    for f in report["headline"]["features"]:
        limit = (f["sla_terms"] or {}).get("p95_ms")
        if limit is not None:
            fig.add_hline(
                y=limit,
                line={"dash": "dash", "color": "#c62828", "width": 1},
                annotation_text=f"{f['feature']} SLA p95 {limit:,.0f} ms",
                annotation_position="top left",
            )
    fig.update_layout(
        yaxis={"title": "ms (successful attempts)", "rangemode": "tozero"},
        xaxis_title=f"time (UTC, {_bucket_name(series['bucket_s'])} buckets; gaps: no traffic)",
    )
    return fig


def _cost_figure(report: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    series = report["cost_series"]
    if not series["features"]:
        return "no calls in this period"
    fig = go.Figure()
    xs = _times(series["t"])
    totals = [0.0] * len(xs)
    for i, (feature, costs) in enumerate(series["features"].items()):
        totals = [a + b for a, b in zip(totals, costs, strict=True)]
        fig.add_trace(
            go.Bar(
                x=xs,
                y=costs,
                name=feature,
                marker_color=_PALETTE[i % len(_PALETTE)],
                hovertemplate="%{y:$,.6f}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        yaxis={"title": "cost (USD)", **_money_axis(totals)},
        xaxis_title=f"time (UTC, {_bucket_name(series['bucket_s'])} buckets)",
    )
    return fig


def _canary_figure(report: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    canary = report["canary"]
    if not canary:
        return "no canary traffic in this period"
    metrics = [
        ("error_rate", "error rate (%)", 100.0),
        ("p95_ms", "p95 latency (ms)", 1.0),
        ("cost_per_call_usd", "cost per user action", 1.0),
    ]
    if not any(c[arm]["error_rate"] for c in canary for arm in ("baseline", "canary")):
        metrics = metrics[1:]  # no errors on either arm: no empty error chart
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m[1] for m in metrics])
    feats = [c["feature"] for c in canary]
    for j, arm in enumerate(("baseline", "canary")):
        for col, (key, _, scale) in enumerate(metrics, 1):
            fig.add_trace(
                go.Bar(
                    x=feats,
                    y=[None if c[arm][key] is None else c[arm][key] * scale for c in canary],
                    name=arm,
                    marker_color=_PALETTE[j],
                    legendgroup=arm,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    money_col = len(metrics)
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(
        _money_axis(c[arm]["cost_per_call_usd"] for c in canary for arm in ("baseline", "canary")),
        row=1,
        col=money_col,
    )
    fig.update_layout(barmode="group")
    return fig


def _sla_figure(report: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    sla = report.get("sla")
    if sla is None:
        return "no config given: SLAs unknown"
    if not sla["breaches"]:
        return "no SLA breaches"
    fig = go.Figure()
    keys = sorted({(b["scope"], b["name"], b["metric"]) for b in sla["breaches"]})
    for i, (scope, name, metric) in enumerate(keys):
        pts = [
            b
            for b in sla["breaches"]
            if (b["scope"], b["name"], b["metric"]) == (scope, name, metric)
        ]
        fig.add_trace(
            go.Bar(
                x=[when(b["window_start"]) for b in pts],
                y=[b["affected"] for b in pts],
                name=f"{scope} {name} {metric}",
                marker_color=_PALETTE[i % len(_PALETTE)],
                customdata=[
                    [metric_text(metric, b["actual"]), metric_text(metric, b["target"])]
                    for b in pts
                ],
                hovertemplate="%{y} affected calls; %{customdata[0]} vs %{customdata[1]}"
                "<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "affected calls", "rangemode": "tozero"},
        xaxis={"title": f"window (UTC, per {sla['window']})", "type": "category"},
    )
    return fig


def _plot(div_id: str, fig: Any) -> str:
    if isinstance(fig, str):
        return f'<p class="note" id="{div_id}">{_html.escape(fig)}</p>'
    fig.update_layout(
        template="plotly_white", height=380, margin={"l": 70, "r": 20, "t": 40, "b": 50}
    )
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


# ------------------------------------------------------------------------------ page


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page: plotly's JavaScript inlined, no network needed."""
    from plotly.offline import get_plotlyjs

    title = report_title(report)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{_html.escape(title)}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>{_html.escape(title)}</h1>",
    ]
    meta = report["meta"]
    notes = []
    if meta.get("ledgers"):
        notes.append(f"ledgers: {', '.join(meta['ledgers'])}")
    if meta.get("generated_at"):
        notes.append(f"generated {when(meta['generated_at'])} UTC")
    notes.extend(traffic_notes(report))
    if notes:
        parts.append(f'<p class="meta">{_html.escape("; ".join(notes))}</p>')
    if report.get("headline"):
        parts += [_tiles(report), "<h2>SLA per feature</h2>", _sla_list(report)]
        parts += ["<h2>Features</h2>", _features_table(report)]
    if report.get("vendors"):
        _, heads, rows = vendor_section(report)
        parts += ["<h2>Vendors (every attempt, retries and failovers included)</h2>"]
        parts.append(_html_table(heads, rows))
    parts += ["<h2>Latency over time, per vendor</h2>", _plot("latency", _latency_figure(report))]
    parts += ["<h2>Cost over time, per feature</h2>", _plot("cost", _cost_figure(report))]
    parts.append("<h2>Canary vs baseline</h2>")
    if report["canary"]:
        _, heads, rows = canary_section(report)
        parts.append(_html_table(heads, rows))
    parts.append(_plot("canary", _canary_figure(report)))
    parts += ["<h2>SLA breaches</h2>", _plot("sla", _sla_figure(report))]
    parts.append("<h2>Details</h2>")
    for section_title, heads, rows in report_sections(report):
        if section_title in ("canary vs baseline", "vendors (every attempt)"):
            continue  # shown above
        parts.append(f"<h3>{_html.escape(section_title[:1].upper() + section_title[1:])}</h3>")
        parts.append(_html_table(heads, rows))
    parts.append("</body></html>")
    return "\n".join(parts)
