"""The shape of a provider's ``prices`` table in the config: which fields and service tiers
it may have, and what is wrong with one (each problem names the key and the fix). The config
checks its own tables with it; `portal.metering.prices` reads the same fields."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["RATE_FIELDS", "STORAGE_FIELD", "TIER_NAMES", "bad_number", "check_price_overrides"]

#: the rates of one model, in USD per 1M tokens
RATE_FIELDS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
#: the storage of an explicit prompt cache (Gemini), in USD per 1M tokens per hour
STORAGE_FIELD = "cache_storage"
#: service tiers a price can name (config sub-tables) and a reply can report
TIER_NAMES = ("priority", "flex", "batch")


def check_price_overrides(models: Any, where: str) -> list[str]:
    """Problems with one provider's ``prices`` table, each naming the key and the fix
    (used by config validation, so ``Client()`` and ``portal config check`` agree)."""
    if not isinstance(models, Mapping):
        return [f"{where}: expected a table of models, got {type(models).__name__}"]
    problems: list[str] = []
    for model, fields in models.items():
        at = f'{where}."{model}"'
        if not isinstance(fields, Mapping):
            problems.append(
                f"{at}: expected a table like {{ input = 0.4, output = 1.6 }} "
                f"(USD per 1M tokens), got {type(fields).__name__}"
            )
            continue
        for name, value in fields.items():
            if name in TIER_NAMES:
                if not isinstance(value, Mapping):
                    problems.append(
                        f"{at}.{name}: expected a table like {{ input = 0.8, output = 3.2 }}, "
                        f"got {type(value).__name__}"
                    )
                    continue
                for sub, v in value.items():
                    if sub not in RATE_FIELDS:
                        problems.append(_unknown_field(f"{at}.{name}", sub, tier=True))
                    elif (bad := bad_number(v)) is not None:
                        problems.append(f"{at}.{name}.{sub}: {bad}")
            elif name not in RATE_FIELDS and name != STORAGE_FIELD:
                problems.append(_unknown_field(at, name, tier=False))
            elif (bad := bad_number(value)) is not None:
                problems.append(f"{at}.{name}: {bad}")
    return problems


def _unknown_field(at: str, name: str, tier: bool) -> str:
    """``tier``: the key is inside a tier table (only rates allowed there)."""
    allowed = RATE_FIELDS if tier else (*RATE_FIELDS, STORAGE_FIELD, *TIER_NAMES)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    what = "price field" if tier else "price field or service tier"
    tiers = "" if tier else f"; service tiers: {', '.join(TIER_NAMES)}"
    storage = "" if tier else f"; {STORAGE_FIELD}: USD per 1M tokens per hour"
    return (
        f"{at}: unknown {what} {name!r}{hint} "
        f"(prices: {', '.join(RATE_FIELDS)}, in USD per 1M tokens{storage}{tiers})"
    )


def bad_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number of USD per 1M tokens, got {value!r}"
    if not math.isfinite(value):
        return f"expected a finite number of USD per 1M tokens, got {value!r}"
    if value < 0:
        return f"prices cannot be negative, got {value!r}"
    return None
