"""``portal canary promote|rollback|status`` and ``portal route explain``.

They act on the shared routing state named by ``[portal] state``: with Redis, a promote or
rollback here is what every process serves within ``refresh_ms``. With the default in-memory
state there is nothing to share, so promote/rollback refuse (the step would only live in this
command's own process) and status/explain show the config's view.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from portal.cli._help import examples
from portal.config import PortalConfig, load_config
from portal.errors import ConfigError, PortalError
from portal.metering.events import LedgerJournal
from portal.metering.ledger import Ledger, LedgerRecord
from portal.metering.report import ledger_urls
from portal.routing.canary import ARMS, CanaryControl, baseline_and_candidate
from portal.routing.guard import (
    ArmSample,
    GuardSettings,
    Verdict,
    attempt_fields,
    call_fields,
    feedback_fields,
    judge,
)
from portal.routing.state import State, open_state

__all__ = ["canary_main", "route_main"]


def _load(path: str) -> tuple[PortalConfig, State]:
    """The config without its API keys (route and canary commands never send a call)."""
    cfg = load_config(path, keys_required=False)
    return cfg, open_state(cfg.portal.state)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _arm_line(name: str, a: ArmSample) -> str:
    cost = "-" if a.cost_per_call is None else f"${a.cost_per_call:.6f}"
    errors = "-" if a.error_rate is None else f"{a.error_rate:.2%}"
    line = (
        f"  {name:<9} calls {a.calls:>7}  errors {errors:>6} of {a.attempts} attempts  "
        f"p50 {_ms(a.quantile(0.5)):>8}  p95 {_ms(a.quantile(0.95)):>8}  "
        f"p99 {_ms(a.quantile(0.99)):>8}  cost/call {cost}"
    )
    for metric, m in sorted(a.feedback.items()):
        line += f"  {metric} {m.mean:.3f} (n={m.n:.0f})" if m.mean is not None else ""
    return line


def _print_status(st: dict[str, Any], out: TextIO) -> None:
    share = "-" if st["served_share"] is None else f"{st['served_share']:.2%}"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["since"])) if st["since"] else "-"
    nxt = "-" if st["next_step"] is None else f"{st['next_step']:g}%"
    print(
        f"{st['feature']}: canary {st['target']} at {st['percent']:g}% "
        f"(ramp {st['ramp'] or '-'}, next {nxt})",
        file=out,
    )
    print(f"  step since {since}: {st['reason']}; served to canary: {share}", file=out)
    print(_arm_line("baseline", st["baseline"]), file=out)
    print(_arm_line("canary", st["canary"]), file=out)
    if st["shadow_percent"] or st["shadow"].calls:
        print(_arm_line("shadow", st["shadow"]), file=out)
        print(
            f"    shadow copies of {st['shadow_percent']:g}% of the baseline's calls (answers "
            "not served); the guard judges canary and shadow together",
            file=out,
        )
    g = st["guard"]
    v: Verdict = st["verdict"]
    state = "on" if g["enabled"] else "off (counts only, never rolls back)"
    print(
        f"  guard {state}: {', '.join(g['metrics'])}; false alarms <= "
        f"{g['false_alarm_rate']:g}; allowed: errors +{g['max_error_rate_delta']:g}, "
        f"p95 {g['max_p95_ratio']:g}x, p99 {g['max_p99_ratio']:g}x, "
        f"cost {g['max_cost_ratio']:g}x",
        file=out,
    )
    print(f"  verdict: {v.verdict} ({v.reason})", file=out)
    for m in v.metrics:
        print(f"    {m.metric:<12} {m.verdict:<8} {m.detail}", file=out)
    for ev in st["events"][:5]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ev.get("at") or 0)))
        what = ev.get("event")
        if what == "verdict":
            what = f"verdict {ev.get('verdict')}"
        print(
            f"  {at} {what} by {ev.get('by') or '-'}: {ev.get('from')}% -> {ev.get('to')}% "
            f"({ev.get('reason')})",
            file=out,
        )


def arm_samples(
    records: Iterable[LedgerRecord], settings: GuardSettings, since: float | None = None
) -> tuple[ArmSample, ArmSample]:
    """(baseline, candidate) counts from ledger rows (`arm_counters`); the candidate is the
    canary's live calls and its shadow copies together, as the guard judges them."""
    return baseline_and_candidate(arm_counters(records, settings, since))


def arm_counters(
    records: Iterable[LedgerRecord], settings: GuardSettings, since: float | None = None
) -> dict[str, dict[str, float]]:
    """Each arm's counters from ledger rows, replayed in time order with the guard's own
    counters: an arm's own attempts are those on its call's first target, latency thresholds
    move every 100 attempts as at the guard's looks."""
    rows = [r for r in records if since is None or r.ts >= since]
    rows.sort(key=lambda r: r.ts)
    first: dict[str, tuple[int, str]] = {}
    for r in rows:
        if r.kind == "attempt" and r.call_id:
            cur = first.get(r.call_id)
            if cur is None or r.attempt < cur[0]:
                first[r.call_id] = (r.attempt, r.target)
    counts: dict[str, dict[str, float]] = {arm: {} for arm in ARMS}
    thresholds: dict[str, float] = {}
    seen = 0
    for r in rows:
        fields: list[tuple[str, float]] = []
        if r.kind == "call":
            fields = call_fields(r.cost_usd)
        elif r.kind == "attempt":
            own = first.get(r.call_id)
            if own is None or own[1] != r.target or r.outcome in ("cancelled", "hedge_lost"):
                continue
            fields = attempt_fields(r.outcome != "error", r.latency_ms, thresholds)
            seen += 1
        elif r.kind == "feedback":
            try:
                fields = feedback_fields(r.tags["metric"], float(r.tags["value"]))
            except (KeyError, ValueError):
                continue
        c = counts[r.arm if r.arm in counts else "canary"]
        for name, amount in fields:
            c[name] = c.get(name, 0.0) + amount
        if seen and seen % 100 == 0 and r.kind == "attempt":
            thresholds = settings.thresholds(ArmSample.from_counters(counts["baseline"]))
    return counts


def _status_from_ledger(
    control: CanaryControl, journal: LedgerJournal, name: str
) -> dict[str, Any]:
    """``portal canary status`` without shared state: the step, the counts and the verdict
    as the ledger has them (what every process wrote)."""
    st = control.status(name)
    live = control.live(name)  # the ledger's last step for this target (journal), or config
    since = live.get("at")
    settings = control.settings(name)
    counts = arm_counters(journal.rows(name, since=since), settings, since)
    base, candidate = baseline_and_candidate(counts)
    can = ArmSample.from_counters(counts["canary"])
    total = base.calls + can.calls
    st.update(
        percent=live["percent"],
        shadow_percent=float(live.get("shadow", control.canary(name).shadow)),
        shadow=ArmSample.from_counters(counts["shadow"]),
        candidate=candidate,
        reason=live.get("reason"),
        since=since,
        next_step=control.next_step(name),
        baseline=base,
        canary=can,
        served_share=(can.calls / total) if total else None,
        verdict=judge(settings, base, candidate),
        events=journal.events(name, 10),
    )
    return st


def canary_main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="portal canary",
        description="Move or inspect a feature's canary (no API key needed).",
        **examples(
            "portal canary status",
            "portal canary status support.answer --config portal.toml",
            'portal canary promote support.answer --reason "guard healthy for a day"',
            "portal canary rollback support.answer",
        ),
    )
    parser.add_argument("action", choices=["promote", "rollback", "status"])
    parser.add_argument("feature", nargs="?", help="feature name (status: all when omitted)")
    parser.add_argument("--config", default="portal.toml", help="config file (portal.toml)")
    parser.add_argument("--reason", default=None, help="why (recorded with the event)")
    args = parser.parse_args(argv)
    try:
        cfg, state = _load(args.config)
        urls = ledger_urls(cfg)
        try:
            reader = LedgerJournal(None, urls)
            control = CanaryControl(cfg, state, journal=reader)
            if args.action == "status":
                names = (
                    [args.feature]
                    if args.feature
                    else sorted(n for n, f in cfg.features.items() if f.canary)
                )
                if not names:
                    print("no feature has a canary", file=out)
                for name in names:
                    if state.shared:
                        _print_status(control.status(name), out)
                    else:
                        _print_status(_status_from_ledger(control, reader, name), out)
                if names and not state.shared:
                    print(
                        "note: [portal] state is 'memory': the step, counts and verdict "
                        "above are read from the ledger (what the app processes recorded)",
                        file=out,
                    )
                return 0
            if args.feature is None:
                parser.error(f"{args.action} needs a FEATURE")
            control.canary(args.feature)  # validates the feature
            if not state.shared:
                print(
                    f"portal canary {args.action}: [portal] state is 'memory', so the step "
                    "lives inside each app process and cannot be changed from here; set "
                    '[portal] state = "redis://HOST:6379" to share it',
                    file=sys.stderr,
                )
                return 2
            # the decision also goes to the ledger, the durable record of every step
            ledger = Ledger(urls) if urls else None
            control.journal = LedgerJournal(ledger, urls)
            try:
                if args.action == "promote":
                    reason = args.reason or "promoted by portal canary"
                    rec = control.promote(args.feature, reason, by="portal canary")
                else:
                    reason = args.reason or "rolled back by portal canary"
                    rec = control.rollback(args.feature, reason, by="portal canary")
            finally:
                if ledger is not None:
                    ledger.close()
            print(f"{args.feature}: canary now at {rec['percent']:g}%", file=out)
            return 0
        finally:
            state.close()
    except PortalError as exc:
        print(f"portal canary: {exc}", file=sys.stderr)
        return 1


def route_main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="portal route",
        description="Show how a call would be routed, and why (no API key needed).",
        **examples("portal route explain support.answer --key user-42"),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser(
        "explain",
        help="arm and ordered targets for one key",
        description="The canary arm a key gets and the targets a call would try, in order, "
        "with each breaker's state.",
        **examples("portal route explain support.answer --key user-42 --config portal.toml"),
    )
    ex.add_argument("feature", help="the feature name")
    ex.add_argument("--key", default=None, help="the routing key (user id) of the call")
    ex.add_argument("--config", default="portal.toml", help="config file (portal.toml)")
    args = parser.parse_args(argv)
    try:
        cfg, state = _load(args.config)
        try:
            from portal.routing.control import RouteControl
            from portal.routing.router import AdapterPool, Router

            router = Router(cfg, AdapterPool(cfg), state)
            control = RouteControl(cfg, router, _price(cfg))
            print(control.explain(args.feature, args.key), file=out)
            return 0
        finally:
            state.close()
    except (PortalError, ConfigError) as exc:
        print(f"portal route: {exc}", file=sys.stderr)
        return 1


def _price(cfg: PortalConfig) -> Any:
    from portal.metering.meter import Meter

    meter = Meter(kinds={n: (p.kind or n) for n, p in cfg.providers.items()})

    def cost(target: Any, usage: Any) -> float | None:
        return meter.cost(target.provider, target.model, usage)

    return cost
