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
from pathlib import Path
from typing import Any, Literal

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
from portal.providers.base import ProviderSettings, Secret

__all__ = [
    "BudgetConfig",
    "CanaryConfig",
    "FeatureConfig",
    "PortalConfig",
    "ProviderConfig",
    "load_config",
    "parse_model_id",
]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)


class RetryConfig(_Model):
    """Retries on the same target before failing over."""

    attempts: int = Field(2, ge=1, le=10)
    base_wait_s: float = Field(0.2, ge=0)
    max_wait_s: float = Field(8.0, ge=0)
    retry_after_cap_s: float = Field(20.0, ge=0)
    budget_ratio: float = Field(0.2, ge=0, le=1)
    on_content_filter: Literal["raise", "failover"] = "raise"


class SLAConfig(_Model):
    p50_ms: float | None = Field(None, gt=0)
    p95_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    availability: float | None = Field(None, gt=0, le=1)


class ProviderSLAConfig(SLAConfig):
    """Contracted terms: missing them earns ``credit_percent`` of the window's spend."""

    credit_percent: float = Field(0.0, ge=0, le=100)


class BudgetConfig(_Model):
    usd_per_day: float = Field(gt=0)
    on_exceed: Literal["block", "fallback-cheapest", "warn"] = "block"
    per_tenant: bool = False


class HedgeConfig(_Model):
    """Start a second target after ``after_ms``, or after the primary's rolling p95."""

    after_ms: float | None = Field(None, gt=0)
    after: Literal["p95"] | None = None
    max_extra: int = Field(1, ge=1, le=3)

    @model_validator(mode="after")
    def _one_trigger(self) -> HedgeConfig:
        if self.after_ms is None and self.after is None:
            raise ValueError('give after_ms (e.g. 1500) or after = "p95"')
        return self


class AllowedConfig(_Model):
    regions: list[str] | None = None
    tags: list[str] | None = None


class GuardConfig(_Model):
    min_calls: int = Field(50, ge=1)
    max_error_rate_delta: float = Field(0.02, ge=0, le=1)
    max_p95_ratio: float = Field(1.25, gt=0)


class CanaryConfig(_Model):
    target: str
    percent: float = 5.0
    ramp: list[float] = Field(default_factory=list)
    ramp_every: str | None = None
    guard: GuardConfig = Field(default_factory=GuardConfig)

    @field_validator("percent")
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

    requests_per_min: float | None = Field(None, gt=0)
    tokens_per_min: float | None = Field(None, gt=0)


class BreakerConfig(_Model):
    consecutive_failures: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    window_s: float = Field(30.0, gt=0)
    min_calls: int = Field(20, ge=1)
    cooldown_s: float = Field(15.0, gt=0)


class ProviderConfig(_Model):
    kind: str | None = None
    base_url: str | None = None
    api_key: Secret | None = None
    region: str | None = None
    tags: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(60.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    sla: ProviderSLAConfig | None = None
    throughput: ThroughputConfig | None = None
    breaker: BreakerConfig | None = None
    verify_tls: bool = True

    @field_serializer("api_key")
    def _hide(self, v: Secret | None) -> str | None:
        return None if v is None else "**********"

    @field_validator("api_key", mode="before")
    @classmethod
    def _secret(cls, v: Any) -> Any:
        if isinstance(v, str):
            return Secret(v)
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
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v


class FeatureConfig(_Model):
    primary: str
    fallbacks: list[str] = Field(default_factory=list)
    contract: str | None = None
    canary: CanaryConfig | None = None
    sla: SLAConfig | None = None
    budget: BudgetConfig | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)
    hedge: HedgeConfig | None = None
    allowed: AllowedConfig | None = None
    strategy: Literal[
        "ordered", "cheapest", "fastest", "lowest-latency", "cheapest-within-sla", "weighted"
    ] = "ordered"
    #: ``strategy = "weighted"``: share of first tries per target (relative numbers); targets
    #: of the chain left out get no first tries and stay fallbacks
    weights: dict[str, float] | None = None
    timeout_s: float | None = Field(None, gt=0)
    safety: list[str | dict[str, Any]] = Field(default_factory=list)
    #: RAG options (portal.adapters.rag.RagOptions): k, max_context_tokens, min_score,
    #: template, retriever (a name given to portal.adapters.rag.register_retriever)
    rag: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("strategy")
    @classmethod
    def _strategy_alias(cls, v: str) -> str:
        # the names are aliases of the shorter ones the router uses
        return {"lowest-latency": "fastest", "cheapest-within-sla": "cheapest"}.get(v, v)

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
    state: str = "memory"
    ledger: str | list[str] | None = None
    telemetry: bool = False
    key_salt: str = "portal"
    log_level: str | None = None

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if v != "memory" and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be 'memory' or a redis:// URL, got {v!r}")
        return v

    @property
    def ledgers(self) -> list[str]:
        if self.ledger is None:
            return []
        return [self.ledger] if isinstance(self.ledger, str) else list(self.ledger)


class PortalConfig(_Model):
    portal: PortalSection = Field(default_factory=PortalSection)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    gamedays: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: where the config came from; relative paths (contracts, ledgers) resolve against it
    source: str | None = Field(None, exclude=True)
    base_dir: str = Field(".", exclude=True)

    @model_validator(mode="after")
    def _check_references(self) -> PortalConfig:
        from portal.providers.registry import known_kinds

        kinds = known_kinds()
        problems: list[str] = []
        for name, prov in self.providers.items():
            kind = prov.kind or name
            if kind not in kinds:
                close = difflib.get_close_matches(kind, kinds, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                where = "kind" if prov.kind else "kind (defaults to the table name)"
                problems.append(
                    f"providers.{_key(name)}.{where}: unknown provider kind {kind!r}{hint} "
                    f"Known kinds: {', '.join(kinds)}"
                )
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
                key = Secret(os.environ[env])
        return ProviderSettings(
            name=name,
            kind=kind,
            base_url=prov.base_url,
            api_key=key,
            headers=dict(prov.headers),
            timeout_s=prov.timeout_s,
            region=prov.region,
            tags=list(prov.tags),
            options=dict(prov.options),
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
    source: str | os.PathLike[str] | Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> PortalConfig:
    """Load and validate a config from a file path or a dict; raise `ConfigError` listing
    every problem, each naming the file, the table and the key. ``${VAR}`` is read from
    ``env`` (default: the process environment)."""
    environ = os.environ if env is None else env
    if isinstance(source, Mapping):
        return _validate(dict(source), "config", ".", environ=environ)
    path = Path(source)
    label = path.name
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    prefix = ""
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("portal")
        if data is None:
            raise ConfigError(f"{label}: has no [tool.portal] table")
        prefix = "tool.portal."
    cfg = _validate(data, label, str(path.parent.resolve()), prefix, environ)
    cfg.source = str(path)
    return cfg


def _validate(
    data: dict[str, Any],
    label: str,
    base_dir: str,
    prefix: str = "",
    environ: Mapping[str, str] = os.environ,
) -> PortalConfig:
    errors: list[str] = []
    data = _interpolate(data, (), errors, environ)
    if errors:
        lines = [f"{label}: {prefix}{e}" for e in errors]
        raise ConfigError("\n".join(lines), lines)
    try:
        cfg = PortalConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{label}: {prefix}{line}" for line in _format_errors(exc, data)]
        raise ConfigError("\n".join(lines), lines) from None
    cfg.base_dir = base_dir
    return cfg


def _interpolate(
    value: Any, path: tuple[Any, ...], errors: list[str], environ: Mapping[str, str]
) -> Any:
    if isinstance(value, str) and "${" in value:

        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            got = environ.get(var)
            if got is None:
                if default is not None:
                    return default
                errors.append(
                    f"{_loc(path)}: environment variable {var} is not set; "
                    f"export it, or write ${{{var}:-default}}"
                )
                return ""
            return got

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), errors, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), errors, environ) for i, v in enumerate(value)]
    return value


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
