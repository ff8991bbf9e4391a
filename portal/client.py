"""`Client` and `AsyncClient`: the public entry points, thin on purpose.

Each method prepares the call (`portal.engine.prepare`), gets its sans-IO flow
(`portal.routing.flow`) and hands it to the client's driver (`portal.engine.sync_driver` or
`async_driver`), which performs the effects over httpx2. Both clients share the arguments
(`ChatArgs`, `EmbedArgs`), the preparation and the flows; only the driver differs.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Generic, Self, TypeVar, Unpack

import anyio
import anyio.to_thread
from typing_extensions import TypeVar as TypeVarWithDefault

from portal import _http
from portal._http import httpx2
from portal.config import PortalConfig
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatArgs, EmbedArgs
from portal.contracts.responses import EmbedResponse, Response, StreamEvent
from portal.engine import sync_driver
from portal.engine.async_driver import AsyncDriver
from portal.engine.core import ConfigSource, Engine
from portal.engine.shadow import TaskShadows, ThreadShadows
from portal.engine.sync_driver import SyncDriver
from portal.errors import ConfigError
from portal.metering.meter import Meter
from portal.routing.router import Router
from portal.routing.state import State

__all__ = ["AsyncClient", "Client"]

H = TypeVar("H", httpx2.Client, httpx2.AsyncClient)
#: the type of ``resp.output``: the pydantic model given as ``output=``, else Any
OutputT = TypeVarWithDefault("OutputT", default=Any)
#: what ``output=`` takes besides a pydantic model class: a JSON Schema, or an OutputSpec
SchemaOutput = Mapping[str, Any] | OutputSpec | None


class _ClientBase(ABC, Generic[H]):
    """What both clients hold: the shared engine and one httpx2 client per provider (a
    provider with its own transport, e.g. ``sim`` or a test's, gets its own; real vendors
    share one pool per TLS setting)."""

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
        self._core = Engine(config, ledger=ledger, transports=transports, meter=meter, state=state)
        self._shared: H | None = http_client
        self._owned: dict[str, H] = {}
        self._owned_lock = threading.Lock()  # shadow copies may ask from their threads
        self._driver = self._new_driver()
        self._core.shadows = self._new_shadows()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] = "portal.toml", **kw: Any) -> Self:
        """A client built from a config file (``portal.toml``, or ``pyproject.toml`` with a
        ``[tool.portal]`` table); keyword arguments as for the constructor."""
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
        return self._core.control.breakers.status(target)

    def canary_status(self, feature: str) -> dict[str, Any]:
        """The feature's canary: live percentage, ramp step, per-arm calls and guard metrics."""
        self.router.feature(feature)  # unknown feature -> ConfigError with a suggestion
        return self._core.router.canary.status(feature)

    def explain(self, feature: str, key: str | None = None) -> str:
        """Where a call with this key would go and why (what `portal route explain` prints)."""
        return self._core.control.explain(feature, key)

    @abstractmethod
    def _new_driver(self) -> Any:
        """The driver of this client's I/O style (sync or async)."""

    @abstractmethod
    def _new_http(self, transport: Any, verify: bool) -> H:
        """A new httpx2 client of this driver's kind (sync or async)."""

    @abstractmethod
    def _new_shadows(self) -> Any:
        """What runs this client's shadow copies in the background (`portal.engine.shadow`)."""

    def _http(self, provider: str) -> H:
        client = self._owned.get(provider)
        if client is None:
            with self._owned_lock:
                return self._new_pool(provider)
        return client

    def _new_pool(self, provider: str) -> H:
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


class Client(_ClientBase[httpx2.Client]):
    """The synchronous client. Same methods and semantics as `AsyncClient` (except hedging,
    which needs concurrency: a hedged feature runs unhedged here, with a warning)."""

    _driver: SyncDriver

    def _new_driver(self) -> SyncDriver:
        for name, feat in self._core.config.features.items():
            if feat.hedge is not None and feat.hedge.streams:
                self._core.close()
                raise ConfigError(
                    f"features.{name}.hedge.streams: stream hedging races two vendors' "
                    "streams at once, which needs portal.AsyncClient; use AsyncClient for "
                    "this feature, or set streams = false"
                )
        return SyncDriver(self._core, self._http)

    def _new_http(self, transport: Any, verify: bool) -> httpx2.Client:
        return _http.new_sync_client(transport, verify)

    def _new_shadows(self) -> ThreadShadows:
        driver = self._driver
        return ThreadShadows(lambda flow: sync_driver.run(driver.drive(flow)))

    def chat(
        self, *, output: type[OutputT] | SchemaOutput = None, **args: Unpack[ChatArgs]
    ) -> Response[OutputT]:
        """One routed chat call: the reply of the first target that answers, after retries,
        failover and (for a feature with a contract) output validation; tools with python
        functions run in a loop until the model stops asking. Arguments: `ChatArgs`.

        ``output``: a pydantic model class (``resp.output`` is an instance of it, typed as
        such), a JSON Schema dict, or None (the feature contract's output, if any). A reply
        that fails it is asked for again once with the error, then raises `ContractError`.

        Raises a `PortalError`: `ConfigError` (unknown feature or model), `ContractError`,
        `PolicyViolation` (a guard blocked it), `BudgetExceeded`, a `ProviderError` or
        `AllTargetsFailed` (an ExceptionGroup of what each target raised).
        """
        flow = self._core.chat_flow("chat", output, args)
        return sync_driver.run(self._driver.drive(flow))

    def stream(
        self, *, output: type[Any] | SchemaOutput = None, **args: Unpack[ChatArgs]
    ) -> Iterator[StreamEvent]:
        """A routed chat call whose reply streams as `StreamEvent`s: ``text``, ``reasoning``,
        ``tool_call``, ``tool_result`` (tool loop), ``usage``, then one ``done`` carrying the
        whole `Response`. Arguments as for `chat`. A failure before any text fails over
        transparently; after text was delivered it raises `StreamInterrupted` with the
        partial text (never a silent truncation, never a repeated prefix)."""
        return self._driver.drive(self._core.chat_flow("stream", output, args))

    def embed(self, **args: Unpack[EmbedArgs]) -> EmbedResponse:
        """Embedding vectors for ``inputs``, in order, routed like a chat call (retries,
        failover, metering); inputs beyond a vendor's batch size go as several requests.
        Arguments: `EmbedArgs`."""
        return sync_driver.run(self._driver.drive(self._core.embed_flow(args)))

    def feedback(self, call: str | Response[Any], metric: str, value: float) -> None:
        """Score an answer after the fact (a thumbs-up as 1.0/0.0, a judge's score, an
        outcome): written to the ledger joined to the call's arm, and judged by a canary
        guard that lists ``metric`` under ``guard.feedback``. ``call``: ``resp.call_id``
        (also of another process's call, looked up in the ledger) or the `Response`."""
        self._core.feedback(call, metric, value)

    def close(self) -> None:
        """Wait for the shadow copies in flight (each ends by its deadline), close the HTTP
        pools, flush the ledger, release the routing state."""
        self._core.shadows.close()
        for client in {id(c): c for c in self._owned.values()}.values():
            client.close()
        self._owned.clear()
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_ClientBase[httpx2.AsyncClient]):
    """The asynchronous client (anyio: asyncio or trio). Same methods as `Client`, awaited;
    it alone hedges (``hedge`` in a feature's config)."""

    _driver: AsyncDriver

    def _new_driver(self) -> AsyncDriver:
        return AsyncDriver(self._core, self._http)

    def _new_http(self, transport: Any, verify: bool) -> httpx2.AsyncClient:
        return _http.new_async_client(transport, verify, self._core.config.portal.transport)

    def _new_shadows(self) -> TaskShadows:
        return TaskShadows(self._driver.run)

    async def chat(
        self, *, output: type[OutputT] | SchemaOutput = None, **args: Unpack[ChatArgs]
    ) -> Response[OutputT]:
        """`Client.chat`, awaited."""
        return await self._driver.run(self._core.chat_flow("chat", output, args))  # type: ignore[no-any-return]

    async def stream(
        self, *, output: type[Any] | SchemaOutput = None, **args: Unpack[ChatArgs]
    ) -> AsyncIterator[StreamEvent]:
        """`Client.stream`, as an async iterator."""
        events = self._driver.drive(self._core.chat_flow("stream", output, args), [])
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def embed(self, **args: Unpack[EmbedArgs]) -> EmbedResponse:
        """`Client.embed`, awaited."""
        return await self._driver.run(self._core.embed_flow(args))  # type: ignore[no-any-return]

    async def feedback(self, call: str | Response[Any], metric: str, value: float) -> None:
        """`Client.feedback`, awaited: a call of another process is looked up in the ledger
        on a worker thread, so the event loop never waits on it."""
        if self._core.feedback_is_local(call):
            self._core.feedback(call, metric, value)
        else:
            await anyio.to_thread.run_sync(self._core.feedback, call, metric, value)

    async def aclose(self) -> None:
        """Cancel the shadow copies still running, close the HTTP pools, flush the ledger,
        release the routing state."""
        await self._core.shadows.aclose()
        for client in {id(c): c for c in self._owned.values()}.values():
            await client.aclose()
        self._owned.clear()
        self._core.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
