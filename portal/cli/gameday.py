"""`portal gameday`: the command line of a game day (what runs is `portal.stress.gameday`).

Exit 0 when every check passes, 3 when one fails, 2 on a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from portal.cli._help import examples
from portal.cli.loadtest import EXIT_MISSED, EXIT_OK, EXIT_USAGE
from portal.config import PortalConfig, load_config
from portal.errors import ConfigError
from portal.stress.arrivals import UsageError, parse_duration
from portal.stress.display import ProgressDisplay
from portal.stress.engine import RunResult
from portal.stress.gameday import (
    KINDS,
    PROMPTS_FILE,
    SUITE_SCHEMA,
    GamedayScenario,
    check_scenario,
    render,
    render_suite,
    run_gameday,
    scenarios_from_config,
)
from portal.stress.loadtest import isolated as _isolated

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="portal gameday",
        description="Load on a feature while one vendor breaks on schedule; checks failover, "
        "recovery and the SLA. Exit 0 pass, 3 fail, 2 usage.",
        **examples(
            "portal gameday --feature support.answer --scenario outage --target openai "
            "--at 20s --for 30s --rps 50 --duration 90s",
            "portal gameday --feature support.answer --scenario slow --target openai "
            "--latency-ms 1500 --users 500 --html gameday.html",
            "portal gameday --all --duration 30s --out gamedays.json",
        ),
    )
    p.add_argument("--config", default="portal.toml", help="the same portal.toml as production")
    p.add_argument("--all", action="store_true", help="run every [gamedays.NAME] scenario")
    p.add_argument(
        "--name",
        action="append",
        default=None,
        help="run this [gamedays.NAME] scenario (repeatable)",
    )
    p.add_argument("--feature", help="the feature to load")
    p.add_argument("--scenario", choices=KINDS, help="what breaks")
    p.add_argument("--target", help="provider (or provider:model) to break")
    p.add_argument("--at", default=None, help="fault start, e.g. 20s (default 20s)")
    p.add_argument("--for", dest="for_", default=None, help="fault length, e.g. 30s (default 30s)")
    p.add_argument("--rps", type=float, default=None, help="arrival rate (default 50)")
    p.add_argument("--duration", default=None, help="run length (default 90s)")
    p.add_argument("--burst", default=None, help="FACTORx:LENGTH/EVERY, e.g. 5x:10s/60s")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompts", default=None, help="prompt length distribution, e.g. fixed:200")
    src.add_argument(
        "--prompts-file",
        default=None,
        help='JSONL, one {"messages": [...]} or {"prompt": "..."} per line',
    )
    p.add_argument("--output-tokens", default=None, help="max_tokens distribution")
    p.add_argument(
        "--stable-prefix-tokens",
        type=int,
        default=None,
        help="a cache-marked system prompt of N tokens before every prompt (default 0: none)",
    )
    p.add_argument(
        "--stable-prefixes",
        type=int,
        default=None,
        help="with --stable-prefix-tokens: distinct stable prefixes to draw from (default 1)",
    )
    p.add_argument("--stream", action="store_true", help="stream replies; measures TTFT")
    p.add_argument("--seed", type=int, default=None, help="fixes arrivals, prompts and keys")
    p.add_argument("--concurrency-limit", type=int, default=None, help="cap on requests in flight")
    p.add_argument(
        "--users", type=int, default=None, help="distinct user keys (canary; default 10000)"
    )
    p.add_argument("--drain", default=None, help="how long stragglers may finish (default 30s)")
    p.add_argument(
        "--status", type=int, default=None, help="HTTP status of injected errors (0: refused)"
    )
    p.add_argument(
        "--latency-ms", type=float, default=None, help="added latency p50 (slow, brownout)"
    )
    p.add_argument("--latency-p99-ms", type=float, default=None, help="added latency p99")
    p.add_argument("--error-rate", type=float, default=None, help="share failing (flaky, brownout)")
    p.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds (throttle)")
    p.add_argument(
        "--interval-ms", type=float, default=None, help="pause before each byte (trickle)"
    )
    p.add_argument(
        "--max-error-rate", type=float, default=None, help="fail above this error rate (0.01)"
    )
    p.add_argument("--max-failover", default=None, help="fail if traffic takes longer to move")
    p.add_argument("--max-recovery", default=None, help="fail if recovery takes longer")
    p.add_argument("--ledger", default=None, help="record the calls to this ledger URL")
    p.add_argument("--out", default=None, help="write the JSON results here")
    p.add_argument(
        "--html", default=None, help="HTML report (with --all: one per scenario, NAME inserted)"
    )
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


_LOAD_FLAGS = (
    "rps",
    "burst",
    "prompts",
    "output_tokens",
    "stable_prefix_tokens",
    "stable_prefixes",
    "seed",
    "concurrency_limit",
    "users",
)


def _scenarios(args: argparse.Namespace, cfg: PortalConfig) -> list[GamedayScenario]:
    overrides: dict[str, Any] = {
        k: getattr(args, k) for k in _LOAD_FLAGS if getattr(args, k) is not None
    }
    for flag, key in (("duration", "duration"), ("at", "at"), ("for_", "for"), ("drain", "drain")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.prompts_file is not None:
        overrides["prompts"] = PROMPTS_FILE + args.prompts_file
    if args.stream:
        overrides["stream"] = True
    fault = {
        k: v
        for k, v in (
            ("status", args.status),
            ("latency_ms", args.latency_ms),
            ("latency_p99_ms", args.latency_p99_ms),
            ("rate", args.error_rate),
            ("retry_after_s", args.retry_after),
            ("interval_ms", args.interval_ms),
        )
        if v is not None
    }
    expect = {
        k: v
        for k, v in (
            ("max_error_rate", args.max_error_rate),
            ("max_failover_s", args.max_failover),
            ("max_recovery_s", args.max_recovery),
        )
        if v is not None
    }
    for key in ("max_failover_s", "max_recovery_s"):
        if key in expect:
            expect[key] = parse_duration(expect[key], "--" + key[4:-2].replace("_", "-"))
    if args.all or args.name:
        found = scenarios_from_config(cfg)
        if not found:
            raise UsageError(f"--all: {args.config} has no [gamedays.NAME] tables")
        if args.name:
            known = {s.name: s for s in found}
            missing = [n for n in args.name if n not in known]
            if missing:
                raise UsageError(
                    f"--name {', '.join(missing)}: not in the config "
                    f"(game days: {', '.join(sorted(known))})"
                )
            found = [known[n] for n in args.name]
        out = []
        for s in found:
            data = s.model_dump(by_alias=True)
            data.update(overrides)
            data["fault"] = {**data["fault"], **fault}
            data["expect"] = {**data["expect"], **expect}
            out.append(_validate(data, s.name))
        return out
    missing = [f"--{n}" for n in ("feature", "scenario", "target") if getattr(args, n) is None]
    if missing:
        raise UsageError(f"give {', '.join(missing)} (or --all to run the config's [gamedays])")
    data = {
        "feature": args.feature,
        "scenario": args.scenario,
        "target": args.target,
        **overrides,
        "fault": fault,
        "expect": expect,
    }
    return [_validate(data, "adhoc")]


def _validate(data: dict[str, Any], name: str) -> GamedayScenario:
    try:
        return GamedayScenario.model_validate({**data, "name": name})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]).replace("for_", "for")
        raise UsageError(f"{name}: {where}: {err['msg']}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        cfg = _isolated(load_config(args.config))
        scenarios = _scenarios(args, cfg)
        for sc in scenarios:
            check_scenario(sc, cfg)
    except ConfigError as exc:
        print(f"portal gameday: {args.config}:", file=sys.stderr)
        for line in exc.errors or [str(exc)]:
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"portal gameday: {exc}", file=sys.stderr)
        return EXIT_USAGE

    docs: list[dict[str, Any]] = []
    for sc in scenarios:

        async def go(sc: GamedayScenario = sc) -> tuple[dict[str, Any], RunResult]:
            every = max(1.0, sc.duration / 20)
            with ProgressDisplay(quiet=args.quiet, every_s=every, prefix=f"[{sc.name}] ") as d:
                return await run_gameday(cfg, sc, display=d, ledger=args.ledger)

        try:
            doc, result = anyio.run(go)
        except ConfigError as exc:
            print(f"portal gameday: {exc}", file=sys.stderr)
            return EXIT_USAGE
        docs.append(doc)
        lines = render(doc)
        print("\n".join(lines))
        print()
        if args.html:
            from portal.stress.html import write_html

            path = args.html
            if len(scenarios) > 1:
                stem = Path(path)
                path = str(stem.with_name(f"{stem.stem}-{sc.name}{stem.suffix or '.html'}"))
            faults = [{"kind": sc.scenario, "start_s": sc.at, "end_s": sc.at + sc.for_}]
            write_html(doc["load"], result, path, f"gameday {sc.name}", faults, lines)
    if len(docs) > 1:
        print("summary:")
        print("\n".join(render_suite(docs)))
    passed = all(d["passed"] for d in docs)
    if args.out:
        out: dict[str, Any] = (
            docs[0]
            if len(docs) == 1 and not (args.all or args.name)
            else {"schema": SUITE_SCHEMA, "passed": passed, "results": docs}
        )
        Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return EXIT_OK if passed else EXIT_MISSED


if __name__ == "__main__":
    sys.exit(main())
