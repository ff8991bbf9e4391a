"""`portal loadtest`: synthetic peak load against one feature, through the real client.

    portal loadtest --config portal.toml --feature support.answer --rps 50 --duration 60s \\
        --burst 5x:10s/60s --prompts lognormal:mean=800,sigma=1.0 --out results.json

Open-loop Poisson arrivals plus bursts, latency from each request's intended start, prompt
and output lengths from long-tail distributions or a JSONL file; a live progress line, a
final table, JSON and HTML output, and an exit code CI can gate a launch on: 0 when the
feature's ``sla`` is met (or it has none), 3 when it is missed, 2 on a usage or config error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portal.config import PortalConfig, load_config
from portal.stress.display import ProgressDisplay
from portal.stress.engine import LoadSpec, RunResult, run_load
from portal.stress.results import summarize

__all__ = [
    "DEFAULT_PROMPTS",
    "isolated",
    "make_client",
    "run_loadtest",
    "spec_params",
    "write_outputs",
]

DEFAULT_PROMPTS = "lognormal:mean=800,sigma=1.0"


def spec_params(spec: LoadSpec) -> dict[str, Any]:
    return {
        "rps": spec.rps,
        "duration_s": spec.duration_s,
        "burst": str(spec.burst) if spec.burst else None,
        "prompts": spec.prompts.describe(),
        "output_tokens": str(spec.prompts.output_tokens) if spec.prompts.output_tokens else None,
        "stable_prefix_tokens": spec.prompts.stable_prefix_tokens or None,
        "stable_prefixes": len(spec.prompts.prefixes) or None,
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
