"""The meter: turns what the flows report (attempts, calls) into money and ledger rows.

It sits beside routing: the client hands it to the flows as part of their hooks; it never
calls into routing or providers. Costs come from the price table (with the config's
negotiated overrides); rows go to the ledger in the background; a small in-memory summary
serves `portal demo` and tests without reading the ledger back. With ``telemetry`` on, the
same finished attempts and calls become OpenTelemetry spans and metrics (`portal.metering.otel`,
imported only then).
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portal.contracts.responses import Attempt, EmbedResponse, Response, Usage

if TYPE_CHECKING:
    from portal.metering.ledger import Ledger
    from portal.metering.otel import Telemetry
    from portal.metering.prices import Price, PriceTable

__all__ = ["Meter", "Summary"]


@dataclass(slots=True)
class Summary:
    """Running totals for one (feature, target, arm) group."""

    calls: int = 0
    errors: int = 0
    attempts: int = 0
    failovers: int = 0  # calls served after another target failed
    latencies_ms: list[float] = field(default_factory=list)  # a uniform sample, see _sample
    ttfts_ms: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unknown_cost: int = 0
    ttft_seen: int = 0  # TTFTs observed (ttfts_ms keeps a sample of them)


#: latencies kept per summary group: a uniform sample beyond this many, so a long-running
#: process keeps flat memory (percentiles from 10,000 samples are within a fraction of a %)
SAMPLE_SIZE = 10_000


def _sample(values: list[float], value: float, seen: int) -> None:
    """Reservoir sampling (algorithm R): ``seen`` counts ``value`` itself."""
    if len(values) < SAMPLE_SIZE:
        values.append(value)
    else:
        j = random.randrange(seen)
        if j < SAMPLE_SIZE:
            values[j] = value


#: distinct ``key=`` values whose ledger hash is kept: a hit saves a keyed BLAKE2b (0.5 µs,
#: twice a call); each entry costs about 200 bytes (100,000 took 19.6 MB, tracemalloc), so the
#: cache stays near 2 MB and is emptied when full
KEY_HASH_CACHE = 10_000


class Meter:
    def __init__(
        self,
        prices: PriceTable | None = None,
        ledger: Ledger | None = None,
        key_salt: str = "portal",
        kinds: dict[str, str] | None = None,
        keep_summary: bool = True,
        telemetry: bool | Telemetry = False,
    ) -> None:
        """``telemetry``: True builds a `Telemetry` on the global OpenTelemetry providers
        (needs the ``otel`` extra); or pass one built on your own providers."""
        self._prices = prices
        self.ledger = ledger
        self.key_salt = key_salt
        self.kinds = kinds or {}  # provider name -> kind, for price lookups
        self._price_cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.keep_summary = keep_summary
        self.summary: dict[tuple[str, str, str], Summary] = defaultdict(Summary)
        self._hashes: dict[str, str] = {}
        self.telemetry: Telemetry | None = None
        if telemetry is True:
            self.telemetry = _telemetry(self.kinds)
        elif telemetry is not False:
            self.telemetry = telemetry

    @property
    def prices(self) -> PriceTable:
        if self._prices is None:
            from portal.metering.prices import PriceTable

            self._prices = PriceTable.load()
        return self._prices

    def price(self, provider: str, model: str) -> Price | None:
        """The price of ``provider:model`` (config overrides applied), None if unknown.
        Resolved once per target and kept: the price sources are not read per call."""
        key = f"{provider}:{model}"
        try:
            return self._price_cache[key]  # type: ignore[no-any-return]
        except KeyError:
            price = self._price_cache[key] = self.prices.lookup(
                provider, model, kind=self.kinds.get(provider)
            )
            return price

    def warm(self, targets: list[tuple[str, str]]) -> None:
        """Resolve these targets' prices on a background thread, so the first call to each
        does not wait for the price source to load (genai-prices' data takes ~0.5 s)."""
        if not targets:
            return

        def resolve() -> None:
            for provider, model in targets:
                try:
                    self.price(provider, model)
                except Exception:  # a broken price source shows on the call; not here
                    return

        threading.Thread(target=resolve, name="portal-prices", daemon=True).start()

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        """USD for one reply: the vendor's own figure when it sent one, else computed from
        the price; None (and the documented warning, once per model) when unpriced."""
        if usage.reported_cost_usd is not None:
            return usage.reported_cost_usd
        price = self.price(provider, model)
        if price is None:
            self.warn_unknown(provider, model)
            return None
        return price.cost(usage)

    def warn_unknown(self, provider: str, model: str) -> None:
        """Log that ``provider:model`` has no price and how to set one, once per model."""
        self.prices.warn_unknown(provider, model)

    def provenance(
        self, provider: str, model: str, usage: Usage | None, cost: float | None
    ) -> tuple[str | None, str | None]:
        """(cost_source, price_source) of one attempt's cost: "vendor" when the reply said
        what it cost, "computed" from a price (and which source it came from), or
        (None, None) for an unknown cost."""
        if cost is None:
            return None, None
        if usage is not None and usage.reported_cost_usd is not None:
            return "vendor", None
        price = self.price(provider, model)
        return "computed", (price.source if price is not None else None)

    def tool_ran(self, name: str, started: float, result: Any) -> None:
        """One tool run of the tool loop ended: ``started`` is its ``time.perf_counter()``
        at the start, ``result`` what it returned or the exception it ended with."""
        if self.telemetry is not None:
            outcome = type(result).__name__ if isinstance(result, BaseException) else "ok"
            self.tool_span(name, (time.perf_counter() - started) * 1000.0, outcome)

    def tool_span(self, name: str, latency_ms: float, outcome: str = "ok") -> None:
        """Record one tool execution of the tool loop (an ``execute_tool`` span); a no-op
        unless telemetry is on. ``outcome``: "ok" or the error's class name."""
        if self.telemetry is not None:
            self.telemetry.tool_span(name, latency_ms, outcome)

    def key_hash(self, key: str | None) -> str | None:
        if key is None:
            return None
        h = self._hashes.get(key)
        if h is None:
            from portal.metering.ledger import hash_key

            h = hash_key(key, self.key_salt)
            if len(self._hashes) >= KEY_HASH_CACHE:
                self._hashes.clear()  # follow today's users, not the first ones ever seen
            self._hashes[key] = h
        return h

    # -- records --------------------------------------------------------------------------
    def attempt(
        self,
        *,
        call_id: str,
        operation: str,
        feature: str | None,
        contract_version: str | None,
        key: str | None,
        tenant: str | None,
        tags: dict[str, str],
        provider: str,
        model: str,
        arm: str,
        attempt: Attempt,
        started_at: float,
    ) -> None:
        if self.telemetry is not None:
            self.telemetry.attempt(
                call_id=call_id,
                operation=operation,
                feature=feature,
                arm=arm,
                provider=provider,
                model=model,
                target=attempt.target,
                number=attempt.number,
                outcome=attempt.outcome,
                error=attempt.error,
                usage=attempt.usage,
                cost_usd=attempt.cost_usd,
                latency_ms=attempt.latency_ms,
                started_at=started_at,
            )
        if self.ledger is None:
            return
        LedgerRecord = _record_class()
        u = attempt.usage or Usage()
        cost_source, price_source = self.provenance(
            provider, model, attempt.usage, attempt.cost_usd
        )
        self.ledger.record(
            LedgerRecord(
                ts=started_at,
                kind="attempt",
                call_id=call_id,
                operation=operation,  # type: ignore[arg-type]
                feature=feature,
                contract_version=contract_version,
                key_hash=self.key_hash(key),
                tenant=tenant,
                tags=tags,
                target=attempt.target,
                provider=provider,
                model=model,
                arm=arm,  # type: ignore[arg-type]
                attempt=attempt.number,
                outcome=attempt.outcome,
                error=attempt.error,
                status=attempt.status,
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cached_input_tokens=u.cached_input_tokens,
                cache_write_tokens=u.cache_write_tokens,
                reasoning_tokens=u.reasoning_tokens,
                cost_usd=attempt.cost_usd,
                latency_ms=attempt.latency_ms,
                ttft_ms=attempt.ttft_ms,
                estimated=u.estimated,
                cache_write_1h_tokens=u.cache_write_1h_tokens,
                cache_storage_token_hours=u.cache_storage_token_hours,
                service_tier=u.service_tier,
                cost_source=cost_source,
                price_source=price_source,
                cache_miss_expected=attempt.cache_miss_expected,
            )
        )

    def call(
        self,
        *,
        call_id: str,
        operation: str,
        feature: str | None,
        contract_version: str | None,
        key: str | None,
        tenant: str | None,
        tags: dict[str, str],
        arm: str,
        attempts: list[Attempt],
        response: Response | EmbedResponse | None,
        error: BaseException | None,
        cost_usd: float | None,
        latency_ms: float,
        started_at: float,
        action_id: str | None = None,
        span_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """One call row. ``action_id``: the user action it is part of (a tool loop's steps
        share the first call's id; None: the call is the whole action). ``span_attributes``
        go on its OpenTelemetry span only (e.g. the canary's step and why it last changed)."""
        target = (
            response.target
            if response is not None and response.target
            else (attempts[-1].target if attempts else "")
        )
        provider, _, model = (target or "").partition(":")
        usage = response.usage if response is not None else Usage()
        ttft = getattr(response, "ttft_ms", None)
        outcome = "ok" if error is None else "error"
        cancelled = ("CancelledError", "Cancelled", "GeneratorExit")
        if error is not None and type(error).__name__ in cancelled:
            outcome = "cancelled"
        if self.keep_summary:
            with self._lock:
                s = self.summary[(feature or "-", target or "-", arm)]
                s.calls += 1
                s.attempts += len(attempts)
                if len({a.target for a in attempts}) > 1:
                    s.failovers += 1
                if error is not None:
                    s.errors += 1
                else:
                    _sample(s.latencies_ms, latency_ms, s.calls - s.errors)
                    if ttft is not None:
                        s.ttft_seen += 1
                        _sample(s.ttfts_ms, ttft, s.ttft_seen)
                s.input_tokens += usage.input_tokens
                s.output_tokens += usage.output_tokens
                if cost_usd is None:
                    s.unknown_cost += 1
                else:
                    s.cost_usd += cost_usd
        if self.telemetry is not None:
            first = attempts[0].target if attempts else target
            self.telemetry.call(
                call_id=call_id,
                operation=operation,
                feature=feature,
                arm=arm,
                target=target or "",
                provider=provider,
                model=(first or "").partition(":")[2] or model,
                response_model=getattr(response, "model", None),
                finish_reason=getattr(response, "finish_reason", None),
                attempts=len(attempts),
                usage=usage if response is not None else None,
                cost_usd=cost_usd,
                error=None if error is None else type(error).__name__,
                outcome=outcome,
                latency_ms=latency_ms,
                started_at=started_at,
                extra=span_attributes,
            )
        if self.ledger is None:
            return
        LedgerRecord = _record_class()
        cost_source, price_source = self._call_provenance(attempts, cost_usd)
        self.ledger.record(
            LedgerRecord(
                ts=started_at,
                kind="call",
                call_id=call_id,
                action_id=action_id,
                operation=operation,  # type: ignore[arg-type]
                feature=feature,
                contract_version=contract_version,
                key_hash=self.key_hash(key),
                tenant=tenant,
                tags=tags,
                target=target or "",
                provider=provider,
                model=model,
                arm=arm,  # type: ignore[arg-type]
                attempt=len(attempts),
                outcome=outcome,  # type: ignore[arg-type]
                error=None if error is None else type(error).__name__,
                status=getattr(error, "status", None),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=cost_usd,
                latency_ms=latency_ms,
                ttft_ms=ttft,
                estimated=usage.estimated,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                cache_storage_token_hours=usage.cache_storage_token_hours,
                service_tier=usage.service_tier,
                cost_source=cost_source,
                price_source=price_source,
                cache_miss_expected=_answer_cache_miss(attempts, target),
            )
        )

    def _call_provenance(
        self, attempts: list[Attempt], cost: float | None
    ) -> tuple[str | None, str | None]:
        """A call's cost is "vendor" or "computed" when all its attempts' are, "mixed" when
        they differ; its price source lists the sources used."""
        if cost is None:
            return None, None
        kinds: set[str] = set()
        sources: list[str] = []
        for a in attempts:
            if a.cost_usd is None or (a.usage is None and not a.cost_usd):
                continue  # failed before a reply: nothing was priced
            provider, _, model = a.target.partition(":")
            kind, source = self.provenance(provider, model, a.usage, a.cost_usd)
            if kind is not None:
                kinds.add(kind)
            if source is not None and source not in sources:
                sources.append(source)
        if not kinds:
            return "computed", None
        return (kinds.pop() if len(kinds) == 1 else "mixed"), (", ".join(sources) or None)

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()


_RECORD: Any = None


def _record_class() -> Any:
    """`LedgerRecord`, imported on first use (not with the meter) and then kept: an import
    statement on the hot path costs a module lookup on every record."""
    global _RECORD
    if _RECORD is None:
        from portal.metering.ledger import LedgerRecord

        _RECORD = LedgerRecord
    return _RECORD


def _telemetry(kinds: dict[str, str]) -> Telemetry | None:
    try:
        from portal.metering.otel import Telemetry
    except ImportError:
        import logging

        from portal._extras import install_hint

        logging.getLogger("portal.metering").warning(
            "portal: [portal] telemetry = true but OpenTelemetry is not installed; "
            f"{install_hint('otel')} (telemetry stays off)"
        )
        return None
    return Telemetry(kinds=kinds)


def _answer_cache_miss(attempts: list[Attempt], target: str | None) -> str | None:
    """The call's expected cache loss: that of the attempt whose reply it returned."""
    for a in reversed(attempts):
        if a.target == target and a.outcome in ("ok", "invalid_output"):
            return a.cache_miss_expected
    return None
