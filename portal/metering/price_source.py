"""The default price source: `genai-prices`, Pydantic's maintained price database.

It ships its data inside the package (no network), and knows list prices for far more
vendors and models than portal could keep by hand: cache reads, 5-minute and 1-hour cache
writes, long-context tiers, service tiers (priority, flex) and batch rates. Importing its
data takes about half a second, so this module imports it on the first price lookup only
(never with ``import portal``), and callers keep the `Price` it returns: one lookup per
target, not per call.

Lookups go by the vendor genai-prices calls the provider (``anthropic``, ``aws``, ...) or by
the provider's ``base_url`` (an OpenAI-compatible gateway such as Together or Groq); a model
of a self-hosted server (an unknown base URL) is never priced at some vendor's rate.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["GENAI_PROVIDER_IDS", "GenaiPrices", "genai_prices"]

#: portal provider kind -> genai-prices provider id
GENAI_PROVIDER_IDS: Mapping[str, str] = {
    "openai": "openai",
    "openai-responses": "openai",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "bedrock": "aws",
    "gemini": "google",
    "vertex": "google",
    "mistral": "mistral",
    "cohere": "cohere",
}

#: portal tier name -> genai-prices price context
TIER_CONTEXTS: Mapping[str, Mapping[str, str]] = {
    "priority": {"service_tier": "priority"},
    "flex": {"service_tier": "flex"},
    "batch": {"processing": "batch"},
}

_KEYS = {  # genai-prices price key -> Price field
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
}


class GenaiPrices:
    """Resolves ``(provider id or base URL, model)`` to a portal `Price`, once each."""

    def __init__(self) -> None:
        self._snapshot: Any = None
        self._ids: frozenset[str] | None = None
        self.version = _version()
        self.source = f"genai-prices {self.version}"
        self._lock = threading.Lock()

    def _data(self) -> Any:
        if self._snapshot is None:
            with self._lock:
                if self._snapshot is None:
                    from genai_prices import data_snapshot

                    self._snapshot = data_snapshot.get_snapshot()
        return self._snapshot

    def provider_id(self, names: tuple[str, ...], base_url: str | None) -> str | None:
        """The genai-prices provider for a portal provider: its kind's mapping, its own name
        (``together``, ``groq``), or its base URL; None if genai-prices knows none of them."""
        snap = self._data()
        ids = self._ids
        if ids is None:
            ids = self._ids = frozenset(p.id for p in snap.providers)
        for name in names:
            # exact ids only: genai-prices' fuzzy provider match would take "openai-compatible"
            # or "my-openai-proxy" for OpenAI and bill a self-hosted model at OpenAI's rates
            pid = GENAI_PROVIDER_IDS.get(name, name)
            if pid in ids:
                return pid
        if base_url:
            try:
                return str(snap.find_provider(None, None, base_url).id)
            except LookupError:
                return None
        return None

    def lookup(self, provider_id: str, model: str) -> Any:
        """The portal `Price` of ``model`` at genai-prices' ``provider_id``, or None."""
        from portal.metering.prices import Price

        try:
            provider, info = self._data().find_provider_model(model, None, provider_id, None)
        except LookupError:
            return None
        now = _dt.datetime.now(_dt.UTC)
        base = _fields(info.get_prices(now))
        if base is None:
            return None
        tiers: dict[str, Price] = {}
        for tier, context in TIER_CONTEXTS.items():
            if _has_variant(info, context, now):
                priced = _fields(info.get_prices(now, dict(context)))
                if priced is not None:
                    tiers[tier] = Price(**priced, source=self.source)
        return Price(
            **base,
            source=self.source,
            model_id=f"{provider.id}/{info.id}",
            tiers=tiers,
        )

    def models(self, provider_id: str) -> list[str]:
        """Model ids genai-prices lists for ``provider_id`` (for "did you mean")."""
        try:
            provider = self._data().find_provider(None, provider_id, None)
        except LookupError:
            return []
        return [m.id for m in provider.models]


def _has_variant(info: Any, context: Mapping[str, str], now: _dt.datetime) -> bool:
    for variant in info.price_variants or ():
        if variant.when != dict(context):
            continue
        if variant.constraint is not None and not variant.constraint.active(now):
            continue
        if any(v is not None for v in variant.prices.__dict__.values()):
            return True
    return False


def _fields(model_price: Any) -> dict[str, Any] | None:
    """genai-prices `ModelPrice` -> `Price` keyword arguments; None if it is not priced per
    input token (images, per-request or per-second models)."""
    from portal.metering.prices import LongContextPrice

    raw: dict[str, Any] = {field: getattr(model_price, key, None) for key, field in _KEYS.items()}
    if raw["input"] is None:
        return None
    starts = sorted({t.start for v in raw.values() if _tiered(v) for t in v.tiers})
    out: dict[str, Any] = {f: _base(v) for f, v in raw.items()}
    if out["output"] is None:
        out["output"] = 0.0  # embeddings: no output tokens
    if starts:
        out["long_context"] = tuple(
            LongContextPrice(
                start,
                **{f: _at(v, start) for f, v in raw.items() if _tiered(v)},
            )
            for start in starts
        )
    return out


def _tiered(value: Any) -> bool:
    return value is not None and hasattr(value, "tiers")


def _base(value: Any) -> float | None:
    if value is None:
        return None
    return float(value.base if _tiered(value) else value)


def _at(value: Any, start: int) -> float:
    """The rate a tiered price charges once the input is above ``start``."""
    price: Decimal = value.base
    for tier in sorted(value.tiers, key=lambda t: t.start):
        if tier.start <= start:
            price = tier.price
    return float(price)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genai-prices")
    except PackageNotFoundError:
        return "unknown"


_shared: GenaiPrices | None = None
_shared_lock = threading.Lock()


def genai_prices() -> GenaiPrices | None:
    """The process's genai-prices source (its data loads on the first lookup), or None when
    the package is not installed (portal then prices from config and its own table)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                try:
                    import genai_prices  # noqa: F401
                except ImportError:
                    return None
                _shared = GenaiPrices()
    return _shared
