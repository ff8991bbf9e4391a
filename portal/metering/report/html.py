"""The HTML renderer: one self-contained page (plotly's JavaScript inlined, opens offline) with
plots and the report's tables."""

from __future__ import annotations

import datetime as _dt
import html as _html
from collections.abc import Sequence
from typing import Any

from portal.metering.report.cells import metric_text, report_sections, report_title, when

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;font-size:13px} .note{color:#666;font-style:italic}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} th{background:#f5f5f5}
.grid{display:grid;grid-template-columns:1fr;gap:8px}
"""


def _html_table(heads: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return '<p class="note">none</p>'
    h = "".join(f"<th>{_html.escape(x)}</th>" for x in heads)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    table = f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wrap">{table}</div>'


def _figures(report: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(div id, title, plotly figure or a note string) for each plot."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    palette = [
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
    ]
    figs: list[tuple[str, str, Any]] = []

    # 1. latency percentiles over time per provider
    series = report["latency_series"]
    if series["providers"]:
        fig = go.Figure()
        dash = {"p50": "dot", "p95": "solid", "p99": "dash"}
        for i, (provider, s) in enumerate(series["providers"].items()):
            xs = [_dt.datetime.fromtimestamp(t, _dt.UTC) for t in s["t"]]
            for q in ("p50", "p95", "p99"):
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=s[q],
                        name=f"{provider} {q}",
                        mode="lines+markers",
                        line={"color": palette[i % len(palette)], "dash": dash[q]},
                        legendgroup=provider,
                        customdata=s["n"],
                        hovertemplate="%{y:,.0f} ms (%{customdata} attempts)"
                        "<extra>%{fullData.name}</extra>",
                    )
                )
        fig.update_layout(
            yaxis_title="ms (successful attempts)",
            xaxis_title=f"time (UTC, {series['bucket_s']}s buckets)",
        )
        figs.append(("latency", "Latency percentiles over time, per provider", fig))
    else:
        figs.append(
            (
                "latency",
                "Latency percentiles over time, per provider",
                "no successful attempts in this period",
            )
        )

    # 2. cost per feature
    rows = report["features_cost"]
    if rows:
        fig = make_subplots(
            rows=1, cols=2, subplot_titles=("total cost (USD)", "cost per 1,000 calls (USD)")
        )
        names = [r["group"] for r in rows]
        fig.add_trace(
            go.Bar(x=names, y=[r["cost_usd"] for r in rows], name="total", marker_color=palette[0]),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=names,
                y=[r["cost_per_1k_calls_usd"] for r in rows],
                name="per 1k calls",
                marker_color=palette[2],
            ),
            row=1,
            col=2,
        )
        fig.update_layout(showlegend=False)
        figs.append(("cost", "Cost per feature", fig))
    else:
        figs.append(("cost", "Cost per feature", "no calls in this period"))

    # 3. canary vs baseline
    if report["canary"]:
        fig = make_subplots(
            rows=1,
            cols=3,
            subplot_titles=("error rate (%)", "p95 latency (ms)", "cost per call (USD)"),
        )
        feats = [c["feature"] for c in report["canary"]]
        for j, arm in enumerate(("baseline", "canary")):
            vals = [c[arm] for c in report["canary"]]
            for col, key, scale in (
                (1, "error_rate", 100.0),
                (2, "p95_ms", 1.0),
                (3, "cost_per_call_usd", 1.0),
            ):
                fig.add_trace(
                    go.Bar(
                        x=feats,
                        y=[None if v[key] is None else v[key] * scale for v in vals],
                        name=arm,
                        marker_color=palette[j],
                        legendgroup=arm,
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
        fig.update_layout(barmode="group")
        figs.append(("canary", "Canary vs baseline", fig))
    else:
        figs.append(("canary", "Canary vs baseline", "no canary traffic in this period"))

    # 4. SLA breaches
    sla = report.get("sla")
    if sla and sla["breaches"]:
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
                    x=[_dt.datetime.fromtimestamp(b["window_start"], _dt.UTC) for b in pts],
                    y=[b["affected"] for b in pts],
                    name=f"{scope} {name} {metric}",
                    marker_color=palette[i % len(palette)],
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
            yaxis_title="affected calls",
            xaxis_title=f"window (UTC, per {sla['window']})",
        )
        figs.append(("sla", "SLA breaches", fig))
    else:
        note = "no SLA breaches" if sla is not None else "no config given: SLAs unknown"
        figs.append(("sla", "SLA breaches", note))
    return figs


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page: plotly's JavaScript inlined, no network needed."""
    from plotly.offline import get_plotlyjs

    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{_html.escape(report_title(report))}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>{_html.escape(report_title(report))}</h1>",
    ]
    meta = report["meta"]
    if meta.get("ledgers"):
        parts.append(
            f'<p class="meta">ledgers: {_html.escape(", ".join(meta["ledgers"]))}'
            f"; generated {when(meta['generated_at'])} UTC</p>"
        )
    for div_id, title, fig in _figures(report):
        parts.append(f"<h2>{_html.escape(title)}</h2>")
        if isinstance(fig, str):
            parts.append(f'<p class="note" id="{div_id}">{_html.escape(fig)}</p>')
            continue
        fig.update_layout(
            template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 40, "b": 50}
        )
        parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=div_id,
                config={"displaylogo": False, "responsive": True},
            )
        )
    for title, heads, rows in report_sections(report):
        parts.append(f"<h2>{_html.escape(title[:1].upper() + title[1:])}</h2>")
        parts.append(_html_table(heads, rows))
    parts.append("</body></html>")
    return "\n".join(parts)
