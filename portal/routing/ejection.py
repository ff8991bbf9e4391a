"""Slow-vendor ejection: shift a feature's traffic away from a target that is slow or burning
its error budget, and bring it back through a small exploration share once it recovers.

Breakers count failures; a vendor that answers every call, slowly, never trips one. Here
each (feature, target) counts its calls, its slow calls (over the feature's SLA p95) and its
failures in the routing `State` (so a fleet shares them), over a short and a long window.
The target is ejected when, in **both** windows, either

* its slow-call rate is above ``slow_rate`` (the SLA allows 5% of calls over its p95), or
* its error-budget burn rate (failure rate / (1 - availability)) is above ``burn_rate``

(the long window keeps a blip from ejecting; the short one makes the decision fast). An
ejected target goes to the end of the feature's order, except for ``explore`` of its calls,
which still try it first so its recovery is seen; it is readmitted when its short window is
back under half of both thresholds (or, with fewer than ``min_calls`` there, when its last
few exploration calls were all clean). The flag lives in the state: every process shifts.

Everything here is pure bookkeeping over `State` and an injectable clock, tested without a
client.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from portal.routing.state import State

__all__ = ["EjectPolicy", "Ejection", "Verdict"]

log = logging.getLogger("portal.routing")

T = TypeVar("T")

#: clean exploration calls in the short window that readmit a target with fewer than
#: ``min_calls`` there (an ejected target only gets its exploration share)
READMIT_MIN_CALLS = 2


@dataclass(frozen=True, slots=True)
class EjectPolicy:
    """One feature's ejection settings (``[features.X] eject = {...}``), with its SLA."""

    slow_ms: float | None  # the feature's SLA p95: a call over it is slow (None: not judged)
    error_budget: float  # 1 - the SLA's availability (0.01 without one)
    slow_rate: float = 0.25
    burn_rate: float = 10.0
    short_window_s: float = 5.0
    long_window_s: float = 30.0
    min_calls: int = 10
    explore: float = 0.05


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a target is (or is not) ejected, from both windows."""

    eject: bool
    readmit: bool
    short: dict[str, float]
    long: dict[str, float]
    reason: str = ""


def _rates(window: dict[str, float]) -> tuple[float, float, float]:
    calls = window.get("calls", 0.0)
    if calls <= 0:
        return 0.0, 0.0, 0.0
    return calls, window.get("slow", 0.0) / calls, window.get("errors", 0.0) / calls


def judge(policy: EjectPolicy, short: dict[str, float], long: dict[str, float]) -> Verdict:
    """The decision for one target from its two windows (pure: the tests drive it)."""
    calls, slow_s, err_s = _rates(short)
    _, slow_l, err_l = _rates(long)
    burn_s, burn_l = err_s / policy.error_budget, err_l / policy.error_budget
    if calls < policy.min_calls:
        # an ejected target gets only its exploration share: a few clean probes readmit it
        probes_ok = calls >= READMIT_MIN_CALLS and slow_s == 0 and err_s == 0
        return Verdict(False, probes_ok, short, long, "too few calls in the short window")
    reasons = []
    if policy.slow_ms is not None and slow_s > policy.slow_rate and slow_l > policy.slow_rate:
        reasons.append(
            f"{slow_s:.0%} of calls over the SLA p95 of {policy.slow_ms:g} ms "
            f"({slow_l:.0%} over the long window; threshold {policy.slow_rate:.0%})"
        )
    if burn_s > policy.burn_rate and burn_l > policy.burn_rate:
        reasons.append(
            f"burning its error budget {burn_s:.1f}x ({burn_l:.1f}x over the long window; "
            f"threshold {policy.burn_rate:g}x)"
        )
    if reasons:
        return Verdict(True, False, short, long, "; ".join(reasons))
    healthy = slow_s <= policy.slow_rate / 2 and burn_s <= policy.burn_rate / 2
    return Verdict(False, healthy, short, long, "recovered" if healthy else "")


class Ejection:
    """Per (feature, target) windows and ejection flags in ``state``."""

    def __init__(
        self,
        state: State,
        policy_for: Callable[[str], EjectPolicy | None],
        rng: Callable[[], float] = random.random,
        check_every_s: float = 0.25,
    ) -> None:
        self.state = state
        self._policy_for = policy_for
        self._policies: dict[str, EjectPolicy | None] = {}
        self._rng = rng
        self._check_every_s = check_every_s
        self._next_check: dict[tuple[str, str], float] = {}

    def policy(self, feature: str) -> EjectPolicy | None:
        try:
            return self._policies[feature]
        except KeyError:
            found = self._policies[feature] = self._policy_for(feature)
            return found

    @staticmethod
    def _keys(feature: str, target: str) -> tuple[str, str]:
        return f"ej:{feature}:{target}", f"ej:{feature}:{target}:out"

    def observe(self, feature: str, target: str, latency_ms: float, failed: bool) -> None:
        """Count one finished attempt of ``target`` for ``feature`` and, at most every
        ``check_every_s``, decide whether to eject or readmit it."""
        policy = self.policy(feature)
        if policy is None:
            return
        slow = policy.slow_ms is not None and not failed and latency_ms > policy.slow_ms
        key, out_key = self._keys(feature, target)
        self.state.hit(
            key, {"calls": 1.0, "slow": 1.0 if slow else 0.0, "errors": 1.0 if failed else 0.0}
        )
        now = self.state.clock()
        if now < self._next_check.get((feature, target), 0.0):
            return
        self._next_check[(feature, target)] = now + self._check_every_s
        verdict = judge(
            policy,
            self.state.window(key, policy.short_window_s),
            self.state.window(key, policy.long_window_s),
        )
        out = self.state.get(out_key) is not None
        if verdict.eject and not out:
            self.state.set(out_key, now)
            log.warning("portal: %s shifted away from %s: %s", feature, target, verdict.reason)
        elif verdict.readmit and out:
            self.state.delete(out_key)
            log.warning("portal: %s brought back to %s: it recovered", feature, target)

    def observe_lost(self, feature: str, target: str, latency_ms: float) -> None:
        """A hedge lane on ``target`` lost the race after ``latency_ms``: a slow call when
        that is already over the slow threshold (under it, the race says nothing of the
        target). Without this a target slow enough to lose every hedge was never seen slow,
        since its attempts all ended as ``hedge_lost``."""
        policy = self.policy(feature)
        if policy is not None and policy.slow_ms is not None and latency_ms > policy.slow_ms:
            self.observe(feature, target, latency_ms, False)

    def ejected(self, feature: str, target: str) -> bool:
        return self.state.get(self._keys(feature, target)[1]) is not None

    def since(self, feature: str, target: str) -> float | None:
        """When ``target`` was ejected for ``feature`` (state clock), or None."""
        got = self.state.get(self._keys(feature, target)[1])
        return None if got is None else float(got)

    def order(self, feature: str, targets: Sequence[T], ids: Callable[[T], str]) -> list[T]:
        """``targets`` with the ejected ones moved to the end, except that each ejected
        target keeps its place for an ``explore`` share of calls (its recovery is seen)."""
        policy = self.policy(feature)
        if policy is None:
            return list(targets)
        kept: list[T] = []
        moved: list[T] = []
        for t in targets:
            if self.ejected(feature, ids(t)) and self._rng() >= policy.explore:
                moved.append(t)
            else:
                kept.append(t)
        return kept + moved if kept else moved
