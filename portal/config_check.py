"""Everything a config must satisfy beyond its schema, in one place: `Client()` /
`AsyncClient()` and `portal config check` both call `check_config`, so a config the command
passes is one a client accepts, and the other way round.

It builds every provider a feature can reach (kind options, keys read from the environment,
options that no kind reads), parses the state and ledger URLs and the price overrides, builds
each feature's safety guards and RAG options, reads the canary's ramp period and shadow target,
checks that every target can serve the feature's contract, and that every target a feature can
reach (primary, fallbacks, canary) satisfies its data-path policy (``allowed``). Every problem
is listed at once, one line each, naming the table and the key; values read from the
environment are shown as their ``${VAR}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from portal.config import PortalConfig, hide_env
from portal.errors import ConfigError, ContractError, PortalError

__all__ = ["check_config", "config_problems", "policy_problems"]


def check_config(cfg: PortalConfig, contract: Callable[[str], Any] | None = None) -> None:
    """Raise `ConfigError` listing every problem of ``cfg`` (see the module docstring).
    ``contract`` loads a feature's contract (a client passes its cached loader)."""
    problems = config_problems(cfg, contract)
    if problems:
        raise ConfigError("\n".join(problems), problems)


def config_problems(cfg: PortalConfig, contract: Callable[[str], Any] | None = None) -> list[str]:
    """Every problem of ``cfg``, one line each (empty when it is sound)."""
    found: list[str] = []
    for check in (_providers, _state, _prices, _features, _policies):
        found.extend(check(cfg))
    found.extend(_contracts(cfg, contract))
    return [hide_env(line, cfg.env_values) for line in dict.fromkeys(found)]


def _errors_of(exc: PortalError) -> list[str]:
    return list(exc.errors) if isinstance(exc, ConfigError) else [str(exc)]


def _targets(cfg: PortalConfig) -> Iterator[tuple[str, str, str]]:
    """(feature, key, target) for every target a feature names."""
    for name, feat in cfg.features.items():
        yield name, "primary", feat.primary
        for i, target in enumerate(feat.fallbacks):
            yield name, f"fallbacks[{i}]", target
        if feat.canary is not None:
            yield name, "canary.target", feat.canary.target


def _providers(cfg: PortalConfig) -> list[str]:
    """Build every configured provider and every one a feature reaches by kind alone."""
    from portal.providers.registry import adapter_class
    from portal.providers.settings import unknown_options

    names = dict.fromkeys(cfg.providers)
    for _, _, target in _targets(cfg):
        names.setdefault(cfg.resolve_target(target)[0], None)
    found: list[str] = []
    for name in names:
        try:
            settings = cfg.provider_settings(name)
            cls = adapter_class(settings.kind)
            found.extend(unknown_options(cls, settings))
            cls(settings)
        except PortalError as exc:
            found.extend(_errors_of(exc))
    return found


def _state(cfg: PortalConfig) -> list[str]:
    if cfg.portal.state == "memory":
        return []
    from portal.config import parse_state_url

    try:
        parse_state_url(cfg.portal.state)
    except ValueError as exc:
        return [f"portal.state: {exc}"]
    return []


def _prices(cfg: PortalConfig) -> list[str]:
    overrides = {n: p.prices for n, p in cfg.providers.items() if p.prices}
    if not overrides:
        return []
    from portal.metering.prices import PriceTable

    try:
        PriceTable.load().with_overrides(overrides)
    except ConfigError as exc:
        return _errors_of(exc)
    return []


def _features(cfg: PortalConfig) -> list[str]:
    """Each feature's guards, RAG options and canary ramp period."""
    found: list[str] = []
    for name, feat in cfg.features.items():
        where = f'features."{name}"'
        if feat.safety:
            from portal.layers.safety import GuardChain

            try:
                GuardChain.from_config(feat.safety, where=f"{where}.safety")
            except PortalError as exc:
                found.extend(_errors_of(exc))
        if feat.rag is not None:
            from portal.layers.rag import RagOptions

            try:
                RagOptions.parse(feat.rag, f"{where}.rag")
            except PortalError as exc:
                found.extend(_errors_of(exc))
        if feat.canary is not None and feat.canary.shadow > 0:
            found.extend(_shadow_problems(cfg, name, feat))
        if feat.canary is not None and feat.canary.ramp_every:
            from portal.routing.canary import parse_duration

            try:
                parse_duration(feat.canary.ramp_every, f"{where}.canary.ramp_every")
            except PortalError as exc:
                found.extend(_errors_of(exc))
    return found


def _shadow_problems(cfg: PortalConfig, name: str, feat: Any) -> list[str]:
    """Shadow copies compare the canary target with the baseline: it must be another target
    than the primary (a copy to the primary would measure the baseline against itself)."""
    where = f'features."{name}".canary.shadow'
    try:
        same = cfg.resolve_target(feat.canary.target) == cfg.resolve_target(feat.primary)
    except ConfigError:
        return []  # an unknown provider is reported by the config itself
    if same:
        return [
            f"{where}: shadow copies go to canary.target {feat.canary.target!r}, which is the "
            "primary; set canary.target to the candidate model (or shadow = 0)"
        ]
    return []


def policy_problems(cfg: PortalConfig, feature: str, target: str) -> list[str]:
    """Why ``target`` is outside ``feature``'s data-path policy (``allowed``); empty if it is
    inside."""
    allowed = cfg.features[feature].allowed
    if allowed is None:
        return []
    provider, _ = cfg.resolve_target(target)
    prov = cfg.providers.get(provider)
    region = prov.region if prov is not None else None
    tags = set(prov.tags) if prov is not None else set()
    found = []
    if allowed.regions is not None and region not in allowed.regions:
        found.append(
            f"target {target} is in region {region!r}, outside the allowed regions "
            f"{allowed.regions}"
        )
    if allowed.tags is not None and not set(allowed.tags) <= tags:
        found.append(
            f"target {target} lacks the required tag(s) {sorted(set(allowed.tags) - tags)}"
        )
    return found


def _policies(cfg: PortalConfig) -> list[str]:
    """Every named target outside its feature's data-path policy, the key named."""
    found: list[str] = []
    for name, key, target in _targets(cfg):
        try:
            reasons = policy_problems(cfg, name, target)
        except ConfigError:
            continue  # an unknown provider is reported by the config itself
        found.extend(f'features."{name}".{key}: {why} (see allowed)' for why in reasons)
    return found


def _contracts(cfg: PortalConfig, contract: Callable[[str], Any] | None) -> list[str]:
    """A route whose target cannot serve its feature's contract (the rules and messages of
    `portal contracts check`), refused before any vendor 400."""
    from portal.providers.capability import ensure_servable

    if contract is None:
        from pathlib import Path

        from portal.contracts.feature import load_contract

        def contract(name: str) -> Any:
            feat = cfg.features[name]
            assert feat.contract is not None
            return load_contract(Path(cfg.base_dir) / feat.contract)

    found: list[str] = []
    for name, feat in cfg.features.items():
        if feat.contract is None:
            continue
        try:
            loaded = contract(name)
        except PortalError as exc:
            found.extend(_errors_of(exc))
            continue
        for _, _, target in (t for t in _targets(cfg) if t[0] == name):
            provider, _ = cfg.resolve_target(target)
            prov = cfg.providers.get(provider)
            try:
                ensure_servable(
                    loaded,
                    target,
                    (prov.kind if prov is not None else None) or provider,
                    options=prov.options if prov is not None else {},
                    provider=cfg.provider_settings(provider),
                )
            except ContractError as exc:
                found.append(str(exc))
            except ConfigError:
                continue  # reported by _providers
    return found
