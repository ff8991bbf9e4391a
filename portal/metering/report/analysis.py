"""The numbers of a report, from ledger records: group rows, errors by class, canary against
baseline, SLA accounting and latency over time. Plain data in, plain data out."""

from __future__ import annotations

import datetime as _dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from portal.metering.report.economics import unit_economics
from portal.metering.report.ledgers import split_traffic
from portal.metering.report.model import GROUPINGS
from portal.metering.report.overview import (
    cost_series,
    headline,
    latency_series,
    time_grid,
    vendors,
)
from portal.metering.stats import percentile

if TYPE_CHECKING:
    from portal.config import PortalConfig
    from portal.metering.ledger import LedgerRecord

__all__ = ["build_report"]


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
    # calls without a price are unpriced, never $0: a group with only those has no cost
    cost = float(sum(known)) if known or not calls else None
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
        "cost_per_call_usd": cost / len(known) if known and cost is not None else None,
        "cost_per_1k_calls_usd": 1000 * cost / len(known) if known and cost is not None else None,
        "unknown_cost_calls": n - len(known),
    }


def build_report(
    records: Sequence[LedgerRecord],
    config: PortalConfig | None = None,
    by: str = "feature",
    window: str = "hour",
    meta: dict[str, Any] | None = None,
    traffic: str = "all",
) -> dict[str, Any]:
    """Everything the renderers show, as plain data (what ``--format json`` prints).
    ``traffic``: ``"production"`` leaves load-test and game-day calls out, ``"synthetic"``
    keeps only them, ``"all"`` counts everything."""
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    records, left_out = split_traffic(records, traffic)
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
        # the live canary and its shadow copies, each against the baseline (a shadow row
        # is labelled "<feature> (shadow)"; its calls' answers were not served)
        for arm in ("canary", "shadow"):
            if not any(r.arm == arm for r in rows):
                continue
            arms = {
                a: _stats(
                    a,
                    [r for r in rows if r.arm == a],
                    sum(1 for r in rows if r.arm == a and is_fallback[id(r)]),
                )
                for a in ("baseline", arm)
            }
            b, c = arms["baseline"], arms[arm]
            canary.append(
                {
                    "feature": feature if arm == "canary" else f"{feature} (shadow)",
                    "arm": arm,
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
    grid = time_grid(records)
    report["latency_series"] = latency_series(attempts, grid)
    report["cost_series"] = cost_series(calls, grid)
    report["features_cost"] = table(lambda r: r.feature or "(no feature)", calls)
    report["vendors"] = vendors(calls, attempts, report["sla"])
    report["traffic"] = {"counted": traffic, "left_out_calls": left_out}
    report["headline"] = headline(
        report["total"], report["features_cost"], calls, report["sla"], config, window
    )
    report["economics"] = unit_economics(records, _price_lookup(config))
    _actions_into_headline(report["headline"], report["economics"]["actions"])
    return report


def _price_lookup(config: PortalConfig | None) -> Callable[[str, str], Any]:
    """``(provider, model) -> Price | None`` at the config's prices (cache savings)."""
    from portal.metering.prices import PriceTable

    table = PriceTable.for_config(config) if config is not None else PriceTable.load()
    kinds = {n: (p.kind or n) for n, p in config.providers.items()} if config else {}
    return lambda provider, model: table.lookup(provider, model, kinds.get(provider))


def _actions_into_headline(head: dict[str, Any], actions: list[dict[str, Any]]) -> None:
    """A user action is a call with its tool steps: the headline's cost per action counts
    a tool loop once, not once per step."""
    by_feature = {a["feature"]: a for a in actions}
    for row in head["features"]:
        found = by_feature.get(row["feature"])
        if found is not None:
            row["cost_per_action_usd"] = found["cost_per_action_usd"]
    priced = [a for a in actions if a["cost_per_action_usd"] is not None]
    n = sum(a["actions"] - a["unpriced_actions"] for a in priced)
    if n:
        total = sum(
            a["cost_per_action_usd"] * (a["actions"] - a["unpriced_actions"]) for a in priced
        )
        head["cost_per_action_usd"] = total / n


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
