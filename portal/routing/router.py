"""Which targets a call gets, in which order, on which arm.

`Router.route` turns (feature or model, key) into a `Route`: the canary arm, the ordered
targets (canary target first on the canary arm, then the baseline chain as failover),
the retry policy and the deadline. It knows no vendor wire format.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from portal.config import FeatureConfig, PortalConfig, parse_model_id
from portal.errors import ConfigError, PolicyViolation
from portal.providers.adapter import Adapter
from portal.providers.cache_names import CacheNames
from portal.providers.registry import adapter_class
from portal.routing.canary import BUCKETS, CanaryControl, bucket, threshold
from portal.routing.retry import RetryPolicy
from portal.routing.state import MemoryState, State

__all__ = [
    "KNOWN_CONTEXT_WINDOWS",
    "AdapterPool",
    "Route",
    "Router",
    "StateCacheNames",
    "Target",
    "context_window",
]

#: context windows (tokens) of well-known model families, longest prefix wins; a provider's
#: ``options.context_window`` (or ``options.context_windows = {model = n}``) overrides them
KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude-": 200_000,
    "anthropic.claude": 200_000,
    "gemini-1.5-pro": 2_097_152,
    "gemini-1.5": 1_048_576,
    "gemini-2": 1_048_576,
    "mistral-large": 128_000,
    "mistral-small": 32_000,
    "command-r": 128_000,
    "command-a": 256_000,
    "meta-llama/Llama-3.3": 128_000,
    "meta-llama/Llama-3.1": 128_000,
    "llama3.1": 128_000,
    "llama3.3": 128_000,
}


@dataclass(slots=True, frozen=True)
class Target:
    """One ``provider:model`` with the adapter that speaks to it."""

    id: str
    provider: str
    model: str
    adapter: Adapter = field(compare=False, repr=False)


@dataclass(slots=True)
class Route:
    feature: str | None
    arm: str
    targets: list[Target]
    policy: RetryPolicy
    timeout_s: float | None = None
    hedge_after_s: float | None = None
    reasons: list[str] = field(default_factory=list)
    strategy: str = "ordered"
    #: how many leading targets a strategy must not reorder (canary target, model= pin)
    pinned: int = 0
    canary_bucket: int | None = None
    canary_threshold: int | None = None
    #: the first target is the caller's ``model=``
    model_pinned: bool = False
    #: the canary target this call also sends a shadow copy to (its answer is not served)
    shadow: Target | None = None
    #: targets left out before the first attempt (they cannot serve this call), with why
    skipped: dict[str, str] = field(default_factory=dict)
    #: the feature's ``first_token_timeout_s``: the first text of an attempt is due by then
    first_token_s: float | None = None

    def reordered(self, order: Sequence[int], reason: str) -> Route:
        """The same route with its targets tried in ``order`` (indexes), and why."""
        return replace(
            self, targets=[self.targets[i] for i in order], reasons=[*self.reasons, reason]
        )


def context_window(target: Target) -> int | None:
    """The target's context window in tokens, or None when portal does not know it."""
    opts = target.adapter.settings.options or {}
    per_model = opts.get("context_windows")
    if isinstance(per_model, dict) and target.model in per_model:
        return int(per_model[target.model])
    if isinstance(opts.get("context_window"), int):
        return int(opts["context_window"])
    best: tuple[int, int] | None = None
    for prefix, n in KNOWN_CONTEXT_WINDOWS.items():
        if target.model.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), n)
    return None if best is None else best[1]


class StateCacheNames:
    """The names of vendors' prompt caches (`CacheNames`) kept in the routing state, so
    every process sharing it (``[portal] state``) reuses a cache another one created. Names
    are `State.remember` values that expire a little before their cache; a creation in
    flight is a `State.claim`."""

    def __init__(self, state: State) -> None:
        self.state = state

    def get(self, key: str) -> str | None:
        name = self.state.recall("cache-name:" + key)
        return name if isinstance(name, str) and name else None

    def put(self, key: str, name: str, ttl_s: float) -> None:
        self.state.remember("cache-name:" + key, name, ttl_s)

    def drop(self, key: str, name: str) -> None:
        if self.get(key) == name:
            self.state.remember("cache-name:" + key, "", 0.001)

    def claim(self, key: str, ttl_s: float) -> bool:
        return self.state.claim("cache-creating:" + key, ttl_s)

    def release(self, key: str) -> None:
        self.state.delete("cache-creating:" + key)


class AdapterPool:
    """One adapter per configured provider name, built on first use."""

    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()
        self._cache_names: CacheNames | None = None

    def use_cache_names(self, names: CacheNames) -> None:
        """Where every adapter (built now or later) keeps its prompt caches' names."""
        with self._lock:
            self._cache_names = names
            for adapter in self._adapters.values():
                adapter.cache_names = names

    def get(self, provider: str) -> Adapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            with self._lock:
                adapter = self._adapters.get(provider)
                if adapter is None:
                    settings = self.config.provider_settings(provider)
                    adapter = adapter_class(settings.kind)(settings)
                    if self._cache_names is not None:
                        adapter.cache_names = self._cache_names
                    self._adapters[provider] = adapter
        return adapter

    def target(self, model_id: str) -> Target:
        provider, model = self.config.resolve_target(model_id)
        return Target(f"{provider}:{model}", provider, model, self.get(provider))

    def built(self) -> dict[str, Adapter]:
        return dict(self._adapters)


class Router:
    def __init__(
        self,
        config: PortalConfig,
        adapters: AdapterPool,
        state: State | None = None,
        canary: CanaryControl | None = None,
    ) -> None:
        self.config = config
        self.adapters = adapters
        self.state = state if state is not None else MemoryState()
        adapters.use_cache_names(StateCacheNames(self.state))
        #: the live canary step (shared through the state: CLI and every process agree)
        self.canary = canary if canary is not None else CanaryControl(config, self.state)
        self._policies: dict[str, RetryPolicy] = {}
        self._chains: dict[str, tuple[list[Target], Target | None]] = {}

    def feature(self, name: str) -> FeatureConfig:
        feat = self.config.features.get(name)
        if feat is None:
            import difflib

            close = difflib.get_close_matches(name, list(self.config.features), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(self.config.features)) or "none configured"
            raise ConfigError(f"unknown feature {name!r}{hint} (features: {known})")
        return feat

    def route(self, feature: str | None, key: str | None, model: str | None) -> Route:
        if feature is None:
            if model is None:
                raise ConfigError(
                    "pass feature= (a feature from the config) or model='provider:model'"
                )
            parse_model_id(model)
            return Route(None, "baseline", [self.adapters.target(model)], RetryPolicy())
        feat = self.feature(feature)
        chain, canary = self._chain(feature, feat)
        policy = self._policy(feature, feat)
        arm = "baseline"
        targets = chain
        pinned = 0
        b = t = None
        shadow_to: Target | None = None
        if canary is not None and feat.canary is not None:
            c = feat.canary
            percent, shadow = self.canary.shares(feature, c.percent, c.shadow)
            t = threshold(percent)
            if percent > 0:
                b = random.randrange(BUCKETS) if key is None else bucket(feature, canary.id, key)
                if b < t:
                    arm = "canary"
                    targets = [canary] + [x for x in chain if x.id != canary.id]
                    pinned = 1
            if shadow > 0 and arm == "baseline" and model is None:
                # sticky per key like the canary, on a hash of its own (independent of it)
                sb = (
                    random.randrange(BUCKETS)
                    if key is None
                    else bucket(feature, f"{canary.id}\x1fshadow", key)
                )
                if sb < threshold(shadow):
                    shadow_to = canary
        reasons: list[str] = []
        if model is not None:
            # an explicit model pins the first target but keeps the feature's fallbacks; the
            # feature's data-path policy binds it like any other target
            pin = self.adapters.target(model)
            if feat.allowed is not None and not self._inside(feat, pin):
                raise PolicyViolation(
                    f"feature {feature!r}: model={model!r} is outside its data-path policy "
                    f"allowed = {feat.allowed.model_dump(exclude_none=True)} (region "
                    f"{pin.adapter.settings.region!r}, tags {pin.adapter.settings.tags}); pin "
                    "a model of an allowed provider or call without model=",
                    guard="data-path",
                    reason="pinned target outside the policy",
                )
            targets = [pin] + [x for x in targets if x.id != pin.id]
            pinned = 1
            reasons.append("model= pinned the first target")
        hedge = feat.hedge.after_ms / 1000.0 if feat.hedge and feat.hedge.after_ms else None
        return Route(
            feature,
            arm,
            targets,
            policy,
            feat.timeout_s,
            hedge,
            reasons,
            feat.strategy,
            pinned,
            b,
            t,
            model is not None,
            shadow_to,
            first_token_s=feat.first_token_timeout_s,
        )

    def _chain(self, name: str, feat: FeatureConfig) -> tuple[list[Target], Target | None]:
        cached = self._chains.get(name)
        if cached is None:
            chain = [self.adapters.target(m) for m in [feat.primary, *feat.fallbacks]]
            chain = self._allowed(name, feat, chain)
            canary = self.adapters.target(feat.canary.target) if feat.canary else None
            if canary is not None and not self._inside(feat, canary):
                canary = None  # never served, never shadowed; the feature's calls go on
            cached = self._chains[name] = (chain, canary)
        return cached

    def _allowed(self, name: str, feat: FeatureConfig, chain: list[Target]) -> list[Target]:
        """Data-path policy: never route outside the allowed regions and tags."""
        if feat.allowed is None:
            return chain
        ok = [t for t in chain if self._inside(feat, t)]
        if not ok:
            raise PolicyViolation(
                f"feature {name!r}: no target satisfies allowed = {feat.allowed.model_dump()}",
                guard="data-path",
                reason="no allowed target",
            )
        return ok

    @staticmethod
    def _inside(feat: FeatureConfig, target: Target) -> bool:
        """Whether ``target`` satisfies the feature's ``allowed`` regions and tags."""
        allowed, s = feat.allowed, target.adapter.settings
        if allowed is None:
            return True
        if allowed.regions is not None and s.region not in allowed.regions:
            return False
        return allowed.tags is None or set(allowed.tags) <= set(s.tags)

    def _policy(self, name: str, feat: FeatureConfig) -> RetryPolicy:
        policy = self._policies.get(name)
        if policy is None:
            r = feat.retry
            policy = self._policies[name] = RetryPolicy(
                attempts=r.attempts,
                base_wait_s=r.base_wait_s,
                max_wait_s=r.max_wait_s,
                retry_after_cap_s=r.retry_after_cap_s,
                budget_ratio=r.budget_ratio,
                on_content_filter=getattr(r, "on_content_filter", "raise"),
            )
        return policy
