"""Running a game day: the faulted provider's transport wrapped in a `FaultTransport`, the
real client and router on the config (routing state in memory), the load, the analysis."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portal.config import PortalConfig, load_config
from portal.metering.ledger import SOURCE_TAG
from portal.stress.display import ProgressDisplay
from portal.stress.engine import RunResult, run_load
from portal.stress.faults import Fault, FaultTransport
from portal.stress.gameday.analysis import Observer, analyze
from portal.stress.gameday.model import GamedayScenario, check_scenario
from portal.stress.loadtest import isolated as _isolated
from portal.stress.loadtest import make_client, spec_params
from portal.stress.results import summarize

__all__ = ["GAMEDAY_SCHEMA", "run_gameday"]

GAMEDAY_SCHEMA = "portal.gameday/1"


def _inner_transport(cfg: PortalConfig, provider: str, given: Mapping[str, Any] | None) -> Any:
    if given and provider in given:
        return given[provider]
    from portal.providers.registry import adapter_class

    settings = cfg.provider_settings(provider)
    adapter = adapter_class(settings.kind)(settings)
    make = getattr(adapter, "default_transport", None)
    if make is not None:
        return make()
    from portal._http import DEFAULT_LIMITS, httpx2

    return httpx2.AsyncHTTPTransport(
        verify=cfg.providers[provider].verify_tls, limits=DEFAULT_LIMITS
    )


async def run_gameday(
    config: PortalConfig | str | Path,
    sc: GamedayScenario,
    *,
    transports: Mapping[str, Any] | None = None,
    display: ProgressDisplay | None = None,
    ledger: str | None = None,
) -> tuple[dict[str, Any], RunResult]:
    """Run one scenario; return (its JSON document, the raw samples)."""
    cfg = _isolated(config if isinstance(config, PortalConfig) else load_config(config))
    provider = check_scenario(sc, cfg)
    faults = FaultTransport(
        _inner_transport(cfg, provider, transports),
        sc.faults(),
        seed=sc.seed or 0,
        clock=time.perf_counter,
    )
    client = make_client(cfg, ledger, {**(transports or {}), provider: faults})
    spec = sc.load_spec()
    route = client.router.route(sc.feature, "gameday", None)
    feat = cfg.features[sc.feature]
    ids = [t.id for t in route.targets]
    if feat.canary is not None:
        ids.append(client.router.route(sc.feature, None, feat.canary.target).targets[0].id)
    targets = list(dict.fromkeys(ids))
    faulted = {t for t in targets if t.split(":", 1)[0] == provider}
    observer = Observer(client, sc.feature, targets)
    try:
        result = await run_load(
            client,
            spec,
            on_progress=display.update if display is not None else None,
            on_start=lambda: faults.restart(),
            on_tick=observer.tick,
            tags={SOURCE_TAG: "gameday", "gameday": sc.name},
        )
    finally:
        await client.aclose()
    load = summarize(result, feat.sla, spec_params(spec))
    doc: dict[str, Any] = {
        "schema": GAMEDAY_SCHEMA,
        "name": sc.name,
        "feature": sc.feature,
        "config": str(cfg.source) if cfg.source else None,
        "scenario": {
            "kind": sc.scenario,
            "target": sc.target,
            "provider": provider,
            "faulted_targets": sorted(faulted),
            "at_s": sc.at,
            "for_s": sc.for_,
            "faults": [_fault_doc(f) for f in faults.faults],
            "injected": faults.injected,
        },
        **analyze(result, sc, faulted, observer, feat.sla),
        "load": load,
    }
    return doc, result


def _fault_doc(f: Fault) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "start_s": f.start_s,
        "end_s": f.end_s,
        "rate": f.rate,
        "status": f.status,
        "latency_ms": f.latency_ms,
        "latency_p99_ms": f.latency_p99_ms,
        "retry_after_s": f.retry_after_s,
        "hits": f.hits,
    }
