"""SLA accounting from ledger records: who missed which target, by how much, what it earns.

Two kinds of targets, both from the config:

* per feature, ``[features.X] sla = { p50_ms, p95_ms, p99_ms, availability }`` — what the
  app promises its users. Measured on call rows: latency percentiles over successful calls
  (what a user waited for an answer), availability = successful calls / calls (cancelled
  calls excluded: the caller walked away).
* per provider, ``[providers.X.sla] p50_ms/p95_ms/p99_ms, availability, credit_percent`` —
  what a vendor contracted. Measured on attempt rows of that provider: latency over its
  successful attempts, availability = attempts that did not fail on the vendor's side
  (5xx, overload, timeout, connection, broken stream, malformed reply) / attempts.
  Rate limits (429), client errors (4xx) and hedge losers are left out of the measure.

For each window (UTC hour or day) a `Breach` says which metric missed, the target, the
actual value, how far over (``over_by`` in ms, or in availability points), and how many calls
were affected: calls slower than the threshold for a latency target, failed calls for
availability. A provider that missed any of its terms in a window earns one `Credit`:
``credit_percent`` x what was spent with it in that window (the sum of its attempts' cost).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from portal.metering.stats import percentile

if TYPE_CHECKING:
    from portal.config import PortalConfig, SLAConfig
    from portal.metering.ledger import LedgerRecord

__all__ = ["VENDOR_FAULTS", "Breach", "Credit", "SlaReport", "account", "window_start"]

Window = Literal["hour", "day"]

#: error classes that count against a vendor's availability
VENDOR_FAULTS = frozenset(
    {
        "ServerError",
        "Overloaded",
        "ProviderTimeout",
        "ProviderConnectionError",
        "StreamInterrupted",
        "InvalidResponse",
    }
)
_LATENCY = (("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0))


def window_start(ts: float, window: Window) -> float:
    """Start (epoch seconds, UTC) of the hour or day containing ``ts``."""
    size = 3600 if window == "hour" else 86400
    return math.floor(ts / size) * size


@dataclass(slots=True)
class Breach:
    window_start: float
    scope: Literal["feature", "provider"]
    name: str
    metric: str  # p50_ms | p95_ms | p99_ms | availability
    target: float
    actual: float
    over_by: float  # ms over the target, or availability points under it
    calls: int  # calls (attempts for providers) measured in the window
    affected: int  # calls over the latency threshold, or failed calls

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Credit:
    window_start: float
    provider: str
    metrics: list[str]
    credit_percent: float
    spend_usd: float
    credit_usd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SlaReport:
    window: Window
    breaches: list[Breach] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)

    @property
    def credit_usd(self) -> float:
        return sum(c.credit_usd for c in self.credits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "breaches": [b.to_dict() for b in self.breaches],
            "credits": [c.to_dict() for c in self.credits],
            "credit_usd": self.credit_usd,
        }


@dataclass(slots=True)
class _Bucket:
    ok_latencies: list[float] = field(default_factory=list)
    total: int = 0
    failed: int = 0
    spend: float = 0.0


def account(
    records: Iterable[LedgerRecord], config: PortalConfig, window: Window = "hour"
) -> SlaReport:
    """Every SLA breach and credit in ``records`` (any order), oldest window first."""
    if window not in ("hour", "day"):
        raise ValueError(f"window must be 'hour' or 'day', got {window!r}")
    feature_sla = {n: f.sla for n, f in config.features.items() if f.sla is not None}
    provider_sla = {n: p.sla for n, p in config.providers.items() if p.sla is not None}
    features: dict[tuple[float, str], _Bucket] = defaultdict(_Bucket)
    providers: dict[tuple[float, str], _Bucket] = defaultdict(_Bucket)
    for r in records:
        if r.outcome == "cancelled":
            continue
        w = window_start(r.ts, window)
        # a shadow copy's answer reached nobody: it is not part of the feature's service
        if r.kind == "call" and r.feature in feature_sla and r.arm != "shadow":
            b = features[(w, r.feature)]
            b.total += 1
            if r.outcome == "error":
                b.failed += 1
            else:
                b.ok_latencies.append(r.latency_ms)
        elif r.kind == "attempt" and r.provider in provider_sla:
            b = providers[(w, r.provider)]
            b.spend += r.cost_usd or 0.0
            if r.outcome == "hedge_lost" or (r.outcome == "error" and r.error not in VENDOR_FAULTS):
                continue  # not measured: abandoned by us, or the caller's/quota's fault
            b.total += 1
            if r.outcome == "error":
                b.failed += 1
            else:
                b.ok_latencies.append(r.latency_ms)
    report = SlaReport(window)
    for (w, name), b in sorted(features.items()):
        report.breaches.extend(_breaches(w, "feature", name, feature_sla[name], b))
    for (w, name), b in sorted(providers.items()):
        terms = provider_sla[name]
        missed = _breaches(w, "provider", name, terms, b)
        report.breaches.extend(missed)
        if missed and terms.credit_percent > 0:
            report.credits.append(
                Credit(
                    window_start=w,
                    provider=name,
                    metrics=[m.metric for m in missed],
                    credit_percent=terms.credit_percent,
                    spend_usd=b.spend,
                    credit_usd=b.spend * terms.credit_percent / 100.0,
                )
            )
    return report


def _breaches(
    w: float, scope: Literal["feature", "provider"], name: str, sla: SLAConfig, b: _Bucket
) -> list[Breach]:
    out: list[Breach] = []
    if b.total == 0:
        return out
    for metric, q in _LATENCY:
        limit = getattr(sla, metric)
        if limit is None or not b.ok_latencies:
            continue
        actual = percentile(b.ok_latencies, q)
        assert actual is not None
        if actual > limit:
            slow = sum(1 for v in b.ok_latencies if v > limit)
            out.append(Breach(w, scope, name, metric, limit, actual, actual - limit, b.total, slow))
    if sla.availability is not None:
        actual = (b.total - b.failed) / b.total
        if actual < sla.availability:
            out.append(
                Breach(
                    w,
                    scope,
                    name,
                    "availability",
                    sla.availability,
                    actual,
                    sla.availability - actual,
                    b.total,
                    b.failed,
                )
            )
    return out
