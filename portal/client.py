"""`Client` and `AsyncClient`: two thin drivers of the same sans-IO flows.

Everything a call decides (canary arm, targets, retries, failover, output repair, tool loop,
metering) lives in `portal.routing.flow`; the clients only perform the effects the flows
yield: send over httpx2, sleep, read stream chunks, run tools. `_Core` holds what both share
(config, router, meter, request preparation), so nothing here is written twice.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, Self, TypeVar, Unpack

import anyio

from portal import _http
from portal._http import httpx2
from portal.config import PortalConfig, load_config
from portal.config_check import check_config
from portal.contracts.messages import Message, coerce_messages
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest, SamplingParams
from portal.contracts.responses import Attempt, EmbedResponse, Response, StreamEvent, Usage
from portal.contracts.tools import ToolChoice, coerce_tools
from portal.errors import (
    BudgetExceeded,
    ConfigError,
    ContractError,
    InvalidResponse,
    PolicyViolation,
)
from portal.metering.budgets import Budgets
from portal.metering.events import LedgerJournal
from portal.metering.meter import Meter
from portal.providers.base import WireReply
from portal.routing.control import Routing
from portal.routing.effects import (
    CloseStream,
    Emit,
    OpenStream,
    Race,
    RaceLost,
    ReadChunk,
    Retrieve,
    RunTools,
    Send,
    Sleep,
    Take,
)
from portal.routing.flow import (
    Call,
    chat_flow,
    embed_flow,
    new_call_id,
    stream_flow,
    tool_loop_flow,
)
from portal.routing.router import AdapterPool, Router, Target
from portal.routing.state import State, open_state

__all__ = ["AsyncClient", "Client"]

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | PortalConfig | None
#: keyword arguments of chat/stream that become ChatRequest fields
_CHAT_PARAMS = frozenset({"max_tokens", "provider_options", "seed", "stop", "temperature", "top_p"})
DEFAULT_MAX_STEPS = 8
H = TypeVar("H")


class _Core:
    """State and decisions shared by both clients; also the flows' hooks."""

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
            cfg, self.state, self.meter.price, warn_unknown=self.meter.warn_unknown
        )
        self.meter.warm(_route_targets(cfg))
        self.routing = Routing(cfg, self.router, self.cost)
        self._reply_limits: dict[str, tuple[Any, int]] = {}
        self._chains: dict[str, Any] = {}  # feature -> GuardChain, built once
        #: (feature, guard, stage, action) -> decisions; counts only, never the text
        self.guard_counts: Counter[tuple[str, str, str, str]] = Counter()

    def use_state(self, state: State) -> None:
        """Swap the routing state (tests inject a `MemoryState` with a fake clock)."""
        self.state.close()
        self.state = state
        self.router = Router(self.config, self.adapters, state)
        self.router.canary.journal = self.journal
        self.routing = Routing(self.config, self.router, self.cost)

    # -- hooks used by the flows (routing decisions live in portal.routing.control) ----------
    def plan(self, call: Call) -> list[Target]:
        return self.routing.plan(call)

    def allow(self, target: Target, call: Call) -> bool:
        return self.routing.allow(target, call)

    def take(self, target: Target, call: Call) -> Take | None:
        return self.routing.take(target, call)

    def may_retry(self, target: Target, call: Call) -> bool:
        return self.routing.may_retry(target, call)

    def fallback(self, call: Call, skipped: list[tuple[Target, str]]) -> Target | None:
        return self.routing.fallback(call, skipped)

    def context_window(self, target: Target, call: Call) -> int | None:
        return self.routing.context_window(target, call)

    def hedge(self, call: Call) -> tuple[float, int] | None:
        return self.routing.hedge(call)

    def mark_unhealthy(self, target: Target, err: BaseException) -> None:
        self.routing.mark_unhealthy(target, err)

    def cost(self, target: Target, usage: Usage) -> float | None:
        return self.meter.cost(target.provider, target.model, usage)

    def on_attempt(
        self, call: Call, target: Target, attempt: Attempt, error: BaseException | None
    ) -> None:
        self.routing.attempt_done(call, target, attempt, error)
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

    def on_call(
        self, call: Call, response: Response | EmbedResponse | None, error: BaseException | None
    ) -> None:
        self.routing.call_done(call, response, error)
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
        )

    def refused(
        self,
        operation: str,
        route: Any,
        key: str | None,
        tenant: str | None,
        tags: dict[str, str],
        contract_version: str | None,
        error: BaseException,
    ) -> None:
        """A call refused before any vendor was asked (an input guard blocked it) is still a
        user action: its ledger row has no attempts, no cost and the error's class name."""
        self.meter.call(
            call_id=new_call_id(),
            operation=operation,
            feature=route.feature,
            contract_version=contract_version,
            key=key,
            tenant=tenant,
            tags=tags,
            arm=route.arm,
            attempts=[],
            response=None,
            error=error,
            cost_usd=0.0,
            latency_ms=0.0,
            started_at=time.time(),
        )

    # -- request preparation ---------------------------------------------------------------
    def contract(self, feature: str | None) -> Any:
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

    def prepare(
        self,
        operation: str,
        *,
        feature: str | None,
        model: str | None,
        messages: Iterable[Message | Mapping[str, Any]] | None,
        input: Mapping[str, Any] | None,
        tools: Sequence[Any] | None,
        tool_choice: ToolChoice | None,
        output: Any,
        key: str | None,
        tenant: str | None,
        tags: Mapping[str, str] | None,
        timeout_s: float | None,
        overrides: tuple[Any, Any, Any] = (None, None, None),
        params: dict[str, Any],
    ) -> tuple[Call, OutputSpec | None, dict[str, Any], Any]:
        """The call, its output spec, its tools' functions and its safety/RAG layers."""
        safety, retriever, rag = overrides  # the call's safety=, retriever=, rag= overrides
        route = self.router.route(feature, key, model)
        contract = self.contract(feature)
        msgs: list[Message] = []
        if input is not None:
            if contract is None:
                raise ContractError(
                    "input= needs a feature with a contract (its prompt templates and input "
                    "schema); pass messages= instead"
                )
            msgs.extend(contract.render(dict(input)))
        if messages is not None:
            msgs.extend(coerce_messages(messages))
        if not msgs:
            raise ContractError("pass messages= (a list of messages) or input= for a contract")
        feat = self.config.features.get(feature) if feature else None
        call_tags = dict(tags or (feat.tags if feat else {}))
        contract_version = getattr(contract, "version", None)
        layers = self.layers(feature, route, safety, retriever, rag)
        specs = coerce_tools(tools)
        # a renamed tool's calls come back under its original name (lenient normalization)
        functions = {s.original_name or s.name: s.function for s in specs if s.function is not None}
        if layers is not None:
            from portal.adapters.pipeline import screen_input, wrap_tools

            try:
                msgs = screen_input(layers, msgs)  # a block raises before any vendor call
            except PolicyViolation as exc:
                self.refused(operation, route, key, tenant, call_tags, contract_version, exc)
                raise
            functions = wrap_tools(layers, functions)
        if contract is not None and contract.tools:
            given = {s.name: s for s in specs}
            specs = [given.get(t.name, t) for t in contract.tools] + [
                s for s in specs if s.name not in {t.name for t in contract.tools}
            ]
        out_spec = OutputSpec.of(output) if output is not None else None
        if out_spec is None and contract is not None:
            out_spec = contract.output_spec()
        if feat is not None:
            params.setdefault("max_tokens", feat.max_tokens)
            params.setdefault("temperature", feat.temperature)
        if not _CHAT_PARAMS.issuperset(params):
            unknown = sorted(set(params) - _CHAT_PARAMS)
            raise ContractError(
                f"{operation}: unknown argument(s) {', '.join(unknown)}; "
                f"sampling parameters are {', '.join(sorted(_CHAT_PARAMS))}"
            )
        request = ChatRequest(
            messages=msgs,
            tools=specs,
            tool_choice=tool_choice,
            output=out_spec,
            stream=operation == "stream",
            **{k: v for k, v in params.items() if v is not None},
        )
        request.check_tool_choice()
        timeout = timeout_s if timeout_s is not None else route.timeout_s
        call = Call(
            operation,
            route,
            request,
            key=key,
            tenant=tenant,
            tags=call_tags,
            contract_version=contract_version,
            deadline=None if timeout is None else time.perf_counter() + timeout,
        )
        return call, out_spec, functions, layers

    def flow(
        self,
        first: Call,
        out: OutputSpec | None,
        functions: dict[str, Any],
        layers: Any,
        run_tools: bool | None,
        max_steps: int,
        tool_timeout_s: float | None,
    ) -> Any:
        """The flow of a prepared ``chat`` or ``stream``: one routed call, or the tool loop
        (streamed for a stream) when its tools have functions; inside the call's safety and
        RAG layers if it has any."""
        looping = bool(functions) and run_tools is not False
        if self.budgets.active:
            self.budget(first, steps=max_steps if looping else 1)
        flow = self._flow(first, out, functions, layers, looping, max_steps, tool_timeout_s)
        if first.budget_hold is None:
            return flow
        return _released(flow, lambda: self.budgets.settle(None, None, 0.0, first.budget_hold))

    def budget(self, call: Call, steps: int = 1) -> None:
        """Apply the feature budget's decision to ``call`` before anything is sent: refuse it
        (`BudgetExceeded`, recorded as a refused call), leave unpriced targets out, put the
        cheapest first, and keep the reservation the call settles against."""
        route = call.route
        deadline = call.time_left(time.perf_counter())
        try:
            decision = self.budgets.decide(
                route.feature,
                route.targets,
                call.request,
                call.tenant,
                steps=steps,
                deadline_s=deadline,
            )
        except BudgetExceeded as exc:
            self.refused(
                call.operation, route, call.key, call.tenant, call.tags, call.contract_version, exc
            )
            raise
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

    def _flow(
        self,
        first: Call,
        out: OutputSpec | None,
        functions: dict[str, Any],
        layers: Any,
        looping: bool,
        max_steps: int,
        tool_timeout_s: float | None,
    ) -> Any:
        stream = first.operation == "stream"
        if looping:

            def run(req: ChatRequest) -> Any:
                loop = (_loop_caller(first), req, self, out, functions, max_steps, tool_timeout_s)
                return tool_loop_flow(*loop, stream=stream)
        else:
            once = stream_flow if stream else chat_flow

            def run(req: ChatRequest) -> Any:
                first.request = req
                return once(first, self, out)

        assert isinstance(first.request, ChatRequest)
        if layers is None:
            return run(first.request)
        from portal.adapters.pipeline import chat_pipeline, stream_pipeline

        pipeline = stream_pipeline if stream else chat_pipeline
        return pipeline(layers, first.request, run, out)

    # -- adapters (safety, RAG) --------------------------------------------------------------
    def guard_chain(self, feature: str | None, override: Any) -> Any:
        """The call's guards: ``safety=`` (a list, a GuardChain, or False/[] for none) wins
        over the feature's ``safety = [...]``, whose chain is built once."""
        from portal.adapters.safety import GuardChain

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

    def layers(self, feature: str | None, route: Any, safety: Any, retriever: Any, rag: Any) -> Any:
        """The call's safety and RAG layers, or None when it has neither."""
        feat = self.config.features.get(feature) if feature else None
        feat_rag = getattr(feat, "rag", None)
        no_layers = safety is None and retriever is None and rag is None and feat_rag is None
        if no_layers and (feat is None or not feat.safety):  # the common call
            return None
        chain = self.guard_chain(feature, safety)
        if chain is not None and not len(chain):
            chain = None
        wants_rag = rag is not False and (
            retriever is not None or rag is not None or feat_rag is not None
        )
        if chain is None and not wants_rag:
            return None
        from portal.adapters.pipeline import Layers

        layers = Layers(chain=chain, record=lambda ds: self.count_guards(feature, ds))
        if wants_rag:
            from portal.adapters.rag import RagOptions, as_retriever
            from portal.metering.tokens import count_tokens

            where = f'features."{feature}".rag' if feat_rag is not None else "rag="
            options = RagOptions.parse(feat_rag, where).merged(rag)
            if retriever is None and options.retriever is None:
                raise ConfigError(
                    f"{where}: no retriever; pass retriever= to the call or set "
                    'retriever = "<name>" (see portal.adapters.rag.register_retriever)'
                )
            source = retriever if retriever is not None else options.retriever
            layers.retriever = as_retriever(source, "retriever=")
            layers.rag = options
            model = route.targets[0].model if route.targets else None
            layers.count = lambda text: count_tokens(text, model).tokens
        return layers

    def count_guards(self, feature: str | None, decisions: Sequence[Any]) -> None:
        for d in decisions:
            self.guard_counts[(feature or "-", d.guard, d.stage, d.action)] += 1

    def prepare_embed(
        self,
        feature: str | None,
        model: str | None,
        inputs: Sequence[str],
        key: str | None,
        dimensions: int | None,
        input_type: str | None,
        timeout_s: float | None,
    ) -> Call:
        if isinstance(inputs, str):
            inputs = [inputs]
        inputs = list(inputs)
        if not inputs or not all(isinstance(i, str) for i in inputs):
            raise ContractError("embed: inputs must be a non-empty list of strings")
        route = self.router.route(feature, key, model)
        request = EmbedRequest(inputs, dimensions, input_type)
        timeout = timeout_s if timeout_s is not None else route.timeout_s
        call = Call(
            "embed",
            route,
            request,
            key=key,
            deadline=None if timeout is None else time.perf_counter() + timeout,
        )
        if self.budgets.active:
            self.budget(call)
        return call

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
            from portal.providers.base import DEFAULT_MAX_REPLY_BYTES, byte_limit

            limit = byte_limit(adapter.settings.options, "max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
            found = self._reply_limits[provider] = (adapter, limit)
        return found[1]

    def verify_for(self, provider: str) -> bool:
        prov = self.config.providers.get(provider)
        return True if prov is None else prov.verify_tls

    def close(self) -> None:
        self.meter.close()
        self.state.close()


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


# =============================================================================== sync


class _ClientBase(ABC, Generic[H]):
    """What both clients hold: the shared core and one httpx2 client per provider (a provider
    with its own transport, e.g. ``sim`` or a test's, gets its own; real vendors share one)."""

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        http_client: H | None = None,
        transports: Mapping[str, Any] | None = None,
        ledger: Any = "default",
        meter: Meter | None = None,
        state: State | None = None,
    ) -> None:
        self._core = _Core(config, ledger=ledger, transports=transports, meter=meter, state=state)
        self._shared = http_client
        self._owned: dict[str, H] = {}

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] = "portal.toml", **kw: Any) -> Self:
        return cls(path, **kw)

    @property
    def config(self) -> PortalConfig:
        return self._core.config

    @property
    def meter(self) -> Meter:
        return self._core.meter

    @property
    def router(self) -> Router:
        return self._core.router

    def breaker_state(self, target: str) -> str:
        """``closed``, ``open`` or ``half-open`` for a ``provider:model`` target."""
        return self._core.routing.breakers.status(target)

    def canary_status(self, feature: str) -> dict[str, Any]:
        """The feature's canary: live percentage, ramp step, per-arm calls and guard metrics."""
        self.router.feature(feature)  # unknown feature -> ConfigError with a suggestion
        return self._core.router.canary.status(feature)

    def explain(self, feature: str, key: str | None = None) -> str:
        """Where a call with this key would go and why (what `portal route explain` prints)."""
        return self._core.routing.explain(feature, key)

    @abstractmethod
    def _new_http(self, transport: Any, verify: bool) -> H:
        """A new httpx2 client of this driver's kind (sync or async)."""

    def _http(self, provider: str) -> H:
        client = self._owned.get(provider)
        if client is None:
            transport = self._core.transport_for(provider)
            if transport is None and self._shared is not None:
                return self._shared
            verify = self._core.verify_for(provider)
            # vendors without their own transport share one pool per TLS setting, so one
            # provider's verify_tls = false never turns off verification for the others
            key = provider if transport is not None else ("*" if verify else "*noverify")
            client = self._owned.get(key)
            if client is None:
                client = self._new_http(transport, verify)
                self._owned[key] = client
            self._owned[provider] = client
        return client


class Client(_ClientBase["httpx2.Client"]):
    """The synchronous client. Same methods and semantics as `AsyncClient`."""

    def _new_http(self, transport: Any, verify: bool) -> httpx2.Client:
        return _http.new_sync_client(transport, verify)

    def chat(
        self,
        *,
        feature: str | None = None,
        model: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        input: Mapping[str, Any] | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: ToolChoice | None = None,
        output: Any = None,
        key: str | None = None,
        tenant: str | None = None,
        tags: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        run_tools: bool | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        tool_timeout_s: float | None = 30.0,
        safety: Any = None,
        retriever: Any = None,
        rag: Any = None,
        **params: Unpack[SamplingParams],
    ) -> Response:
        call, out, functions, layers = self._core.prepare(
            "chat",
            feature=feature,
            model=model,
            messages=messages,
            input=input,
            tools=tools,
            tool_choice=tool_choice,
            output=output,
            key=key,
            tenant=tenant,
            tags=tags,
            timeout_s=timeout_s,
            overrides=(safety, retriever, rag),
            params=dict(params),
        )
        flow = self._core.flow(call, out, functions, layers, run_tools, max_steps, tool_timeout_s)
        return _exhaust(self._drive(flow))  # type: ignore[no-any-return]

    def stream(
        self,
        *,
        feature: str | None = None,
        model: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        input: Mapping[str, Any] | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: ToolChoice | None = None,
        output: Any = None,
        key: str | None = None,
        tenant: str | None = None,
        tags: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        run_tools: bool | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        tool_timeout_s: float | None = 30.0,
        safety: Any = None,
        retriever: Any = None,
        rag: Any = None,
        **params: Unpack[SamplingParams],
    ) -> Iterator[StreamEvent]:
        call, out, functions, layers = self._core.prepare(
            "stream",
            feature=feature,
            model=model,
            messages=messages,
            input=input,
            tools=tools,
            tool_choice=tool_choice,
            output=output,
            key=key,
            tenant=tenant,
            tags=tags,
            timeout_s=timeout_s,
            overrides=(safety, retriever, rag),
            params=dict(params),
        )
        flow = self._core.flow(call, out, functions, layers, run_tools, max_steps, tool_timeout_s)
        return self._drive(flow)

    def embed(
        self,
        *,
        feature: str | None = None,
        model: str | None = None,
        inputs: Sequence[str],
        key: str | None = None,
        dimensions: int | None = None,
        input_type: str | None = None,
        timeout_s: float | None = None,
    ) -> EmbedResponse:
        call = self._core.prepare_embed(
            feature, model, inputs, key, dimensions, input_type, timeout_s
        )
        return _exhaust(self._drive(embed_flow(call, self._core)))  # type: ignore[no-any-return]

    def _drive(self, flow: Any) -> Generator[StreamEvent, None, Any]:
        """Perform the flow's effects; yield its emitted events; return its result."""
        stream: httpx2.Response | None = None
        chunks: Iterator[bytes] | None = None
        value: Any = None
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                kind = type(effect)
                value = None
                if kind is Send:
                    client = self._http(effect.provider)
                    request = _http.to_httpx(effect.request, effect.timeout_s)
                    try:  # always opened as a stream: the body is read under a size cap
                        resp = client.send(request, stream=True)
                    except httpx2.HTTPError as exc:
                        value = _http.map_exception(exc, effect.provider)
                        continue
                    if effect.stream and resp.status_code < 400:
                        stream, chunks = resp, resp.iter_bytes()  # decoded: gzip-safe
                        value = OpenStream(resp.status_code, dict(resp.headers))
                    else:
                        limit = self._core.reply_limit(effect.provider)
                        try:
                            body = _http.read_capped(resp, limit, effect.provider)
                        except httpx2.HTTPError as exc:
                            value = _http.map_exception(exc, effect.provider)
                            continue
                        except InvalidResponse as exc:
                            value = exc
                            continue
                        value = WireReply(resp.status_code, resp.headers, body)
                elif kind is ReadChunk:
                    assert chunks is not None
                    try:
                        value = next(chunks, b"")
                    except httpx2.HTTPError as exc:
                        value = _http.map_exception(exc, "stream")
                elif kind is CloseStream:
                    if stream is not None:
                        stream.close()
                    stream = chunks = None
                elif kind is Sleep:
                    if effect.seconds > 0:
                        time.sleep(effect.seconds)
                elif kind is Take:
                    value = self._core.state.take(effect.key, effect.dims)
                elif kind is Emit:
                    yield effect.event
                elif kind is RunTools:
                    value = [_run_tool_sync(c, effect.functions) for c in effect.calls]
                elif kind is Retrieve:
                    try:
                        value = effect.retriever.retrieve(effect.query, effect.k)
                    except Exception as exc:
                        value = exc
                elif kind is Race:  # no concurrency here: the first lane only, unhedged
                    self._core.routing.warn_no_hedge()
                    try:
                        value = (0, (yield from self._drive(effect.flows[0])))
                    except Exception as exc:
                        value = RaceLost([exc])
                    for lane in effect.flows[1:]:
                        lane.close()
                else:
                    raise TypeError(f"unknown effect {effect!r}")
        finally:
            if stream is not None:
                stream.close()
            flow.close()

    def close(self) -> None:
        for client in {id(c): c for c in self._owned.values()}.values():
            client.close()
        self._owned.clear()
        self._core.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _loop_caller(base: Call) -> Any:
    """Each model turn of a tool loop is its own `Call`, sharing the first one's route, key,
    tags and deadline."""

    def make_call(req: ChatRequest) -> Call:
        return Call(
            base.operation,
            base.route,
            req,
            key=base.key,
            tenant=base.tenant,
            tags=base.tags,
            contract_version=base.contract_version,
            deadline=base.deadline,
            budget_hold=base.budget_hold,
            action_id=base.action_id or base.call_id,
        )

    return make_call


def _released(flow: Generator[Any, Any, Any], release: Callable[[], None]) -> Any:
    """``flow``, then ``release`` however it ends (done, failed, or closed mid-stream)."""
    try:
        return (yield from flow)
    finally:
        release()


def _exhaust(gen: Iterator[Any]) -> Any:
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _run_tool_sync(call: Any, functions: Mapping[str, Any]) -> Any:
    fn = functions[call.name]
    try:
        result = fn(**call.arguments)
        if inspect.isawaitable(result):
            raise ConfigError(
                f"tool {call.name!r} is async; use portal.AsyncClient to run async tools"
            )
        return result
    except Exception as exc:  # a tool's failure goes back to the model, not to the caller
        return exc


# ============================================================================== async


class AsyncClient(_ClientBase["httpx2.AsyncClient"]):
    """The asynchronous client (anyio: asyncio or trio). Same methods as `Client`."""

    def _new_http(self, transport: Any, verify: bool) -> httpx2.AsyncClient:
        return _http.new_async_client(transport, verify, self._core.config.portal.transport)

    async def chat(
        self,
        *,
        feature: str | None = None,
        model: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        input: Mapping[str, Any] | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: ToolChoice | None = None,
        output: Any = None,
        key: str | None = None,
        tenant: str | None = None,
        tags: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        run_tools: bool | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        tool_timeout_s: float | None = 30.0,
        safety: Any = None,
        retriever: Any = None,
        rag: Any = None,
        **params: Unpack[SamplingParams],
    ) -> Response:
        call, out, functions, layers = self._core.prepare(
            "chat",
            feature=feature,
            model=model,
            messages=messages,
            input=input,
            tools=tools,
            tool_choice=tool_choice,
            output=output,
            key=key,
            tenant=tenant,
            tags=tags,
            timeout_s=timeout_s,
            overrides=(safety, retriever, rag),
            params=dict(params),
        )
        flow = self._core.flow(call, out, functions, layers, run_tools, max_steps, tool_timeout_s)
        holder: list[Any] = []
        async for _ in self._drive(flow, holder):
            pass
        return holder[0]  # type: ignore[no-any-return]

    async def stream(
        self,
        *,
        feature: str | None = None,
        model: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        input: Mapping[str, Any] | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: ToolChoice | None = None,
        output: Any = None,
        key: str | None = None,
        tenant: str | None = None,
        tags: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        run_tools: bool | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        tool_timeout_s: float | None = 30.0,
        safety: Any = None,
        retriever: Any = None,
        rag: Any = None,
        **params: Unpack[SamplingParams],
    ) -> AsyncIterator[StreamEvent]:
        call, out, functions, layers = self._core.prepare(
            "stream",
            feature=feature,
            model=model,
            messages=messages,
            input=input,
            tools=tools,
            tool_choice=tool_choice,
            output=output,
            key=key,
            tenant=tenant,
            tags=tags,
            timeout_s=timeout_s,
            overrides=(safety, retriever, rag),
            params=dict(params),
        )
        flow = self._core.flow(call, out, functions, layers, run_tools, max_steps, tool_timeout_s)
        agen = self._drive(flow, [])
        try:
            async for event in agen:
                yield event
        finally:
            await agen.aclose()

    async def embed(
        self,
        *,
        feature: str | None = None,
        model: str | None = None,
        inputs: Sequence[str],
        key: str | None = None,
        dimensions: int | None = None,
        input_type: str | None = None,
        timeout_s: float | None = None,
    ) -> EmbedResponse:
        call = self._core.prepare_embed(
            feature, model, inputs, key, dimensions, input_type, timeout_s
        )
        holder: list[Any] = []
        async for _ in self._drive(embed_flow(call, self._core), holder):
            pass
        return holder[0]  # type: ignore[no-any-return]

    async def _drive(self, flow: Any, holder: list[Any]) -> AsyncGenerator[StreamEvent, None]:
        """Async twin of `Client._drive`: same effects, awaited. The result goes to holder."""
        stream: httpx2.Response | None = None
        chunks: AsyncIterator[bytes] | None = None
        value: Any = None
        try:
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    holder.append(stop.value)
                    return
                kind = type(effect)
                value = None
                if kind is Send:
                    client = self._http(effect.provider)
                    request = _http.to_httpx(effect.request, effect.timeout_s)
                    try:  # always opened as a stream: the body is read under a size cap
                        resp = await client.send(request, stream=True)
                    except httpx2.HTTPError as exc:
                        value = _http.map_exception(exc, effect.provider)
                        continue
                    if effect.stream and resp.status_code < 400:
                        stream, chunks = resp, resp.aiter_bytes()  # decoded: gzip-safe
                        value = OpenStream(resp.status_code, dict(resp.headers))
                    else:
                        limit = self._core.reply_limit(effect.provider)
                        try:
                            body = await _http.aread_capped(resp, limit, effect.provider)
                        except httpx2.HTTPError as exc:
                            value = _http.map_exception(exc, effect.provider)
                            continue
                        except InvalidResponse as exc:
                            value = exc
                            continue
                        value = WireReply(resp.status_code, resp.headers, body)
                elif kind is ReadChunk:
                    assert chunks is not None
                    try:
                        value = await anext(chunks, b"")
                    except httpx2.HTTPError as exc:
                        value = _http.map_exception(exc, "stream")
                elif kind is CloseStream:
                    if stream is not None:
                        await stream.aclose()
                    stream = chunks = None
                elif kind is Sleep:
                    if effect.seconds > 0:
                        await anyio.sleep(effect.seconds)
                elif kind is Take:
                    value = await self._core.state.atake(effect.key, effect.dims)
                elif kind is Emit:
                    yield effect.event
                elif kind is RunTools:
                    value = await _run_tools_async(effect.calls, effect.functions, effect.timeout_s)
                elif kind is Retrieve:
                    try:
                        value = await effect.retriever.aretrieve(effect.query, effect.k)
                    except Exception as exc:
                        value = exc
                elif kind is Race:
                    value = await self._race(effect)
                else:
                    raise TypeError(f"unknown effect {effect!r}")
        finally:
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
            flow.close()

    async def _race(self, race: Race) -> Any:
        """Hedging: start lane 0 now and each next lane ``after_s`` later (or at once when
        every started lane has failed); the first lane to return wins and the others are
        cancelled (their flows record ``hedge_lost``)."""
        n = len(race.flows)
        errors: list[BaseException | None] = [None] * n
        won: list[tuple[int, Any]] = []
        changed = [anyio.Event()]

        async def lane(i: int) -> None:
            holder: list[Any] = []
            try:
                async for _ in self._drive(race.flows[i], holder):
                    pass
            except Exception as exc:
                errors[i] = exc
                changed[0].set()
                return
            won.append((i, holder[0]))
            tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(lane, i)
                if i + 1 < n:
                    with anyio.move_on_after(race.after_s):
                        while any(e is None for e in errors[: i + 1]):
                            changed[0] = anyio.Event()
                            await changed[0].wait()
        for flow in race.flows:  # lanes never started (or finished): nothing to record
            flow.close()
        return won[0] if won else RaceLost([e for e in errors if e is not None])

    async def aclose(self) -> None:
        for client in {id(c): c for c in self._owned.values()}.values():
            await client.aclose()
        self._owned.clear()
        self._core.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _run_tools_async(
    calls: Sequence[Any], functions: Mapping[str, Any], timeout_s: float | None
) -> list[Any]:
    """Parallel tool calls run concurrently, each under its own timeout."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int, call: Any) -> None:
        fn = functions[call.name]
        try:
            with anyio.fail_after(timeout_s) if timeout_s else nullcontext():
                if inspect.iscoroutinefunction(fn):
                    results[i] = await fn(**call.arguments)
                else:
                    results[i] = await anyio.to_thread.run_sync(lambda: fn(**call.arguments))
        except TimeoutError:
            results[i] = TimeoutError(f"tool {call.name!r} took longer than {timeout_s:g}s")
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(calls):
            tg.start_soon(one, i, call)
    return results
