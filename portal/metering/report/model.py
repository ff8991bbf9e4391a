"""What a report is made of: the groupings, output formats and group-row columns that the
analysis fills and every renderer shows, in this order.

A report is plain data (what ``portal report --format json`` prints)::

    meta            ledgers read, period, generated_at, calls, first_ts, last_ts
    by              the grouping of ``rows``
    rows, total     one group row per group (`COLUMNS` and a few more keys), and all calls
    attempts        attempt rows read
    canary          per feature with canary calls: both arms' rows and their deltas
    sla             breaches and credits (`portal.metering.sla`), None without a config
    errors          per group and error class: calls failed, attempts failed
    latency_series  p50/p95/p99 of successful attempts per provider per time bucket
    features_cost   group rows per feature
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLUMNS", "FORMATS", "GROUPINGS", "Report"]

#: a built report (see the module docstring for its keys)
Report = dict[str, Any]

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
