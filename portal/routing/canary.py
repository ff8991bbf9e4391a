"""Sticky canary assignment, the live ramp step, and the guard that rolls a bad canary back.

Assignment is a pure hash: a key falls in one of 10,000 buckets from a hash of (feature,
canary target, key); it is in the canary when its bucket is below ``percent * 100``. Raising
the percentage only adds buckets, so a key that was in the canary at 5% stays in it at 25%,
and every process and replica agrees without talking.

The live percentage is shared through `State` (so `portal canary promote|rollback` and every
process see the same step): it starts at the config's ``percent``, moves along ``ramp`` by
`promote` (or automatically every ``ramp_every`` while the guard says ``promote``) and drops
to 0 on `rollback`. Every step and every change of the guard's verdict is an event in the
state and, through a `Journal`, in the ledger: the ledger is the durable record, so a step
survives a state store that restarts empty (each process re-seeds it from the last step it
saw) and a process restart (the last step is read back from the ledger).

The guard counts, per arm and per step, the arm's own attempts and their errors, a latency
histogram, cost per call and feedback scores, and `portal.routing.guard.judge` turns them into
``promote``, ``hold`` or ``rollback`` with a calibrated false-alarm rate.
"""

from __future__ import annotations

import logging
import random
import re
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from portal.config import CanaryConfig, PortalConfig
from portal.errors import ConfigError
from portal.routing.guard import (
    ArmSample,
    GuardSettings,
    LookSchedule,
    Verdict,
    attempt_fields,
    call_fields,
    feedback_fields,
    judge,
)
from portal.routing.state import State

__all__ = [
    "BUCKETS",
    "CanaryControl",
    "Journal",
    "bucket",
    "in_canary",
    "parse_duration",
]

BUCKETS = 10_000
#: the arms the guard counts: the baseline, the live canary, and the canary's shadow copies
ARMS = ("baseline", "canary", "shadow")
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


# ----------------------------------------------------------------------------- control

#: calls remembered for `CanaryControl.feedback` (call id -> feature, arm, step)
RECENT_CALLS = 100_000
#: a verdict change is recorded once per step across the fleet (a claim in the state)
_CLAIM_TTL_S = 30 * 86400.0


class Journal(Protocol):
    """Where canary events are kept durably (the ledger; `portal.metering.events`)."""

    def record(self, feature: str, event: Mapping[str, Any]) -> None: ...

    def last_step(self, feature: str) -> dict[str, Any] | None: ...


class CanaryControl:
    """The live canary step per feature, its ramp, and its guard."""

    def __init__(
        self,
        config: PortalConfig,
        state: State,
        check_every: int = 10,
        journal: Journal | None = None,
    ) -> None:
        self.config = config
        self.state = state
        #: the guard looks after this many of the canary arm's calls (any look is valid)
        self.check_every = check_every
        self.journal = journal
        self._looks: dict[str, LookSchedule] = {}  # per feature, for the current step
        #: per feature: the latency thresholds attempts are judged against (set at looks)
        self._thresholds: dict[str, dict[str, float]] = {}
        self._gens: dict[str, int] = {}  # the step (gen) last counted per feature
        self._every: dict[str, float | None] = {}
        #: the last step seen per feature: what a state store that lost it is re-seeded with
        self._known: dict[str, dict[str, Any]] = {}
        self._journal_read: set[str] = set()
        self._settings: dict[str, GuardSettings] = {}
        self._targets: dict[str, str] = {}
        self._recent: OrderedDict[str, tuple[str, str, int, str]] = OrderedDict()
        self.last_verdict: dict[str, Verdict] = {}
        #: per feature: what the next call's span says about a step that just changed
        self._notices: dict[str, dict[str, str]] = {}
        for name, feat in config.features.items():
            if feat.canary is None:
                continue
            if feat.canary.ramp_every:
                self._every[name] = parse_duration(
                    feat.canary.ramp_every, f"features.{name}.canary.ramp_every"
                )
            g = feat.canary.guard
            sla = feat.sla
            self._settings[name] = GuardSettings(
                metrics=tuple(g.metrics),
                false_alarm_rate=g.false_alarm_rate,
                min_calls=g.min_calls,
                max_error_rate_delta=g.max_error_rate_delta,
                max_p95_ratio=g.max_p95_ratio,
                max_p99_ratio=g.max_p99_ratio,
                min_latency_delta_ms=g.min_latency_delta_ms,
                max_cost_ratio=g.max_cost_ratio,
                feedback={m: (f.min_delta, f.higher_is_better) for m, f in g.feedback.items()},
                sla_p95_ms=sla.p95_ms if sla is not None else None,
                sla_p99_ms=sla.p99_ms if sla is not None else None,
            )
            try:
                provider, model = config.resolve_target(feat.canary.target)
                self._targets[name] = f"{provider}:{model}"
            except ConfigError:
                self._targets[name] = feat.canary.target

    def canary(self, feature: str) -> CanaryConfig:
        feat = self.config.features.get(feature)
        if feat is None or feat.canary is None:
            known = sorted(n for n, f in self.config.features.items() if f.canary)
            with_canary = ", ".join(known) or "none"
            raise ConfigError(
                f"feature {feature!r} has no canary; features with one: {with_canary}"
            )
        return feat.canary

    def features(self) -> frozenset[str]:
        """The features that have a canary."""
        return frozenset(self._settings)

    def settings(self, feature: str) -> GuardSettings:
        """The guard's settings for ``feature`` (its config and SLA)."""
        self.canary(feature)
        return self._settings[feature]

    def target(self, feature: str) -> str:
        """The canary's target id (``provider:model``)."""
        self.canary(feature)
        return self._targets[feature]

    # -- the live step ---------------------------------------------------------------------------
    def live(self, feature: str) -> dict[str, Any]:
        """{percent, gen, at, reason}: the state's record, else the last step this process saw
        or the ledger holds, else the config's start."""
        got = self.state.get(f"canary:{feature}")
        if got is not None:
            self._known[feature] = got
            return dict(got)
        rec = self._recall(feature)
        if rec is not None:
            return dict(rec)
        c = self.canary(feature)
        return {"percent": c.percent, "shadow": c.shadow, "gen": 0, "at": None, "reason": "config"}

    def percent(self, feature: str, default: float) -> float:
        """Hot path: one local lookup (plus one dict store)."""
        got = self.state.get(f"canary:{feature}")
        if got is None:
            got = self._recall(feature)
            if got is None:
                return default
        else:
            self._known[feature] = got
        return float(got["percent"])

    def shares(self, feature: str, percent: float, shadow: float) -> tuple[float, float]:
        """Hot path: the live (percent, shadow) shares; the config's when no step is known. A
        step recorded before shadows existed keeps the config's shadow share."""
        got = self.state.get(f"canary:{feature}")
        if got is None:
            got = self._recall(feature)
            if got is None:
                return percent, shadow
        else:
            self._known[feature] = got
        return float(got["percent"]), float(got.get("shadow", shadow))

    def _recall(self, feature: str) -> dict[str, Any] | None:
        """The state has no step for ``feature`` (a fresh store, or one that restarted empty):
        the last one this process saw, else the ledger's last step for this canary target;
        written back so the other processes find it too."""
        rec = self._known.get(feature)
        if rec is None and self.journal is not None and feature not in self._journal_read:
            self._journal_read.add(feature)
            ev = None
            try:
                ev = self.journal.last_step(feature)
            except Exception as exc:  # the ledger is a fallback: never fail a call on it
                log.warning("portal: could not read canary events of %s: %s", feature, exc)
            if ev is not None and ev.get("target") == self._targets.get(feature):
                rec = {
                    "percent": float(ev.get("to") or 0.0),
                    "shadow": _shadow_of(ev, self.canary(feature).shadow),
                    "gen": int(ev.get("gen") or 0),
                    "at": ev.get("at"),
                    "reason": f"restored from the ledger: {ev.get('reason', '')}",
                }
                log.info(
                    "portal: canary of %s resumes at %g%% from the ledger (%s)",
                    feature,
                    rec["percent"],
                    ev.get("reason", ""),
                )
        if rec is None:
            return None
        self._known[feature] = rec
        self.state.set(f"canary:{feature}", rec)
        return rec

    # -- moving the step -----------------------------------------------------------------------
    def set_percent(
        self,
        feature: str,
        percent: float,
        reason: str,
        event: str,
        by: str = "hand",
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        cur = self.live(feature)
        shadow_was = float(cur.get("shadow", self.canary(feature).shadow))
        # a rollback stops the shadow copies too; any other step keeps them
        shadow = 0.0 if event == "rollback" else shadow_was
        changed = float(percent) != cur["percent"] or shadow != shadow_was
        rec = {
            "percent": float(percent),
            "shadow": shadow,
            # a new step starts new guard counters; restarting the ramp clock does not
            "gen": int(cur.get("gen", 0)) + (1 if changed else 0),
            "at": self.state.clock(),
            "reason": reason,
        }
        self.state.set(f"canary:{feature}", rec)
        self._known[feature] = rec
        self._event(
            feature,
            {
                "event": event,
                "from": cur["percent"],
                "to": float(percent),
                "shadow": shadow,
                "gen": rec["gen"],
                "reason": reason,
                "by": by,
                "at": rec["at"],
                **(extra or {}),
            },
        )
        return rec

    def _event(self, feature: str, event: dict[str, Any]) -> None:
        event = {"target": self._targets.get(feature), **event}
        self.state.push_event(f"canary:{feature}:events", event)
        if self.journal is not None:
            try:
                self.journal.record(feature, event)
            except Exception as exc:
                log.warning("portal: could not record a canary event of %s: %s", feature, exc)

    def next_step(self, feature: str) -> float | None:
        c = self.canary(feature)
        cur = self.live(feature)["percent"]
        steps = c.ramp or [c.percent]
        return next((s for s in steps if s > cur), None)

    def promote(
        self, feature: str, reason: str = "promoted by hand", by: str = "hand"
    ) -> dict[str, Any]:
        nxt = self.next_step(feature)
        if nxt is None:
            cur = self.live(feature)["percent"]
            raise ConfigError(
                f"feature {feature!r}: the canary is already at {cur:g}%, the last ramp step; "
                "make it the primary in the config to finish the rollout"
            )
        rec = self.set_percent(feature, nxt, reason, "promote", by)
        log.info("portal: canary of %s promoted to %g%% (%s)", feature, nxt, reason)
        return rec

    def rollback(
        self,
        feature: str,
        reason: str = "rolled back by hand",
        by: str = "hand",
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        rec = self.set_percent(feature, 0.0, reason, "rollback", by, extra)
        log.warning("portal: canary of %s rolled back to 0%% (%s)", feature, reason)
        return rec

    # -- counting ------------------------------------------------------------------------------
    def _arm_key(self, feature: str, gen: int, arm: str) -> str:
        return f"guard:{feature}:{gen}:{arm}"

    def _gen(self, feature: str) -> int:
        rec = self.state.get(f"canary:{feature}") or self._known.get(feature)
        gen = 0 if rec is None else int(rec.get("gen", 0))
        last = self._gens.get(feature)
        if last != gen:  # a new step: the guard judges it afresh, the old counters are done
            self._gens[feature] = gen
            self._looks.pop(feature, None)
            self._thresholds.pop(feature, None)
            if last is not None and rec is not None:  # tell the next call's span why
                self._notices[feature] = {
                    "portal.canary.event": "step",
                    "portal.canary.reason": str(rec.get("reason", "")),
                }
            if last is not None and last < gen:
                for old_arm in ARMS:
                    self.state.forget(self._arm_key(feature, last, old_arm))
        return gen

    def observe_attempt(self, feature: str, arm: str, ok: bool, latency_ms: float) -> None:
        """One attempt on the arm's own (first) target, before retries or a failover."""
        key = self._arm_key(feature, self._gen(feature), arm)
        for name, amount in attempt_fields(ok, latency_ms, self._thresholds.get(feature, {})):
            self.state.incr(key, name, amount)

    def observe_call(
        self,
        feature: str,
        arm: str,
        cost: float | None,
        call_id: str | None = None,
        target: str = "",
    ) -> None:
        """One finished call; every ``check_every`` canary calls the guard looks."""
        gen = self._gen(feature)
        key = self._arm_key(feature, gen, arm)
        for name, amount in call_fields(cost):
            self.state.incr(key, name, amount)
        if call_id:
            recent = self._recent
            recent[call_id] = (feature, arm, gen, target)
            if len(recent) > RECENT_CALLS:
                recent.popitem(last=False)
        if arm != "baseline":
            looks = self._looks.get(feature)
            if looks is None:
                looks = self._looks[feature] = LookSchedule(self.check_every)
            if looks.due():
                self.check(feature)

    def observe(
        self, feature: str, arm: str, ok: bool, latency_ms: float, cost: float | None
    ) -> None:
        """A call served by one attempt on the arm's own target: both counts at once."""
        self.observe_attempt(feature, arm, ok, latency_ms)
        self.observe_call(feature, arm, cost)

    def call_of(self, call_id: str) -> tuple[str, str, int, str] | None:
        """(feature, arm, step, target) of a recent call of a canaried feature, made by this
        process."""
        return self._recent.get(call_id)

    def observe_feedback(
        self, feature: str, arm: str, gen: int | None, metric: str, value: float
    ) -> bool:
        """Count a score for a call of ``feature`` on ``arm`` in step ``gen`` (None: the
        current step). False when the call's step is over (the score is not judged)."""
        if feature not in self._settings:
            return False
        cur = self._gen(feature)
        if gen is not None and gen != cur:
            return False
        key = self._arm_key(feature, cur, arm)
        for name, amount in feedback_fields(metric, value):
            self.state.incr(key, name, amount)
        return True

    def span_attributes(self, feature: str, arm: str) -> dict[str, Any]:
        """OpenTelemetry attributes for a call of a canaried feature: its arm, the live step
        and, on the first call after the step changed (a rollback, a promotion), why."""
        live = self.state.get(f"canary:{feature}") or self._known.get(feature)
        percent = self.canary(feature).percent if live is None else live["percent"]
        attrs: dict[str, Any] = {
            "portal.arm": arm,
            "portal.canary.target": self._targets.get(feature, ""),
            "portal.canary.percent": float(percent),
        }
        notice = self._notices.pop(feature, None)
        if notice is not None:
            attrs.update(notice)
            if float(percent) == 0.0:
                attrs["portal.canary.event"] = "rollback"
        return attrs

    # -- guard ---------------------------------------------------------------------------------
    def arm_counters(self, feature: str) -> dict[str, dict[str, float]]:
        """The current step's counters of each arm (`ARMS`)."""
        gen = int(self.live(feature).get("gen", 0))
        return {arm: dict(self.state.counters(self._arm_key(feature, gen, arm))) for arm in ARMS}

    def arms(self, feature: str) -> tuple[ArmSample, ArmSample]:
        """(baseline, candidate): the candidate is the canary target measured on live calls
        and on shadow copies alike (the same target on the same kind of traffic)."""
        return baseline_and_candidate(self.arm_counters(feature))

    def judge(self, feature: str) -> Verdict:
        """The guard's verdict on the current step (records nothing; moves the latency
        thresholds the next attempts are judged against)."""
        self.canary(feature)
        base, can = self.arms(feature)
        settings = self._settings[feature]
        self._thresholds[feature] = settings.thresholds(base)
        return judge(settings, base, can)

    def verdict(self, feature: str) -> str | None:
        """Why the guard would roll back now, or None."""
        v = self.judge(feature)
        return v.reason if v.verdict == "rollback" else None

    def check(self, feature: str) -> str | None:
        """Run the guard (roll back on a breach, record a change of verdict) and the
        automatic ramp; return the step event, if any."""
        c = self.canary(feature)
        live = self.live(feature)
        shadow = float(live.get("shadow", c.shadow))
        if not c.guard.enabled or (live["percent"] <= 0 and shadow <= 0):
            return None
        v = self.judge(feature)
        previous = self.last_verdict.get(feature)
        self.last_verdict[feature] = v
        gen = int(live.get("gen", 0))
        if v.verdict == "rollback":
            bad = v.deciding()
            if not self.state.claim(f"canary:{feature}:rolled:{gen}", _CLAIM_TTL_S):
                return None  # another process rolled this step back already
            self.rollback(
                feature,
                f"guard: {v.reason}",
                by="guard",
                extra={"metric": bad.metric if bad else None, "stats": v.to_dict()},
            )
            return "rollback"
        if previous is None or previous.verdict != v.verdict:
            self._verdict_changed(feature, v, gen)
        every = self._every.get(feature)
        if every is not None and v.verdict == "promote" and live["percent"] > 0:
            if self.next_step(feature) is None:
                return None
            since = live.get("at")
            if since is None:  # the config's first step: count from the first check
                self.set_percent(feature, live["percent"], "ramp clock started", "start", "guard")
                return None
            if self.state.clock() - since >= every:
                self.promote(
                    feature, f"automatic ramp every {c.ramp_every}: {v.reason}", by="guard"
                )
                return "promote"
        elif every is not None and live.get("at") is None and live["percent"] > 0:
            self.set_percent(feature, live["percent"], "ramp clock started", "start", "guard")
        return None

    def _verdict_changed(self, feature: str, v: Verdict, gen: int) -> None:
        if v.verdict == "hold" and not v.metrics:
            return  # still collecting: not a verdict yet
        if not self.state.claim(f"canary:{feature}:verdict:{gen}:{v.verdict}", _CLAIM_TTL_S):
            return
        live = self.live(feature)
        self._event(
            feature,
            {
                "event": "verdict",
                "verdict": v.verdict,
                "from": live["percent"],
                "to": live["percent"],
                "gen": gen,
                "reason": v.reason,
                "by": "guard",
                "at": self.state.clock(),
                "stats": v.to_dict(),
            },
        )

    def status(self, feature: str) -> dict[str, Any]:
        c = self.canary(feature)
        live = self.live(feature)
        counters = self.arm_counters(feature)
        base, candidate = baseline_and_candidate(counters)
        can = ArmSample.from_counters(counters["canary"])
        total = base.calls + can.calls
        return {
            "feature": feature,
            "target": c.target,
            "percent": live["percent"],
            "shadow_percent": float(live.get("shadow", c.shadow)),
            "shadow": ArmSample.from_counters(counters["shadow"]),
            "candidate": candidate,
            "ramp": list(c.ramp),
            "next_step": self.next_step(feature),
            "reason": live.get("reason"),
            "since": live.get("at"),
            "served_share": (can.calls / total) if total else None,
            "baseline": base,
            "canary": can,
            "verdict": self.judge(feature),
            "guard": c.guard.model_dump(),
            "events": self.state.events(f"canary:{feature}:events", 10),
        }


def baseline_and_candidate(
    counters: Mapping[str, Mapping[str, float]],
) -> tuple[ArmSample, ArmSample]:
    """(baseline, candidate) samples from per-arm counters: the candidate sums the canary's
    live calls and its shadow copies (every counter is a sum, so they add up)."""
    merged: dict[str, float] = dict(counters.get("canary", {}))
    for name, amount in counters.get("shadow", {}).items():
        merged[name] = merged.get(name, 0.0) + amount
    return ArmSample.from_counters(counters.get("baseline", {})), ArmSample.from_counters(merged)


def _shadow_of(event: Mapping[str, Any], default: float) -> float:
    """The shadow share a recorded step left: its own figure, else none after a rollback
    (a rollback stops the shadow copies), else the config's."""
    got = event.get("shadow")
    if isinstance(got, (int, float)):
        return float(got)
    return 0.0 if event.get("event") == "rollback" else default
