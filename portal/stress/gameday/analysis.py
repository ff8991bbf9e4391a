"""What a game day measured: breaker and canary transitions polled during the run, then the
phases before, during and after the fault, how long traffic took to move away and to come
back, the cost of the fault, and the pass/fail checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portal.errors import ConfigError
from portal.metering.stats import percentile
from portal.stress.engine import RunResult, Sample
from portal.stress.gameday.model import DEFAULT_MAX_ERROR_RATE, GamedayScenario
from portal.stress.results import distribution, priced_cost, sla_verdict

__all__ = ["Observer", "analyze"]


def _breaker_status(client: Any, target: str) -> str | None:
    """The router's breaker state for a target."""
    return str(client.breaker_state(target))


def _canary_percent(client: Any, feature: str) -> float | None:
    """The feature's live canary percentage, None when it has no canary."""
    try:
        return float(client.canary_status(feature)["percent"])
    except (ConfigError, KeyError):
        return None


@dataclass(slots=True)
class Observer:
    """Polls breakers and the canary step during the run and keeps every transition."""

    client: Any
    feature: str
    targets: list[str]
    breaker: dict[str, str | None] = field(default_factory=dict)
    canary: float | None = None
    breaker_events: list[dict[str, Any]] = field(default_factory=list)
    canary_events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for t in self.targets:
            self.breaker[t] = _breaker_status(self.client, t)
        self.canary = _canary_percent(self.client, self.feature)

    def tick(self, t_s: float) -> None:
        for target in self.targets:
            now = _breaker_status(self.client, target)
            if now != self.breaker[target]:
                self.breaker_events.append(
                    {
                        "t_s": round(t_s, 3),
                        "target": target,
                        "from": self.breaker[target],
                        "to": now,
                    }
                )
                self.breaker[target] = now
        pct = _canary_percent(self.client, self.feature)
        if pct != self.canary:
            self.canary_events.append({"t_s": round(t_s, 3), "from": self.canary, "to": pct})
            self.canary = pct


def _window_size(rps: float) -> int:
    """Requests per rolling window when judging 'moved' and 'recovered': about half a
    second of traffic, never fewer than 10 (noise) nor more than 50 (resolution)."""
    return int(min(50, max(10, round(rps * 0.5))))


def _phase(samples: Sequence[Sample], faulted: set[str]) -> dict[str, Any]:
    n = len(samples)
    ok = [s for s in samples if s.ok]
    lat = distribution(s.latency_ms for s in samples)
    cost, _ = priced_cost(ok)
    return {
        "requests": n,
        "ok": len(ok),
        "errors": n - len(ok),
        "error_rate": (n - len(ok)) / n if n else 0.0,
        "latency_ms": lat,
        "failovers": sum(1 for s in ok if s.failover),
        "served_by_faulted_share": (sum(1 for s in ok if s.target in faulted) / len(ok))
        if ok
        else None,
        "cost_per_request_usd": cost / len(ok) if ok and cost is not None else None,
        "attempts_to_faulted": sum(1 for s in samples for t in s.attempt_targets if t in faulted),
    }


def analyze(
    result: RunResult,
    sc: GamedayScenario,
    faulted: set[str],
    observer: Observer,
    sla: Any,
) -> dict[str, Any]:
    samples = sorted(result.samples, key=lambda s: s.intended_s)
    start, end = sc.at, sc.at + sc.for_
    before = [s for s in samples if s.intended_s < start]
    during = [s for s in samples if start <= s.intended_s < end]
    after = [s for s in samples if s.intended_s >= end]
    phases = {
        name: _phase(group, faulted)
        for name, group in (("before", before), ("during", during), ("after", after))
    }
    w = _window_size(sc.rps)
    pre = phases["before"]
    pre_share = pre["served_by_faulted_share"]
    carried = pre_share is not None and pre_share >= 0.1

    def elsewhere(group: Sequence[Sample]) -> bool:
        ok = [s for s in group if s.ok]
        return bool(ok) and sum(1 for s in ok if s.target not in faulted) >= 0.9 * len(ok)

    moved_s: float | None = None
    if carried:
        for i in range(len(during)):
            group = during[i : i + w]
            if len(group) < min(w, len(during)):
                break
            if elsewhere(group):
                moved_s = group[0].intended_s - start
                break

    pre_err = pre["error_rate"]
    pre_p50 = pre["latency_ms"]["p50"]
    err_ok = max(2 * pre_err, pre_err + 0.02)

    def recovered(group: Sequence[Sample]) -> bool:
        errs = sum(1 for s in group if not s.ok) / len(group)
        if errs > err_ok:
            return False
        lat = [s.latency_ms for s in group if s.latency_ms is not None]
        p50 = percentile(lat, 50)
        if pre_p50 is not None and p50 is not None and p50 > 1.5 * pre_p50 + 20:
            return False
        if carried:
            ok = [s for s in group if s.ok]
            share = sum(1 for s in ok if s.target in faulted) / max(len(ok), 1)
            assert pre_share is not None
            if share < 0.8 * pre_share:
                return False
        return True

    recovery_s: float | None = None
    for i in range(len(after)):
        group = after[i : i + w]
        if len(group) < w:
            break
        if recovered(group):
            recovery_s = max(0.0, group[0].intended_s - end)
            break

    opened = [
        e
        for e in observer.breaker_events
        if e["target"] in faulted and e["to"] == "open" and e["t_s"] >= start
    ]
    breaker_opened_s = opened[0]["t_s"] - start if opened else None
    no_fault = [s for s in before + after if s.ok]
    known, _ = priced_cost(no_fault)
    base = known / len(no_fault) if no_fault and known is not None else None
    fault_cost = phases["during"]["cost_per_request_usd"]
    cost = {
        "no_fault_per_request_usd": base,
        "fault_per_request_usd": fault_cost,
        "delta_per_request_usd": None if base is None or fault_cost is None else fault_cost - base,
        "delta_pct": None if not base or fault_cost is None else 100.0 * (fault_cost - base) / base,
    }

    max_err = sc.expect.max_error_rate
    if max_err is None:
        max_err = (
            1.0 - sla.availability
            if sla is not None and sla.availability
            else DEFAULT_MAX_ERROR_RATE
        )
    verdict = sla_verdict(
        sla, phases["during"]["latency_ms"], phases["during"]["error_rate"], max_err
    )
    checks = verdict["checks"]
    if sc.expect.max_failover_s is not None:
        checks.append(
            {
                "metric": "failover_s",
                "limit": sc.expect.max_failover_s,
                "measured": moved_s,
                "ok": moved_s is not None and moved_s <= sc.expect.max_failover_s,
            }
        )
    if sc.expect.max_recovery_s is not None:
        checks.append(
            {
                "metric": "recovery_s",
                "limit": sc.expect.max_recovery_s,
                "measured": recovery_s,
                "ok": recovery_s is not None and recovery_s <= sc.expect.max_recovery_s,
            }
        )
    return {
        "phases": phases,
        "window_requests": w,
        "failover_s": moved_s,
        "breaker_opened_s": breaker_opened_s,
        "recovery_s": recovery_s,
        "cost": cost,
        "breaker_events": observer.breaker_events,
        "canary_events": observer.canary_events,
        "checks": checks,
        "passed": all(c["ok"] for c in checks),
    }
