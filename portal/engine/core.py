"""`Engine`: what every call of one client shares (config, providers, routing state, meter,
budgets, contracts, guard chains), and the metering side of a flow (`Recorder`)."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from portal.config import PortalConfig, load_config
from portal.config_check import check_config
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatArgs, ChatRequest, EmbedArgs
from portal.contracts.responses import Attempt, EmbedResponse, Response, Usage
from portal.effects import Flow
from portal.engine.feedback import record_feedback
from portal.engine.prepare import Refusal, flow_of, prepare_chat, prepare_embed
from portal.errors import ConfigError
from portal.metering.budgets import Budgets
from portal.metering.events import LedgerJournal
from portal.metering.meter import Meter
from portal.routing.call import Call, new_call_id
from portal.routing.control import RouteControl
from portal.routing.flow import chat_flow, embed_flow, stream_flow
from portal.routing.router import AdapterPool, Router, Target
from portal.routing.state import State, open_state

__all__ = ["ConfigSource", "Engine"]

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | PortalConfig | None


class Engine:
    """State and services shared by the calls of one client (sync or async alike). It is
    also the flows' `Recorder`: the price of an attempt, and each attempt and call metered."""

    def __init__(
        self,
        config: ConfigSource,
        *,
        ledger: Any = "default",
        transports: Mapping[str, Any] | None = None,
        meter: Meter | None = None,
        state: State | None = None,
    ) -> None:
        if config is None:
            cfg = PortalConfig()
        elif isinstance(config, PortalConfig):
            cfg = config
        elif isinstance(config, (str, os.PathLike, Mapping)):
            cfg = load_config(config)
        else:
            raise ConfigError(
                f"config: expected a path to portal.toml, a dict or a PortalConfig, got "
                f"{type(config).__name__}"
            )
        self.config = cfg
        self._contracts: dict[str, Any] = {}
        # the checks `portal config check` runs, all problems at once, before anything starts
        check_config(cfg, self._load_contract)
        if cfg.portal.log_level is not None:
            logging.getLogger("portal").setLevel(cfg.portal.log_level.upper())
        for name, prov in cfg.providers.items():
            if not prov.verify_tls:
                _warn_no_tls(name)
        self.adapters = AdapterPool(cfg)
        self.state = state if state is not None else open_state(cfg.portal.state)
        self.router = Router(cfg, self.adapters, self.state)
        self.transports = dict(transports or {})
        self.meter = meter or Meter(
            ledger=_open_ledger(cfg, ledger),
            key_salt=cfg.portal.key_salt,
            kinds={n: (p.kind or n) for n, p in cfg.providers.items()},
            prices=_price_table(cfg),
            telemetry=cfg.portal.telemetry,
        )
        self.journal = LedgerJournal(self.meter.ledger)
        self.router.canary.journal = self.journal
        self.budgets = Budgets(
            cfg,
            self.state,
            self.meter.price,
            warn_unknown=self.meter.warn_unknown,
            cache_ttl=_cache_creation_ttl,
        )
        self.meter.warm(_route_targets(cfg))
        self.control = RouteControl(cfg, self.router, self.cost)
        self._reply_limits: dict[str, tuple[Any, int]] = {}
        self._chains: dict[str, Any] = {}  # feature -> GuardChain, built once
        #: (feature, guard, stage, action) -> decisions; counts only, never the text
        self.guard_counts: Counter[tuple[str, str, str, str]] = Counter()
        #: runs shadow copies in the background (`portal.engine.shadow`; set by the client,
        #: None: no shadow copies are sent)
        self.shadows: Any = None
        #: per target, output schema and tools: why it cannot serve them (None: it can)
        self.servable_cache: dict[tuple[Any, ...], str | None] = {}

    def use_state(self, state: State) -> None:
        """Swap the routing state (tests inject a `MemoryState` with a fake clock)."""
        self.state.close()
        self.state = state
        self.router = Router(self.config, self.adapters, state)
        self.router.canary.journal = self.journal
        self.control = RouteControl(self.config, self.router, self.cost)

    # -- the flows' Recorder -----------------------------------------------------------------
    def cost(self, target: Target, usage: Usage) -> float | None:
        return self.meter.cost(target.provider, target.model, usage)

    def attempt(
        self, call: Call, target: Target, attempt: Attempt, error: BaseException | None
    ) -> None:
        self.meter.attempt(
            call_id=call.call_id,
            operation=call.operation,
            feature=call.route.feature,
            contract_version=call.contract_version,
            key=call.key,
            tenant=call.tenant,
            tags=call.tags,
            provider=target.provider,
            model=target.model,
            arm=call.route.arm,
            attempt=attempt,
            started_at=time.time() - attempt.latency_ms / 1000.0,
        )

    def call(
        self, call: Call, response: Response | EmbedResponse | None, error: BaseException | None
    ) -> None:
        self.budgets.settle(
            call.route.feature,
            call.tenant,
            call.cost_usd,
            call.budget_hold,
            final=call.operation == "embed",  # a chat's flow releases its hold when it ends
        )
        latency_ms = (time.perf_counter() - call.started) * 1000.0
        self.meter.call(
            call_id=call.call_id,
            operation=call.operation,
            feature=call.route.feature,
            contract_version=call.contract_version,
            key=call.key,
            tenant=call.tenant,
            tags=call.tags,
            arm=call.route.arm,
            attempts=call.attempts,
            response=response,
            error=error,
            cost_usd=call.cost_usd,
            latency_ms=latency_ms,
            action_id=call.action_id,
            started_at=time.time() - latency_ms / 1000.0,
            span_attributes=self._canary_span(call),
        )

    def _canary_span(self, call: Call) -> dict[str, Any] | None:
        """A canaried feature's call span names its arm, the live step and a step change."""
        route = call.route
        if self.meter.telemetry is None or route.canary_threshold is None or not route.feature:
            return None
        return self.router.canary.span_attributes(route.feature, route.arm)

    def feedback(self, call: str | Response, metric: str, value: float) -> None:
        """`Client.feedback`: the score into the ledger and, for a canary, its guard."""
        record_feedback(self.router.canary, self.journal, call, metric, value)

    def feedback_is_local(self, call: str | Response) -> bool:
        """True when recording feedback for ``call`` needs no ledger lookup."""
        return isinstance(call, Response) or self.router.canary.call_of(str(call)) is not None

    def refused(self, refusal: Refusal) -> None:
        """A call refused before any vendor was asked (an input guard or the budget refused
        it) is still a user action: its ledger row has no attempts, no cost and the error's
        class name."""
        self.meter.call(
            call_id=new_call_id(),
            operation=refusal.operation,
            feature=refusal.route.feature,
            contract_version=refusal.contract_version,
            key=refusal.key,
            tenant=refusal.tenant,
            tags=refusal.tags,
            arm=refusal.route.arm,
            attempts=[],
            response=None,
            error=refusal.error,
            cost_usd=0.0,
            latency_ms=0.0,
            started_at=time.time(),
        )

    def budget(self, call: Call, steps: int = 1) -> None:
        """Apply the feature budget's decision to ``call`` before anything is sent: raise
        `BudgetExceeded`, leave unpriced targets out, put the cheapest first, and keep the
        reservation the call settles against."""
        route = call.route
        decision = self.budgets.decide(
            route.feature,
            route.targets,
            call.request,
            call.tenant,
            steps=steps,
            deadline_s=call.time_left(time.perf_counter()),
        )
        if decision is None:
            return
        targets = decision.targets(
            route.targets,
            lambda t: (
                None
                if self.meter.price(t.provider, t.model) is None
                else self.budgets.estimate(t, call.request)
            ),
        )
        if targets != route.targets or decision.reasons:
            call.route = replace(
                route, targets=targets, reasons=[*route.reasons, *decision.reasons]
            )
        call.budget_hold = decision.reservation

    # -- the flow of one call ----------------------------------------------------------------
    def chat_flow(self, operation: str, output: Any, args: ChatArgs) -> Flow[Any]:
        """Prepare a ``chat`` or ``stream`` and return its flow (a refusal raises here)."""
        prepared = prepare_chat(self, operation, output, args)
        if isinstance(prepared, Refusal):
            self.refused(prepared)
            raise prepared.error
        return flow_of(self, prepared)

    def embed_flow(self, args: EmbedArgs) -> Flow[EmbedResponse]:
        """Prepare an ``embed`` and return its flow (a refusal raises here)."""
        prepared = prepare_embed(self, args)
        if isinstance(prepared, Refusal):
            self.refused(prepared)
            raise prepared.error
        return embed_flow(prepared, self.control, self)

    def shadow(self, call: Call, request: ChatRequest, output: OutputSpec | None) -> None:
        """Start the shadow copy ``call`` of a call whose primary is sent ``request``: a flow
        of its own, run in the background by the client's runner; its answer is dropped."""
        if self.shadows is None:
            return
        call.request = request
        once = stream_flow if call.operation == "stream" else chat_flow
        assert call.deadline is not None  # a shadow copy always has one
        self.shadows.launch(once(call, self.control, self, output), call.deadline)

    # -- what calls read -------------------------------------------------------------------
    def contract(self, feature: str | None) -> Any:
        """The feature's contract, loaded once (None without a feature or a contract)."""
        if feature is None:
            return None
        feat = self.router.feature(feature)
        if feat.contract is None:
            return None
        found = self._contracts.get(feature)
        return found if found is not None else self._load_contract(feature)

    def _load_contract(self, feature: str) -> Any:
        """Load (once) the contract of a feature that has one."""
        from portal.contracts.feature import load_contract

        path = Path(self.config.base_dir) / str(self.config.features[feature].contract)
        found = self._contracts[feature] = load_contract(path)
        return found

    def guard_chain(self, feature: str | None, override: Any) -> Any:
        """The call's guards: ``safety=`` (a list, a GuardChain, or False/[] for none) wins
        over the feature's ``safety = [...]``, whose chain is built once."""
        from portal.layers.safety import GuardChain

        if override is False:
            return None
        if override is not None:
            if isinstance(override, GuardChain):
                return override
            return GuardChain.from_config(override, where="safety=")
        feat = self.config.features.get(feature) if feature else None
        if feat is None or not feat.safety:
            return None
        assert feature is not None
        chain = self._chains.get(feature)
        if chain is None:
            chain = GuardChain.from_config(feat.safety, where=f'features."{feature}".safety')
            self._chains[feature] = chain
        return chain

    def count_guards(self, feature: str | None, decisions: Sequence[Any]) -> None:
        for d in decisions:
            self.guard_counts[(feature or "-", d.guard, d.stage, d.action)] += 1

    def transport_for(self, provider: str) -> Any:
        if provider in self.transports:
            return self.transports[provider]
        adapter = self.adapters.get(provider)
        make = getattr(adapter, "default_transport", None)
        return make() if make is not None else None

    def reply_limit(self, provider: str) -> int:
        """The provider option ``max_reply_bytes``: the largest reply body read (default
        64 MiB); a larger one is refused with `InvalidResponse`."""
        adapter = self.adapters.get(provider)
        found = self._reply_limits.get(provider)
        if found is None or found[0] is not adapter:  # per adapter: asked on every reply
            from portal.providers.bodies import DEFAULT_MAX_REPLY_BYTES, byte_limit

            limit = byte_limit(adapter.settings.options, "max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
            found = self._reply_limits[provider] = (adapter, limit)
        return found[1]

    def verify_for(self, provider: str) -> bool:
        prov = self.config.providers.get(provider)
        return True if prov is None else prov.verify_tls

    def close(self) -> None:
        self.meter.close()
        self.state.close()


def _cache_creation_ttl(target: Target, request: Any) -> float | None:
    """The lifetime of the prompt cache ``target``'s adapter would create before sending
    ``request`` (budgets reserve its creation and storage), or None."""
    if not isinstance(request, ChatRequest):
        return None
    return target.adapter.cache_creation_ttl(request, target.model)


def _warn_no_tls(provider: str) -> None:
    """A config that turns TLS verification off is never silent: a warning and a log record,
    each time a client is built from it."""
    import warnings

    message = (
        f"portal: TLS certificate verification is DISABLED for provider {provider!r} "
        "(verify_tls = false): traffic and API keys can be intercepted. Only do this against "
        "local test servers."
    )
    logging.getLogger("portal").warning(message)
    warnings.warn(message, stacklevel=4)


def _open_ledger(cfg: PortalConfig, ledger: Any) -> Any:
    """``ledger=`` wins; else the config's ``[portal] ledger``; else SQLite under .portal/
    next to a config file (in-memory-only clients built from dicts keep no ledger)."""
    from portal.metering.ledger import Ledger

    if ledger is None or ledger is False:
        return None
    if isinstance(ledger, Ledger):
        return ledger
    urls: list[str]
    if ledger != "default":
        urls = [ledger] if isinstance(ledger, str) else list(ledger)
    elif cfg.portal.ledgers:
        urls = cfg.portal.ledgers
    elif cfg.source is not None:
        urls = [f"sqlite:///{Path(cfg.base_dir) / '.portal' / 'ledger.db'}"]
    else:
        return None
    urls = [u for u in urls if u != "none"]
    if not urls:
        return None
    resolved = []
    for url in urls:
        scheme, sep, rest = url.partition(":///")
        if sep and scheme in ("sqlite", "jsonl") and not rest.startswith("/"):
            url = f"{scheme}:///{Path(cfg.base_dir) / rest}"
        resolved.append(url)
    return Ledger(resolved)


def _route_targets(cfg: PortalConfig) -> list[tuple[str, str]]:
    """(provider, model) of every target the config routes to."""
    out: list[tuple[str, str]] = []
    for feat in cfg.features.values():
        ids = [feat.primary, *feat.fallbacks, *([feat.canary.target] if feat.canary else [])]
        for target in ids:
            pair = cfg.resolve_target(target)
            if pair not in out:
                out.append(pair)
    return out


def _price_table(cfg: PortalConfig) -> Any:
    """Config prices and base URLs over the shipped sources (genai-prices loads its data on
    the first lookup, not here)."""
    if not any(p.prices or p.base_url for p in cfg.providers.values()):
        return None  # the meter loads the shipped sources on first use
    from portal.metering.prices import PriceTable

    return PriceTable.for_config(cfg)
