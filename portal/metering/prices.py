"""What a call cost, from normalized `Usage` and prices in USD per 1M tokens.

Where a price comes from, first match wins, and every `Price` says which (``Price.source``):

1. config: ``[providers.X.prices."model"] input = ..., output = ...`` (negotiated prices; a
   partial table keeps the source's other prices; ``priority``/``flex``/``batch`` sub-tables
   set the service-tier rates);
2. ``prices.json`` beside this module: only what genai-prices lacks, today the made-up
   prices of portal's simulated provider (``sim``);
3. `genai-prices` (the default source, see `portal.metering.price_source`): maintained list
   prices for the vendors' models, with cache, long-context, service-tier and batch rates.
   A provider whose ``base_url`` is on this machine or a private network is self-hosted:
   no vendor's list price applies to it.

Cost never counts a token twice. `Usage.input_tokens` includes cached tokens, so::

    fresh input      = input_tokens - cached_input_tokens - cache_write_tokens   at input
    cache reads      = cached_input_tokens                                         at cached_input
    1-hour writes    = cache_write_1h_tokens (part of cache_write_tokens)          at cache_write_1h
    5-minute writes  = the rest of cache_write_tokens                              at cache_write
    output           = output_tokens (reasoning tokens are already inside it)     at output
    cache storage    = cache_storage_token_hours (an explicit cache a call created)  at
                       cache_storage, per 1M tokens per hour (config only: Gemini's
                       storage fee is in no price source; without it, not counted and
                       one warning names the config key)

A missing cache-read or 5-minute-write price bills at the input price; a missing 1-hour-write
price at twice the input price (Anthropic's documented multiplier): never cheaper than the
vendor could charge. The reply's service tier (``Usage.service_tier``: priority, flex, batch)
selects that tier's rates; a tier without a known price bills at the standard rates and logs
one warning naming the config key that sets it. A vendor-reported cost
(``Usage.reported_cost_usd``, e.g. from a gateway) wins over any computed one.

An unknown model has no price: its cost is ``None`` (never 0) and one warning is logged per
model, naming the config key that sets its price.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portal.errors import ConfigError
from portal.price_overrides import RATE_FIELDS as _RATE_FIELDS
from portal.price_overrides import STORAGE_FIELD, TIER_NAMES, check_price_overrides
from portal.price_overrides import bad_number as _bad_number

if TYPE_CHECKING:
    from portal.contracts.responses import Usage
    from portal.metering.price_source import GenaiPrices

__all__ = [
    "DEFAULT_PRICES_PATH",
    "TIER_NAMES",
    "LongContextPrice",
    "Price",
    "PriceTable",
    "check_price_overrides",
]

logger = logging.getLogger("portal.metering")

DEFAULT_PRICES_PATH = Path(__file__).with_name("prices.json")
_PER_TOKEN = 1e-6  # prices are per 1M tokens
#: what vendors' replies call the standard tier
_STANDARD_TIERS = frozenset({"default", "standard", "auto", "on_demand", "on-demand"})
#: Anthropic documents 1-hour cache writes at 2x the base input price
_CACHE_1H_FALLBACK = 2.0

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
    cache_write_1h: float | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens for one model, where it came from, and its tier variants."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None  # 5-minute (the default TTL) cache writes
    cache_write_1h: float | None = None
    #: USD per 1M tokens per hour an explicit cache is stored (Gemini), from the config
    cache_storage: float | None = None
    checked: str | None = None  # ISO date a hand-kept price was read
    simulated: bool = False
    long_context: tuple[LongContextPrice, ...] = ()
    #: "priority", "flex", "batch" -> that tier's full price
    tiers: Mapping[str, Price] = field(default_factory=dict)
    #: "config", "genai-prices 0.2.5", "config + genai-prices 0.2.5", "prices.json"
    source: str = "prices.json"
    #: the entry it was found under ("anthropic/claude-sonnet-4-5"), for humans
    model_id: str | None = None

    def for_tier(self, tier: str | None) -> Price:
        """The price for a reply served at ``tier`` (standard names and None: this one)."""
        if tier is None or tier in _STANDARD_TIERS:
            return self
        found = self.tiers.get(tier)
        if found is not None:
            return found
        _warn_tier(self.model_id or "?", tier)
        return self

    def cost(self, usage: Usage) -> float:
        """USD for one reply's usage (see the module docstring for the formula)."""
        price = self.for_tier(usage.service_tier) if usage.service_tier else self
        cached = max(usage.cached_input_tokens, 0)
        writes = max(usage.cache_write_tokens, 0)
        writes_1h = min(max(usage.cache_write_1h_tokens, 0), writes)
        fresh = max(usage.input_tokens - cached - writes, 0)
        inp, out = price.input, price.output
        read, write, write_1h = price.cached_input, price.cache_write, price.cache_write_1h
        for lc in price.long_context:
            if usage.input_tokens > lc.above_input_tokens:
                inp = lc.input if lc.input is not None else inp
                out = lc.output if lc.output is not None else out
                read = lc.cached_input if lc.cached_input is not None else read
                write = lc.cache_write if lc.cache_write is not None else write
                write_1h = lc.cache_write_1h if lc.cache_write_1h is not None else write_1h
        total = (
            fresh * inp
            + cached * (read if read is not None else inp)
            + (writes - writes_1h) * (write if write is not None else inp)
            + writes_1h * (write_1h if write_1h is not None else _CACHE_1H_FALLBACK * inp)
            + max(usage.output_tokens, 0) * out
        )
        if usage.cache_storage_token_hours > 0:
            storage = price.cache_storage if price.cache_storage is not None else self.cache_storage
            if storage is None:
                _warn_storage(self.model_id or "?")
            else:
                total += usage.cache_storage_token_hours * storage
        return total * _PER_TOKEN

    def worst_case(self, input_tokens: int, output_tokens: int) -> float:
        """The most ``input_tokens`` in and ``output_tokens`` out can cost at this price:
        the dearest tier, the long-context rates, and every input token a 1-hour cache
        write (the dearest input a vendor bills). Used to reserve budget before sending."""
        most = 0.0
        for price in (self, *self.tiers.values()):
            inp, out = price.input, price.output
            write, write_1h = price.cache_write, price.cache_write_1h
            for lc in price.long_context:
                if input_tokens > lc.above_input_tokens:
                    inp = lc.input if lc.input is not None else inp
                    out = lc.output if lc.output is not None else out
                    write = lc.cache_write if lc.cache_write is not None else write
                    write_1h = lc.cache_write_1h if lc.cache_write_1h is not None else write_1h
            dearest_in = max(inp, write or 0.0, write_1h or 0.0)
            most = max(most, input_tokens * dearest_in + output_tokens * out)
        return most * _PER_TOKEN

    def rates(self) -> dict[str, float | None]:
        """The per-1M rates by name (``portal prices show``)."""
        return {f: getattr(self, f) for f in _RATE_FIELDS}


class PriceTable:
    """Prices by provider (config key or kind) and model id: config overrides over
    ``prices.json`` and genai-prices. Immutable; `with_overrides` makes a copy."""

    def __init__(
        self,
        providers: Mapping[str, Mapping[str, Price]],
        *,
        overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        base_urls: Mapping[str, str] | None = None,
        genai: GenaiPrices | bool | None = True,
    ) -> None:
        """``providers``: the hand-kept table (``prices.json``'s shape, parsed);
        ``overrides``: config price tables by provider name; ``base_urls``: provider name ->
        its base URL (finds OpenAI-compatible gateways in genai-prices); ``genai``: True for
        the shared genai-prices source (if installed), False for none."""
        self._models: dict[str, dict[str, Price]] = {
            p.lower(): {m.lower(): price for m, price in models.items()}
            for p, models in providers.items()
        }
        self._overrides: dict[str, dict[str, dict[str, Any]]] = {
            p.lower(): {m.lower(): dict(f) for m, f in models.items()}
            for p, models in (overrides or {}).items()
        }
        self._base_urls = {k.lower(): v for k, v in (base_urls or {}).items()}
        self._genai_arg = genai
        self._memo: dict[tuple[str, str, str], Price | None] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The hand-kept table in ``path`` (default: the shipped one) over genai-prices,
        parsed once per path."""
        key = str(Path(path) if path is not None else DEFAULT_PRICES_PATH)
        with _load_lock:
            table = _loaded.get(key)
            if table is None:
                table = cls.from_dict(_read_json(key), source=key)
                _loaded[key] = table
        return table

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str = "prices", genai: bool = True
    ) -> PriceTable:
        """Build from the ``prices.json`` shape; errors name the entry and the field."""
        providers = data.get("providers")
        if not isinstance(providers, Mapping):
            raise ConfigError(f"{source}: missing 'providers' table")
        out: dict[str, dict[str, Price]] = {}
        label = Path(source).name if source.endswith(".json") else source
        for pname, pdata in providers.items():
            models = pdata.get("models") if isinstance(pdata, Mapping) else None
            if not isinstance(models, Mapping):
                raise ConfigError(f"{source}: providers.{pname}: missing 'models' table")
            out[pname] = {
                m: replace(
                    _price_from(entry, f"{source}: providers.{pname}.models.{m!r}"),
                    source=label,
                    model_id=f"{pname}/{m}",
                )
                for m, entry in models.items()
            }
        return cls(out, genai=genai)

    @classmethod
    def for_config(cls, config: Any) -> PriceTable:
        """The table a client uses: the shipped sources plus the config's ``prices`` tables
        and its providers' base URLs."""
        overrides = {n: p.prices for n, p in config.providers.items() if p.prices}
        urls = {n: p.base_url for n, p in config.providers.items() if p.base_url}
        return cls.load().with_overrides(overrides, base_urls=urls)

    def with_overrides(
        self,
        overrides: Mapping[str, Mapping[str, Mapping[str, Any]]],
        base_urls: Mapping[str, str] | None = None,
    ) -> PriceTable:
        """A copy with negotiated prices: ``{provider: {model: {"input": .., "output": ..,
        "priority": {...}}}}``, as in ``[providers.X.prices."model"]``. A partial table of a
        model a source knows keeps that source's other prices."""
        problems: list[str] = []
        for provider, models in overrides.items():
            problems += check_price_overrides(models, f"providers.{provider}.prices")
        if problems:
            raise ConfigError("\n".join(problems), problems)
        merged = {p: {m: dict(f) for m, f in ms.items()} for p, ms in self._overrides.items()}
        for provider, models in overrides.items():
            target = merged.setdefault(provider.lower(), {})
            for model, fields in models.items():
                target[model.lower()] = dict(fields)
        return PriceTable(
            self._models,
            overrides=merged,
            base_urls={**self._base_urls, **(base_urls or {})},
            genai=self._genai_arg,
        )

    # ------------------------------------------------------------------ lookup
    @property
    def genai(self) -> GenaiPrices | None:
        if self._genai_arg is True:
            from portal.metering.price_source import genai_prices

            return genai_prices()
        if self._genai_arg is False or self._genai_arg is None:
            return None
        return self._genai_arg

    def lookup(self, provider: str, model: str, kind: str | None = None) -> Price | None:
        """The price of ``model`` at ``provider`` (a config key such as "together"), falling
        back to its ``kind`` (e.g. "azure-openai"): config, then the hand-kept table, then
        genai-prices. Snapshot suffixes (``gpt-4.1-mini-2025-04-14``,
        ``claude-haiku-4-5-20251001``) resolve to their model; Bedrock ARNs and Gemini's
        ``models/`` prefix are stripped. Memoized: call it once per target, not per call."""
        key = (provider, kind or "", model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._resolve(provider.lower(), (kind or provider).lower(), model)
        with self._lock:
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _resolve(self, provider: str, kind: str, model: str) -> Price | None:
        names = (provider,) if kind == provider else (provider, kind)
        source = self._source_price(names, model)
        for name in names:
            entry = _match(self._overrides.get(name, {}), _candidates(name, model))
            if entry is not None:
                label, fields = entry
                return _apply_override(fields, source, f"{name}/{label}")
        return source

    def _source_price(self, names: tuple[str, ...], model: str) -> Price | None:
        # the hand-kept table holds only what genai-prices lacks (the two never overlap), so
        # it goes first: a simulated or self-hosted target never loads genai-prices' data
        for name in names:
            models = self._models.get(name)
            if not models:
                continue
            entry = _match(models, _candidates(name, model))
            if entry is not None:
                return entry[1]
            if "*" in models:
                return models["*"]
        base_url = self._base_urls.get(names[0])
        if base_url is not None and _self_hosted(base_url):
            return None
        genai = self.genai
        if genai is not None:
            pid = genai.provider_id(names, base_url)
            if pid is not None:
                for candidate in _candidates(names[-1], model):
                    found = genai.lookup(pid, candidate)
                    if found is not None:
                        return found  # type: ignore[no-any-return]
        return None

    def cost(
        self, provider: str, model: str, usage: Usage, kind: str | None = None
    ) -> float | None:
        """USD for ``usage``, or ``None`` (with a warning, once) when the model has no price.
        A cost the vendor reported wins over the computed one."""
        if usage.reported_cost_usd is not None:
            return usage.reported_cost_usd
        price = self.lookup(provider, model, kind)
        if price is None:
            self.warn_unknown(provider, model)
            return None
        return price.cost(usage)

    def close_matches(self, provider: str, model: str, kind: str | None = None) -> list[str]:
        """Known model ids near ``model`` for ``provider`` ("did you mean")."""
        names = [provider.lower()] + ([kind.lower()] if kind else [])
        known: set[str] = set()
        for name in names:
            known.update(self._overrides.get(name, {}))
            known.update(m for m in self._models.get(name, {}) if m != "*")
        genai = self.genai
        if genai is not None:
            pid = genai.provider_id(tuple(names), self._base_urls.get(names[0]))
            if pid is not None:
                known.update(genai.models(pid))
        return difflib.get_close_matches(model.lower(), sorted(known), n=5, cutoff=0.5)

    def providers(self) -> list[str]:
        return sorted(self._models)

    def models(self, provider: str) -> dict[str, Price]:
        """The hand-kept entries of ``provider``."""
        return dict(self._models.get(provider.lower(), {}))

    def warn_unknown(self, provider: str, model: str) -> None:
        """Log the documented unknown-price warning, once per (provider, model) per table."""
        key = (provider, model)
        if key in self._warned:
            return
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        partial = _match(self._overrides.get(provider.lower(), {}), [model.lower()])
        hint = (
            " (its config table sets only some prices and no source knows the rest: add "
            "both input and output)"
            if partial is not None
            else ""
        )
        logger.warning(
            "portal: no price for %s:%s; its cost is recorded as unknown (None)%s. "
            'Fix: add [providers.%s.prices."%s"] input = ..., output = ... (USD per 1M tokens)',
            provider,
            model,
            hint,
            provider,
            model,
        )


def unknown_price_fix(provider: str, model: str) -> str:
    """The config key that sets a price, as error messages name it."""
    return f'[providers.{provider}.prices."{model}"] input = ..., output = ... (USD per 1M tokens)'


def _match(table: Mapping[str, Any], candidates: list[str]) -> tuple[str, Any] | None:
    """``table``'s entry for the first candidate: exact id, else the longest id the
    candidate extends by a snapshot suffix."""
    if not table:
        return None
    for candidate in candidates:
        if candidate in table:
            return candidate, table[candidate]
        for known in sorted(table, key=len, reverse=True):
            if (
                known != "*"
                and len(candidate) > len(known)
                and candidate.startswith(known)
                and _SNAPSHOT_SUFFIX.fullmatch(candidate, len(known)) is not None
            ):
                return known, table[known]
    return None


def _self_hosted(base_url: str) -> bool:
    """A server on this machine or a private network: no vendor's list price applies."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith((".local", ".internal", ".localhost")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


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


def _apply_override(fields: Mapping[str, Any], base: Price | None, label: str) -> Price | None:
    """A config table over the source's price (None if neither gives input and output)."""
    rates: dict[str, Any] = {f: float(fields[f]) for f in _RATE_FIELDS if f in fields}
    if fields.get(STORAGE_FIELD) is not None:
        rates[STORAGE_FIELD] = float(fields[STORAGE_FIELD])
    tier_fields = {t: fields[t] for t in TIER_NAMES if t in fields}
    if base is None:
        if "input" not in rates or "output" not in rates:
            return None
        price = Price(**rates, source="config", model_id=label)
        base_tiers: Mapping[str, Price] = {}
    else:
        source = "config" if {"input", "output"} <= set(rates) else f"config + {base.source}"
        base_tiers = base.tiers
        price = replace(base, **rates, source=source, model_id=label)
        if set(rates) - {STORAGE_FIELD}:
            price = replace(price, long_context=())  # a negotiated rate replaces the tiers
    tiers = dict(base_tiers)
    for tier, values in tier_fields.items():
        over: dict[str, Any] = {f: float(values[f]) for f in _RATE_FIELDS if f in values}
        start = base_tiers.get(tier) or replace(price, tiers={})
        tiers[tier] = replace(start, **over, source="config", long_context=())
    return replace(price, tiers=tiers)


def _number(value: Any, where: str) -> float:
    bad = _bad_number(value)
    if bad is not None:
        raise ConfigError(f"{where}: {bad}")
    return float(value)


def _price_from(entry: Any, where: str) -> Price:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table of prices, got {type(entry).__name__}")
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigError(f"{where}: missing '{required}' (USD per 1M tokens)")
    lc_data = entry.get("long_context")
    long_context: tuple[LongContextPrice, ...] = ()
    if lc_data is not None:
        if not isinstance(lc_data, Mapping) or "above_input_tokens" not in lc_data:
            raise ConfigError(f"{where}.long_context: needs 'above_input_tokens'")
        long_context = (
            LongContextPrice(
                int(lc_data["above_input_tokens"]),
                **{
                    f: _number(lc_data[f], f"{where}.long_context.{f}")
                    for f in _RATE_FIELDS
                    if f in lc_data
                },
            ),
        )
    optional: dict[str, Any] = {
        f: _number(entry[f], f"{where}.{f}")
        for f in ("cached_input", "cache_write", "cache_write_1h", STORAGE_FIELD)
        if entry.get(f) is not None
    }
    return Price(
        input=_number(entry["input"], f"{where}.input"),
        output=_number(entry["output"], f"{where}.output"),
        **optional,
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


_warned_tiers: set[tuple[str, str]] = set()
_warned_storage: set[str] = set()


def _warn_storage(model_id: str) -> None:
    if model_id in _warned_storage:
        return
    _warned_storage.add(model_id)
    provider, _, model = model_id.partition("/")
    logger.warning(
        "portal: %s created an explicit prompt cache, whose storage (billed per token-hour) "
        'has no known price and is not counted. Fix: add [providers.%s.prices."%s"] '
        "cache_storage = ... (USD per 1M tokens per hour)",
        model_id,
        provider,
        model,
    )


def _warn_tier(model_id: str, tier: str) -> None:
    key = (model_id, tier)
    if key in _warned_tiers:
        return
    _warned_tiers.add(key)
    provider, _, model = model_id.partition("/")
    logger.warning(
        "portal: %s replied at service tier %r, which has no known price; billed at the "
        'standard rates. Fix: add [providers.%s.prices."%s".%s] input = ..., output = ...',
        model_id,
        tier,
        provider,
        model,
        tier if tier in TIER_NAMES else "priority",
    )


_loaded: dict[str, PriceTable] = {}
_load_lock = threading.Lock()
