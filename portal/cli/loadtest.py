"""`portal loadtest`: the command line of a load test (what runs is `portal.stress.loadtest`).

Exit 0 when the feature's ``sla`` is met (or it has none), 3 when it is missed, 2 on a usage
or config error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from portal.cli._help import examples
from portal.config import PortalConfig, load_config
from portal.errors import ConfigError
from portal.stress.arrivals import Burst, LengthDist, PromptSource, UsageError, parse_duration
from portal.stress.display import ProgressDisplay
from portal.stress.engine import LoadSpec, RunResult
from portal.stress.loadtest import DEFAULT_PROMPTS, run_loadtest, write_outputs
from portal.stress.results import render_table

__all__ = ["EXIT_MISSED", "EXIT_OK", "EXIT_USAGE", "add_load_arguments", "main", "spec_from_args"]

EXIT_OK, EXIT_USAGE, EXIT_MISSED = 0, 2, 3


def add_load_arguments(p: argparse.ArgumentParser, default_duration: str) -> None:
    """The options `loadtest` and `gameday` share."""
    p.add_argument("--config", default="portal.toml", help="the same portal.toml as production")
    p.add_argument("--feature", required=True, help="the feature to load")
    p.add_argument("--rps", type=float, default=10.0, help="mean arrival rate (requests/s)")
    p.add_argument("--duration", default=default_duration, help="e.g. 60s, 2m")
    p.add_argument("--burst", default=None, help="FACTORx:LENGTH/EVERY, e.g. 5x:10s/60s")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--prompts",
        default=None,
        help=f"prompt length distribution in tokens (default {DEFAULT_PROMPTS})",
    )
    src.add_argument(
        "--prompts-file",
        default=None,
        help='JSONL, one {"messages": [...]} or {"prompt": "..."} per line',
    )
    p.add_argument(
        "--stable-prefix-tokens",
        type=int,
        default=0,
        help="put a cache-marked system prompt of N tokens, the same from request to "
        "request, before each prompt (a prompt-caching workload; default 0: none)",
    )
    p.add_argument(
        "--stable-prefixes",
        type=int,
        default=1,
        help="with --stable-prefix-tokens: how many distinct stable prefixes requests draw "
        "from (default 1)",
    )
    p.add_argument(
        "--output-tokens",
        default=None,
        help="max_tokens distribution, e.g. lognormal:mean=200,sigma=0.6",
    )
    p.add_argument(
        "--concurrency-limit",
        type=int,
        default=None,
        help="cap on requests in flight (queued time still counts as latency)",
    )
    p.add_argument("--stream", action="store_true", help="stream replies; measures TTFT")
    p.add_argument("--seed", type=int, default=None, help="fixes arrivals, prompts and keys")
    p.add_argument("--users", type=int, default=10_000, help="distinct user keys (canary)")
    p.add_argument("--drain", default="30s", help="how long stragglers may finish")
    p.add_argument(
        "--ledger", default=None, help="record the run's calls to this ledger URL (default: none)"
    )
    p.add_argument("--out", default=None, help="write the JSON results here")
    p.add_argument("--html", default=None, help="write an HTML report here")
    p.add_argument("--quiet", action="store_true", help="no live progress")


def spec_from_args(args: argparse.Namespace, cfg: PortalConfig) -> LoadSpec:
    if args.feature not in cfg.features:
        known = ", ".join(sorted(cfg.features)) or "none configured"
        raise UsageError(f"--feature {args.feature!r}: not in the config (features: {known})")
    if args.rps <= 0:
        raise UsageError(f"--rps {args.rps:g}: must be greater than 0")
    duration = parse_duration(args.duration, "--duration")
    if duration <= 0:
        raise UsageError("--duration: must be longer than 0 s, e.g. 60s")
    if args.concurrency_limit is not None and args.concurrency_limit < 1:
        raise UsageError("--concurrency-limit: must be at least 1")
    if args.users < 1:
        raise UsageError("--users: must be at least 1")
    out_dist = (
        LengthDist.parse(args.output_tokens, "--output-tokens") if args.output_tokens else None
    )
    prefix = {
        "stable_prefix_tokens": args.stable_prefix_tokens,
        "stable_prefixes": args.stable_prefixes,
    }
    if args.prompts_file:
        prompts = PromptSource.from_file(args.prompts_file, out_dist, **prefix)
    else:
        prompts = PromptSource(
            LengthDist.parse(args.prompts or DEFAULT_PROMPTS), None, out_dist, **prefix
        )
    return LoadSpec(
        feature=args.feature,
        rps=args.rps,
        duration_s=duration,
        prompts=prompts,
        burst=Burst.parse(args.burst) if args.burst else None,
        concurrency_limit=args.concurrency_limit,
        stream=args.stream,
        seed=args.seed,
        users=args.users,
        drain_s=parse_duration(args.drain, "--drain"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="portal loadtest",
        description="Open-loop synthetic load against one feature, with an SLA verdict. "
        "Exit 0 met, 3 missed, 2 usage.",
        **examples(
            "portal loadtest --feature support.answer --rps 50 --duration 60s",
            "portal loadtest --feature support.answer --rps 20 --duration 2m --burst 5x:10s/60s "
            "--stream --html load.html --out load.json",
        ),
    )
    add_load_arguments(parser, "60s")
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        cfg = load_config(args.config)
        spec = spec_from_args(args, cfg)
    except ConfigError as exc:
        print(f"portal loadtest: {args.config}:", file=sys.stderr)
        for line in exc.errors or [str(exc)]:
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"portal loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> tuple[dict[str, Any], RunResult]:
        with ProgressDisplay(quiet=args.quiet, every_s=_every(spec.duration_s)) as display:
            return await run_loadtest(cfg, spec, ledger=args.ledger, display=display)

    try:
        doc, result = anyio.run(go)
    except ConfigError as exc:  # e.g. a provider's options, found when its adapter is built
        print(f"portal loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in render_table(doc):
        print(line)
    try:
        write_outputs(doc, result, args.out, args.html, "loadtest")
    except OSError as exc:
        print(f"portal loadtest: cannot write output: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_MISSED if doc["sla"]["met"] is False else EXIT_OK


def _every(duration_s: float) -> float:
    """Plain progress lines: about twenty per run, at least one a second."""
    return max(1.0, duration_s / 20)


if __name__ == "__main__":
    sys.exit(main())
