"""`portal loadtest`: synthetic peak load against one feature, through the real client.

    portal loadtest --config portal.toml --feature support.answer --rps 50 --duration 60s \\
        --burst 5x:10s/60s --prompts lognormal:mean=800,sigma=1.0 --out results.json

Open-loop Poisson arrivals plus bursts, latency from each request's intended start, prompt
and output lengths from long-tail distributions or a JSONL file; a live progress line, a
final table, JSON and HTML output, and an exit code CI can gate a launch on: 0 when the
feature's ``sla`` is met (or it has none), 3 when it is missed, 2 on a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from portal.config import PortalConfig, load_config
from portal.errors import ConfigError
from portal.stress.arrivals import (
    Burst,
    LengthDist,
    PromptSource,
    UsageError,
    parse_duration,
)
from portal.stress.display import ProgressDisplay
from portal.stress.engine import LoadSpec, RunResult, run_load
from portal.stress.results import render_table, summarize

__all__ = ["EXIT_MISSED", "EXIT_OK", "EXIT_USAGE", "main", "run_loadtest"]

EXIT_OK, EXIT_USAGE, EXIT_MISSED = 0, 2, 3
DEFAULT_PROMPTS = "lognormal:mean=800,sigma=1.0"


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
    if args.prompts_file:
        prompts = PromptSource.from_file(args.prompts_file, out_dist)
    else:
        prompts = PromptSource(LengthDist.parse(args.prompts or DEFAULT_PROMPTS), None, out_dist)
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


def spec_params(spec: LoadSpec) -> dict[str, Any]:
    return {
        "rps": spec.rps,
        "duration_s": spec.duration_s,
        "burst": str(spec.burst) if spec.burst else None,
        "prompts": spec.prompts.describe(),
        "output_tokens": str(spec.prompts.output_tokens) if spec.prompts.output_tokens else None,
        "concurrency_limit": spec.concurrency_limit,
        "stream": spec.stream,
        "seed": spec.seed,
        "users": spec.users,
    }


def isolated(cfg: PortalConfig) -> PortalConfig:
    """The same config with routing state in memory: synthetic load must not open the
    fleet's shared breakers, spend its throughput buckets or move its canary."""
    if cfg.portal.state == "memory":
        return cfg
    copy = cfg.model_copy(deep=True)
    copy.portal.state = "memory"
    return copy


def make_client(cfg: PortalConfig, ledger: str | None, transports: Mapping[str, Any] | None) -> Any:
    from portal.client import AsyncClient

    return AsyncClient(cfg, ledger=ledger, transports=transports)


async def run_loadtest(
    config: PortalConfig | str | Path,
    spec: LoadSpec,
    *,
    transports: Mapping[str, Any] | None = None,
    ledger: str | None = None,
    display: ProgressDisplay | None = None,
) -> tuple[dict[str, Any], RunResult]:
    """Run one load test; return (the JSON document, the raw samples)."""
    cfg = isolated(config if isinstance(config, PortalConfig) else load_config(config))
    client = make_client(cfg, ledger, transports)
    try:
        result = await run_load(
            client, spec, on_progress=display.update if display is not None else None
        )
    finally:
        await client.aclose()
    doc = summarize(result, cfg.features[spec.feature].sla, spec_params(spec))
    doc["config"] = str(cfg.source) if cfg.source else None
    return doc, result


def write_outputs(
    doc: dict[str, Any], result: Any, out: str | None, html: str | None, kind: str
) -> None:
    if out:
        Path(out).write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    if html:
        from portal.stress.html import write_html

        write_html(doc, result, html, kind)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="portal loadtest", description="synthetic peak load against one feature"
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
