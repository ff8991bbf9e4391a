"""`portal gameday`: a load test while one vendor breaks on schedule.

    portal gameday --config portal.toml --feature support.answer --scenario outage \\
        --target acme --at 20s --for 30s --rps 50 --duration 90s
    portal gameday --config portal.toml --all          # every [gamedays.NAME] scenario

The named provider's transport is wrapped in `portal.stress.faults.FaultTransport`, which
breaks it from ``--at`` for ``--for``: ``outage`` (connection refused, or ``--status 503``),
``slow`` (added lognormal latency), ``throttle`` (429 with Retry-After), ``flaky`` (a share
of 5xx) or ``brownout`` (everything slow, a share failing). Everything else is the real
client and router on the production config, with routing state kept in memory so a game
day never trips the fleet's shared breakers.

What it reports: what users saw during the fault (errors, p50/p95/p99), how long until
traffic moved off the target, when its breaker opened, how long after the fault ended
traffic came back, the cost per request during the fault against the no-fault parts, the
breaker and canary events, and pass/fail: exit 0 when every check passes, 3 when one
fails, 2 on a usage or config error.

A ``[gamedays.NAME]`` table::

    [gamedays.primary-down]
    feature = "support.answer"
    scenario = "outage"            # outage | slow | throttle | flaky | brownout
    target = "acme"                # a provider, or provider:model (its provider is faulted)
    at = "20s"
    for = "30s"
    rps = 50
    duration = "90s"
    # optional: burst, prompts, output_tokens, stream, seed, concurrency_limit, users
    fault = { status = 503 }       # latency_ms, latency_p99_ms, rate, status, retry_after_s
    expect = { max_error_rate = 0.01, max_failover_s = 2, max_recovery_s = 30 }
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portal.config import PortalConfig, load_config
from portal.errors import ConfigError
from portal.metering.ledger import SOURCE_TAG
from portal.metering.stats import percentile
from portal.stress.arrivals import (
    Burst,
    LengthDist,
    PromptSource,
    UsageError,
    parse_duration,
)
from portal.stress.display import ProgressDisplay
from portal.stress.engine import LoadSpec, RunResult, Sample, run_load
from portal.stress.faults import Fault, FaultTransport
from portal.stress.loadtest import (
    DEFAULT_PROMPTS,
    make_client,
    spec_params,
)
from portal.stress.loadtest import (
    isolated as _isolated,
)
from portal.stress.results import (
    distribution,
    fmt_ms,
    fmt_usd,
    priced_cost,
    render_rows,
    sla_verdict,
    summarize,
)

__all__ = ["GamedayScenario", "run_gameday"]

GAMEDAY_SCHEMA = "portal.gameday/1"
SUITE_SCHEMA = "portal.gameday-suite/1"
Kind = Literal["outage", "slow", "throttle", "flaky", "brownout"]
KINDS: tuple[str, ...] = ("outage", "slow", "throttle", "flaky", "brownout")

#: what each scenario injects unless ``fault`` says otherwise
FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "outage": {"status": 0},
    "slow": {"latency_ms": 1500.0, "latency_p99_ms": 4000.0},
    "throttle": {"retry_after_s": 1.0},
    "flaky": {"rate": 0.3, "status": 500},
    "brownout": {"latency_ms": 800.0, "latency_p99_ms": 2000.0, "rate": 0.2, "status": 503},
}
DEFAULT_MAX_ERROR_RATE = 0.01


#: ``prompts = "file:PATH"``: real prompts from a JSONL file instead of a length distribution
PROMPTS_FILE = "file:"

#: how the reference names a duration field (a string like "90s" or a number of seconds)
_DURATION = "duration (`90s`, `2m`, `500ms`) or seconds"


class FaultParams(BaseModel):
    """What the fault injects; each scenario has defaults (`FAULT_DEFAULTS`)."""

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(
        None,
        ge=0,
        le=599,
        description="HTTP status of the failed requests; 0 refuses the connection instead.",
        examples=[503],
    )
    latency_ms: float | None = Field(
        None, ge=0, description="Added latency (median), in ms.", examples=[1500]
    )
    latency_p99_ms: float | None = Field(
        None, ge=0, description="99th percentile of the added latency, in ms.", examples=[4000]
    )
    rate: float | None = Field(
        None, ge=0, le=1, description="Share of requests that fail.", examples=[0.3]
    )
    retry_after_s: float | None = Field(
        None, ge=0, description="Retry-After of throttled replies, in seconds.", examples=[1]
    )


class Expectations(BaseModel):
    """Pass/fail terms beyond the feature's SLA (which is checked over the fault window)."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Highest share of calls users may see fail during the fault (default 0.01).",
        examples=[0.01],
    )
    max_failover_s: float | None = Field(
        None,
        ge=0,
        description="Longest time from the fault's start until traffic moved off the target.",
        examples=[2],
    )
    max_recovery_s: float | None = Field(
        None,
        ge=0,
        description="Longest time from the fault's end until traffic came back to the target.",
        examples=[30],
    )


class GamedayScenario(BaseModel):
    """One ``[gamedays.NAME]`` table (or the command line's equivalent): load on a feature
    while one provider breaks from ``at`` for ``for``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field("adhoc", description="The table's name (set from `[gamedays.NAME]`).")
    feature: str = Field(description="Feature under load.", examples=["support.answer"])
    scenario: Kind = Field(
        description="`outage`, `slow`, `throttle` (429), `flaky` (a share of 5xx) or "
        "`brownout` (all slow, a share failing).",
        examples=["outage"],
    )
    target: str = Field(
        description="Provider to break (or a `provider:model`, whose provider is broken).",
        examples=["together"],
    )
    at: float = Field(
        20.0,
        ge=0,
        description="When the fault starts (`20s`, `1m`).",
        json_schema_extra={"type_name": _DURATION},
        examples=["20s"],
    )
    for_: float = Field(
        30.0,
        gt=0,
        alias="for",
        description="How long the fault lasts.",
        json_schema_extra={"type_name": _DURATION},
        examples=["30s"],
    )
    rps: float = Field(50.0, gt=0, description="Requests per second offered.", examples=[50])
    duration: float = Field(
        90.0,
        gt=0,
        description="Length of the load, fault included.",
        json_schema_extra={"type_name": _DURATION},
        examples=["90s"],
    )
    burst: str | None = Field(
        None,
        description="Bursts `FACTORx:LENGTH/EVERY`, e.g. five times the rate for 10 s a minute.",
        examples=["5x:10s/60s"],
    )
    prompts: str | None = Field(
        None,
        description="Prompt lengths (tokens): `lognormal:mean=800,sigma=1.0`, `fixed:200`, "
        "`uniform:min=50,max=400`, `pareto:min=100,alpha=1.5`; or real prompts from a JSONL "
        'file, `file:PATH` (one `{"messages": [...]}` or `{"prompt": "..."}` per line).',
        examples=["lognormal:mean=800,sigma=1.0"],
    )
    output_tokens: str | None = Field(
        None,
        description="Output lengths (`max_tokens`), same forms as `prompts`.",
        examples=["fixed:200"],
    )
    stream: bool = Field(False, description="Stream every call.", examples=[True])
    seed: int | None = Field(
        None, description="Fixes arrivals, prompts and user keys.", examples=[7]
    )
    concurrency_limit: int | None = Field(
        None, ge=1, description="Most calls in flight at once (default: no limit).", examples=[200]
    )
    users: int = Field(
        10_000,
        ge=1,
        description="Distinct user keys the calls are spread over (canary stickiness).",
        examples=[500],
    )
    drain: float = Field(
        30.0,
        ge=0,
        description="How long calls still in flight may finish.",
        json_schema_extra={"type_name": _DURATION},
        examples=["30s"],
    )
    fault: FaultParams = Field(default_factory=FaultParams, description="What the fault injects.")
    expect: Expectations = Field(default_factory=Expectations, description="Pass/fail terms.")

    @field_validator("burst")
    @classmethod
    def _burst(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                Burst.parse(v)
            except UsageError as exc:
                raise ValueError(str(exc).replace("--burst ", "", 1)) from None
        return v

    @field_validator("prompts", "output_tokens")
    @classmethod
    def _lengths(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(PROMPTS_FILE):
            try:
                LengthDist.parse(v, "")
            except UsageError as exc:
                raise ValueError(str(exc).strip()) from None
        return v

    @field_validator("at", "for_", "duration", "drain", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except UsageError:
                raise ValueError(f"{v!r} is not a duration; use e.g. 90s, 2m or 500ms") from None
        return v

    def faults(self) -> list[Fault]:
        """The fault schedule for the target's transport."""
        params = dict(FAULT_DEFAULTS[self.scenario])
        given = self.fault.model_dump(exclude_none=True)
        if "latency_ms" in given and "latency_p99_ms" not in given:
            params.pop("latency_p99_ms", None)  # latency_ms alone: a fixed added latency
        params.update(given)
        window: dict[str, Any] = {"start_s": self.at, "end_s": self.at + self.for_}
        kind = self.scenario
        if kind == "brownout":
            # every request slow; `rate` of them also fail (the first matching fault wins)
            slow = {k: params[k] for k in ("latency_ms", "latency_p99_ms") if k in params}
            return [Fault("brownout", **window, **params), Fault("slow", **window, **slow)]
        return [Fault(kind, **window, **params)]

    def _prompts(self, out: LengthDist | None) -> PromptSource:
        if self.prompts and self.prompts.startswith(PROMPTS_FILE):
            return PromptSource.from_file(self.prompts.removeprefix(PROMPTS_FILE), out)
        return PromptSource(LengthDist.parse(self.prompts or DEFAULT_PROMPTS), None, out)

    def load_spec(self) -> LoadSpec:
        out = LengthDist.parse(self.output_tokens, "output_tokens") if self.output_tokens else None
        return LoadSpec(
            feature=self.feature,
            rps=self.rps,
            duration_s=self.duration,
            prompts=self._prompts(out),
            burst=Burst.parse(self.burst) if self.burst else None,
            concurrency_limit=self.concurrency_limit,
            stream=self.stream,
            seed=self.seed,
            users=self.users,
            drain_s=self.drain,
        )


def scenarios_from_config(cfg: PortalConfig) -> list[GamedayScenario]:
    """Every ``[gamedays.NAME]`` table, validated; all problems reported at once."""
    out: list[GamedayScenario] = []
    problems: list[str] = []
    for name, table in cfg.gamedays.items():
        try:
            out.append(GamedayScenario.model_validate({"name": name, **table}))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where = ".".join(str(p) for p in err["loc"]).replace("for_", "for")
                problems.append(f'gamedays."{name}".{where}: {err["msg"]}')
    if problems:
        raise ConfigError("\n".join(problems), problems)
    return out


# ------------------------------------------------------------------------------- checking


def check_scenario(sc: GamedayScenario, cfg: PortalConfig) -> str:
    """Validate against the config; return the provider whose transport gets the fault."""
    where = f'gamedays."{sc.name}"' if sc.name != "adhoc" else "--target"
    feat = cfg.features.get(sc.feature)
    if feat is None:
        known = ", ".join(sorted(cfg.features)) or "none configured"
        raise UsageError(f"{sc.name}: feature {sc.feature!r} is not in the config ({known})")
    provider = sc.target.split(":", 1)[0]
    if provider not in cfg.providers:
        raise UsageError(
            f"{where}: provider {provider!r} is not in the config "
            f"(providers: {', '.join(sorted(cfg.providers))})"
        )
    routed = [feat.primary, *feat.fallbacks] + ([feat.canary.target] if feat.canary else [])
    providers = {cfg.resolve_target(m)[0] for m in routed}
    if provider not in providers:
        raise UsageError(
            f"{where}: {provider!r} serves no target of feature {sc.feature!r} "
            f"(its providers: {', '.join(sorted(providers))}); fault one of those"
        )
    if sc.at >= sc.duration:
        raise UsageError(
            f"{where}: the fault starts at {sc.at:g}s, after the run ends "
            f"({sc.duration:g}s); lower --at or raise --duration"
        )
    sc.load_spec()  # distributions and burst parse, or raise UsageError
    return provider


# ------------------------------------------------------------------------------- observing


def _breaker_status(client: Any, target: str) -> str | None:
    """The router's breaker state for a target."""
    return str(client.breaker_state(target))


def _canary_percent(client: Any, feature: str) -> float | None:
    """The feature's live canary percentage, None when it has no canary."""
    try:
        return float(client.canary_status(feature)["percent"])
    except (ConfigError, KeyError):
        return None


@dataclass(slots=True)
class Observer:
    """Polls breakers and the canary step during the run and keeps every transition."""

    client: Any
    feature: str
    targets: list[str]
    breaker: dict[str, str | None] = field(default_factory=dict)
    canary: float | None = None
    breaker_events: list[dict[str, Any]] = field(default_factory=list)
    canary_events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for t in self.targets:
            self.breaker[t] = _breaker_status(self.client, t)
        self.canary = _canary_percent(self.client, self.feature)

    def tick(self, t_s: float) -> None:
        for target in self.targets:
            now = _breaker_status(self.client, target)
            if now != self.breaker[target]:
                self.breaker_events.append(
                    {
                        "t_s": round(t_s, 3),
                        "target": target,
                        "from": self.breaker[target],
                        "to": now,
                    }
                )
                self.breaker[target] = now
        pct = _canary_percent(self.client, self.feature)
        if pct != self.canary:
            self.canary_events.append({"t_s": round(t_s, 3), "from": self.canary, "to": pct})
            self.canary = pct


# ------------------------------------------------------------------------------- analysis


def _window_size(rps: float) -> int:
    """Requests per rolling window when judging 'moved' and 'recovered': about half a
    second of traffic, never fewer than 10 (noise) nor more than 50 (resolution)."""
    return int(min(50, max(10, round(rps * 0.5))))


def _phase(samples: Sequence[Sample], faulted: set[str]) -> dict[str, Any]:
    n = len(samples)
    ok = [s for s in samples if s.ok]
    lat = distribution(s.latency_ms for s in samples)
    cost, _ = priced_cost(ok)
    return {
        "requests": n,
        "ok": len(ok),
        "errors": n - len(ok),
        "error_rate": (n - len(ok)) / n if n else 0.0,
        "latency_ms": lat,
        "failovers": sum(1 for s in ok if s.failover),
        "served_by_faulted_share": (sum(1 for s in ok if s.target in faulted) / len(ok))
        if ok
        else None,
        "cost_per_request_usd": cost / len(ok) if ok and cost is not None else None,
        "attempts_to_faulted": sum(1 for s in samples for t in s.attempt_targets if t in faulted),
    }


def analyze(
    result: RunResult,
    sc: GamedayScenario,
    faulted: set[str],
    observer: Observer,
    sla: Any,
) -> dict[str, Any]:
    samples = sorted(result.samples, key=lambda s: s.intended_s)
    start, end = sc.at, sc.at + sc.for_
    before = [s for s in samples if s.intended_s < start]
    during = [s for s in samples if start <= s.intended_s < end]
    after = [s for s in samples if s.intended_s >= end]
    phases = {
        name: _phase(group, faulted)
        for name, group in (("before", before), ("during", during), ("after", after))
    }
    w = _window_size(sc.rps)
    pre = phases["before"]
    pre_share = pre["served_by_faulted_share"]
    carried = pre_share is not None and pre_share >= 0.1

    def elsewhere(group: Sequence[Sample]) -> bool:
        ok = [s for s in group if s.ok]
        return bool(ok) and sum(1 for s in ok if s.target not in faulted) >= 0.9 * len(ok)

    moved_s: float | None = None
    if carried:
        for i in range(len(during)):
            group = during[i : i + w]
            if len(group) < min(w, len(during)):
                break
            if elsewhere(group):
                moved_s = group[0].intended_s - start
                break

    pre_err = pre["error_rate"]
    pre_p50 = pre["latency_ms"]["p50"]
    err_ok = max(2 * pre_err, pre_err + 0.02)

    def recovered(group: Sequence[Sample]) -> bool:
        errs = sum(1 for s in group if not s.ok) / len(group)
        if errs > err_ok:
            return False
        lat = [s.latency_ms for s in group if s.latency_ms is not None]
        p50 = percentile(lat, 50)
        if pre_p50 is not None and p50 is not None and p50 > 1.5 * pre_p50 + 20:
            return False
        if carried:
            ok = [s for s in group if s.ok]
            share = sum(1 for s in ok if s.target in faulted) / max(len(ok), 1)
            assert pre_share is not None
            if share < 0.8 * pre_share:
                return False
        return True

    recovery_s: float | None = None
    for i in range(len(after)):
        group = after[i : i + w]
        if len(group) < w:
            break
        if recovered(group):
            recovery_s = max(0.0, group[0].intended_s - end)
            break

    opened = [
        e
        for e in observer.breaker_events
        if e["target"] in faulted and e["to"] == "open" and e["t_s"] >= start
    ]
    breaker_opened_s = opened[0]["t_s"] - start if opened else None
    no_fault = [s for s in before + after if s.ok]
    known, _ = priced_cost(no_fault)
    base = known / len(no_fault) if no_fault and known is not None else None
    fault_cost = phases["during"]["cost_per_request_usd"]
    cost = {
        "no_fault_per_request_usd": base,
        "fault_per_request_usd": fault_cost,
        "delta_per_request_usd": None if base is None or fault_cost is None else fault_cost - base,
        "delta_pct": None if not base or fault_cost is None else 100.0 * (fault_cost - base) / base,
    }

    max_err = sc.expect.max_error_rate
    if max_err is None:
        max_err = (
            1.0 - sla.availability
            if sla is not None and sla.availability
            else DEFAULT_MAX_ERROR_RATE
        )
    verdict = sla_verdict(
        sla, phases["during"]["latency_ms"], phases["during"]["error_rate"], max_err
    )
    checks = verdict["checks"]
    if sc.expect.max_failover_s is not None:
        checks.append(
            {
                "metric": "failover_s",
                "limit": sc.expect.max_failover_s,
                "measured": moved_s,
                "ok": moved_s is not None and moved_s <= sc.expect.max_failover_s,
            }
        )
    if sc.expect.max_recovery_s is not None:
        checks.append(
            {
                "metric": "recovery_s",
                "limit": sc.expect.max_recovery_s,
                "measured": recovery_s,
                "ok": recovery_s is not None and recovery_s <= sc.expect.max_recovery_s,
            }
        )
    return {
        "phases": phases,
        "window_requests": w,
        "failover_s": moved_s,
        "breaker_opened_s": breaker_opened_s,
        "recovery_s": recovery_s,
        "cost": cost,
        "breaker_events": observer.breaker_events,
        "canary_events": observer.canary_events,
        "checks": checks,
        "passed": all(c["ok"] for c in checks),
    }


# ------------------------------------------------------------------------------- running


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


# ------------------------------------------------------------------------------- output


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def render(doc: dict[str, Any]) -> list[str]:
    sc = doc["scenario"]
    lines = [
        f"game day {doc['name']}: {sc['kind']} on {sc['provider']} "
        f"({', '.join(sc['faulted_targets'])}) from {sc['at_s']:g}s for {sc['for_s']:g}s, "
        f"feature {doc['feature']}, {doc['load']['requests']['sent']} requests, "
        f"{sc['injected']} faults injected",
        "",
    ]
    rows = [["phase", "requests", "errors", "p50", "p95", "p99", "on target", "$/request"]]
    for name in ("before", "during", "after"):
        p = doc["phases"][name]
        share = p["served_by_faulted_share"]
        rows.append(
            [
                name,
                str(p["requests"]),
                f"{p['errors']} ({100 * p['error_rate']:.1f}%)",
                fmt_ms(p["latency_ms"]["p50"]),
                fmt_ms(p["latency_ms"]["p95"]),
                fmt_ms(p["latency_ms"]["p99"]),
                "-" if share is None else f"{100 * share:.0f}%",
                fmt_usd(p["cost_per_request_usd"]),
            ]
        )
    lines += render_rows(rows)
    lines.append("")
    cost = doc["cost"]
    delta = "-" if cost["delta_pct"] is None else f"{cost['delta_pct']:+.1f}%"
    moved, opened, rec = doc["failover_s"], doc["breaker_opened_s"], doc["recovery_s"]
    lines.append(
        (
            "traffic stayed on the target"
            if moved is None
            else f"traffic moved off the target {_s(moved)} into the fault"
        )
        + (
            "; its breaker stayed closed"
            if opened is None
            else f"; its breaker opened {_s(opened)} into the fault"
        )
        + (
            "; not recovered by the end of the run"
            if rec is None
            else f"; recovered {_s(rec)} after the fault ended"
        )
    )
    lines.append(f"cost per request during the fault vs without: {delta}")
    for e in doc["breaker_events"]:
        lines.append(f"  breaker {e['target']}: {e['from']} -> {e['to']} at {e['t_s']:.2f}s")
    for e in doc["canary_events"]:
        lines.append(f"  canary: {e['from']}% -> {e['to']}% at {e['t_s']:.2f}s")
    lines.append(f"verdict: {'PASS' if doc['passed'] else 'FAIL'}")
    for c in doc["checks"]:
        m, lim = c["measured"], c["limit"]
        if c["metric"].endswith("_ms"):
            shown = f"{fmt_ms(m)} vs {fmt_ms(lim)}"
        elif c["metric"].endswith("_s"):
            shown = f"{_s(m)} vs {_s(lim)}"
        else:
            shown = "-" if m is None else f"{m:.4f} vs {lim:.4f}"
        lines.append(
            f"  {c['metric']} (during the fault): {shown}  {'ok' if c['ok'] else 'FAILED'}"
        )
    return lines


def render_suite(docs: Sequence[dict[str, Any]]) -> list[str]:
    rows = [
        [
            "scenario",
            "kind",
            "target",
            "errors during",
            "p95 during",
            "p99 during",
            "moved",
            "recovered",
            "cost delta",
            "result",
        ]
    ]
    for d in docs:
        during = d["phases"]["during"]
        delta = d["cost"]["delta_pct"]
        rows.append(
            [
                d["name"],
                d["scenario"]["kind"],
                d["scenario"]["target"],
                f"{100 * during['error_rate']:.1f}%",
                fmt_ms(during["latency_ms"]["p95"]),
                fmt_ms(during["latency_ms"]["p99"]),
                _s(d["failover_s"]),
                _s(d["recovery_s"]),
                "-" if delta is None else f"{delta:+.1f}%",
                "PASS" if d["passed"] else "FAIL",
            ]
        )
    return render_rows(rows)
