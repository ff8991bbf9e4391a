"""`portal report`: cost, latency and SLAs per feature, vendor, target, arm or day, from the
ledger(s).

    portal report [--config PATH] [--ledger URL ...] [--since 24h] [--feature F]
                  [--by feature|provider|target|arm|day] [--window hour|day]
                  [--format table|json|csv|html] [--out FILE]

By default it reads the ledgers named in the config (``[portal] ledger``; relative sqlite
and jsonl paths resolve against the config file's folder; with none configured,
``<config dir>/.portal/ledger.db``). Several ledgers are merged; a record present in more
than one (the same call written to SQLite and PostgreSQL) is counted once.

What one row says (call rows of the group):

* calls, user-visible errors and error rate (cancelled calls excluded: the caller left);
* latency p50/p95/p99 and time to first token p50/p95, over successful calls;
* tokens and cost in total, per call and per 1,000 calls; calls whose price is unknown
  are counted apart, never as 0;
* attempts per call, and the share of successful calls served by a fallback: by a target
  other than the one tried first, or (with the config) other than the feature's primary
  or canary target.

Plus errors by class per group (calls that failed with it, and failed attempts, including
those a retry or fallback absorbed), canary against baseline per feature (error rate, p95,
cost per call) and SLA breaches and credits (`portal.metering.sla`). ``--format html``
writes one self-contained file (plotly with its JavaScript inlined, opens offline) with
plots and the same tables.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html as _html
import io
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portal.metering.stats import percentile

if TYPE_CHECKING:
    from portal.config import PortalConfig
    from portal.metering.ledger import LedgerRecord

__all__ = [
    "GROUPINGS",
    "build_report",
    "demo_report",
    "load_records",
    "parse_since",
    "render_html",
    "render_text",
]

GROUPINGS = ("feature", "provider", "target", "arm", "day")
FORMATS = ("table", "json", "csv", "html")

#: columns of a group row, in the order tables and CSV show them
COLUMNS = (
    "group",
    "calls",
    "errors",
    "error_rate",
    "attempts_per_call",
    "fallback_share",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "input_tokens",
    "output_tokens",
    "tokens_per_call",
    "cost_usd",
    "cost_per_call_usd",
    "cost_per_1k_calls_usd",
    "unknown_cost_calls",
)

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ============================================================================ inputs


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``24h``, ``30m``, ``7d``, ``2w``, an ISO date/time (UTC if no zone), or ``all`` →
    epoch seconds (None for all)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    now = time.time() if now is None else now
    m = _SINCE.match(text.strip().lower())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use a duration like 24h, 30m, 7d, 2w, an ISO date such as "
            "2025-11-01, or 'all'"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


def ledger_urls(config: PortalConfig) -> list[str]:
    """The ledgers a client built from ``config`` writes to, with relative sqlite/jsonl
    paths resolved against the config's folder (same rules as the client)."""
    base = Path(config.base_dir)
    urls = [u for u in config.portal.ledgers if u != "none"]
    if not config.portal.ledgers:
        urls = [f"sqlite:///{base / '.portal' / 'ledger.db'}"]
    out = []
    for url in urls:
        scheme, sep, rest = url.partition(":///")
        if sep and scheme in ("sqlite", "jsonl") and not rest.startswith("/"):
            url = f"{scheme}:///{base / rest}"
        out.append(url)
    return out


def _shown(url: str) -> str:
    """A ledger URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def load_records(
    urls: Sequence[str], since: float | None = None, feature: str | None = None
) -> list[LedgerRecord]:
    """Records of every ledger in ``urls``, merged (duplicates once), oldest first."""
    from portal.metering.ledger import read_records

    seen: set[tuple[Any, ...]] = set()
    out: list[LedgerRecord] = []
    for url in urls:
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            continue  # nothing recorded yet; never create an empty database by reading
        for r in read_records(url, since=since, feature=feature):
            key = (r.kind, r.call_id, r.attempt, r.target, round(r.ts, 6)) if r.call_id else None
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            out.append(r)
    out.sort(key=lambda r: r.ts)
    return out


# ============================================================================ numbers


def _first_targets(records: Iterable[LedgerRecord]) -> dict[str, str]:
    """call_id → the target its first attempt went to."""
    first: dict[str, tuple[float, int, str]] = {}
    for r in records:
        if r.kind != "attempt" or not r.call_id:
            continue
        cur = first.get(r.call_id)
        if cur is None or (r.ts, r.attempt) < cur[:2]:
            first[r.call_id] = (r.ts, r.attempt, r.target)
    return {k: v[2] for k, v in first.items()}


class _Expected:
    """The targets a feature's call is meant to be served by: primary, or canary target."""

    def __init__(self, config: PortalConfig | None) -> None:
        self.by_feature: dict[str, set[str]] = {}
        if config is None:
            return
        for name, feat in config.features.items():
            ids = {_norm(config, feat.primary)}
            if feat.canary is not None:
                ids.add(_norm(config, feat.canary.target))
            self.by_feature[name] = ids

    def fallback(self, r: LedgerRecord, first: str | None) -> bool:
        if first is not None and first != r.target:
            return True
        expected = self.by_feature.get(r.feature or "")
        return expected is not None and r.target not in expected


def _norm(config: PortalConfig, model_id: str) -> str:
    try:
        provider, model = config.resolve_target(model_id)
    except Exception:
        return model_id
    return f"{provider}:{model}"


def _group_key(r: LedgerRecord, by: str) -> str:
    if by == "feature":
        return r.feature or "(no feature)"
    if by == "provider":
        return r.provider or "(none)"
    if by == "target":
        return r.target or "(none)"
    if by == "arm":
        return r.arm
    if by == "day":
        return _dt.datetime.fromtimestamp(r.ts, _dt.UTC).date().isoformat()
    raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")


def _stats(name: str, calls: list[LedgerRecord], fallbacks: int) -> dict[str, Any]:
    n = len(calls)
    ok = [r for r in calls if r.outcome not in ("error", "cancelled")]
    errors = sum(1 for r in calls if r.outcome == "error")
    counted = sum(1 for r in calls if r.outcome != "cancelled")
    lat = [r.latency_ms for r in ok]
    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    known = [r.cost_usd for r in calls if r.cost_usd is not None]
    cost = float(sum(known))
    inp = sum(r.input_tokens for r in calls)
    out = sum(r.output_tokens for r in calls)
    return {
        "group": name,
        "calls": n,
        "errors": errors,
        "error_rate": errors / counted if counted else None,
        "attempts": sum(r.attempt for r in calls),
        "attempts_per_call": sum(r.attempt for r in calls) / n if n else None,
        "fallback_calls": fallbacks,
        "fallback_share": fallbacks / len(ok) if ok else None,
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p95_ms": percentile(ttft, 95),
        "input_tokens": inp,
        "output_tokens": out,
        "cached_input_tokens": sum(r.cached_input_tokens for r in calls),
        "tokens_per_call": (inp + out) / n if n else None,
        "cost_usd": cost,
        "cost_per_call_usd": cost / len(known) if known else None,
        "cost_per_1k_calls_usd": 1000 * cost / len(known) if known else None,
        "unknown_cost_calls": n - len(known),
    }


def build_report(
    records: Sequence[LedgerRecord],
    config: PortalConfig | None = None,
    by: str = "feature",
    window: str = "hour",
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the renderers show, as plain data (what ``--format json`` prints)."""
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    calls = [r for r in records if r.kind == "call"]
    attempts = [r for r in records if r.kind == "attempt"]
    first = _first_targets(attempts)
    expected = _Expected(config)
    is_fallback = {
        id(r): r.outcome not in ("error", "cancelled")
        and expected.fallback(r, first.get(r.call_id))
        for r in calls
    }

    def table(
        key: Callable[[LedgerRecord], str], rows: Iterable[LedgerRecord]
    ) -> list[dict[str, Any]]:
        groups: dict[str, list[LedgerRecord]] = defaultdict(list)
        for r in rows:
            groups[key(r)].append(r)
        return [
            _stats(name, g, sum(1 for r in g if is_fallback[id(r)]))
            for name, g in sorted(groups.items())
        ]

    report: dict[str, Any] = {
        "meta": dict(meta or {}),
        "by": by,
        "rows": table(lambda r: _group_key(r, by), calls),
        "total": _stats("total", calls, sum(is_fallback.values())),
        "attempts": len(attempts),
    }
    report["meta"].setdefault("generated_at", time.time())
    report["meta"]["calls"] = len(calls)
    if calls:
        report["meta"]["first_ts"] = calls[0].ts
        report["meta"]["last_ts"] = calls[-1].ts

    # canary against baseline, per feature that had canary calls
    canary: list[dict[str, Any]] = []
    by_feature: dict[str, list[LedgerRecord]] = defaultdict(list)
    for r in calls:
        if r.feature:
            by_feature[r.feature].append(r)
    for feature, rows in sorted(by_feature.items()):
        if not any(r.arm == "canary" for r in rows):
            continue
        arms = {
            arm: _stats(
                arm,
                [r for r in rows if r.arm == arm],
                sum(1 for r in rows if r.arm == arm and is_fallback[id(r)]),
            )
            for arm in ("baseline", "canary")
        }
        b, c = arms["baseline"], arms["canary"]
        canary.append(
            {
                "feature": feature,
                "baseline": b,
                "canary": c,
                "error_rate_delta": _sub(c["error_rate"], b["error_rate"]),
                "p95_ratio": _div(c["p95_ms"], b["p95_ms"]),
                "cost_per_call_ratio": _div(c["cost_per_call_usd"], b["cost_per_call_usd"]),
            }
        )
    report["canary"] = canary

    if config is not None:
        from portal.metering.sla import account

        report["sla"] = account(records, config, window).to_dict()  # type: ignore[arg-type]
    else:
        report["sla"] = None
    report["errors"] = _errors(calls, attempts, by)
    report["latency_series"] = _latency_series(attempts)
    report["features_cost"] = table(lambda r: r.feature or "(no feature)", calls)
    return report


def _errors(
    calls: Sequence[LedgerRecord], attempts: Sequence[LedgerRecord], by: str
) -> list[dict[str, Any]]:
    """Per group and error class: calls that failed with it (the user saw it) and failed
    attempts (including those a retry or a fallback absorbed: what a game day measures)."""
    seen: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, rows in enumerate((calls, attempts)):
        for r in rows:
            if r.outcome == "error":
                seen[(_group_key(r, by), r.error or "(unknown)")][i] += 1
    return [
        {"group": g, "error": e, "calls": c, "attempts": a}
        for (g, e), (c, a) in sorted(seen.items(), key=lambda kv: (kv[0][0], -sum(kv[1]), kv[0][1]))
    ]


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


_BUCKETS = (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)


def _latency_series(attempts: Sequence[LedgerRecord]) -> dict[str, Any]:
    """p50/p95/p99 of successful attempts per provider per time bucket (≤ ~60 buckets)."""
    ok = [r for r in attempts if r.outcome == "ok"]
    if not ok:
        return {"bucket_s": None, "providers": {}}
    span = max(r.ts for r in ok) - min(r.ts for r in ok)
    size = next((b for b in _BUCKETS if span / b <= 60), 7 * 86400)
    data: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        data[r.provider or "(none)"][(r.ts // size) * size].append(r.latency_ms)
    series: dict[str, Any] = {}
    for provider, buckets in sorted(data.items()):
        xs = sorted(buckets)
        series[provider] = {
            "t": xs,
            "n": [len(buckets[x]) for x in xs],
            "p50": [percentile(buckets[x], 50) for x in xs],
            "p95": [percentile(buckets[x], 95) for x in xs],
            "p99": [percentile(buckets[x], 99) for x in xs],
        }
    return {"bucket_s": size, "providers": series}


# ============================================================================ text


def _fmt(key: str, v: Any) -> str:
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


_HEADERS = {
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
_BRIEF = (
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
_DEMO = ("group", "calls", "errors", "attempts_per_call", *_BRIEF[2:])


def _when(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M")


Section = tuple[str, list[str], list[list[str]]]


def _sections(report: dict[str, Any], columns: Sequence[str] = COLUMNS) -> list[Section]:
    """(title, headers, rows) of every table in the report, as text cells."""
    out: list[Section] = []
    rows = [[_fmt(c, r.get(c)) for c in columns] for r in [*report["rows"], report["total"]]]
    heads = [_HEADERS[c] or f"by {report['by']}" for c in columns]
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
                        _fmt("calls", s["calls"]),
                        _fmt("error_rate", s["error_rate"]),
                        _fmt("p95_ms", s["p95_ms"]),
                        _fmt("cost_per_call_usd", s["cost_per_call_usd"]),
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
                _when(b["window_start"]),
                b["scope"],
                b["name"],
                b["metric"],
                _metric(b["metric"], b["target"]),
                _metric(b["metric"], b["actual"]),
                _metric(b["metric"], b["over_by"]),
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
                    _when(c["window_start"]),
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


def _metric(metric: str, v: float) -> str:
    return f"{100 * v:.2f}%" if metric == "availability" else f"{v:,.0f} ms"


def _plain(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _title(report: dict[str, Any]) -> str:
    m = report["meta"]
    span = ""
    if m.get("first_ts") is not None:
        span = f", {_when(m['first_ts'])} to {_when(m['last_ts'])} UTC"
    return f"portal report: {m.get('calls', 0):,} calls{span}"


def render_text(report: dict[str, Any], columns: Sequence[str] = COLUMNS) -> str:
    """The report as plain-text tables."""
    lines = [_title(report)]
    for title, heads, rows in _sections(report, columns):
        lines += ["", f"{title}:"]
        lines += _plain(heads, rows) if rows else ["  none"]
    return "\n".join(lines) + "\n"


def _print_rich(report: dict[str, Any], file: Any) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    tty = getattr(file, "isatty", lambda: False)()
    console = Console(file=file, width=None if tty else 180)
    console.print(_title(report), style="bold")
    for title, heads, rows in _sections(report, _BRIEF):
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(heads):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for r in rows:
            table.add_row(*r)
        if not rows:
            table.add_row(*(["none"] + [""] * (len(heads) - 1)))
        console.print(table)
    return True


def render_csv(report: dict[str, Any]) -> str:
    """The group rows (and the total) as CSV, raw numbers."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = [c for c in COLUMNS if c != "group"]
    writer.writerow([report["by"], *cols])
    for r in [*report["rows"], report["total"]]:
        writer.writerow([r["group"], *("" if r.get(c) is None else r[c] for c in cols)])
    return buf.getvalue()


# ============================================================================ html


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
                        [_metric(metric, b["actual"]), _metric(metric, b["target"])] for b in pts
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
        f"<title>{_html.escape(_title(report))}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>{_html.escape(_title(report))}</h1>",
    ]
    meta = report["meta"]
    if meta.get("ledgers"):
        parts.append(
            f'<p class="meta">ledgers: {_html.escape(", ".join(meta["ledgers"]))}'
            f"; generated {_when(meta['generated_at'])} UTC</p>"
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
    for title, heads, rows in _sections(report):
        parts.append(f"<h2>{_html.escape(title[:1].upper() + title[1:])}</h2>")
        parts.append(_html_table(heads, rows))
    parts.append("</body></html>")
    return "\n".join(parts)


# ============================================================================ entry points


def demo_report(
    config_path: str | Path, out_dir: str | Path, html: bool = True, printer: Any = print
) -> str | None:
    """`portal demo`'s numbers: tables by feature and by target and canary against baseline,
    from its own ledger, and ``out_dir/report.html``. Returns the HTML path (None without html)."""
    from portal.config import load_config

    config = load_config(config_path)
    urls = ledger_urls(config)
    records = load_records(urls)
    meta = {"ledgers": [_shown(u) for u in urls], "since": None}
    printer("")
    printer(f"report from the ledger (portal report --config {config_path} --since all):")
    report = build_report(records, config, by="feature", meta=meta)
    by_target = build_report(records, config, by="target", meta=meta)
    sections = _sections(report, _DEMO)
    shown = [sections[0], _sections(by_target, _DEMO)[0]]
    shown += [s for s in sections if s[0] in ("errors by feature", "canary vs baseline")]
    for title, heads, rows in shown:
        printer("")
        printer(f"{title}:")
        for line in _plain(heads, rows):
            printer(line)
    sla = report["sla"]
    if sla is not None:
        n = len(sla["breaches"])
        printer("")
        printer(
            f"SLA: {n} breach(es)"
            + (
                ": "
                + "; ".join(
                    f"{b['scope']} {b['name']} {b['metric']} "
                    f"{_metric(b['metric'], b['actual'])} vs {_metric(b['metric'], b['target'])}"
                    for b in sla["breaches"][:4]
                )
                if n
                else ""
            )
        )
    if not html:
        return None
    path = Path(out_dir) / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    printer(f"HTML report: {path}")
    return str(path)
