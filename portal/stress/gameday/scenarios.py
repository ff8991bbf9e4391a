"""The fault scenarios of a game day: what each kind injects into the faulted provider's
transport (`portal.stress.faults.Fault`) and its defaults."""

from __future__ import annotations

from typing import Any, Literal

from portal.stress.faults import Fault

__all__ = ["FAULT_DEFAULTS", "KINDS", "Kind", "fault_schedule"]

Kind = Literal[
    "outage", "slow", "throttle", "flaky", "brownout", "hang", "trickle", "slow_first_token"
]
KINDS: tuple[str, ...] = (
    "outage",
    "slow",
    "throttle",
    "flaky",
    "brownout",
    "hang",
    "trickle",
    "slow_first_token",
)

#: what each scenario injects unless ``fault`` says otherwise
FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "outage": {"status": 0},
    "slow": {"latency_ms": 1500.0, "latency_p99_ms": 4000.0},
    "throttle": {"retry_after_s": 1.0},
    "flaky": {"rate": 0.3, "status": 500},
    "brownout": {"latency_ms": 800.0, "latency_p99_ms": 2000.0, "rate": 0.2, "status": 503},
    # accepted, never answered: each request lasts until the client's read timeout fires
    "hang": {},
    # one byte of the reply every 100 ms: each read is quick, the reply takes minutes
    "trickle": {"interval_ms": 100.0},
    # status and headers at once, the first token after a lognormal wait (p99 several s)
    "slow_first_token": {"latency_ms": 400.0, "latency_p99_ms": 6000.0},
}


def fault_schedule(kind: str, given: dict[str, Any], start_s: float, end_s: float) -> list[Fault]:
    """The faults of scenario ``kind`` from ``start_s`` to ``end_s``: its defaults, overridden
    by what the scenario's ``fault`` table gives."""
    params = dict(FAULT_DEFAULTS[kind])
    if "latency_ms" in given and "latency_p99_ms" not in given:
        params.pop("latency_p99_ms", None)  # latency_ms alone: a fixed added latency
    params.update(given)
    window: dict[str, Any] = {"start_s": start_s, "end_s": end_s}
    if kind == "brownout":
        # every request slow; `rate` of them also fail (the first matching fault wins)
        slow = {k: params[k] for k in ("latency_ms", "latency_p99_ms") if k in params}
        return [Fault("brownout", **window, **params), Fault("slow", **window, **slow)]
    return [Fault(kind, **window, **params)]  # type: ignore[arg-type]
