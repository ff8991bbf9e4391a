"""Turning a run's samples into numbers: the stable JSON document, the SLA verdict and the
terminal table. The keys below are documented in docs/stress.md; add keys, never rename
them (CI jobs read them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from portal.config import SLAConfig
from portal.metering.stats import percentile
from portal.stress.engine import RunResult, Sample

__all__ = [
    "LOADTEST_SCHEMA",
    "distribution",
    "render_table",
    "sla_verdict",
    "summarize",
    "timeline",
]

LOADTEST_SCHEMA = "portal.loadtest/1"
QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0))


def distribution(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p95, p99, max (milliseconds); None values are skipped."""
    data = sorted(v for v in values if v is not None)
    out: dict[str, float | int | None] = {"count": len(data)}
    out["mean"] = sum(data) / len(data) if data else None
    for name, q in QUANTILES:
        out[name] = percentile(data, q)
    out["max"] = data[-1] if data else None
    return out


def _shares(values: Iterable[str | None]) -> dict[str, dict[str, float | int]]:
    counts = Counter(v for v in values if v is not None)
    total = sum(counts.values()) or 1
    return {k: {"count": n, "share": n / total} for k, n in sorted(counts.items())}


def span_s(result: RunResult) -> float:
    """The run's length for rates: the arrival window, or longer if replies came later."""
    ends = [s.end_s for s in result.samples if s.end_s is not None]
    return max([result.spec.duration_s, *ends]) or 1e-9


def sla_verdict(
    sla: SLAConfig | None,
    latency: dict[str, Any],
    error_rate: float,
    max_error_rate: float | None = None,
) -> dict[str, Any]:
    """Each configured SLA term checked against the measurement; ``met`` is None when the
    feature has no SLA (nothing to gate on)."""
    checks: list[dict[str, Any]] = []
    configured: dict[str, float] = {}
    if sla is not None:
        for name in ("p50", "p95", "p99"):
            limit = getattr(sla, f"{name}_ms")
            if limit is not None:
                configured[f"{name}_ms"] = limit
                measured = latency.get(name)
                checks.append(
                    {
                        "metric": f"{name}_ms",
                        "limit": limit,
                        "measured": measured,
                        "ok": measured is not None and measured <= limit,
                    }
                )
        if sla.availability is not None:
            configured["availability"] = sla.availability
            checks.append(
                {
                    "metric": "availability",
                    "limit": sla.availability,
                    "measured": 1.0 - error_rate,
                    "ok": 1.0 - error_rate >= sla.availability,
                }
            )
    if max_error_rate is not None:
        checks.append(
            {
                "metric": "error_rate",
                "limit": max_error_rate,
                "measured": error_rate,
                "ok": error_rate <= max_error_rate,
            }
        )
    return {
        "configured": configured,
        "checks": checks,
        "met": all(c["ok"] for c in checks) if checks else None,
    }


def timeline(samples: Sequence[Sample], until_s: float, bin_s: float = 1.0) -> list[dict[str, Any]]:
    """Per ``bin_s`` of intended start: sent, ok, errors, p50/p95 latency, and the share of
    successful requests served by each target."""
    n_bins = max(1, int(until_s / bin_s + 0.999999))
    bins: list[list[Sample]] = [[] for _ in range(n_bins)]
    for s in samples:
        bins[min(int(s.intended_s / bin_s), n_bins - 1)].append(s)
    rows = []
    for i, group in enumerate(bins):
        lat = [s.latency_ms for s in group if s.latency_ms is not None]
        ok = [s for s in group if s.ok]
        served = Counter(s.target for s in ok)
        rows.append(
            {
                "t_s": round(i * bin_s, 6),
                "sent": len(group),
                "ok": len(ok),
                "errors": len(group) - len(ok),
                "p50_ms": percentile(lat, 50),
                "p95_ms": percentile(lat, 95),
                "targets": {k: v for k, v in sorted(served.items()) if k is not None},
            }
        )
    return rows


def summarize(result: RunResult, sla: SLAConfig | None, params: dict[str, Any]) -> dict[str, Any]:
    """The load test's JSON document (schema ``portal.loadtest/1``)."""
    samples = result.samples
    span = span_s(result)
    ok = [s for s in samples if s.ok]
    errors = Counter(s.error for s in samples if not s.ok and s.error)
    n = len(samples)
    error_rate = (n - len(ok)) / n if n else 0.0
    latency = distribution(s.latency_ms for s in samples)
    cost, unpriced = priced_cost(ok)
    in_tok = sum(s.input_tokens for s in ok)
    out_tok = sum(s.output_tokens for s in ok)
    cached = sum(s.cached_input_tokens for s in ok)
    lags = [s.lag_ms for s in samples if s.dispatched_s or s.end_s is not None]
    duration = result.spec.duration_s or 1e-9
    return {
        "schema": LOADTEST_SCHEMA,
        "feature": result.spec.feature,
        "params": params,
        "started_at": result.started_at,
        "duration_s": result.spec.duration_s,
        "wall_s": result.wall_s,
        "requests": {
            "sent": n,
            "ok": len(ok),
            "errors": n - len(ok),
            "unfinished": errors.get("Unfinished", 0),
            "failovers": sum(1 for s in ok if s.failover),
            "attempts_per_request": (sum(s.attempts for s in ok) / len(ok)) if ok else None,
        },
        "offered_rps": n / duration,
        "throughput_rps": len(ok) / span,
        "latency_ms": latency,
        "ttft_ms": distribution(s.ttft_ms for s in ok),
        "errors": {
            "rate": error_rate,
            "by_class": dict(sorted(errors.items())),
        },
        "share": {
            "target": _shares(s.target for s in ok),
            "arm": _shares(s.arm for s in ok),
        },
        "tokens": {
            "input": in_tok,
            "cached_input": cached,
            "cache_write": sum(s.cache_write_tokens for s in ok),
            "cache_hit_rate": cached / in_tok if in_tok else None,
            "cache_hit_requests": sum(1 for s in ok if s.cached_input_tokens > 0),
            "output": out_tok,
            "output_per_s": out_tok / span,
            "total_per_s": (in_tok + out_tok) / span,
        },
        "cost": {
            "usd": cost,
            "per_request_usd": cost / len(ok) if ok and cost is not None else None,
            "projected_usd_per_day": None if cost is None else cost / duration * 86_400.0,
            "unpriced_requests": unpriced,
        },
        "generator": {
            "dispatch_lag_ms": distribution(lags),
            "behind": _behind(lags),
        },
        "sla": sla_verdict(sla, latency, error_rate),
        "timeline": timeline(samples, max(result.spec.duration_s, 1e-9)),
    }


#: dispatch lag p99 above which the generator, not the target, shaped the latencies
BEHIND_MS = 50.0


def _behind(lags: Sequence[float]) -> bool:
    p99 = percentile(lags, 99)
    return p99 is not None and p99 > BEHIND_MS


# ------------------------------------------------------------------------------ terminal


def fmt_ms(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


def priced_cost(samples: Sequence[Any]) -> tuple[float | None, int]:
    """(USD of the priced samples, how many had no price); USD is None when none was
    priced: an unpriced run is unpriced, never $0."""
    known = [s.cost_usd for s in samples if s.cost_usd is not None]
    unpriced = len(samples) - len(known)
    return (sum(known) if known or not samples else None), unpriced


def fmt_usd(v: Any) -> str:
    if v is None:
        return "-"
    return f"${v:,.2f}" if v >= 1 else f"${v:.6f}"


def render_rows(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        for r in rows
    ]


def render_table(doc: dict[str, Any]) -> list[str]:
    """The final table as plain lines (the CLI prints them, or a rich table of the same)."""
    req = doc["requests"]
    lat, ttft = doc["latency_ms"], doc["ttft_ms"]
    lines = [
        f"feature {doc['feature']}: {req['sent']} requests in {doc['duration_s']:g}s "
        f"(offered {doc['offered_rps']:.1f} rps, throughput {doc['throughput_rps']:.1f} rps)",
        "",
    ]
    head = ["", "p50", "p90", "p95", "p99", "max"]
    rows = [head, ["latency"] + [fmt_ms(lat[k]) for k in ("p50", "p90", "p95", "p99", "max")]]
    if ttft["count"]:
        rows.append(["ttft"] + [fmt_ms(ttft[k]) for k in ("p50", "p90", "p95", "p99", "max")])
    lines += render_rows(rows)
    lines.append("")
    lines.append(
        f"ok {req['ok']}  errors {req['errors']} ({100 * doc['errors']['rate']:.2f}%)  "
        f"failovers {req['failovers']}  unfinished {req['unfinished']}"
    )
    for cls, count in doc["errors"]["by_class"].items():
        lines.append(f"  {cls}: {count} ({100 * count / max(req['sent'], 1):.2f}%)")
    for kind in ("target", "arm"):
        parts = [f"{k} {100 * v['share']:.1f}%" for k, v in doc["share"][kind].items()]
        lines.append(f"served by {kind}: " + (", ".join(parts) or "-"))
    tok = doc["tokens"]
    lines.append(
        f"tokens: {tok['input']:,} in / {tok['output']:,} out, "
        f"{tok['output_per_s']:,.0f} output tokens/s"
    )
    if tok.get("cached_input") or tok.get("cache_write"):
        lines.append(
            f"prompt cache: {tok['cached_input']:,} tokens read "
            f"({100 * (tok['cache_hit_rate'] or 0):.1f}% of input), "
            f"{tok['cache_write']:,} written; {tok['cache_hit_requests']:,} of "
            f"{req['ok']:,} requests read from a cache"
        )
    cost = doc["cost"]
    if cost["usd"] is None:
        lines.append(
            f"cost: unpriced ({cost['unpriced_requests']} requests to targets without a price; "
            "set [providers.X.prices] to see money)"
        )
    else:
        unpriced = cost.get("unpriced_requests") or 0
        lines.append(
            f"cost: {fmt_usd(cost['usd'])} this run, {fmt_usd(cost['per_request_usd'])} per "
            f"request, {fmt_usd(cost['projected_usd_per_day'])} per day at "
            f"{doc['offered_rps']:.1f} rps"
            + (f" (+{unpriced} unpriced requests)" if unpriced else "")
        )
    lag = doc["generator"]["dispatch_lag_ms"]
    lines.append(f"generator: dispatch lag p99 {fmt_ms(lag['p99'])}, max {fmt_ms(lag['max'])}")
    if doc["generator"]["behind"]:
        lines.append(
            "WARNING: the generator fell behind its schedule (this process ran out of CPU); "
            "latencies include its own delay: lower --rps or split the load across processes"
        )
    lines += verdict_lines(doc["sla"])
    return lines


def verdict_lines(sla: dict[str, Any]) -> list[str]:
    if sla["met"] is None:
        return ["SLA: none configured for this feature (exit 0)"]
    out = []
    for c in sla["checks"]:
        m = c["measured"]
        if c["metric"].endswith("_ms"):
            shown = f"{fmt_ms(m)} vs {fmt_ms(c['limit'])}"
        else:
            shown = f"{m:.4f} vs {c['limit']:.4f}" if m is not None else "-"
        out.append(f"  {c['metric']}: {shown}  {'ok' if c['ok'] else 'MISSED'}")
    return [f"SLA: {'met' if sla['met'] else 'MISSED'}", *out]
