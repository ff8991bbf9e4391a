"""Sticky canary assignment, the live ramp step, and the guard that rolls a bad canary back.

Assignment is a pure hash: a key falls in one of 10,000 buckets from a hash of (feature,
canary target, key); it is in the canary when its bucket is below ``percent * 100``. Raising
the percentage only adds buckets, so a key that was in the canary at 5% stays in it at 25%,
and every process and replica agrees without talking.

The live percentage is shared through `State` (so `portal canary promote|rollback` and every
process see the same step): it starts at the config's ``percent``, moves along ``ramp`` by
`promote` (or automatically every ``ramp_every`` while the guard is healthy) and drops to 0
on `rollback`. The guard counts calls, errors, cost and a latency histogram per arm and per
step; with ``min_calls`` on each arm, a canary whose error rate exceeds the baseline's by
more than ``max_error_rate_delta``, or whose p95 exceeds ``max_p95_ratio`` times the
baseline's, is rolled back, logged and recorded as an event.
"""

from __future__ import annotations

import logging
import math
import random
import re
import zlib
from dataclasses import dataclass
from typing import Any

from portal.config import CanaryConfig, PortalConfig
from portal.errors import ConfigError
from portal.routing.state import State

__all__ = ["BUCKETS", "ArmStats", "CanaryControl", "bucket", "in_canary", "parse_duration"]

BUCKETS = 10_000
log = logging.getLogger("portal.routing")


def bucket(feature: str, canary_target: str, key: str) -> int:
    data = f"{feature}\x1f{canary_target}\x1f{key}".encode()
    # crc32 is stable across processes and Python versions (unlike hash()) and costs ~0.2 µs
    return zlib.crc32(data) % BUCKETS


def threshold(percent: float) -> int:
    """Buckets below this are in the canary: ``percent`` of 10,000."""
    return round(percent * (BUCKETS / 100))


def in_canary(feature: str, canary_target: str, key: str | None, percent: float) -> bool:
    """Sticky per key; calls without a key are assigned per call."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    if key is None:
        return random.randrange(BUCKETS) < threshold(percent)
    return bucket(feature, canary_target, key) < threshold(percent)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, where: str = "ramp_every") -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"1d"`` → seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ConfigError(f'{where}: {text!r} is not a duration; write e.g. "30m", "1h", "1d"')
    return float(m.group(1)) * _UNIT[m.group(2)]


# ----------------------------------------------------------------------------- guard stats

_HIST_BASE = math.log(1.1)  # ~10% wide latency bins


def _bin(ms: float) -> int:
    return int(math.log1p(max(ms, 0.0)) / _HIST_BASE)


def _bin_value(i: int) -> float:
    return math.expm1((i + 0.5) * _HIST_BASE)


@dataclass(slots=True)
class ArmStats:
    calls: int
    errors: int
    cost_usd: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cost_per_call(self) -> float | None:
        return self.cost_usd / self.calls if self.calls else None

    @classmethod
    def of(cls, counters: dict[str, float]) -> ArmStats:
        hist = sorted((int(k[1:]), v) for k, v in counters.items() if k.startswith("h"))
        total = sum(v for _, v in hist)

        def q(p: float) -> float | None:
            if not total:
                return None
            acc = 0.0
            for i, v in hist:
                acc += v
                if acc >= p * total:
                    return _bin_value(i)
            return _bin_value(hist[-1][0])

        return cls(
            int(counters.get("calls", 0)),
            int(counters.get("errors", 0)),
            counters.get("cost", 0.0),
            q(0.5),
            q(0.95),
            q(0.99),
        )


# ----------------------------------------------------------------------------- control


class CanaryControl:
    """The live canary step per feature, its ramp, and its guard."""

    def __init__(self, config: PortalConfig, state: State, check_every: int = 10) -> None:
        self.config = config
        self.state = state
        self.check_every = check_every
        self._seen: dict[str, int] = {}
        self._gens: dict[str, int] = {}  # the step (gen) last counted per feature
        self._every: dict[str, float | None] = {}
        for name, feat in config.features.items():
            if feat.canary is not None and feat.canary.ramp_every:
                self._every[name] = parse_duration(
                    feat.canary.ramp_every, f"features.{name}.canary.ramp_every"
                )

    def canary(self, feature: str) -> CanaryConfig:
        feat = self.config.features.get(feature)
        if feat is None or feat.canary is None:
            known = sorted(n for n, f in self.config.features.items() if f.canary)
            with_canary = ", ".join(known) or "none"
            raise ConfigError(
                f"feature {feature!r} has no canary; features with one: {with_canary}"
            )
        return feat.canary

    def live(self, feature: str) -> dict[str, Any]:
        """{percent, step, gen, at, reason}: the state's record, or the config's start."""
        got = self.state.get(f"canary:{feature}")
        if got is not None:
            return dict(got)
        return {"percent": self.canary(feature).percent, "gen": 0, "at": None, "reason": "config"}

    def percent(self, feature: str, default: float) -> float:
        """Hot path: one local lookup."""
        got = self.state.get(f"canary:{feature}")
        return default if got is None else float(got["percent"])

    # -- moving the step -----------------------------------------------------------------------
    def set_percent(self, feature: str, percent: float, reason: str, event: str) -> dict[str, Any]:
        cur = self.live(feature)
        rec = {
            "percent": float(percent),
            # a new step starts new guard counters; restarting the ramp clock does not
            "gen": int(cur.get("gen", 0)) + (1 if float(percent) != cur["percent"] else 0),
            "at": self.state.clock(),
            "reason": reason,
        }
        self.state.set(f"canary:{feature}", rec)
        self.state.push_event(
            f"canary:{feature}:events",
            {
                "event": event,
                "from": cur["percent"],
                "to": float(percent),
                "reason": reason,
                "at": rec["at"],
            },
        )
        return rec

    def next_step(self, feature: str) -> float | None:
        c = self.canary(feature)
        cur = self.live(feature)["percent"]
        steps = c.ramp or [c.percent]
        return next((s for s in steps if s > cur), None)

    def promote(self, feature: str, reason: str = "promoted by hand") -> dict[str, Any]:
        nxt = self.next_step(feature)
        if nxt is None:
            cur = self.live(feature)["percent"]
            raise ConfigError(
                f"feature {feature!r}: the canary is already at {cur:g}%, the last ramp step; "
                "make it the primary in the config to finish the rollout"
            )
        rec = self.set_percent(feature, nxt, reason, "promote")
        log.info("portal: canary of %s promoted to %g%% (%s)", feature, nxt, reason)
        return rec

    def rollback(self, feature: str, reason: str = "rolled back by hand") -> dict[str, Any]:
        rec = self.set_percent(feature, 0.0, reason, "rollback")
        log.warning("portal: canary of %s rolled back to 0%% (%s)", feature, reason)
        return rec

    # -- guard ---------------------------------------------------------------------------------
    def _arm_key(self, feature: str, gen: int, arm: str) -> str:
        return f"guard:{feature}:{gen}:{arm}"

    def observe(
        self, feature: str, arm: str, ok: bool, latency_ms: float, cost: float | None
    ) -> None:
        """Count one finished call, then (every ``check_every`` calls) run the guard and the
        automatic ramp."""
        rec = self.state.get(f"canary:{feature}")
        gen = 0 if rec is None else int(rec.get("gen", 0))
        key = self._arm_key(feature, gen, arm)
        st = self.state
        last = self._gens.get(feature)
        if last != gen:  # a new step: the guard judges it afresh, the old counters are done
            self._gens[feature] = gen
            if last is not None and last < gen:
                for old_arm in ("baseline", "canary"):
                    st.forget(self._arm_key(feature, last, old_arm))
        st.incr(key, "calls")
        if ok:
            st.incr(key, f"h{_bin(latency_ms)}")
        else:
            st.incr(key, "errors")
        if cost:
            st.incr(key, "cost", cost)
        n = self._seen.get(feature, 0) + 1
        self._seen[feature] = n
        if n % self.check_every == 0:
            self.check(feature)

    def arms(self, feature: str) -> tuple[ArmStats, ArmStats]:
        gen = int(self.live(feature).get("gen", 0))
        base = ArmStats.of(self.state.counters(self._arm_key(feature, gen, "baseline")))
        can = ArmStats.of(self.state.counters(self._arm_key(feature, gen, "canary")))
        return base, can

    def verdict(self, feature: str) -> str | None:
        """Why the guard would roll back now, or None (healthy or not enough calls yet)."""
        g = self.canary(feature).guard
        base, can = self.arms(feature)
        if base.calls < g.min_calls or can.calls < g.min_calls:
            return None
        if can.error_rate - base.error_rate > g.max_error_rate_delta:
            return (
                f"canary error rate {can.error_rate:.1%} exceeds baseline {base.error_rate:.1%} "
                f"by more than {g.max_error_rate_delta:.1%}"
            )
        if (
            can.p95_ms is not None
            and base.p95_ms is not None
            and can.p95_ms > g.max_p95_ratio * base.p95_ms
        ):
            return (
                f"canary p95 {can.p95_ms:.0f} ms exceeds {g.max_p95_ratio:g} x baseline p95 "
                f"{base.p95_ms:.0f} ms"
            )
        return None

    def check(self, feature: str) -> str | None:
        """Run the guard (roll back on a breach) and the automatic ramp; return the event."""
        live = self.live(feature)
        if live["percent"] <= 0:
            return None
        why = self.verdict(feature)
        if why is not None:
            self.rollback(feature, f"guard: {why}")
            return "rollback"
        every = self._every.get(feature)
        if every is not None and self.next_step(feature) is not None:
            g = self.canary(feature).guard
            base, can = self.arms(feature)
            since = live.get("at")
            if since is None:  # the config's first step: count from the first check
                self.set_percent(feature, live["percent"], "ramp clock started", "start")
                return None
            if (
                self.state.clock() - since >= every
                and base.calls >= g.min_calls
                and can.calls >= g.min_calls
            ):
                self.promote(feature, f"automatic ramp every {self.canary(feature).ramp_every}")
                return "promote"
        return None

    def status(self, feature: str) -> dict[str, Any]:
        c = self.canary(feature)
        live = self.live(feature)
        base, can = self.arms(feature)
        total = base.calls + can.calls
        return {
            "feature": feature,
            "target": c.target,
            "percent": live["percent"],
            "ramp": list(c.ramp),
            "next_step": self.next_step(feature),
            "reason": live.get("reason"),
            "since": live.get("at"),
            "served_share": (can.calls / total) if total else None,
            "baseline": base,
            "canary": can,
            "guard": c.guard.model_dump(),
            "events": self.state.events(f"canary:{feature}:events", 10),
        }
