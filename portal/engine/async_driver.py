"""The async driver (anyio: asyncio or trio): performs a flow's effects with
httpx2.AsyncClient and anyio, the same effects as `sync_driver`, awaited. It alone can hedge:
a `Race` runs its lanes concurrently.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import anyio

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
from portal.errors import InvalidResponse, ProviderTimeout
from portal.wire import WireReply

if TYPE_CHECKING:
    from portal.engine.core import Engine
    from portal.metering.meter import Meter

__all__ = ["AsyncDriver"]

#: how the driver waits (a retry's back-off); tests swap this, never ``anyio.sleep`` itself
sleep: Callable[[float], Awaitable[None]] = anyio.sleep


class AsyncDriver:
    """Drives flows for one `AsyncClient`: ``http(provider)`` is its pooled httpx2 client."""

    __slots__ = ("engine", "http")

    def __init__(self, engine: Engine, http: Callable[[str], httpx2.AsyncClient]) -> None:
        self.engine = engine
        self.http = http

    async def run(self, flow: Flow[Any]) -> Any:
        """The result of a flow that emits nothing the caller wants (chat, embed)."""
        holder: list[Any] = []
        async for _ in self.drive(flow, holder):
            pass
        return holder[0]

    async def drive(self, flow: Flow[Any], holder: list[Any]) -> AsyncGenerator[StreamEvent, None]:
        """Perform the flow's effects; yield what it emits; its result goes to ``holder``."""
        stream: _http.AsyncReply | None = None
        chunks: AsyncIterator[bytes] | None = None
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = flow.send(value) if error is None else flow.throw(error)
                except StopIteration as stop:
                    holder.append(stop.value)
                    return
                value = error = None
                kind = type(effect)
                if kind is Send:
                    assert isinstance(effect, Send)
                    until = effect.first_byte_by  # status and headers by then
                    # one limit for the whole exchange when the headers' is the body's (the
                    # usual non-streamed call): one scope instead of two
                    whole = not effect.stream and until == effect.deadline
                    try:  # always opened as a stream: the body is read under a size cap
                        async with _Within(until if whole else None):
                            async with _Within(None if whole else until):
                                resp = await _http.asend(
                                    self.http(effect.provider),
                                    effect.request,
                                    effect.timeout_s,
                                    effect.connect_s,
                                )
                            if effect.stream and resp.status_code < 400:
                                stream, chunks = resp, resp.aiter_bytes()  # decoded: gzip-safe
                                value = OpenStream(resp.status_code, dict(resp.headers))
                            else:
                                until = effect.deadline  # the whole body by then
                                limit = self.engine.reply_limit(effect.provider)
                                async with _Within(None if whole else until):
                                    body = await _http.aread_capped(resp, limit, effect.provider)
                                value = WireReply(resp.status_code, resp.headers, body)
                    except TimeoutError:
                        error = _http.deadline_passed(effect.provider)
                    except httpx2.HTTPError as exc:
                        error = _http.map_exception(exc, effect.provider, until)
                    except InvalidResponse as exc:
                        error = exc
                elif kind is ReadChunk:
                    assert isinstance(effect, ReadChunk) and chunks is not None
                    until = effect.until
                    stall = effect.stall_s
                    if stall is not None:
                        by_stall = time.perf_counter() + stall
                        if until is None or by_stall < until:
                            until = by_stall
                    try:
                        async with _Within(until):
                            value = await anext(chunks, b"")
                    except TimeoutError:
                        error = (
                            _http.deadline_passed(None)
                            if effect.until is not None and time.perf_counter() >= effect.until
                            else ProviderTimeout("timed out (ReadTimeout)")  # stall_timeout_s
                        )
                    except httpx2.HTTPError as exc:
                        error = _http.map_exception(exc, None, effect.until)  # the flow names it
                elif kind is CloseStream:
                    if stream is not None:
                        await stream.aclose()
                    stream = chunks = None
                elif kind is Sleep:
                    assert isinstance(effect, Sleep)
                    if effect.seconds > 0:
                        await sleep(effect.seconds)
                elif kind is Take:
                    assert isinstance(effect, Take)
                    value = await self.engine.state.atake(effect.key, effect.dims)
                elif kind is Emit:
                    assert isinstance(effect, Emit)
                    yield effect.event
                elif kind is RunTools:
                    assert isinstance(effect, RunTools)
                    value = await _run_tools(
                        effect.calls, effect.functions, effect.timeout_s, self.engine.meter
                    )
                elif kind is Retrieve:
                    assert isinstance(effect, Retrieve)
                    try:
                        async with _Within(effect.until):
                            value = await effect.retriever.aretrieve(effect.query, effect.k)
                    except TimeoutError:
                        error = effect.late()
                    except Exception as exc:
                        error = exc
                elif kind is Race:
                    assert isinstance(effect, Race)
                    value = await self._race(effect)
                elif kind is StreamRace:
                    assert isinstance(effect, StreamRace)
                    won = await self._stream_race(effect)
                    if isinstance(won, RaceLost):
                        value = won
                    else:  # the winner streams on to the caller, from here
                        index, lane, first, holder = won
                        try:
                            if first is not None:
                                yield first
                            async for event in lane:
                                yield event
                        except Exception as exc:  # it failed after streaming: the call's end
                            error = exc
                        else:
                            value = (index, holder[0])
                        finally:
                            await lane.aclose()
                else:
                    raise TypeError(f"unknown effect {effect!r}")
        finally:
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
            flow.close()

    async def _stream_race(self, race: StreamRace) -> Any:
        """Stream hedging: start lane 0 now and each next lane ``after_s`` later (at once
        when every started lane has failed) while no lane streams; the first lane to emit
        an event wins and the others are cancelled (their flows record ``hedge_lost``).
        Returns (winner, its event stream, its first event, its result holder), or a
        `RaceLost` when every lane failed before streaming."""
        n = len(race.flows)
        errors: list[BaseException | None] = [None] * n
        lanes: list[AsyncGenerator[StreamEvent, None] | None] = [None] * n
        scopes = [anyio.CancelScope() for _ in range(n)]
        won: list[tuple[int, AsyncGenerator[StreamEvent, None], StreamEvent | None, list[Any]]]
        won = []
        changed = [anyio.Event()]

        async def lane(i: int) -> None:
            holder: list[Any] = []
            events = lanes[i] = self.drive(race.flows[i], holder)
            with scopes[i]:
                try:
                    first = await _first_event(events)
                except Exception as exc:
                    errors[i] = exc
                    changed[0].set()
                    return
                if won:
                    return  # another lane won in the same turn: this one is closed below
                won.append((i, events, first, holder))
                if race.won:
                    race.won[i].append(True)
                for j, scope in enumerate(scopes):
                    if j != i:
                        scope.cancel()
                changed[0].set()

        started = 0
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(lane, i)
                started += 1
                if i + 1 < n:
                    with anyio.move_on_after(race.after_s):
                        while not won and any(e is None for e in errors[: i + 1]):
                            changed[0] = anyio.Event()
                            await changed[0].wait()
                    if won:
                        break
        winner = won[0][0] if won else -1
        for i, events in enumerate(lanes):
            if events is not None and i != winner:
                await events.aclose()  # a lane cancelled mid-read has finished already
        for flow in race.flows[started:]:  # lanes never started: nothing to record
            flow.close()
        return won[0] if won else RaceLost([e for e in errors if e is not None])

    async def _race(self, race: Race) -> Any:
        """Hedging: start lane 0 now and each next lane ``after_s`` later (or at once when
        every started lane has failed); the first lane to return wins and the others are
        cancelled (their flows record ``hedge_lost``)."""
        if asyncio._get_running_loop() is not None:
            return await self._race_asyncio(race)
        n = len(race.flows)
        errors: list[BaseException | None] = [None] * n
        won: list[tuple[int, Any]] = []
        changed = [anyio.Event()]

        async def lane(i: int) -> None:
            try:
                result = await self.run(race.flows[i])
            except Exception as exc:
                errors[i] = exc
                changed[0].set()
                return
            won.append((i, result))
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

    async def _race_asyncio(self, race: Race) -> Any:
        """`_race` on asyncio's own primitives: a task per started lane and `asyncio.wait`,
        about half the cost of a task group per call, which every call of a hedged feature
        pays even when no hedge fires. The same rules: lane ``i + 1`` starts ``after_s``
        after lane ``i`` (at once when every started lane has failed), the first lane to
        return wins, the others are cancelled and awaited (their flows record
        ``hedge_lost``); a caller's cancellation cancels every lane."""
        loop = asyncio.get_running_loop()
        flows = race.flows
        n = len(flows)
        tasks: list[asyncio.Task[Any]] = []
        errors: dict[int, Exception] = {}
        won: tuple[int, Any] | None = None

        def start() -> float:
            tasks.append(loop.create_task(self.run(flows[len(tasks)])))
            return loop.time() + race.after_s  # when the next lane is due

        try:
            next_at = start()
            while True:
                for i, task in enumerate(tasks):
                    if i in errors or not task.done():
                        continue
                    exc = task.exception()
                    if exc is None:
                        won = (i, task.result())
                        break
                    if not isinstance(exc, Exception):
                        raise exc
                    errors[i] = exc
                if won is not None:
                    break
                pending = [t for i, t in enumerate(tasks) if i not in errors]
                more = len(tasks) < n
                if not pending:
                    if not more:
                        break  # every lane failed
                    next_at = start()  # every started lane failed: the next starts at once
                    continue
                timeout = max(0.0, next_at - loop.time()) if more else None
                done, _ = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done and more and loop.time() >= next_at:
                    next_at = start()
        finally:
            losers = [t for t in tasks if not t.done()]
            for task in losers:
                task.cancel()
            if losers:  # each records its lost attempt as it ends
                await asyncio.gather(*losers, return_exceptions=True)
            for flow in flows:  # lanes never started (or finished): nothing to record
                flow.close()
        return won if won is not None else RaceLost([errors[i] for i in sorted(errors)])


class _Within:
    """``async with _Within(until)``: cancel the block at ``until`` (a `time.perf_counter`
    reading; None: no limit) and raise `TimeoutError`. asyncio's own timeout under asyncio
    (a third of anyio's cost per use), anyio's cancel scope under trio."""

    __slots__ = ("_scope", "_until")

    def __init__(self, until: float | None) -> None:
        self._until = until
        self._scope: Any = None

    async def __aenter__(self) -> None:
        until = self._until
        if until is None:
            return
        loop = asyncio._get_running_loop()
        if loop is not None:
            self._scope = asyncio.timeout_at(loop.time() + (until - time.perf_counter()))
            await self._scope.__aenter__()
        else:
            self._scope = anyio.fail_after(until - time.perf_counter())
            self._scope.__enter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        scope = self._scope
        if scope is None:
            return None
        if isinstance(scope, asyncio.Timeout):
            await scope.__aexit__(*exc)  # raises TimeoutError when it fired
            _ARMED[0] += 1
            if _ARMED[0] >= _TURN_EVERY and exc[0] is None:
                # asyncio drops cancelled timers from its heap as its loop turns; calls that
                # never wait (a mock transport, a cached reply) would keep them all: turn it
                _ARMED[0] = 0
                await asyncio.sleep(0)
            return None
        return scope.__exit__(*exc)  # type: ignore[no-any-return]


#: asyncio timers armed since the event loop last had a turn from here (`_Within`)
_ARMED = [0]
_TURN_EVERY = 1024


_END: Any = object()


async def _first_event(lane: AsyncGenerator[StreamEvent, None]) -> StreamEvent | None:
    """A lane's first event, or None when it finished without one."""
    first = await anext(lane, _END)
    return None if first is _END else first  # type: ignore[no-any-return]


async def _run_tools(
    calls: Sequence[Any], functions: dict[str, Any], timeout_s: float | None, meter: Meter
) -> list[Any]:
    """Parallel tool calls run concurrently, each under its own timeout; each run metered."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int, call: Any) -> None:
        fn = functions[call.name]
        started = time.perf_counter()
        try:
            with anyio.fail_after(timeout_s) if timeout_s else nullcontext():
                if inspect.iscoroutinefunction(fn):
                    results[i] = await fn(**call.arguments)
                else:
                    # in a worker thread, abandoned at the timeout (or when the caller is
                    # cancelled): the event loop never waits on a sync tool
                    result = await anyio.to_thread.run_sync(
                        lambda: fn(**call.arguments), abandon_on_cancel=True
                    )
                    results[i] = await result if inspect.isawaitable(result) else result
        except TimeoutError:
            results[i] = TimeoutError(
                f"tool {call.name!r} took longer than {timeout_s:g}s (tool_timeout_s)"
            )
        except Exception as exc:
            results[i] = exc
        meter.tool_ran(call.name, started, results[i])

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(calls):
            tg.start_soon(one, i, call)
    return results
