"""The sync driver: performs a flow's effects with httpx2.Client and time.sleep.

Answers go back with ``flow.send``; a transport failure is thrown into the flow with
``flow.throw``, at the ``yield`` that asked for it, where the flow's own error handling
(retry, failover, metering) takes it. Hedging needs concurrency, so a `Race` runs its first
lane only (once-per-client warning).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Generator, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import portal._http as _http
from portal._http import httpx2
from portal.contracts.responses import StreamEvent
from portal.effects import (
    CloseStream,
    Emit,
    Flow,
    OpenStream,
    Race,
    RaceLost,
    ReadChunk,
    Retrieve,
    RunTools,
    Send,
    Sleep,
    StreamRace,
    Take,
)
from portal.errors import ConfigError, ProviderError
from portal.wire import WireReply

if TYPE_CHECKING:
    from portal.engine.core import Engine
    from portal.metering.meter import Meter

__all__ = ["SyncDriver", "run"]

T = TypeVar("T")

#: how the driver waits (a retry's back-off); tests swap this, never ``time.sleep`` itself
sleep: Callable[[float], None] = time.sleep


class SyncDriver:
    """Drives flows for one `Client`: ``http(provider)`` is its pooled httpx2 client."""

    __slots__ = ("engine", "http")

    def __init__(self, engine: Engine, http: Callable[[str], httpx2.Client]) -> None:
        self.engine = engine
        self.http = http

    def drive(self, flow: Flow[T]) -> Generator[StreamEvent, None, T]:
        """Perform the flow's effects; yield what it emits; return its result."""
        stream: httpx2.Response | None = None
        chunks: Iterator[bytes] | None = None
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = flow.send(value) if error is None else flow.throw(error)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                value = error = None
                kind = type(effect)
                if kind is Send:
                    assert isinstance(effect, Send)
                    until = effect.first_byte_by  # status and headers by then
                    try:  # always opened as a stream: the body is read under a size cap
                        _http.bound(until)
                        resp = self.http(effect.provider).send(
                            _http.to_httpx(effect.request, effect.timeout_s, effect.connect_s),
                            stream=True,
                        )
                        if effect.stream and resp.status_code < 400:
                            stream, chunks = resp, resp.iter_bytes()  # decoded: gzip-safe
                            value = OpenStream(resp.status_code, dict(resp.headers))
                        else:
                            until = effect.deadline  # the whole body by then
                            limit = self.engine.reply_limit(effect.provider)
                            body = _http.read_by(resp, limit, effect.provider, until)
                            value = WireReply(resp.status_code, resp.headers, body)
                    except httpx2.HTTPError as exc:
                        error = _http.map_exception(exc, effect.provider, until)
                    except ProviderError as exc:  # over the size cap, or late
                        error = exc
                    finally:
                        _http.bound(None)
                elif kind is ReadChunk:
                    assert isinstance(effect, ReadChunk) and chunks is not None
                    try:
                        _http.bound(effect.until, effect.stall_s)
                        value = next(chunks, b"")
                    except httpx2.HTTPError as exc:
                        error = _http.map_exception(exc, None, effect.until)  # the flow names it
                    finally:
                        _http.bound(None)
                elif kind is CloseStream:
                    if stream is not None:
                        stream.close()
                    stream = chunks = None
                elif kind is Sleep:
                    assert isinstance(effect, Sleep)
                    if effect.seconds > 0:
                        sleep(effect.seconds)
                elif kind is Take:
                    assert isinstance(effect, Take)
                    value = self.engine.state.take(effect.key, effect.dims)
                elif kind is Emit:
                    assert isinstance(effect, Emit)
                    yield effect.event
                elif kind is RunTools:
                    assert isinstance(effect, RunTools)
                    try:
                        value = _run_tools(effect, self.engine.meter)
                    except ConfigError as exc:  # the app's mistake: to the caller, not the model
                        error = exc
                elif kind is Retrieve:
                    assert isinstance(effect, Retrieve)
                    try:
                        value = _retrieve(effect)
                    except Exception as exc:
                        error = exc
                elif kind is Race or kind is StreamRace:  # no concurrency: lane 0, unhedged
                    assert isinstance(effect, (Race, StreamRace))  # (streams: refused at Client)
                    self.engine.control.warn_no_hedge()
                    try:
                        value = (0, (yield from self.drive(effect.flows[0])))
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


def run(events: Generator[StreamEvent, None, T]) -> T:
    """The result of a driven flow that emits nothing the caller wants (chat, embed)."""
    try:
        while True:
            next(events)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _run_tools(effect: RunTools, meter: Meter) -> list[Any]:
    """Run a turn's tool calls, each in its own thread, concurrently, each under the
    effect's timeout: a tool that hangs costs the call ``tool_timeout_s``, not its own
    duration (a thread cannot be stopped: an overrunning tool runs on in the background, its
    result discarded). A failure or a timeout is a result (it goes back to the model); an
    async tool is refused with `ConfigError`, raised to the caller."""
    functions = effect.functions
    for call in effect.calls:
        fn = functions[call.name]
        if inspect.iscoroutinefunction(fn):
            raise _async_tool(call.name)
    runs = [
        (call, _Background(partial(functions[call.name], **call.arguments), f"tool-{call.name}"))
        for call in effect.calls
    ]
    timeout = effect.timeout_s
    until = None if not timeout else time.perf_counter() + timeout
    results: list[Any] = []
    for call, run in runs:
        left = None if until is None else max(0.0, until - time.perf_counter())
        if not run.done.wait(left):
            result: Any = TimeoutError(
                f"tool {call.name!r} took longer than {timeout:g}s (tool_timeout_s)"
            )
        else:
            result = run.result
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # never awaited: no "coroutine was never awaited" warning
                raise _async_tool(call.name)
        meter.tool_ran(call.name, run.started, result)
        results.append(result)
    return results


def _retrieve(effect: Retrieve) -> Any:
    """The retriever's documents; under a deadline it runs in a thread of its own, so a
    retriever that hangs costs the call its deadline, not its own duration (it runs on in
    the background, its result discarded)."""
    if effect.until is None:
        return effect.retriever.retrieve(effect.query, effect.k)
    left = effect.until - time.perf_counter()
    if left <= 0:
        raise effect.late()
    run = _Background(lambda: effect.retriever.retrieve(effect.query, effect.k), "retriever")
    if not run.done.wait(left):
        raise effect.late()
    if isinstance(run.result, BaseException):
        raise run.result
    return run.result


def _async_tool(name: str) -> ConfigError:
    return ConfigError(
        f"tool {name!r} is async; the sync portal.Client runs sync tools only: use "
        "portal.AsyncClient, or pass a sync function"
    )


class _Background:
    """``fn()`` running in a daemon thread (it never holds the process open); ``result`` is
    its value or the exception it raised once ``done`` is set."""

    __slots__ = ("done", "result", "started")

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.started = time.perf_counter()
        self.result: Any = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(fn,), name=f"portal-{name}", daemon=True).start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except Exception as exc:  # a tool's failure goes back to the model; a retriever's
            self.result = exc  # is thrown into the flow
        finally:
            self.done.set()
