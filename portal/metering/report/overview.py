"""What a reader sees first: the headline (calls, cost, cost per user action, SLA met or not per
feature), what each vendor did, and latency and cost over time on one time grid whose empty
buckets stay empty (a chart must not draw a line across hours without traffic)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portal.metering.stats import percentile

if TYPE_CHECKING:
    from portal.config import PortalConfig, SLAConfig
    from portal.metering.ledger import LedgerRecord

__all__ = ["TimeGrid", "cost_series", "headline", "latency_series", "time_grid", "vendors"]

#: bucket sizes (seconds) a time grid may use; the smallest that gives at most ~60 buckets
_BUCKETS = (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
_MAX_BUCKETS = 60


@dataclass(frozen=True, slots=True)
class TimeGrid:
    """Equal time buckets from the first record to the last: ``start + i * size``."""

    size: float
    start: float
    count: int

    def index(self, ts: float) -> int:
        return min(self.count - 1, int((ts - self.start) // self.size))

    @property
    def times(self) -> list[float]:
        return [self.start + i * self.size for i in range(self.count)]


def time_grid(records: Sequence[LedgerRecord]) -> TimeGrid | None:
    """The grid every time series of one report shares (None without records)."""
    if not records:
        return None
    first = min(r.ts for r in records)
    last = max(r.ts for r in records)
    size = next((b for b in _BUCKETS if (last - first) / b <= _MAX_BUCKETS), _BUCKETS[-1])
    start = (first // size) * size
    return TimeGrid(float(size), float(start), int((last - start) // size) + 1)


def latency_series(attempts: Sequence[LedgerRecord], grid: TimeGrid | None) -> dict[str, Any]:
    """p50/p95/p99 of successful attempts per provider on ``grid``; a bucket without attempts
    is None (a gap), never joined to its neighbours."""
    ok = [r for r in attempts if r.outcome == "ok"]
    if grid is None or not ok:
        return {"bucket_s": None, "t": [], "providers": {}}
    data: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(grid.count)])
    for r in ok:
        data[r.provider or "(none)"][grid.index(r.ts)].append(r.latency_ms)
    series = {
        provider: {
            "n": [len(b) for b in buckets],
            "p50": [percentile(b, 50) if b else None for b in buckets],
            "p95": [percentile(b, 95) if b else None for b in buckets],
            "p99": [percentile(b, 99) if b else None for b in buckets],
        }
        for provider, buckets in sorted(data.items())
    }
    return {"bucket_s": grid.size, "t": grid.times, "providers": series}


def cost_series(calls: Sequence[LedgerRecord], grid: TimeGrid | None) -> dict[str, Any]:
    """Known cost per feature per bucket of ``grid`` (0 where a feature had no priced call)."""
    if grid is None or not calls:
        return {"bucket_s": None, "t": [], "features": {}}
    data: dict[str, list[float]] = defaultdict(lambda: [0.0] * grid.count)
    for r in calls:
        if r.cost_usd is not None:
            data[r.feature or "(no feature)"][grid.index(r.ts)] += r.cost_usd
    return {"bucket_s": grid.size, "t": grid.times, "features": dict(sorted(data.items()))}


def vendors(
    calls: Sequence[LedgerRecord],
    attempts: Sequence[LedgerRecord],
    sla: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Per provider, every attempt (retries, failovers and hedge losers included): what it
    served, how often it failed, its latency, what it cost and the SLA windows it missed."""
    served: dict[str, int] = defaultdict(int)
    for r in calls:
        if r.outcome == "ok":
            served[r.provider or "(none)"] += 1
    total_served = sum(served.values())
    by_provider: dict[str, list[LedgerRecord]] = defaultdict(list)
    for r in attempts:
        by_provider[r.provider or "(none)"].append(r)
    known_total = sum(r.cost_usd for r in attempts if r.cost_usd is not None)
    breaches: dict[str, int] = defaultdict(int)
    credits: dict[str, float] = defaultdict(float)
    for b in (sla or {}).get("breaches", []):
        if b["scope"] == "provider":
            breaches[b["name"]] += 1
    for c in (sla or {}).get("credits", []):
        credits[c["provider"]] += c["credit_usd"]
    out = []
    for provider, rows in sorted(by_provider.items()):
        ok = [r for r in rows if r.outcome == "ok"]
        failed = sum(1 for r in rows if r.outcome == "error")
        counted = sum(1 for r in rows if r.outcome != "cancelled")
        lat = [r.latency_ms for r in ok]
        known = [r.cost_usd for r in rows if r.cost_usd is not None]
        cost = float(sum(known))
        out.append(
            {
                "vendor": provider,
                "calls_served": served.get(provider, 0),
                "served_share": served.get(provider, 0) / total_served if total_served else None,
                "attempts": len(rows),
                "failed_attempts": failed,
                "failure_rate": failed / counted if counted else None,
                "p50_ms": percentile(lat, 50),
                "p95_ms": percentile(lat, 95),
                "p99_ms": percentile(lat, 99),
                "ttft_p50_ms": percentile([r.ttft_ms for r in ok if r.ttft_ms is not None], 50),
                "cost_usd": cost,
                "cost_share": cost / known_total if known_total else None,
                "unknown_cost_attempts": len(rows) - len(known),
                "sla_breaches": breaches.get(provider, 0),
                "credit_usd": credits.get(provider, 0.0),
            }
        )
    return out


def headline(
    total: dict[str, Any],
    features: Sequence[dict[str, Any]],
    calls: Sequence[LedgerRecord],
    sla: dict[str, Any] | None,
    config: PortalConfig | None,
    window: str,
) -> dict[str, Any]:
    """The numbers to read first: calls, errors, cost, cost per user action (a call with its
    retries, failovers and tool steps), p95, and per feature whether its SLA was met."""
    windows: dict[str, set[float]] = defaultdict(set)
    size = 86400.0 if window == "day" else 3600.0
    for r in calls:
        windows[r.feature or "(no feature)"].add((r.ts // size) * size)
    missed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in (sla or {}).get("breaches", []):
        if b["scope"] == "feature":
            missed[b["name"]].append(b)
    rows = []
    for row in features:
        name = row["group"]
        terms = _sla_terms(config, name)
        bad = missed.get(name, [])
        worst = max(
            bad, key=lambda b: b["over_by"] / b["target"] if b["target"] else 0.0, default=None
        )
        rows.append(
            {
                "feature": name,
                "calls": row["calls"],
                "error_rate": row["error_rate"],
                "p95_ms": row["p95_ms"],
                "cost_usd": row["cost_usd"],
                "cost_per_action_usd": row["cost_per_call_usd"],
                "unknown_cost_calls": row["unknown_cost_calls"],
                "sla_terms": terms,
                "sla_met": None if not terms else not bad,
                "windows": len(windows.get(name, ())),
                "missed_windows": len({b["window_start"] for b in bad}),
                "worst_breach": worst,
            }
        )
    return {
        "calls": total["calls"],
        "errors": total["errors"],
        "error_rate": total["error_rate"],
        "cost_usd": total["cost_usd"],
        "cost_per_action_usd": total["cost_per_call_usd"],
        "cost_per_1k_calls_usd": total["cost_per_1k_calls_usd"],
        "unknown_cost_calls": total["unknown_cost_calls"],
        "p95_ms": total["p95_ms"],
        "fallback_share": total["fallback_share"],
        "window": window,
        "features": rows,
    }


def _sla_terms(config: PortalConfig | None, feature: str) -> dict[str, float]:
    """The feature's configured SLA terms (``{"p95_ms": 2000, ...}``), empty without one."""
    if config is None or feature not in config.features:
        return {}
    sla: SLAConfig | None = config.features[feature].sla
    if sla is None:
        return {}
    return {
        k: v
        for k, v in (
            ("p50_ms", sla.p50_ms),
            ("p95_ms", sla.p95_ms),
            ("p99_ms", sla.p99_ms),
            ("availability", sla.availability),
        )
        if v is not None
    }
