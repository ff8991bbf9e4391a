"""The HTML report of a load test or game day: one self-contained page of plotly figures
(latency over time from the intended start, throughput and errors per second, share served
per target, the latency distribution) plus the summary table. Uses the metering report's
plot helpers when that module provides them, plotly directly otherwise."""

from __future__ import annotations

import html as _html
from collections import defaultdict
from pathlib import Path
from typing import Any

from portal.stress.engine import RunResult
from portal.stress.results import render_table

__all__ = ["write_html"]


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the install
        from portal._extras import install_hint

        raise ImportError(f"--html needs plotly: {install_hint('report')}") from exc
    return go


def figures(
    doc: dict[str, Any], result: RunResult, faults: list[dict[str, Any]] | None = None
) -> list[Any]:
    go = _plotly()
    figs = []
    # 1. every request: intended start vs latency, by the target that served it
    by_target: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for s in result.samples:
        if s.latency_ms is None:
            continue
        name = s.target if s.ok and s.target else f"error: {s.error}"
        xs, ys = by_target[name]
        xs.append(s.intended_s)
        ys.append(s.latency_ms)
    lat = go.Figure()
    for name, (xs, ys) in sorted(by_target.items()):
        lat.add_trace(go.Scattergl(x=xs, y=ys, mode="markers", name=name, marker={"size": 4}))
    tl = doc["timeline"]
    lat.add_trace(
        go.Scatter(
            x=[r["t_s"] for r in tl],
            y=[r["p95_ms"] for r in tl],
            mode="lines",
            name="p95 per second",
            line={"width": 2},
        )
    )
    for check in (doc.get("sla") or {}).get("checks", []):
        if not check["metric"].endswith("_ms"):
            continue
        verdict = "met" if check["ok"] else "MISSED"
        measured = check["measured"]
        lat.add_hline(
            y=check["limit"],
            line={"dash": "dash", "color": "#2e7d32" if check["ok"] else "#c62828", "width": 2},
            annotation_text=f"SLA {check['metric'].removesuffix('_ms')} {check['limit']:,.0f} ms: "
            f"{verdict}" + (f" ({measured:,.0f} ms)" if measured is not None else ""),
            annotation_position="top left",
        )
    lat.update_layout(
        title="Latency from intended start (no coordinated omission)",
        xaxis_title="intended start (s)",
        yaxis={"title": "latency (ms)", "rangemode": "tozero"},
    )
    figs.append(lat)
    # 2. sent / ok / errors per second
    thr = go.Figure()
    errors = any(r["errors"] for r in tl)
    for key in ("sent", "ok", "errors") if errors else ("sent", "ok"):
        thr.add_trace(
            go.Scatter(x=[r["t_s"] for r in tl], y=[r[key] for r in tl], name=key, mode="lines")
        )
    thr.update_layout(
        title="Requests per second" + ("" if errors else " (no errors)"),
        xaxis_title="s",
        yaxis={"title": "requests", "rangemode": "tozero"},
    )
    figs.append(thr)
    # 3. share served per target over time
    targets = sorted({t for r in tl for t in r["targets"]})
    share = go.Figure()
    for t in targets:
        share.add_trace(
            go.Scatter(
                x=[r["t_s"] for r in tl],
                y=[r["targets"].get(t, 0) for r in tl],
                name=t,
                stackgroup="one",
                mode="lines",
            )
        )
    share.update_layout(
        title="Served per target per second", xaxis_title="s", yaxis_title="ok requests"
    )
    figs.append(share)
    # 4. latency distribution
    hist = go.Figure(
        go.Histogram(
            x=[s.latency_ms for s in result.samples if s.latency_ms], nbinsx=80, name="latency"
        )
    )
    hist.update_layout(title="Latency distribution", xaxis_title="ms", yaxis_title="requests")
    figs.append(hist)
    for f in faults or []:
        for fig in figs[:3]:
            fig.add_vrect(
                x0=f["start_s"],
                x1=f["end_s"],
                fillcolor="red",
                opacity=0.12,
                line_width=0,
                annotation_text=f["kind"],
                annotation_position="top left",
            )
    return figs


def _verdict(doc: dict[str, Any]) -> str:
    """The SLA verdict in one line: met, missed (which terms), or no SLA configured."""
    sla = doc.get("sla") or {}
    if sla.get("met") is None:
        return "SLA: none configured for this feature"
    if sla["met"]:
        return "SLA met"
    missed = [c["metric"].removesuffix("_ms") for c in sla.get("checks", []) if not c["ok"]]
    return "SLA MISSED: " + ", ".join(missed)


def write_html(
    doc: dict[str, Any],
    result: RunResult,
    path: str | Path,
    kind: str = "loadtest",
    faults: list[dict[str, Any]] | None = None,
    summary_lines: list[str] | None = None,
) -> Path:
    figs = figures(doc, result, faults)
    title = f"portal {kind}: {doc['feature']}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em}"
        "pre{background:#f6f6f6;padding:1em}</style></head><body>",
        f"<h1>{_html.escape(title)}</h1>",
        f"<p><b>{_html.escape(_verdict(doc))}</b></p>",
        "<pre>" + _html.escape("\n".join(summary_lines or render_table(doc))) + "</pre>",
    ]
    for i, fig in enumerate(figs):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    out = Path(path)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
