"""`portal config check`: load the config and run the checks a client runs when it starts
(`portal.config_check`), listing every problem."""

from __future__ import annotations

import sys

__all__ = ["config_check"]


def config_check(path: str) -> int:
    """``portal config check``: 0 when a client would accept the file, else 1."""
    from portal.config import load_config
    from portal.config_check import check_config
    from portal.errors import ConfigError

    try:
        cfg = load_config(path)
        check_config(cfg)
    except ConfigError as exc:
        print(f"{path}: {len(exc.errors)} problem(s)", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{path}: ok ({len(cfg.providers)} provider(s), {len(cfg.features)} feature(s))")
    for name, feat in cfg.features.items():
        if feat.hedge is not None and feat.hedge.streams:
            print(
                f"  note: features.{name}.hedge.streams races streams, which needs "
                "portal.AsyncClient: a sync portal.Client refuses this config"
            )
    return 0
