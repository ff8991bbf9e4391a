"""Unit economics from ledger records: what one user action costs, what 1,000 successful
calls cost per feature and target, the share of spend that bought nothing (failed,
cancelled, hedge-losing or rejected attempts), and what prompt caching saved.

A user action is one call as the application made it: its retries, failovers and hedges are
already inside its call row, and the steps of a tool loop share its ``action_id``. Unpriced
calls are counted apart, never as $0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from portal.metering.stats import percentile

if TYPE_CHECKING:
    from portal.metering.ledger import LedgerRecord
    from portal.metering.prices import Price

__all__ = [
    "cache_savings",
    "cost_per_1k_successful",
    "cost_per_action",
    "unit_economics",
    "wasted_spend",
]

PriceOf = Callable[[str, str], "Price | None"]
_PER_TOKEN = 1e-6


def unit_economics(records: Sequence[LedgerRecord], price: PriceOf | None = None) -> dict[str, Any]:
    """Every unit-economics table of a report (what ``--format json`` holds under
    ``"economics"``). ``price``: ``(provider, model) -> Price`` for cache savings."""
    calls = [r for r in records if r.kind == "call"]
    attempts = [r for r in records if r.kind == "attempt"]
    return {
        "actions": cost_per_action(calls),
        "per_1k_successful": cost_per_1k_successful(calls),
        "waste": wasted_spend(attempts),
        "cache": cache_savings(attempts, price) if price is not None else None,
    }


def cost_per_action(calls: Sequence[LedgerRecord]) -> list[dict[str, Any]]:
    """Per feature: user actions, calls per action, and the mean and p95 cost of an action
    (over actions whose every call was priced)."""
    actions: dict[str, dict[str, list[LedgerRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in calls:
        actions[r.feature or "(no feature)"][r.action_id or r.call_id].append(r)
    out = []
    for feature, by_action in sorted(actions.items()):
        costs = [
            sum(r.cost_usd for r in rows)  # type: ignore[misc]
            for rows in by_action.values()
            if all(r.cost_usd is not None for r in rows)
        ]
        n = len(by_action)
        out.append(
            {
                "feature": feature,
                "actions": n,
                "calls_per_action": sum(len(v) for v in by_action.values()) / n,
                "cost_per_action_usd": sum(costs) / len(costs) if costs else None,
                "p95_action_usd": percentile(costs, 95),
                "unpriced_actions": n - len(costs),
            }
        )
    return out


def cost_per_1k_successful(calls: Sequence[LedgerRecord]) -> list[dict[str, Any]]:
    """Per (feature, serving target): all the money its calls cost, failed ones included,
    per 1,000 calls that succeeded: what a thousand answers really cost."""
    groups: dict[tuple[str, str], list[LedgerRecord]] = defaultdict(list)
    for r in calls:
        groups[(r.feature or "(no feature)", r.target or "(none)")].append(r)
    out = []
    for (feature, target), rows in sorted(groups.items()):
        ok = sum(1 for r in rows if r.outcome == "ok")
        known = [r.cost_usd for r in rows if r.cost_usd is not None]
        cost = float(sum(known)) if known else None
        out.append(
            {
                "feature": feature,
                "target": target,
                "calls": len(rows),
                "successful": ok,
                "cost_usd": cost,
                "cost_per_1k_successful_usd": (
                    1000 * cost / ok if cost is not None and ok else None
                ),
                "unpriced_calls": len(rows) - len(known),
            }
        )
    return out


_WASTED = ("error", "cancelled", "hedge_lost", "invalid_output")


def wasted_spend(attempts: Sequence[LedgerRecord]) -> dict[str, Any]:
    """What attempts that did not become the answer cost, by outcome, and their share of all
    priced spend."""
    spend = 0.0
    by_outcome = dict.fromkeys(_WASTED, 0.0)
    for r in attempts:
        if r.cost_usd is None:
            continue
        spend += r.cost_usd
        if r.outcome in by_outcome:
            by_outcome[r.outcome] += r.cost_usd
    wasted = sum(by_outcome.values())
    return {
        "spend_usd": spend,
        "wasted_usd": wasted,
        "wasted_share": wasted / spend if spend else None,
        "by_outcome_usd": by_outcome,
        "unpriced_attempts": sum(1 for r in attempts if r.cost_usd is None),
    }


def cache_savings(attempts: Sequence[LedgerRecord], price: PriceOf) -> dict[str, Any]:
    """What prompt caching did, per feature and per target, over the groups that read or
    wrote a cache: input tokens, cache reads and writes, the hit rate (reads / input), what
    the reads saved at today's prices (their input price minus their cache-read price),
    less what writes cost above the input rate (5-minute and 1-hour writes apart) and what
    explicit caches cost to store (the ledger's ``cache_storage_token_hours`` at the
    provider's ``cache_storage`` price; left out, and counted in ``unpriced_storage``, where
    no such price is set), and the attempts that went to a target without the prefix's
    cache (``cache_miss_expected``)."""
    by: dict[str, dict[str, dict[str, Any]]] = {"features": {}, "targets": {}}
    for r in attempts:
        keys = (
            ("features", "feature", r.feature or "(no feature)"),
            ("targets", "target", r.target),
        )
        rows = [
            by[kind].setdefault(
                name,
                {
                    column: name,
                    "input_tokens": 0,
                    "cached_input_tokens": 0,
                    "cache_write_tokens": 0,
                    "saved_usd": 0.0,
                    "write_premium_usd": 0.0,
                    "storage_usd": 0.0,
                    "unpriced_storage": 0,
                    "unpriced_attempts": 0,
                    "cache_misses_expected": 0,
                },
            )
            for kind, column, name in keys
        ]
        saved = premium = storage = 0.0
        priced = True
        unpriced_storage = False
        if r.cached_input_tokens or r.cache_write_tokens:
            p = price(r.provider, r.model)
            if p is None:
                priced = False
            else:
                per_hour = p.cache_storage  # a tier without its own takes the model's
                p = p.for_tier(r.service_tier)
                if p.cache_storage is not None:
                    per_hour = p.cache_storage
                read = p.cached_input if p.cached_input is not None else p.input
                write = p.cache_write if p.cache_write is not None else p.input
                write_1h = p.cache_write_1h if p.cache_write_1h is not None else 2.0 * p.input
                writes_1h = min(r.cache_write_1h_tokens, r.cache_write_tokens)
                saved = r.cached_input_tokens * (p.input - read) * _PER_TOKEN
                premium = (
                    (r.cache_write_tokens - writes_1h) * (write - p.input)
                    + writes_1h * (write_1h - p.input)
                ) * _PER_TOKEN
                hours = r.cache_storage_token_hours
                if hours > 0:
                    unpriced_storage = per_hour is None
                    storage = 0.0 if per_hour is None else hours * per_hour * _PER_TOKEN
        for row in rows:
            row["input_tokens"] += r.input_tokens
            row["cached_input_tokens"] += r.cached_input_tokens
            row["cache_write_tokens"] += r.cache_write_tokens
            row["saved_usd"] += saved
            row["write_premium_usd"] += premium
            row["storage_usd"] += storage
            row["unpriced_storage"] += 1 if unpriced_storage else 0
            row["unpriced_attempts"] += 0 if priced else 1
            row["cache_misses_expected"] += 1 if r.cache_miss_expected else 0
    out: dict[str, Any] = {}
    for kind, column in (("features", "feature"), ("targets", "target")):
        rows = [
            row
            for row in by[kind].values()
            if row["cached_input_tokens"] or row["cache_write_tokens"]
        ]
        for row in rows:
            row["hit_rate"] = (
                row["cached_input_tokens"] / row["input_tokens"] if row["input_tokens"] else None
            )
            row["net_saved_usd"] = row["saved_usd"] - row["write_premium_usd"] - row["storage_usd"]
        out[kind] = sorted(rows, key=lambda x: str(x[column]))
    out["net_saved_usd"] = sum(t["net_saved_usd"] for t in out["targets"])
    return out
