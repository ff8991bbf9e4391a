"""What a call cost, from normalized `Usage` and a price table.

The shipped table (``prices.json`` beside this module) lists vendors' standard list prices in
USD per 1M tokens, each with the date it was checked. Negotiated prices come from config
(``[providers.X.prices."model"] input = ..., output = ...``) through `PriceTable.with_overrides`.

Cost never counts a token twice. `Usage.input_tokens` includes cached tokens, so::

    fresh input  = input_tokens - cached_input_tokens - cache_write_tokens   at input
    cache reads  = cached_input_tokens                                         at cached_input
    cache writes = cache_write_tokens                                          at cache_write
    output       = output_tokens (reasoning tokens are already inside it)     at output

A missing cache price bills at the input price (never cheaper than the vendor could charge).
An unknown model has no price: its cost is ``None`` (never 0) and a warning is logged once
per (provider, model).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portal.errors import ConfigError

if TYPE_CHECKING:
    from portal.contracts.responses import Usage

__all__ = ["DEFAULT_PRICES_PATH", "LongContextPrice", "Price", "PriceTable"]

logger = logging.getLogger("portal.metering")

DEFAULT_PRICES_PATH = Path(__file__).with_name("prices.json")
_PER_TOKEN = 1e-6  # prices are per 1M tokens
_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")

# What may follow a known model id and still be the same model: dated snapshots
# (-2025-04-14, -20251001), Bedrock versions (-v1:0), Vertex snapshots (@20251001), -latest,
# -preview(-MM-DD), -001. Anything else (-audio, -codex, -search) is a different product.
_SNAPSHOT_SUFFIX = re.compile(
    r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|latest|preview(?:-\d{2}-\d{2}(?:-\d{4})?)?"
    r"|exp(?:-\d{2}-\d{2})?|v\d+(?::\d+)?))+"
)
# Bedrock geographic inference-profile prefixes; "global." is priced separately.
_BEDROCK_GEO = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov)\.")


@dataclass(frozen=True, slots=True)
class LongContextPrice:
    """Prices that apply to the whole call once its input exceeds ``above_input_tokens``
    (e.g. Gemini 2.5 Pro above 200k). Missing ones keep the base price."""

    above_input_tokens: int
    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens for one model."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    checked: str | None = None  # ISO date the price was read, or "config"
    simulated: bool = False
    long_context: LongContextPrice | None = None

    def cost(self, usage: Usage) -> float:
        """USD for one reply's usage (see the module docstring for the formula)."""
        cached = max(usage.cached_input_tokens, 0)
        writes = max(usage.cache_write_tokens, 0)
        fresh = max(usage.input_tokens - cached - writes, 0)
        inp, out, read, write = self.input, self.output, self.cached_input, self.cache_write
        lc = self.long_context
        if lc is not None and usage.input_tokens > lc.above_input_tokens:
            inp = lc.input if lc.input is not None else inp
            out = lc.output if lc.output is not None else out
            read = lc.cached_input if lc.cached_input is not None else read
            write = lc.cache_write if lc.cache_write is not None else write
        total = (
            fresh * inp
            + cached * (read if read is not None else inp)
            + writes * (write if write is not None else inp)
            + max(usage.output_tokens, 0) * out
        )
        return total * _PER_TOKEN


class PriceTable:
    """Prices by provider (config key or kind) and model id. Immutable; overrides make a copy."""

    def __init__(self, providers: Mapping[str, Mapping[str, Price]]) -> None:
        self._models: dict[str, dict[str, Price]] = {
            p.lower(): {m.lower(): price for m, price in models.items()}
            for p, models in providers.items()
        }
        # longest first, so "gpt-4.1-mini" wins over "gpt-4.1"
        self._by_length: dict[str, list[str]] = {
            p: sorted((m for m in models if m != "*"), key=len, reverse=True)
            for p, models in self._models.items()
        }
        self._memo: dict[tuple[str, str], Price | None] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The table in ``path`` (default: the shipped one), parsed once per path."""
        key = str(Path(path) if path is not None else DEFAULT_PRICES_PATH)
        with _load_lock:
            table = _loaded.get(key)
            if table is None:
                table = cls.from_dict(_read_json(key), source=key)
                _loaded[key] = table
        return table

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "prices") -> PriceTable:
        """Build from the ``prices.json`` shape; errors name the entry and the field."""
        providers = data.get("providers")
        if not isinstance(providers, Mapping):
            raise ConfigError(f"{source}: missing 'providers' table")
        out: dict[str, dict[str, Price]] = {}
        for pname, pdata in providers.items():
            models = pdata.get("models") if isinstance(pdata, Mapping) else None
            if not isinstance(models, Mapping):
                raise ConfigError(f"{source}: providers.{pname}: missing 'models' table")
            out[pname] = {
                m: _price_from(entry, f"{source}: providers.{pname}.models.{m!r}")
                for m, entry in models.items()
            }
        return cls(out)

    def with_overrides(
        self, overrides: Mapping[str, Mapping[str, Mapping[str, Any]]]
    ) -> PriceTable:
        """A copy with negotiated prices: ``{provider: {model: {"input": .., "output": ..}}}``,
        as in ``[providers.X.prices."model"]``. A partial override of a known model keeps its
        other prices; a new model needs both ``input`` and ``output``."""
        merged: dict[str, dict[str, Price]] = {p: dict(m) for p, m in self._models.items()}
        for provider, models in overrides.items():
            if not isinstance(models, Mapping):
                raise ConfigError(
                    f"providers.{provider}.prices: expected a table of models, "
                    f"got {type(models).__name__}"
                )
            target = merged.setdefault(provider.lower(), {})
            for model, fields in models.items():
                where = f"providers.{provider}.prices.{model!r}"
                if not isinstance(fields, Mapping):
                    raise ConfigError(
                        f"{where}: expected a table like {{ input = 0.4, output = 1.6 }} "
                        f"(USD per 1M tokens), got {type(fields).__name__}"
                    )
                unknown = set(fields) - set(_PRICE_FIELDS)
                if unknown:
                    raise ConfigError(
                        f"{where}: unknown field(s) {sorted(unknown)}; "
                        f"allowed: {', '.join(_PRICE_FIELDS)}"
                    )
                base = target.get(model.lower()) or self.lookup(provider, model)
                if base is None:
                    missing = [f for f in ("input", "output") if f not in fields]
                    if missing:
                        raise ConfigError(
                            f"{where}: {' and '.join(missing)} required for a model the "
                            "shipped price table does not know"
                        )
                    target[model.lower()] = _price_from({**fields, "checked": "config"}, where)
                else:
                    values: dict[str, Any] = {f: _number(fields[f], f"{where}.{f}") for f in fields}
                    values.update(checked="config", long_context=None)
                    target[model.lower()] = replace(base, **values)
        return PriceTable(merged)

    # ------------------------------------------------------------------ lookup
    def lookup(self, provider: str, model: str, kind: str | None = None) -> Price | None:
        """The price of ``model`` at ``provider`` (a config key such as "together"), falling
        back to its ``kind`` (e.g. "azure-openai"). Exact id first, then the longest known id
        that the model extends by a snapshot suffix (``gpt-4.1-mini-2025-04-14``,
        ``claude-haiku-4-5-20251001``, ``us.anthropic.claude-...-v1:0``)."""
        key = (f"{provider}|{kind or ''}", model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._find(provider.lower(), model)
        if found is None and kind and kind.lower() != provider.lower():
            found = self._find(kind.lower(), model)
        with self._lock:
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = found
        return found

    def cost(
        self, provider: str, model: str, usage: Usage, kind: str | None = None
    ) -> float | None:
        """USD for ``usage``, or ``None`` (with a warning, once) when the model has no price."""
        price = self.lookup(provider, model, kind)
        if price is None:
            self._warn_unknown(provider, model)
            return None
        return price.cost(usage)

    def providers(self) -> list[str]:
        return sorted(self._models)

    def models(self, provider: str) -> dict[str, Price]:
        return dict(self._models.get(provider.lower(), {}))

    def _find(self, provider: str, model: str) -> Price | None:
        models = self._models.get(provider)
        if not models:
            return None
        for candidate in _candidates(provider, model):
            price = models.get(candidate)
            if price is not None:
                return price
            for known in self._by_length[provider]:
                if (
                    len(candidate) > len(known)
                    and candidate.startswith(known)
                    and _SNAPSHOT_SUFFIX.fullmatch(candidate, len(known)) is not None
                ):
                    return models[known]
        return models.get("*")

    def _warn_unknown(self, provider: str, model: str) -> None:
        key = (provider, model)
        if key in self._warned:
            return
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(
            "portal: no price for %s:%s; its cost is recorded as unknown (None). "
            'Fix: add [providers.%s.prices."%s"] input = ..., output = ... (USD per 1M tokens)',
            provider,
            model,
            provider,
            model,
        )


def _candidates(provider: str, model: str) -> list[str]:
    """Spellings of ``model`` to try, most specific first."""
    m = model.strip().lower()
    if "/" in m and m.startswith(("arn:", "models/")):
        m = m.rsplit("/", 1)[1]  # Bedrock ARNs, Gemini "models/gemini-2.5-flash"
    out = [m]
    if provider == "bedrock":
        stripped = _BEDROCK_GEO.sub("", m)
        if stripped != m:
            out.append(stripped)
    return out


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number of USD per 1M tokens, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where}: prices cannot be negative, got {value!r}")
    return float(value)


def _price_from(entry: Any, where: str) -> Price:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table of prices, got {type(entry).__name__}")
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigError(f"{where}: missing '{required}' (USD per 1M tokens)")
    lc_data = entry.get("long_context")
    long_context = None
    if lc_data is not None:
        if not isinstance(lc_data, Mapping) or "above_input_tokens" not in lc_data:
            raise ConfigError(f"{where}.long_context: needs 'above_input_tokens'")
        long_context = LongContextPrice(
            int(lc_data["above_input_tokens"]),
            **{
                f: _number(lc_data[f], f"{where}.long_context.{f}")
                for f in _PRICE_FIELDS
                if f in lc_data
            },
        )
    return Price(
        input=_number(entry["input"], f"{where}.input"),
        output=_number(entry["output"], f"{where}.output"),
        cached_input=(
            _number(entry["cached_input"], f"{where}.cached_input")
            if entry.get("cached_input") is not None
            else None
        ),
        cache_write=(
            _number(entry["cache_write"], f"{where}.cache_write")
            if entry.get("cache_write") is not None
            else None
        ),
        checked=entry.get("checked"),
        simulated=bool(entry.get("simulated", False)),
        long_context=long_context,
    )


def _read_json(path: str) -> Mapping[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ConfigError(f"price table {path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"price table {path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"price table {path}: expected a JSON object at the top")
    return data


_loaded: dict[str, PriceTable] = {}
_load_lock = threading.Lock()
