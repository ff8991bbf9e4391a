"""A game day as data: one ``[gamedays.NAME]`` table (or the command line's equivalent),
validated on its own and against the config it runs on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portal.config import PortalConfig
from portal.errors import ConfigError
from portal.stress.arrivals import (
    Burst,
    LengthDist,
    PromptSource,
    UsageError,
    parse_duration,
)
from portal.stress.engine import LoadSpec
from portal.stress.faults import Fault
from portal.stress.gameday.scenarios import Kind, fault_schedule
from portal.stress.loadtest import DEFAULT_PROMPTS

__all__ = [
    "DEFAULT_MAX_ERROR_RATE",
    "Expectations",
    "FaultParams",
    "GamedayScenario",
    "PROMPTS_FILE",
    "check_scenario",
    "scenarios_from_config",
]

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
    interval_ms: float | None = Field(
        None,
        gt=0,
        description="`trickle`: the pause before each byte of a reply, in ms.",
        examples=[100],
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
        description="`outage`, `slow`, `throttle` (429), `flaky` (a share of 5xx), "
        "`brownout` (all slow, a share failing), `hang` (accepted, never answered), `trickle` "
        "(replies one byte at a time) or `slow_first_token` (a lognormal wait before the first "
        "token).",
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
    stable_prefix_tokens: int = Field(
        0,
        ge=0,
        description="A cache-marked system prompt of this many tokens, the same from call to "
        "call, before every prompt (a prompt-caching workload; 0: none).",
        examples=[10000],
    )
    stable_prefixes: int = Field(
        1,
        ge=1,
        description="With `stable_prefix_tokens`: how many distinct stable prefixes calls draw "
        "from.",
        examples=[20],
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
        given = self.fault.model_dump(exclude_none=True)
        return fault_schedule(self.scenario, given, self.at, self.at + self.for_)

    def _prompts(self, out: LengthDist | None) -> PromptSource:
        if self.prompts and self.prompts.startswith(PROMPTS_FILE):
            return PromptSource.from_file(
                self.prompts.removeprefix(PROMPTS_FILE),
                out,
                self.stable_prefix_tokens,
                self.stable_prefixes,
            )
        return PromptSource(
            LengthDist.parse(self.prompts or DEFAULT_PROMPTS),
            None,
            out,
            self.stable_prefix_tokens,
            self.stable_prefixes,
        )

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
