"""portal.toml (or ``[tool.portal]`` in pyproject.toml) as pydantic models.

Every problem is reported at once, each as ``file: table.key: what is wrong, what is expected``,
e.g. ``portal.toml: features."support.answer".canary.percent: must be between 0 and 100, got 120``.
Secrets come from the environment through ``${VAR}`` (or ``${VAR:-default}``) and are kept in
`Secret` objects that never print.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from portal.errors import ConfigError
from portal.providers.settings import ProviderSettings
from portal.secret import Secret

__all__ = [
    "BudgetConfig",
    "CanaryConfig",
    "FeatureConfig",
    "FeedbackGuardConfig",
    "GuardConfig",
    "PortalConfig",
    "ProviderConfig",
    "load_config",
    "parse_model_id",
]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)


class RetryConfig(_Model):
    """Retries on the same target before failing over to the next one. Retried: 429, 503/529,
    5xx, timeouts, connection errors, malformed replies and streams cut before any text."""

    attempts: int = Field(
        2, ge=1, le=10, description="Attempts per target; 1 means no retry.", examples=[3]
    )
    base_wait_s: float = Field(
        0.2,
        ge=0,
        description="First backoff window in seconds; it doubles per attempt (full jitter).",
        examples=[0.2],
    )
    max_wait_s: float = Field(8.0, ge=0, description="Backoff ceiling in seconds.", examples=[8])
    retry_after_cap_s: float = Field(
        20.0,
        ge=0,
        description="Longest vendor Retry-After honoured, in seconds; a longer one fails over "
        "at once.",
        examples=[20],
    )
    budget_ratio: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Retries per target may be at most this share of its calls over the last "
        "10 s (plus 3 per window), so retries cannot multiply an outage.",
        examples=[0.2],
    )
    on_content_filter: Literal["raise", "failover"] = Field(
        "raise",
        description="When a vendor's content filter stops the reply: raise `ContentFiltered`, "
        "or try the next target.",
        examples=["failover"],
    )


class SLAConfig(_Model):
    """What the feature promises its users, measured on call rows of the ledger per hour (or
    day): `portal report` lists every breach; `strategy = "cheapest"` prefers targets that
    meet `p95_ms`."""

    p50_ms: float | None = Field(
        None, gt=0, description="Median latency promised, in ms.", examples=[800]
    )
    p95_ms: float | None = Field(
        None, gt=0, description="95th percentile latency promised, in ms.", examples=[2000]
    )
    p99_ms: float | None = Field(
        None, gt=0, description="99th percentile latency promised, in ms.", examples=[5000]
    )
    availability: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Share of calls that must succeed (cancelled calls left out).",
        examples=[0.995],
    )


class ProviderSLAConfig(SLAConfig):
    """What the vendor contracted, measured on its attempt rows (only vendor-side failures
    count against availability); missing a term earns ``credit_percent`` of the window's
    spend with it."""

    credit_percent: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Service credit owed per missed window, in percent of that window's spend "
        "with this provider.",
        examples=[10],
    )


class BudgetConfig(_Model):
    """A feature's spending limit over a UTC window (day, ISO week or month), shared across
    replicas through the routing state; a blocking budget reserves each call's worst case
    before sending. ``usd_per_day`` is short for ``usd = ..., window = "day"``."""

    usd: float | None = Field(
        None,
        gt=0,
        description="Spend allowed per window, in USD (or give `usd_per_day`).",
        examples=[50.0],
    )
    window: Literal["day", "week", "month"] = Field(
        "day",
        description="The UTC window `usd` applies to: a day from 00:00, an ISO week from "
        "Monday 00:00, a month from the 1st.",
        examples=["day"],
    )
    usd_per_day: float | None = Field(
        None,
        gt=0,
        description='Short for `usd = ..., window = "day"`.',
        examples=[50.0],
    )
    on_exceed: Literal["block", "fallback-cheapest", "warn"] = Field(
        "block",
        description="Over the limit: `block` reserves each call's worst case and raises "
        "`BudgetExceeded` before sending when it does not fit; `fallback-cheapest` sends to "
        "the cheapest target first; `warn` logs once per window.",
        examples=["fallback-cheapest"],
    )
    on_unknown_price: Literal["block", "warn", "allow"] = Field(
        "block",
        description="Under a `block` budget, a target without a price: `block` leaves it out "
        "(and refuses the call when no priced target is left); `warn` and `allow` send to "
        "it (with or without a warning), its cost recorded as unknown.",
        examples=["warn"],
    )
    per_tenant: bool = Field(
        False,
        description="Give each `tenant=` of a call its own limit.",
        examples=[True],
    )

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetConfig:
        if self.usd_per_day is not None:
            if self.usd is not None and self.usd != self.usd_per_day:
                raise ValueError(
                    "give either usd (with window) or usd_per_day, not both, e.g. "
                    'budget = { usd = 50, window = "day" }'
                )
            if "window" in self.model_fields_set and self.window != "day":
                raise ValueError(
                    f'usd_per_day is a daily limit but window = "{self.window}"; write '
                    f'usd = {self.usd_per_day:g}, window = "{self.window}"'
                )
            self.usd = self.usd_per_day
        if self.usd is None:
            raise ValueError(
                'needs a limit: usd = 50 with window = "day", "week" or "month" '
                "(or usd_per_day = 50)"
            )
        return self

    @property
    def limit_usd(self) -> float:
        assert self.usd is not None  # set by the validator
        return self.usd

    @property
    def limit_key(self) -> str:
        """The key that sets the limit, as the user wrote it (for error messages)."""
        return "usd_per_day" if self.usd_per_day is not None else "usd"


class HedgeConfig(_Model):
    """Tail latency (AsyncClient): start the same request on the next target after
    ``after_ms``, or after the primary's rolling p95; the first answer wins."""

    after_ms: float | None = Field(
        None,
        gt=0,
        description="Start the next target when no answer came after this many ms.",
        examples=[1500],
    )
    after: Literal["p95"] | None = Field(
        None,
        description='`"p95"`: hedge after the primary\'s rolling p95 (once it has 20 samples; '
        "`after_ms` until then).",
        examples=["p95"],
    )
    max_extra: int = Field(
        1,
        ge=1,
        le=3,
        description="Extra targets a hedge may start, one more every `after_ms`.",
        examples=[1],
    )
    streams: bool = Field(
        False,
        description="Hedge streams too (AsyncClient): a stream with no text after `after_ms` "
        "starts the next target; the first to send text is served, the others are cancelled "
        "before anything reaches the caller.",
        examples=[True],
    )

    @model_validator(mode="after")
    def _one_trigger(self) -> HedgeConfig:
        if self.after_ms is None and self.after is None:
            raise ValueError('give after_ms (e.g. 1500) or after = "p95"')
        return self


class EjectConfig(_Model):
    """Slow-vendor ejection: shift the feature's traffic away from a target that is slow
    (calls over `sla.p95_ms`) or burning its error budget in both a short and a long window,
    fleet-wide through the routing state; bring it back through a small exploration share
    once its short window recovers."""

    slow_rate: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Eject when more than this share of a target's calls run over the "
        "feature's `sla.p95_ms` in both windows (the SLA itself allows 0.05).",
        examples=[0.25],
    )
    burn_rate: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="Eject when a target's failures burn the error budget (1 - "
        "`sla.availability`, or 0.01) this many times faster than allowed, in both windows.",
        examples=[10],
    )
    short_window_s: float = Field(
        5.0, gt=0, le=3600, description="The short window, in seconds.", examples=[5]
    )
    long_window_s: float = Field(
        30.0, gt=0, le=3600, description="The long window, in seconds.", examples=[30]
    )
    min_calls: int = Field(
        10,
        ge=1,
        description="Calls a target needs in the short window before it is judged.",
        examples=[10],
    )
    explore: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Share of calls that still try an ejected target first, so its recovery "
        "is seen.",
        examples=[0.05],
    )

    @model_validator(mode="after")
    def _windows(self) -> EjectConfig:
        if self.short_window_s >= self.long_window_s:
            raise ValueError(
                f"short_window_s = {self.short_window_s:g} must be shorter than "
                f"long_window_s = {self.long_window_s:g}"
            )
        return self


class AllowedConfig(_Model):
    """Data-path policy: targets outside it are never reached, failover and hedges
    included; `portal config check` lists any route that leaves it."""

    regions: list[str] | None = Field(
        None,
        description="Provider `region`s this feature's data may go to.",
        examples=[["us", "eu"]],
    )
    tags: list[str] | None = Field(
        None,
        description="Provider `tags` every target must carry (all of them).",
        examples=[["soc2"]],
    )


#: what ``[features.X.canary.guard] metrics`` may list (feedback metrics go in ``feedback``)
GUARD_METRICS = ("errors", "p95", "p99", "cost")
_FEEDBACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class FeedbackGuardConfig(_Model):
    """A quality score the guard compares (`client.feedback(call_id, metric, value)`)."""

    min_delta: float = Field(
        0.05,
        ge=0,
        allow_inf_nan=False,
        description="Minimum practical difference: the smallest drop of the canary's mean "
        "score (in the score's own units) that matters.",
        examples=[0.05],
    )
    higher_is_better: bool = Field(
        True, description="false for scores where lower is better.", examples=[True]
    )


class GuardConfig(_Model):
    """The canary guard: a sequential test per metric compares the canary arm with the
    baseline and says promote, hold or roll back (docs/routing.md, "Guard")."""

    enabled: bool = Field(
        True,
        description="false: the guard still counts and shows its verdict but never rolls back.",
        examples=[True],
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["errors", "p95", "cost"],
        description="Metrics judged: `errors`, `p95`, `p99`, `cost` (feedback metrics go in "
        "`feedback`). A p95/p99 is also held to the feature's `sla`.",
        examples=[["errors", "p95", "p99", "cost"]],
    )
    false_alarm_rate: float = Field(
        0.01,
        gt=0,
        le=0.2,
        allow_inf_nan=False,
        description="Chance that a canary as good as its baseline is ever rolled back, "
        "however long it runs (split over the metrics).",
        examples=[0.01],
    )
    min_calls: int = Field(
        50,
        ge=1,
        description="Calls needed on each arm (in the current ramp step) before judging.",
        examples=[50],
    )
    max_error_rate_delta: float = Field(
        0.01,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Minimum practical difference of the error rate (absolute): a canary "
        "worse by less is never rolled back for errors.",
        examples=[0.01],
    )
    max_p95_ratio: float = Field(
        1.1,
        ge=1,
        allow_inf_nan=False,
        description="Minimum practical difference of p95 latency, as a ratio to the baseline's.",
        examples=[1.1],
    )
    max_p99_ratio: float = Field(
        1.2,
        ge=1,
        allow_inf_nan=False,
        description="Minimum practical difference of p99 latency, as a ratio to the baseline's.",
        examples=[1.2],
    )
    min_latency_delta_ms: float = Field(
        50.0,
        ge=0,
        allow_inf_nan=False,
        description="Minimum practical difference of p95 and p99 latency, in ms, besides the "
        "ratios: a canary is slower only when it is both (0.9 ms against 0.3 ms is three "
        "times slower and nothing a user notices).",
        examples=[50],
    )
    max_cost_ratio: float = Field(
        1.1,
        ge=1,
        allow_inf_nan=False,
        description="Minimum practical difference of cost per call, as a ratio.",
        examples=[1.1],
    )
    feedback: dict[str, FeedbackGuardConfig] = Field(
        default_factory=dict,
        description="Feedback metrics (`client.feedback`) judged, by name.",
        examples=[{"thumbs": {"min_delta": 0.05}}],
    )

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in GUARD_METRICS:
                close = difflib.get_close_matches(name, GUARD_METRICS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown metric {name!r}{hint} (known: {', '.join(GUARD_METRICS)}; "
                    "feedback metrics go in guard.feedback)"
                )
        if len(set(v)) != len(v):
            raise ValueError(f"a metric is listed twice: {v}")
        return v

    @field_validator("feedback")
    @classmethod
    def _feedback(cls, v: dict[str, FeedbackGuardConfig]) -> dict[str, FeedbackGuardConfig]:
        for name in v:
            if not _FEEDBACK_NAME.match(name):
                raise ValueError(
                    f"feedback metric {name!r}: use 1-64 letters, digits, '_', '.' or '-'"
                )
        return v


class CanaryConfig(_Model):
    """A new model or prompt on a share of traffic, sticky per `key=`, ramped by
    `portal canary promote` (or `ramp_every`) and rolled back by its guard."""

    target: str = Field(
        description="The canary `provider:model`; its failover is the baseline chain.",
        examples=["anthropic:claude-sonnet-4-5"],
    )
    percent: float = Field(5.0, description="Starting share of traffic, 0 to 100.", examples=[5])
    shadow: float = Field(
        0.0,
        description="Share of the baseline's calls (0 to 100) also sent, as a copy, to the "
        "canary target without serving its answer: metered under arm `shadow` and judged by "
        "the guard like a live arm. With `percent = 0`, the candidate sees no live traffic.",
        examples=[5],
    )
    ramp: list[float] = Field(
        default_factory=list,
        description="Increasing steps (percent) for `portal canary promote` and `ramp_every`.",
        examples=[[5, 25, 50, 100]],
    )
    ramp_every: str | None = Field(
        None,
        description="Promote automatically after this long on a step (`30m`, `1h`, `1d`) "
        "while the guard says promote.",
        examples=["1h"],
    )
    guard: GuardConfig = Field(
        default_factory=GuardConfig, description="The guard: metrics, differences, rollback."
    )

    @field_validator("percent", "shadow")
    @classmethod
    def _percent(cls, v: float) -> float:
        if not 0 <= v <= 100:
            raise ValueError(f"must be between 0 and 100, got {v:g}")
        return v

    @field_validator("ramp")
    @classmethod
    def _ramp(cls, v: list[float]) -> list[float]:
        for step in v:
            if not 0 <= step <= 100:
                raise ValueError(f"every step must be between 0 and 100, got {step:g}")
        if v != sorted(v):
            raise ValueError(f"steps must be increasing, got {v}")
        return v


class ThroughputConfig(_Model):
    """Committed throughput of a provider: beyond it, calls overflow to the next target."""

    requests_per_min: float | None = Field(
        None,
        gt=0,
        description="Committed requests per minute (token bucket, burst of one minute).",
        examples=[500],
    )
    tokens_per_min: float | None = Field(
        None,
        gt=0,
        description="Committed tokens per minute; each attempt reserves its estimated input "
        "plus `max_tokens`, corrected with the real usage.",
        examples=[200000],
    )


class BreakerConfig(_Model):
    """Circuit breaker per target of this provider: open, the target is skipped without a
    call; after the cooldown one probe is let through."""

    consecutive_failures: int = Field(
        5, ge=1, description="Open after this many failures in a row.", examples=[5]
    )
    failure_rate: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Or open when this share of the calls in `window_s` failed.",
        examples=[0.5],
    )
    window_s: float = Field(
        30.0, gt=0, description="Window of `failure_rate`, in seconds.", examples=[30]
    )
    min_calls: int = Field(
        20,
        ge=1,
        description="Calls needed in the window before `failure_rate` applies.",
        examples=[20],
    )
    cooldown_s: float = Field(
        15.0,
        gt=0,
        description="Seconds open before one half-open probe.",
        examples=[15],
    )


class ProviderConfig(_Model):
    """One vendor account or server. `NAME` is what model ids use (`NAME:model`); a known
    kind (`openai`, `anthropic`, ...) works without a table, with its key from the
    environment."""

    kind: str | None = Field(
        None,
        description="Wire API: `openai`, `openai-responses`, `azure-openai`, `anthropic`, "
        "`gemini`, `vertex`, `bedrock`, `mistral`, `cohere`, `openai-compatible`, `sim`. "
        "Defaults to the table name.",
        examples=["openai-compatible"],
    )
    base_url: str | None = Field(
        None,
        description="API root, for servers and proxies (the kind's public endpoint otherwise).",
        examples=["https://api.together.xyz/v1"],
    )
    api_key: Secret | None = Field(
        None,
        description="The key, always from the environment (`${VAR}`); defaults to the kind's "
        "usual variable (`OPENAI_API_KEY`, ...). Needed only to send calls; it never appears in "
        "a repr, log, error, ledger or report.",
        examples=["${TOGETHER_API_KEY}"],
    )
    region: str | None = Field(
        None,
        description="Where this provider processes data, for `allowed.regions`.",
        examples=["us"],
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Labels for `allowed.tags` (certifications, contracts).",
        examples=[["soc2"]],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers on every request (`${VAR}` works here too).",
        examples=[{"X-Team": "support"}],
    )
    timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest single attempt, in seconds (a stream: until its first text); a "
        "call's deadline can shorten it. However slowly the bytes arrive, the attempt ends "
        "by then.",
        examples=[30],
    )
    connect_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Longest wait for a new connection (TCP and TLS); default the smaller of "
        "5 s and `timeout_s`.",
        examples=[2],
    )
    first_byte_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Longest wait from sending a request to its status and headers (for a "
        "non-streamed reply that is most of the generation); default `timeout_s`.",
        examples=[20],
    )
    stall_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Longest wait for the next bytes of a reply once it started (a stream "
        "that stops sending); default `timeout_s`.",
        examples=[10],
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Kind-specific settings (tables below).",
        examples=[{"context_window": 131072}],
    )
    prices: dict[str, Any] = Field(
        default_factory=dict,
        description="Negotiated prices per model, USD per 1M tokens, over the price source "
        "(genai-prices): `input`, `output`, `cached_input`, `cache_write` (5-minute), "
        "`cache_write_1h`, `cache_storage` (USD per 1M tokens per hour an explicit prompt "
        "cache is kept, Gemini), and tier tables `priority`, `flex`, `batch` with the same "
        "fields. A partial table keeps the source's other prices.",
        examples=[
            {
                "meta-llama/Llama-3.3-70B-Instruct-Turbo": {"input": 0.88, "output": 0.88},
                "gpt-5": {"input": 1.0, "output": 8.0, "priority": {"input": 2.0, "output": 16.0}},
            }
        ],
    )
    sla: ProviderSLAConfig | None = Field(None, description="Contracted terms of this vendor.")
    throughput: ThroughputConfig | None = Field(
        None, description="Committed throughput; beyond it calls overflow."
    )
    breaker: BreakerConfig | None = Field(
        None, description="Circuit breaker thresholds (the defaults apply without this table)."
    )
    verify_tls: bool = Field(
        True,
        description="Check the server's TLS certificate; turn off only for local test "
        "servers (a warning is logged).",
        examples=[True],
    )

    @field_serializer("api_key")
    def _hide(self, v: Secret | None) -> str | None:
        return None if v is None else "**********"

    @field_validator("api_key", mode="before")
    @classmethod
    def _secret(cls, v: Any) -> Any:
        if isinstance(v, str):
            problem = key_problem(v)
            if problem:
                raise ValueError(problem)
            return Secret(v)
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            problem = header_problem(name, value)
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("options")
    @classmethod
    def _size_caps(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, unit in (
            ("max_reply_bytes", "bytes"),
            ("max_event_bytes", "bytes"),
            ("embed_batch_size", "inputs per embeddings request"),
        ):
            value = v.get(name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0
            ):
                raise ValueError(f"{name} must be a positive integer ({unit}), got {value!r}")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        if any(c.isspace() or not c.isprintable() or not c.isascii() for c in v):
            raise ValueError(
                "must be a URL without spaces, line breaks, control or non-ASCII characters "
                "(percent-encode them)"
            )
        return v


class FeatureConfig(_Model):
    """One thing the application does with a model (`client.chat(feature="NAME", ...)`):
    its route, contract, limits and canary."""

    primary: str = Field(
        description="First target, `provider:model` (split on the first colon).",
        examples=["openai:gpt-4.1-mini"],
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Failover targets, in order; put at least one on another vendor.",
        examples=[
            ["anthropic:claude-haiku-4-5", "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"]
        ],
    )
    contract: str | None = Field(
        None,
        description="Contract file (input, output, tools), relative to this config; checked "
        "by `portal contracts check` and when the client starts.",
        examples=["contracts/support_answer.toml"],
    )
    canary: CanaryConfig | None = Field(None, description="A canary target on a share of traffic.")
    sla: SLAConfig | None = Field(None, description="Latency and availability promised.")
    budget: BudgetConfig | None = Field(
        None, description="Spending limit over a day, a week or a month."
    )
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries per target.")
    hedge: HedgeConfig | None = Field(None, description="Hedged requests for tail latency.")
    eject: EjectConfig | None = Field(
        None, description="Shift traffic away from slow or failing targets, and back."
    )
    min_samples: int = Field(
        20,
        ge=1,
        description='`strategy = "cheapest"`: calls measured on a target before its p95 may '
        "demote it below the SLA; a demoted target keeps getting a small share to be "
        "measured again.",
        examples=[20],
    )
    allowed: AllowedConfig | None = Field(None, description="Data-path policy.")
    cache: Literal["off", "auto"] = Field(
        "off",
        description="Prompt caching: `auto` marks the system prompt and the tool list of "
        "every call as a stable prefix (`cache=True` on the last leading system message and "
        "the last tool), translated per vendor (Anthropic `cache_control`, Bedrock "
        "`cachePoint`, OpenAI and Azure OpenAI `prompt_cache_key`); markers the caller set "
        "are kept.",
        examples=["auto"],
    )
    cache_affinity: bool = Field(
        True,
        description="Calls whose marked prompt prefix (the part up to the last `cache=` "
        "marker) was served recently go to the target that served it, when that target is "
        "one the call could have gone to first (its weights, canary arm, data-path policy "
        "and strategy still decide the choice); fleet-wide through the routing state, for "
        "the vendor's cache lifetime. A call served elsewhere (failover, hedge) records "
        "`cache_miss_expected` in the ledger. Calls without markers are not affected.",
        examples=[False],
    )
    strategy: Literal[
        "ordered", "cheapest", "fastest", "lowest-latency", "cheapest-within-sla", "weighted"
    ] = Field(
        "ordered",
        description="Order of the chain: `ordered` (as written), `cheapest` (by price, targets "
        "meeting `sla.p95_ms` first; alias `cheapest-within-sla`), `fastest` (by measured "
        "latency; alias `lowest-latency`), `weighted` (first try drawn by `weights`).",
        examples=["weighted"],
    )
    weights: dict[str, float] | None = Field(
        None,
        description='With `strategy = "weighted"`: relative share of first tries per target of '
        "the chain, sticky per `key=`; targets left out stay fallbacks.",
        examples=[{"openai:gpt-4.1-mini": 3, "anthropic:claude-haiku-4-5": 1}],
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Deadline of the whole call in seconds: retries, failovers and hedges "
        "included (`timeout_s=` on a call overrides it).",
        examples=[10],
    )
    first_token_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Time to first token promised: an attempt with no text or tool call by "
        "then is abandoned and the call moves on to the next target (a `chat` is then "
        "streamed from the vendor, unseen, to watch for its first token). At most the "
        "feature's `timeout_s`.",
        examples=[2.5],
    )
    safety: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="Guards run in order on input and output: names (`length`, `pii`, "
        "`injection`, `denylist`) or tables with options (see the safety docs).",
        examples=[["pii", {"name": "injection", "mode": "block"}]],
    )
    rag: dict[str, Any] | None = Field(
        None,
        description="Retrieval: `retriever` (a name registered with "
        "`portal.rag.register_retriever`), `k`, `max_context_tokens`, `min_score`, "
        "`template` (must contain `{context}`).",
        examples=[{"retriever": "faq", "k": 4, "max_context_tokens": 1500}],
    )
    max_tokens: int | None = Field(
        None, gt=0, description="Default output token limit of a call.", examples=[512]
    )
    temperature: float | None = Field(
        None, ge=0, le=2, description="Default sampling temperature.", examples=[0.2]
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Labels written on every ledger row of this feature (a call's `tags=` "
        "replaces them); reports can group and filter by them.",
        examples=[{"team": "support"}],
    )

    @field_validator("strategy")
    @classmethod
    def _strategy_alias(cls, v: str) -> str:
        # the names are aliases of the shorter ones the router uses
        return {"lowest-latency": "fastest", "cheapest-within-sla": "cheapest"}.get(v, v)

    @model_validator(mode="after")
    def _first_token(self) -> FeatureConfig:
        ft, total = self.first_token_timeout_s, self.timeout_s
        if ft is not None and total is not None and ft > total:
            raise ValueError(
                f"first_token_timeout_s = {ft:g} is longer than the call's deadline "
                f"timeout_s = {total:g}; make it shorter (it is the time to the first token, "
                "within the deadline)"
            )
        return self

    @model_validator(mode="after")
    def _weights(self) -> FeatureConfig:
        chain = [self.primary, *self.fallbacks]
        if self.weights is None:
            if self.strategy == "weighted":
                raise ValueError(
                    'strategy = "weighted" needs weights, e.g. weights = '
                    f'{{ "{self.primary}" = 3, "{chain[-1]}" = 1 }}'
                )
            return self
        if self.strategy != "weighted":
            raise ValueError(
                f'weights are only used with strategy = "weighted" (strategy is '
                f'"{self.strategy}"); set strategy = "weighted" or remove weights'
            )
        for target, weight in self.weights.items():
            if target not in chain:
                close = difflib.get_close_matches(target, chain, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"weights: {target!r} is not the primary or a fallback of this feature"
                    f"{hint} (chain: {', '.join(chain)})"
                )
            if not (weight >= 0 and math.isfinite(weight)):
                raise ValueError(f"weights.{target!r}: must be a number >= 0, got {weight!r}")
        if not sum(self.weights.values()) > 0:
            raise ValueError("weights: at least one target needs a weight above 0")
        return self


class PortalSection(_Model):
    """Process-wide settings: shared state, where calls are recorded, telemetry, logging."""

    state: str = Field(
        "memory",
        description="Routing state (breakers, throughput buckets, budgets, canary guard): "
        '`"memory"` for one process, or a Redis URL shared by a fleet '
        "(`redis://host:port/db?prefix=NAME&refresh_ms=100`).",
        examples=["redis://127.0.0.1:6379/0?prefix=myapp"],
    )
    ledger: str | list[str] | None = Field(
        None,
        description="Ledger URL(s) every call and attempt is written to: `sqlite:///path.db`, "
        '`jsonl:///path.jsonl`, `postgresql://user@host/db`, or `"none"`. Relative paths are '
        "next to this config; default `sqlite:///.portal/ledger.db` there.",
        examples=[["sqlite:///.portal/ledger.db", "jsonl:///.portal/ledger.jsonl"]],
    )
    telemetry: bool = Field(
        False,
        description="OpenTelemetry GenAI spans and metrics on the global providers (needs the "
        "`otel` extra).",
        examples=[True],
    )
    key_salt: str = Field(
        "portal",
        description="Salt of the keyed hash that stands for a call's `key=` in the ledger; set "
        "a private value so user ids cannot be guessed back.",
        examples=["${PORTAL_KEY_SALT}"],
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] | None = Field(
        None,
        description='Level of the `"portal"` logger, set when a client starts (unset: leave '
        "the application's logging alone).",
        examples=["warning"],
    )
    transport: Literal["auto", "aiohttp", "httpx2"] = Field(
        "auto",
        description='HTTP transport of AsyncClient\'s own connection pools: `"auto"` sends '
        "through aiohttp (httpx-aiohttp, in the default install) under asyncio and through "
        'httpx2\'s pools elsewhere (trio, or a proxy set in the environment); `"aiohttp"` '
        'insists on aiohttp; `"httpx2"` always uses httpx2\'s pools. Behaviour is the same '
        "on both.",
        examples=["httpx2"],
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if v != "memory":
            parse_state_url(v)
        return v

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, v: str | list[str] | None) -> str | list[str] | None:
        for url in [v] if isinstance(v, str) else v or []:
            problem = ledger_url_problem(url)
            if problem:
                raise ValueError(problem)
        return v

    @property
    def ledgers(self) -> list[str]:
        if self.ledger is None:
            return []
        return [self.ledger] if isinstance(self.ledger, str) else list(self.ledger)


class PortalConfig(_Model):
    """The whole file: ``portal.toml``, or ``[tool.portal]`` in ``pyproject.toml``."""

    portal: PortalSection = Field(
        default_factory=PortalSection, description="Process-wide settings."
    )
    providers: dict[str, ProviderConfig] = Field(
        default_factory=dict, description="Vendors and servers, by name."
    )
    features: dict[str, FeatureConfig] = Field(
        default_factory=dict, description="Features, by the name calls pass as `feature=`."
    )
    gamedays: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Game day scenarios for `portal gameday --scenario NAME` or `--all`.",
    )
    #: where the config came from; relative paths (contracts, ledgers) resolve against it
    source: str | None = Field(None, exclude=True)
    #: values read from the environment by ``${VAR}``, shown as ``${VAR}`` in later errors
    env_values: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    base_dir: str = Field(".", exclude=True)
    #: credentials left unset because their variable is not set (``keys_required=False``)
    unset_keys: list[str] = Field(default_factory=list, exclude=True)

    @model_validator(mode="after")
    def _check_references(self) -> PortalConfig:
        from portal.price_overrides import check_price_overrides

        problems = kind_problems({n: p.kind for n, p in self.providers.items()})
        for name, prov in self.providers.items():
            problems += check_price_overrides(prov.prices, f"providers.{_key(name)}.prices")
        for fname, feat in self.features.items():
            refs = [("primary", feat.primary)]
            refs += [(f"fallbacks[{i}]", t) for i, t in enumerate(feat.fallbacks)]
            if feat.canary:
                refs.append(("canary.target", feat.canary.target))
            for field, ref in refs:
                try:
                    self.resolve_target(ref)
                except ConfigError as exc:
                    problems.append(f"features.{_key(fname)}.{field}: {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def resolve_target(self, model_id: str) -> tuple[str, str]:
        """``"provider:model"`` → (provider name, model); the provider must be configured or be
        a known kind (used with defaults and the key from its environment variable)."""
        from portal.providers.registry import known_kinds

        provider, model = parse_model_id(model_id)
        if provider in self.providers:
            return provider, model
        kinds = known_kinds()
        if provider in kinds:
            return provider, model
        names = sorted(set(self.providers) | set(kinds))
        close = difflib.get_close_matches(provider, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        configured = ", ".join(sorted(self.providers)) or "none"
        raise ConfigError(
            f"unknown provider {provider!r} in {model_id!r}{hint} "
            f"(configured providers: {configured}; or use a provider kind directly)"
        )

    def provider_settings(self, name: str) -> ProviderSettings:
        prov = self.providers.get(name)
        if prov is None:
            prov = ProviderConfig(kind=name)
        kind = prov.kind or name
        key = prov.api_key
        if key is None:
            from portal.providers.registry import adapter_class

            env = adapter_class(kind).api_key_env
            if env and os.environ.get(env):
                problem = key_problem(os.environ[env])
                if problem:
                    raise ConfigError(f"environment variable {env} (the {name!r} key): {problem}")
                key = Secret(os.environ[env])
        return ProviderSettings(
            name=name,
            kind=kind,
            base_url=prov.base_url,
            api_key=key,
            headers=dict(prov.headers),
            timeout_s=prov.timeout_s,
            connect_timeout_s=prov.connect_timeout_s,
            first_byte_timeout_s=prov.first_byte_timeout_s,
            stall_timeout_s=prov.stall_timeout_s,
            region=prov.region,
            tags=list(prov.tags),
            options=dict(prov.options),
        )


@dataclass(frozen=True, slots=True)
class StateURL:
    """A parsed ``[portal] state`` Redis URL: the URL redis-py sees and portal's own options."""

    url: str
    prefix: str = "portal"
    refresh_ms: float = 100.0


#: the state thread's refresh period must be at least this (a smaller one spins on Redis)
MIN_REFRESH_MS = 10.0
MAX_REFRESH_MS = 60_000.0


def _shown_url(url: str) -> str:
    """A URL as it may appear in an error: without a password."""
    head, at, rest = url.rpartition("@")
    scheme, sep, _ = head.partition("://")
    return f"{scheme}://***@{rest}" if at and sep else url


def parse_state_url(url: str) -> StateURL:
    """``redis://host:port/db?prefix=p&refresh_ms=100`` → `StateURL`; a `ValueError` naming
    what is wrong (scheme, port, ``refresh_ms``, ``prefix``) and never the password."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must be 'memory' or a redis:// URL, got {_shown_url(str(url))!r}")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("the Redis URL contains whitespace or control characters")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(
            f"the port in {_shown_url(url)!r} is not a number from 0 to 65535"
        ) from None
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{_shown_url(url)!r} has no host; write e.g. redis://127.0.0.1:6379/0")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", "portal")
    if not prefix or any(c.isspace() for c in prefix):
        raise ValueError(f"prefix={prefix!r}: give a non-empty name without spaces")
    raw = query.pop("refresh_ms", "100")
    try:
        refresh = float(raw)
    except ValueError:
        refresh = math.nan
    if not (MIN_REFRESH_MS <= refresh <= MAX_REFRESH_MS):
        raise ValueError(
            f"refresh_ms={raw!r}: must be a number of milliseconds from {MIN_REFRESH_MS:g} to "
            f"{MAX_REFRESH_MS:g} (default 100)"
        )
    clean = urlunsplit(parts._replace(query=urlencode(query)))
    return StateURL(clean, prefix, refresh)


_LEDGER_SCHEMES = ("sqlite", "jsonl", "postgresql", "postgres")


def ledger_url_problem(url: Any) -> str | None:
    """What is wrong with a ledger URL, or None (never shows a password)."""
    if not isinstance(url, str):
        return f"a ledger URL must be a string, got {type(url).__name__}"
    if url == "none":
        return None
    scheme, sep, rest = url.partition("://")
    example = "sqlite:///path.db, jsonl:///path.jsonl, postgresql://user@host/db or none"
    if not sep or scheme.lower() not in _LEDGER_SCHEMES:
        return f"ledger {_shown_url(url)!r}: unknown scheme; write {example}"
    if any(c.isspace() or not c.isprintable() for c in url):
        return f"ledger {_shown_url(url)!r}: contains whitespace or control characters"
    if scheme.lower() in ("sqlite", "jsonl"):
        if scheme.lower() == "jsonl" and not rest.split("?", 1)[0].removeprefix("/"):
            return f"ledger {url!r}: give a file path, e.g. jsonl:///ledger.jsonl"
        return None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return f"ledger {_shown_url(url)!r}: the port is not a number from 0 to 65535"
    if not parts.hostname and "host=" not in parts.query:
        return f"ledger {_shown_url(url)!r}: no host; write postgresql://user@host:5432/db"
    return None


#: headers httpx computes from the body and the URL; a configured one would contradict them
_COMPUTED_HEADERS = frozenset({"content-length", "host", "transfer-encoding"})


def key_problem(value: str) -> str | None:
    """What is wrong with an API key, without showing it: keys are printable ASCII with no
    whitespace (a key read from a file often keeps its trailing newline)."""
    if not value:
        return None
    if any(c.isspace() for c in value):
        return (
            "contains whitespace or a line break (a key read from a file keeps its trailing "
            "newline); strip it"
        )
    if not value.isascii() or not value.isprintable():
        return "contains control or non-ASCII characters; an API key is printable ASCII"
    return None


def header_problem(name: str, value: Any) -> str | None:
    """What is wrong with a configured HTTP header (names the header, never its value)."""
    if (
        not isinstance(name, str)
        or not name
        or not all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)
    ):
        return f"header name {name!r} is not a valid HTTP token (ASCII letters, digits, -)"
    if name.lower() in _COMPUTED_HEADERS:
        return f"header {name!r} is computed for every request; remove it"
    if not isinstance(value, str):
        return f"header {name!r}: expected a string value"
    if any(c in "\r\n\0" for c in value) or not value.isascii() or not value.isprintable():
        return (
            f"header {name!r}: the value contains a line break, a control or a non-ASCII "
            "character; HTTP header values are printable ASCII"
        )
    return None


def kind_problems(kinds_by_name: Mapping[str, Any]) -> list[str]:
    """Unknown provider kinds, one line each (``{provider name: its kind or None}``)."""
    from portal.providers.registry import known_kinds

    kinds = known_kinds()
    problems = []
    for name, given in kinds_by_name.items():
        kind = given or name
        if not isinstance(kind, str) or kind not in kinds:
            close = difflib.get_close_matches(str(kind), kinds, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = "kind" if given else "kind (defaults to the table name)"
            problems.append(
                f"providers.{_key(name)}.{where}: unknown provider kind {kind!r}{hint} "
                f"Known kinds: {', '.join(kinds)}"
            )
    return problems


def _raw_kind_problems(data: Any) -> list[str]:
    """`kind_problems` of a raw config table, for when other errors stop the model's own check:
    an unknown kind is reported with them, not after they are fixed."""
    providers = data.get("providers") if isinstance(data, Mapping) else None
    if not isinstance(providers, Mapping):
        return []
    return kind_problems(
        {
            name: (prov.get("kind") if isinstance(prov.get("kind"), str) else None)
            for name, prov in providers.items()
            if isinstance(prov, Mapping)
        }
    )


def parse_model_id(model_id: str) -> tuple[str, str]:
    """Split ``"provider:model"`` on the first colon (``"ollama:llama3:8b"`` works)."""
    if not isinstance(model_id, str) or ":" not in model_id:
        raise ConfigError(
            f"model id {model_id!r} must be 'provider:model', e.g. 'openai:gpt-4.1-mini'"
        )
    provider, _, model = model_id.partition(":")
    if not provider or not model:
        raise ConfigError(
            f"model id {model_id!r} must be 'provider:model', e.g. 'openai:gpt-4.1-mini'"
        )
    return provider, model


# ----------------------------------------------------------------------------- loading


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    keys_required: bool = True,
) -> PortalConfig:
    """Load and validate a config from a file path or a dict; raise `ConfigError` listing
    every problem, each naming the file, the table and the key. ``${VAR}`` is read from
    ``env`` (default: the process environment).

    ``keys_required=False`` is for commands that only read (reports, route explanations,
    canary status): a credential whose variable is not set (a provider's ``api_key``, its
    headers and secret options, ``[portal] key_salt``) is left unset instead of being an
    error, and listed in `PortalConfig.unset_keys`; sending a call with it fails then."""
    environ = os.environ if env is None else env
    if isinstance(source, Mapping):
        return _validate(dict(source), "config", ".", environ=environ, keys_required=keys_required)
    path = Path(source)
    label = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    data = _parse_toml(raw, label)
    prefix = ""
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        section = tool.get("portal") if isinstance(tool, dict) else None
        if section is None:
            raise ConfigError(f"{label}: has no [tool.portal] table")
        if not isinstance(section, dict):
            raise ConfigError(
                f"{label}: tool.portal must be a table ([tool.portal]), got "
                f"{type(section).__name__}"
            )
        data = section
        prefix = "tool.portal."
    cfg = _validate(data, label, str(path.parent.resolve()), prefix, environ, keys_required)
    cfg.source = str(path)
    return cfg


def _parse_toml(raw: bytes, label: str) -> dict[str, Any]:
    """A config file's bytes as TOML: UTF-8 text (a UTF-16 or binary file is refused by name),
    nesting bounded."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise ConfigError(
            f"{label}: is not UTF-8 text (UTF-16 or a binary file?); save it as UTF-8"
        )
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{label}: tables or arrays nested too deeply to read; a config is a few levels deep"
        ) from None


def _validate(
    data: dict[str, Any],
    label: str,
    base_dir: str,
    prefix: str = "",
    environ: Mapping[str, str] = os.environ,
    keys_required: bool = True,
) -> PortalConfig:
    errors: list[str] = []
    used: dict[str, str] = {}
    unset: list[str] | None = None if keys_required else []
    too_deep = f"{label}: tables or arrays nested too deeply to read; a config is a few levels deep"
    try:
        data = _interpolate(data, (), errors, environ, used, unset)
    except RecursionError:
        raise ConfigError(too_deep) from None
    if errors:
        lines = [f"{label}: {prefix}{e}" for e in errors]
        raise ConfigError("\n".join(lines), lines)
    try:
        cfg = PortalConfig.model_validate(data)
    except ValidationError as exc:
        found = _format_errors(exc, data)
        found += [p for p in _raw_kind_problems(data) if p not in found]
        lines = [hide_env(f"{label}: {prefix}{line}", used) for line in found]
        raise ConfigError("\n".join(lines), lines) from None
    except RecursionError:
        raise ConfigError(too_deep) from None
    cfg.base_dir = base_dir
    cfg.unset_keys = list(unset or [])
    cfg.env_values = used
    return cfg


def hide_env(line: str, used: Mapping[str, str]) -> str:
    """An error line with every value read from the environment shown as its ``${VAR}``: a
    key interpolated into the wrong field (``base_url = "${OPENAI_API_KEY}"``) must not be
    printed by the error that refuses it."""
    for var, value in sorted(used.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= 6 and value in line:
            line = line.replace(value, f"${{{var}}}")
    return line


def _interpolate(
    value: Any,
    path: tuple[Any, ...],
    errors: list[str],
    environ: Mapping[str, str],
    used: dict[str, str],
    unset: list[str] | None = None,
) -> Any:
    """``${VAR}`` replaced from ``environ``; a missing variable is an error, except at a
    credential when ``unset`` collects them (read-only commands)."""
    if isinstance(value, str) and "${" in value:
        lenient = unset is not None and _is_credential(path)
        missing: list[str] = []

        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            got = environ.get(var)
            if got is not None:
                used[var] = got
            if got is None:
                if default is not None:
                    return default
                if lenient:
                    missing.append(var)
                    return ""
                errors.append(
                    f"{_loc(path)}: environment variable {var} is not set; "
                    f"export it, or write ${{{var}:-default}}"
                )
                return ""
            return got

        out = _ENV.sub(sub, value)
        if missing and unset is not None:
            unset.append(f"{_loc(path)} (${{{', '.join(missing)}}})")
            if path[-1] == "api_key" and _ENV.fullmatch(value.strip()):
                return None  # the whole value was the variable: the key is simply not set
        return out
    if isinstance(value, dict):
        return {
            k: _interpolate(v, (*path, k), errors, environ, used, unset) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, (*path, i), errors, environ, used, unset) for i, v in enumerate(value)
        ]
    return value


_SECRET_OPTION_WORDS = ("key", "secret", "token", "password", "credential")


def _is_credential(path: tuple[Any, ...]) -> bool:
    """Config locations that hold credentials: needed to send a call, not to read config."""
    if path[:2] == ("portal", "key_salt"):
        return True
    if len(path) < 3 or path[0] != "providers":
        return False
    if path[2] in ("api_key", "headers"):
        return True
    return (
        path[2] == "options"
        and len(path) > 3
        and any(w in str(path[3]).lower() for w in _SECRET_OPTION_WORDS)
    )


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: Any) -> str:
    s = str(k)
    return s if _BARE.match(s) else '"' + s.replace('"', '\\"') + '"'


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _key(part)
    return out or "(top level)"


def _format_errors(exc: ValidationError, data: Any) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            parent, key = loc[:-1], loc[-1]
            allowed = _allowed_keys(parent)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"{_loc(loc)}: unknown key{hint} Allowed keys: {', '.join(allowed)}")
            continue
        if kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            if not loc:
                lines.extend(msg.splitlines())
                continue
            lines.append(f"{_loc(loc)}: {msg}")
            continue
        if kind == "missing":
            lines.append(f"{_loc(loc)}: required key is missing")
            continue
        ctx = err.get("ctx") or {}
        shown = _show(value)
        if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            op = {
                "greater_than_equal": ">=",
                "greater_than": ">",
                "less_than_equal": "<=",
                "less_than": "<",
            }[kind]
            bound = next(iter(ctx.values()), "?")
            if isinstance(bound, (int, float)):
                bound = f"{bound:g}"
            lines.append(f"{_loc(loc)}: must be {op} {bound}, got {shown}")
        elif kind == "literal_error":
            lines.append(f"{_loc(loc)}: must be one of {ctx.get('expected')}, got {shown}")
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            expected = kind.replace("_parsing", "").replace("_type", "")
            lines.append(f"{_loc(loc)}: expected {_article(expected)}, got {shown}")
        else:
            lines.append(f"{_loc(loc)}: {err['msg']}, got {shown}")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, Secret):
        return "a secret"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _article(word: str) -> str:
    names = {
        "int": "an integer",
        "float": "a number",
        "string": "a string",
        "bool": "true or false",
        "dict": "a table",
        "list": "an array",
        "model": "a table",
    }
    return names.get(word, f"a {word}")


_MODELS: dict[str, type[BaseModel]] = {}


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the table at ``parent`` (walks the model tree by field names)."""
    model: Any = PortalConfig
    i = 0
    while i < len(parent) and model is not None:
        part = parent[i]
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        ann = fields[part].annotation
        model = _inner_model(ann)
        # dict-valued tables (providers, features) skip their user-chosen key
        if model is not None and _is_dict(ann):
            i += 1
        i += 1
    if model is None:
        return []
    return sorted(k for k, f in model.model_fields.items() if not f.exclude)


def _inner_model(ann: Any) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _is_dict(ann: Any) -> bool:
    import typing

    if typing.get_origin(ann) is dict:
        return True
    return any(_is_dict(a) for a in typing.get_args(ann))
