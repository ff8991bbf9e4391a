"""`portal config check`: load the config and build every provider, listing what is wrong."""

from __future__ import annotations

import sys

__all__ = ["config_check"]


def config_check(path: str) -> int:
    """``portal config check``: 0 when the file loads and every provider builds, else 1."""
    from portal.config import load_config
    from portal.errors import ConfigError

    try:
        cfg = load_config(path)
        _check_providers(cfg)
    except ConfigError as exc:
        print(f"{path}: {len(exc.errors)} problem(s)", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{path}: ok ({len(cfg.providers)} provider(s), {len(cfg.features)} feature(s))")
    return 0


def _check_providers(cfg: object) -> None:
    """Build every configured adapter, so kind-specific options are checked too."""
    from portal.config import PortalConfig
    from portal.errors import ConfigError
    from portal.providers.registry import adapter_class

    assert isinstance(cfg, PortalConfig)
    problems: list[str] = []
    for name in cfg.providers:
        settings = cfg.provider_settings(name)
        try:
            adapter_class(settings.kind)(settings)
        except ConfigError as exc:
            problems.extend(exc.errors)
    problems.extend(_policy_problems(cfg))
    if problems:
        raise ConfigError("\n".join(problems), problems)


def _policy_problems(cfg: object) -> list[str]:
    """Targets a feature can reach that sit outside its data-path policy (``allowed``)."""
    from portal.config import PortalConfig

    assert isinstance(cfg, PortalConfig)
    found = []
    for name, feat in cfg.features.items():
        if feat.allowed is None:
            continue
        targets = [feat.primary, *feat.fallbacks]
        if feat.canary is not None:
            targets.append(feat.canary.target)
        for target in targets:
            provider, _ = cfg.resolve_target(target)
            settings = cfg.provider_settings(provider)
            regions, tags = feat.allowed.regions, feat.allowed.tags
            if regions is not None and settings.region not in regions:
                found.append(
                    f'features."{name}".allowed: target {target} is in region '
                    f"{settings.region!r}, outside the allowed regions {regions}"
                )
            if tags is not None and not set(tags) <= set(settings.tags):
                missing = sorted(set(tags) - set(settings.tags))
                found.append(
                    f'features."{name}".allowed: target {target} lacks the required tag(s) '
                    f"{missing}"
                )
    return found
