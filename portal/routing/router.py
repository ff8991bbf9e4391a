"""Which targets a call gets, in which order, on which arm.

`Router.route` turns (feature or model, key) into a `Route`: the canary arm, the ordered
targets (canary target first on the canary arm, then the baseline chain as failover),
the retry policy and the deadline. It knows no vendor wire format.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from portal.config import FeatureConfig, PortalConfig, parse_model_id
from portal.errors import ConfigError, PolicyViolation
from portal.providers.base import Adapter
from portal.providers.registry import adapter_class
from portal.routing.canary import in_canary
from portal.routing.retry import RetryPolicy

__all__ = ["AdapterPool", "Route", "Router", "Target"]


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


class AdapterPool:
    """One adapter per configured provider name, built on first use."""

    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()

    def get(self, provider: str) -> Adapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            with self._lock:
                adapter = self._adapters.get(provider)
                if adapter is None:
                    settings = self.config.provider_settings(provider)
                    adapter = adapter_class(settings.kind)(settings)
                    self._adapters[provider] = adapter
        return adapter

    def target(self, model_id: str) -> Target:
        provider, model = self.config.resolve_target(model_id)
        return Target(f"{provider}:{model}", provider, model, self.get(provider))

    def built(self) -> dict[str, Adapter]:
        return dict(self._adapters)


class Router:
    def __init__(self, config: PortalConfig, adapters: AdapterPool) -> None:
        self.config = config
        self.adapters = adapters
        self._policies: dict[str, RetryPolicy] = {}
        self._chains: dict[str, tuple[list[Target], Target | None]] = {}
        #: live canary percentages (ramp / rollback); defaults to the config's
        self.canary_percent: dict[str, float] = {
            name: f.canary.percent for name, f in config.features.items() if f.canary
        }

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
                raise ConfigError("pass feature= (a feature from the config) or model='provider:model'")
            parse_model_id(model)
            return Route(None, "baseline", [self.adapters.target(model)], RetryPolicy())
        feat = self.feature(feature)
        chain, canary = self._chain(feature, feat)
        policy = self._policy(feature, feat)
        arm = "baseline"
        targets = chain
        reasons: list[str] = []
        if canary is not None and feat.canary is not None:
            percent = self.canary_percent.get(feature, feat.canary.percent)
            if in_canary(feature, canary.id, key, percent):
                arm = "canary"
                targets = [canary] + [t for t in chain if t.id != canary.id]
                reasons.append(f"key in the canary's {percent:g}% of buckets")
        if model is not None:
            # an explicit model pins the first target but keeps the feature's fallbacks
            pinned = self.adapters.target(model)
            targets = [pinned] + [t for t in targets if t.id != pinned.id]
            reasons.append("model= pinned the first target")
        hedge = feat.hedge.after_ms / 1000.0 if feat.hedge else None
        return Route(feature, arm, targets, policy, feat.timeout_s, hedge, reasons)

    def _chain(self, name: str, feat: FeatureConfig) -> tuple[list[Target], Target | None]:
        cached = self._chains.get(name)
        if cached is None:
            chain = [self.adapters.target(m) for m in [feat.primary, *feat.fallbacks]]
            chain = self._allowed(name, feat, chain)
            canary = self.adapters.target(feat.canary.target) if feat.canary else None
            if canary is not None and not self._allowed(name, feat, [canary]):
                canary = None
            cached = self._chains[name] = (chain, canary)
        return cached

    def _allowed(self, name: str, feat: FeatureConfig, chain: list[Target]) -> list[Target]:
        """Data-path policy: never route outside the allowed regions and tags."""
        if feat.allowed is None:
            return chain
        ok = []
        for t in chain:
            s = t.adapter.settings
            if feat.allowed.regions is not None and s.region not in feat.allowed.regions:
                continue
            if feat.allowed.tags is not None and not set(feat.allowed.tags) <= set(s.tags):
                continue
            ok.append(t)
        if not ok:
            raise PolicyViolation(
                f"feature {name!r}: no target satisfies allowed = {feat.allowed.model_dump()}",
                guard="data-path",
                reason="no allowed target",
            )
        return ok

    def _policy(self, name: str, feat: FeatureConfig) -> RetryPolicy:
        policy = self._policies.get(name)
        if policy is None:
            r = feat.retry
            policy = self._policies[name] = RetryPolicy(
                attempts=r.attempts,
                base_wait_s=r.base_wait_s,
                max_wait_s=r.max_wait_s,
                retry_after_cap_s=r.retry_after_cap_s,
            )
        return policy
