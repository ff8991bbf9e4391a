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
from typing import Any, TextIO

from portal.cli._help import examples
from portal.config import PortalConfig, load_config
from portal.errors import ConfigError, PortalError
from portal.routing.canary import ArmStats, CanaryControl
from portal.routing.state import State, open_state

__all__ = ["canary_main", "route_main"]


def _load(path: str) -> tuple[PortalConfig, State]:
    """The config without its API keys (route and canary commands never send a call)."""
    cfg = load_config(path, keys_required=False)
    return cfg, open_state(cfg.portal.state)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _arm_line(name: str, a: ArmStats) -> str:
    cost = "-" if a.cost_per_call is None else f"${a.cost_per_call:.6f}"
    return (
        f"  {name:<9} calls {a.calls:>7}  errors {a.error_rate:6.2%}  p50 {_ms(a.p50_ms):>8}  "
        f"p95 {_ms(a.p95_ms):>8}  p99 {_ms(a.p99_ms):>8}  cost/call {cost}"
    )


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
    g = st["guard"]
    print(
        f"  guard: min_calls {g['min_calls']}, max_error_rate_delta "
        f"{g['max_error_rate_delta']:g}, max_p95_ratio {g['max_p95_ratio']:g}",
        file=out,
    )
    for ev in st["events"][:5]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ev.get("at") or 0)))
        print(
            f"  {at} {ev.get('event')}: {ev.get('from')}% -> {ev.get('to')}% ({ev.get('reason')})",
            file=out,
        )


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
        try:
            control = CanaryControl(cfg, state)
            if args.action == "status":
                names = (
                    [args.feature]
                    if args.feature
                    else sorted(n for n, f in cfg.features.items() if f.canary)
                )
                if not names:
                    print("no feature has a canary", file=out)
                for name in names:
                    _print_status(control.status(name), out)
                if not state.shared:
                    print(
                        "note: [portal] state is 'memory': counts and steps of running "
                        'processes are not visible here; use state = "redis://..."',
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
            if args.action == "promote":
                rec = control.promote(args.feature, args.reason or "promoted by portal canary")
            else:
                rec = control.rollback(args.feature, args.reason or "rolled back by portal canary")
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
            from portal.routing.control import Routing
            from portal.routing.router import AdapterPool, Router

            router = Router(cfg, AdapterPool(cfg), state)
            routing = Routing(cfg, router, _price(cfg))
            print(routing.explain(args.feature, args.key), file=out)
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
