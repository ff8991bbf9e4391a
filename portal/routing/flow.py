"""The sans-IO flows of a call: chat, stream and embed, with retries, failover, structured
output repair and the tool loop. They yield effects (`portal.effects`) and never do
I/O themselves, so the sync and the async client share every decision made here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any, NoReturn, Protocol

from portal.contracts.messages import Message, ToolCall, distinct_call_ids, tool_result
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import Attempt, EmbedResponse, Response, StreamEvent, Usage
from portal.effects import (
    CloseStream,
    Emit,
    HedgeLost,
    OpenStream,
    Race,
    RaceLost,
    ReadChunk,
    RunTools,
    Send,
    Sleep,
    StreamRace,
)
from portal.errors import (
    AllTargetsFailed,
    ContractError,
    PortalError,
    ProviderError,
    ProviderTimeout,
    StreamInterrupted,
    ToolLoopExceeded,
)
from portal.providers.bodies import DEFAULT_MAX_REPLY_BYTES, byte_limit
from portal.routing.call import Call, Clock, estimated_tokens, new_call_id
from portal.routing.control import RouteControl
from portal.routing.retry import FIRST_TOKEN_TIMEOUT, decide
from portal.routing.router import Target
from portal.wire import WireReply, WireRequest

__all__ = [
    "Call",
    "Recorder",
    "chat_flow",
    "embed_flow",
    "new_call_id",
    "stream_flow",
    "tool_loop_flow",
]


class Recorder(Protocol):
    """What the flows tell metering: the price of an attempt, each finished attempt and each
    finished call. Implemented above routing (`portal.engine.core.Engine`), so routing never
    imports metering and metering never imports routing."""

    def cost(self, target: Target, usage: Usage) -> float | None: ...

    def attempt(
        self, call: Call, target: Target, attempt: Attempt, error: BaseException | None
    ) -> None: ...

    def call(
        self, call: Call, response: Response | EmbedResponse | None, error: BaseException | None
    ) -> None: ...


FlowGen = Generator[Any, Any, Any]


# --------------------------------------------------------------------------- one attempt


#: an attempt with less time than this is not started (the rest goes to the next target)
MIN_ATTEMPT_S = 0.05


def _send(
    call: Call, target: Target, wire: WireRequest, until: float, clock: Clock, stream: bool
) -> Send:
    """The `Send` of one request of an attempt that must end by ``until`` (a stream: whose
    first token is due by then): its phase limits are the provider's, none past ``until``.
    A stream's socket reads may wait up to the call's deadline (its reads after the first
    token are bounded by the call's deadline and ``stall_timeout_s`` only)."""
    now = clock()
    left = until - now
    if left <= 0:
        raise ProviderTimeout(
            "the call's deadline passed before this attempt could start",
            provider=target.provider,
            model=target.model,
        )
    settings = target.adapter.settings
    first = settings.first_byte_timeout_s or settings.timeout_s
    stall = settings.stall_timeout_s or settings.timeout_s
    connect = settings.connect_timeout_s or settings.timeout_s
    per_read = first if first > stall else stall
    read_left = left
    if stream:
        read_left = math.inf if call.deadline is None else call.deadline - now
    return Send(
        target.provider,
        wire,
        per_read if per_read < read_left else read_left,
        stream,
        until,
        now + first if now + first < until else until,
        connect if connect < left else left,
    )


def _attempt_until(
    call: Call, target: Target, control: RouteControl, clock: Clock, later: list[Target]
) -> float:
    """When an attempt on ``target`` starting now must end: after the provider's
    ``timeout_s``, and before the call's deadline less the slice kept for the next target of
    the chain (from its observed latency), so a hanging target cannot spend the fallback's
    time."""
    until = clock() + target.adapter.settings.timeout_s
    kept = _before_kept_slice(call, control, later)
    return until if kept is None or until < kept else kept


def _before_kept_slice(call: Call, control: RouteControl, later: list[Target]) -> float | None:
    """The call's deadline less the slice kept for the next target of ``later`` (None: no
    deadline)."""
    deadline = call.deadline
    if deadline is None or not later:
        return deadline
    return deadline - control.reserve(later[0], deadline - call.started)


def _send_once(
    call: Call,
    target: Target,
    control: RouteControl,
    record: Recorder,
    clock: Clock,
    number: int,
    until: float,
) -> FlowGen:
    """One non-streaming attempt; returns (Response | EmbedResponse) or raises ProviderError.
    Records the attempt either way."""
    adapter = target.adapter
    t0 = clock()
    error: BaseException | None = None
    status: int | None = None
    result: Any = None
    created: Usage | None = None  # what creating the vendor's prompt cache billed
    try:
        request = call.request
        # an embed larger than the vendor takes per request is several requests, in order, as
        # one attempt (any one failing fails it); a chat is one
        batches: list[Any] = [request]
        embed = isinstance(request, EmbedRequest)
        if isinstance(request, EmbedRequest):
            batches = _embed_batches(request, adapter.embed_batch_size(target.model))
        parts: list[Any] = []
        for req in batches:
            reply: WireReply
            if embed:
                wire = adapter.build_embed(req, target.model)
                reply = yield _send(call, target, wire, until, clock, False)
            else:
                reply, created = yield from _exchange(call, target, req, until, clock, False)
            status = reply.status
            if reply.status >= 400:
                raise adapter.parse_error(reply, target.model)
            if embed:
                parts.append(adapter.parse_embed(reply, target.model))
            else:
                parts.append(adapter.finalize(req, adapter.parse_chat(reply, target.model)))
        result = _merged(parts) if embed else parts[0]
        if created is not None:
            result.usage = result.usage + created
        return result
    except ProviderError as exc:
        if exc.provider is None:
            exc.provider, exc.model = target.provider, target.model
        error = exc
        raise
    except GeneratorExit:
        error = _Cancelled()
        raise
    except HedgeLost:
        error = _Lost()
        raise
    finally:
        _record_attempt(
            call,
            target,
            control,
            record,
            number,
            (clock() - t0) * 1000.0,
            error,
            status if status is not None else getattr(error, "status", None),
            getattr(result, "usage", None) or created,
            getattr(result, "request_id", None),
        )


def _record_attempt(
    call: Call,
    target: Target,
    control: RouteControl,
    record: Recorder,
    number: int,
    latency_ms: float,
    error: BaseException | None,
    status: int | None,
    usage: Usage | None,
    request_id: str | None,
    ttft_ms: float | None = None,
) -> None:
    """One finished attempt, whatever ended it: priced, on the call, told to routing (breakers,
    latency, canary guard) and to metering (the ledger row)."""
    cost = record.cost(target, usage) if usage is not None else (0.0 if error else None)
    attempt = Attempt(
        target=target.id,
        outcome=_outcome(error),
        latency_ms=latency_ms,
        number=number,
        error=None if error is None or isinstance(error, _Cancelled) else type(error).__name__,
        status=status,
        usage=usage,
        cost_usd=cost,
        ttft_ms=ttft_ms,
        request_id=request_id or getattr(error, "request_id", None),
    )
    call.attempts.append(attempt)
    call.add_cost(cost)
    control.attempt_done(call, target, attempt, error)
    record.attempt(call, target, attempt, error)


def _exchange(
    call: Call, target: Target, req: ChatRequest, until: float, clock: Clock, stream: bool
) -> FlowGen:
    """Send a chat request, creating the vendor's prompt cache first where the adapter says
    it must, and once more when the reply says the cache it named is gone
    (`Adapter.cache_lost`). Returns (the reply, what creating caches billed or None)."""
    adapter = target.adapter
    created = yield from _cache_setup(call, target, req, until, clock)
    wire = adapter.build_chat(req, target.model)
    reply = yield _send(call, target, wire, until, clock, stream)
    if (
        isinstance(reply, WireReply)
        and reply.status >= 400
        and adapter.cache_lost(req, target.model, reply)
    ):
        again = yield from _cache_setup(call, target, req, until, clock)
        created = _both(created, again)
        wire = adapter.build_chat(req, target.model)
        reply = yield _send(call, target, wire, until, clock, stream)
    return reply, created


def _cache_setup(call: Call, target: Target, req: Any, until: float, clock: Clock) -> FlowGen:
    """Create the vendor's prompt cache first where the adapter says it must (Gemini's
    ``cachedContents``), within the attempt's time; return what that billed, or None
    (almost every call)."""
    setup = target.adapter.cache_setup(req, target.model)
    if setup is None:
        return None
    reply: WireReply = yield _send(call, target, setup, until, clock, False)
    return target.adapter.cache_ready(req, target.model, reply)


def _both(first: Usage | None, more: Usage | None) -> Usage | None:
    """What two cache creations billed together (either may be None)."""
    if first is None or more is None:
        return more if first is None else first
    return first + more


class _Cancelled(BaseException):
    """Marks an attempt abandoned by its caller (cancellation)."""


class _Lost(_Cancelled):
    """Marks a hedge lane's attempt abandoned because another lane won."""


def _call_done(
    call: Call,
    control: RouteControl,
    record: Recorder,
    response: Response | EmbedResponse | None,
    error: BaseException | None,
) -> None:
    """A call finished: routing learns it (canary guard), then metering (budget, ledger)."""
    control.call_done(call, response, error)
    record.call(call, response, error)


def _outcome(error: BaseException | None) -> Any:
    if error is None:
        return "ok"
    if isinstance(error, _Lost):
        return "hedge_lost"
    return "cancelled" if isinstance(error, _Cancelled) else "error"


# --------------------------------------------------------------------------- failover loop


def _time_for_retry(call: Call, control: RouteControl, start: float, later: list[Target]) -> bool:
    """Whether a retry starting at ``start`` would have time of its own, or only the slice
    kept for the next target (then the call fails over instead)."""
    if not later:
        return True
    kept = _before_kept_slice(call, control, later)
    return kept is None or kept - start >= MIN_ATTEMPT_S


def _tried(call: Call) -> str:
    """Each attempt so far as ``target: seconds outcome`` (for the deadline's error)."""
    return ", ".join(
        f"{a.target}: {a.latency_ms / 1000:.2f}s {a.error or a.outcome}" for a in call.attempts
    )


def _deadline_error(call: Call) -> ProviderTimeout:
    """The call's deadline is spent: say after how many attempts, and where the time went."""
    total = 0.0 if call.deadline is None else call.deadline - call.started
    n = len(call.attempts)
    if n == 0:
        return ProviderTimeout(
            f"the call's deadline of {total:.3g}s was spent before any attempt could start; "
            "raise timeout_s (per call or the feature's timeout_s)"
        )
    return ProviderTimeout(
        f"the call's deadline of {total:.3g}s was spent after {n} attempt{'s' * (n != 1)} "
        f"({_tried(call)}); raise timeout_s (per call or the feature's timeout_s) if this "
        "call may take longer"
    )


def _raise_all(call: Call, errors: list[Exception]) -> NoReturn:
    if len(errors) == 1:
        raise errors[0]
    names = {
        f"{getattr(e, 'provider', None)}:{getattr(e, 'model', None)}"
        for e in errors
        if isinstance(e, ProviderError) and e.provider is not None
    }
    n = len(names) or len(errors)
    raise AllTargetsFailed(
        f"all {n} target{'s' * (n != 1)} failed for "
        f"{call.route.feature or call.route.targets[0].id}",
        errors,
    )


def _routed(
    call: Call,
    control: RouteControl,
    record: Recorder,
    clock: Clock,
    attempt_flow: Callable[[Target, int, float], FlowGen],
    order: list[Target] | None = None,
) -> FlowGen:
    """Try targets in order, with retries on each; return (target, result).

    A target is skipped when its breaker is open, when its committed throughput is used up
    (overflow), after a ContextTooLong when its window is not larger, or when the time left
    is less than it needs; if every target was skipped, ``control.fallback`` picks one to
    try anyway. The deadline covers everything: each attempt gets the time left less a slice
    kept for the next target (`_attempt_until`), and once it is spent the call ends with a
    `ProviderTimeout` that says where the time went.
    """
    route = call.route
    queue = list(control.plan(call) if order is None else order)
    errors: dict[str, Exception] = {}  # the last error of each target, in order tried
    skipped: list[tuple[Target, str]] = []
    need_window: int | None = None  # after ContextTooLong: only larger windows
    tried = False
    forced = False
    while True:
        if not queue:
            pick = None if tried or forced else control.fallback(call, skipped)
            if pick is None:
                break
            queue, forced = [pick], True
        target = queue.pop(0)
        if need_window is not None:
            window = control.context_window(target, call)
            if window is None or window <= need_window:
                skipped.append((target, "context window not larger"))
                continue
        if not forced and not control.allow(target, call):
            skipped.append((target, "breaker open"))
            continue
        here = 0
        while True:
            here += 1
            now = clock()
            left = call.time_left(now)
            if left is not None:
                if left <= 0:
                    raise _deadline_error(call)
                too_slow = control.too_slow(target, left) if queue else None
                if too_slow:  # the last target is tried anyway: it is the only chance left
                    skipped.append((target, too_slow))
                    break
            until = _attempt_until(call, target, control, clock, queue)
            if until - now < MIN_ATTEMPT_S and queue:
                skipped.append((target, "the time left is kept for the next target"))
                break
            if not forced:
                take = control.take(target, call)
                if take is not None and not (yield take):
                    skipped.append((target, "committed throughput used up"))
                    break
            tried = True
            try:
                result = yield from attempt_flow(target, len(call.attempts) + 1, until)
                return target, result
            except ProviderError as err:
                errors.pop(target.id, None)
                errors[target.id] = err
                now = clock()
                decision = decide(err, here, route.policy, call.time_left(now), now - call.started)
                if decision.unhealthy:
                    control.mark_unhealthy(target, err)
                if decision.action == "raise":
                    raise
                if (
                    decision.action == "retry"
                    and control.may_retry(target, call)
                    and _time_for_retry(call, control, now + decision.delay_s, queue)
                ):
                    yield Sleep(decision.delay_s)
                    continue
                if decision.action == "failover_larger":
                    window = control.context_window(target, call)
                    need_window = window if window is not None else estimated_tokens(call)
                break
    left = call.time_left(clock())
    if left is not None and left <= 0 and call.attempts:
        raise _deadline_error(call)
    if not errors:
        raise AllTargetsFailed(
            f"no target could be tried for {route.feature or route.targets[0].id}",
            [
                ProviderError(f"skipped: {why}", provider=t.provider, model=t.model)
                for t, why in skipped
            ]
            or [ProviderError("no targets")],
        )
    _raise_all(call, list(errors.values()))


def _lane(flow: FlowGen, won: list[bool] | None = None) -> FlowGen:
    """A hedge lane: forwards its flow's effects (and what the driver throws in); when the
    driver abandons the lane (another lane won), the flow's in-flight attempt is told so and
    recorded as ``hedge_lost``. A stream lane that won (``won`` set by the driver) and is
    then abandoned was cancelled by its caller, and is recorded so."""
    value: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if thrown is None else flow.throw(thrown)
        except StopIteration as stop:
            return stop.value
        value = thrown = None
        try:
            value = yield effect
        except GeneratorExit:
            if won:
                flow.close()
                raise
            try:
                flow.throw(HedgeLost())
            except (HedgeLost, StopIteration):
                pass
            finally:
                flow.close()
            raise
        except Exception as exc:  # a transport failure for the lane's flow
            thrown = exc


def _leaves(exc: BaseException) -> list[Exception]:
    if isinstance(exc, AllTargetsFailed):
        return [e for sub in exc.exceptions for e in _leaves(sub)]
    return [exc] if isinstance(exc, Exception) else []


def _run(
    call: Call,
    control: RouteControl,
    record: Recorder,
    clock: Clock,
    attempt_flow: Callable[[Target, int, float], FlowGen],
    lane_attempt: Callable[[], Callable[[Target, int, float], FlowGen]] | None = None,
) -> FlowGen:
    """`_routed`, hedged when the feature asks for it: lane 0 is the whole route; lane i
    starts at target i after ``after_s`` unless an earlier lane already answered (a stream:
    already streams). ``lane_attempt`` makes each stream lane's own attempt flow."""
    order = control.plan(call)
    hedge = control.hedge(call) if len(order) > 1 else None
    if hedge is None or (call.operation == "stream" and lane_attempt is None):
        return (yield from _routed(call, control, record, clock, attempt_flow, order))
    after_s, extra = hedge
    n = min(len(order), 1 + extra)
    if lane_attempt is not None:
        won: list[list[bool]] = [[] for _ in range(n)]  # the driver marks the winner
        outcome = yield StreamRace(
            [
                _lane(_routed(call, control, record, clock, lane_attempt(), order[i:]), won[i])
                for i in range(n)
            ],
            after_s,
            won,
        )
    else:
        outcome = yield Race(
            [
                _lane(_routed(call, control, record, clock, attempt_flow, order[i:]))
                for i in range(n)
            ],
            after_s,
        )
    if isinstance(outcome, RaceLost):
        seen: dict[int, Exception] = {}
        for e in outcome.errors:
            for leaf in _leaves(e):
                seen.setdefault(id(leaf), leaf)
        errors = list(seen.values())
        final = next(
            (
                e
                for e in errors
                if isinstance(e, ProviderError)
                and decide(e, 1, call.route.policy, None).action == "raise"
            ),
            None,
        )
        if final is not None:
            raise final
        _raise_all(call, errors)
    return outcome[1]


def _finish_response(call: Call, target: Target, resp: Response, clock: Clock) -> Response:
    resp.latency_ms = (clock() - call.started) * 1000.0
    resp.target = target.id
    resp.arm = call.route.arm
    resp.feature = call.route.feature
    resp.call_id = call.call_id
    resp.attempts = call.attempts
    resp.cost_usd = call.cost_usd
    if call.route.skipped:
        resp.skipped = dict(call.route.skipped)
    return resp


def chat_flow(
    call: Call,
    control: RouteControl,
    record: Recorder,
    output: OutputSpec | None,
    clock: Clock = time.perf_counter,
) -> FlowGen:
    """Routed chat with structured output: an invalid reply is retried once on the same
    target with the validation error fed back, then raises `ContractError`."""
    assert isinstance(call.request, ChatRequest)
    base_request = call.request

    def attempt(t: Target, n: int, until: float) -> FlowGen:
        if call.route.first_token_s is None:
            return _send_once(call, t, control, record, clock, n, until)
        # a first-token limit needs to see the first token: the reply is streamed, unseen
        return _stream_once(call, t, control, record, clock, n, until, _Delivered(), False)

    try:
        target, resp = yield from _run(call, control, record, clock, attempt)
        resp.tool_calls = distinct_call_ids(resp.tool_calls)  # one result per call
        if output is not None and not resp.tool_calls:
            try:
                resp.output = output.parse(resp.text)
            except ContractError as first:
                call.attempts[-1].outcome = "invalid_output"
                repair = base_request.with_messages(
                    [
                        *base_request.messages,
                        Message("assistant", resp.text),
                        Message(
                            "user",
                            "Your reply did not match the required JSON schema: "
                            f"{first}. Reply again with only JSON that matches it.",
                        ),
                    ]
                )
                call.request = repair
                until = _attempt_until(call, target, control, clock, [])
                resp = yield from attempt(target, len(call.attempts) + 1, until)
                try:
                    resp.output = output.parse(resp.text)
                except ContractError as second:
                    call.attempts[-1].outcome = "invalid_output"
                    raise ContractError(
                        f"{target.id}: reply failed the output contract twice: {second}",
                        second.details,
                    ) from None
                finally:
                    call.request = base_request
        resp = _finish_response(call, target, resp, clock)
    except BaseException as exc:
        _call_done(call, control, record, None, exc)
        raise
    _call_done(call, control, record, resp, None)
    return resp


def _embed_batches(req: EmbedRequest, size: int | None) -> list[EmbedRequest]:
    if size is None or len(req.inputs) <= size:
        return [req]
    return [replace(req, inputs=req.inputs[i : i + size]) for i in range(0, len(req.inputs), size)]


def _merged(parts: list[EmbedResponse]) -> EmbedResponse:
    """One response for the batches of one attempt: vectors in input order, usage summed."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    first.vectors = [v for p in parts for v in p.vectors]
    for p in parts[1:]:
        first.usage = first.usage + p.usage
    return first


def embed_flow(
    call: Call, control: RouteControl, record: Recorder, clock: Clock = time.perf_counter
) -> FlowGen:
    try:
        target, resp = yield from _run(
            call,
            control,
            record,
            clock,
            lambda t, n, until: _send_once(call, t, control, record, clock, n, until),
        )
        assert isinstance(resp, EmbedResponse)
        resp.latency_ms = (clock() - call.started) * 1000.0
        resp.target = target.id
        resp.feature = call.route.feature
        resp.attempts = call.attempts
        resp.cost_usd = call.cost_usd
    except BaseException as exc:
        _call_done(call, control, record, None, exc)
        raise
    _call_done(call, control, record, resp, None)
    return resp


# --------------------------------------------------------------------------- streaming


class _Delivered:
    """Whether the caller has already seen content: after that, no transparent failover."""

    __slots__ = ("any", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.any = False


def _stream_once(
    call: Call,
    target: Target,
    control: RouteControl,
    record: Recorder,
    clock: Clock,
    number: int,
    until: float,
    seen: _Delivered,
    emit: bool = True,
    hold: bool = False,
) -> FlowGen:
    """One streamed attempt. Until its first text or tool call it must keep ``until`` (and
    the feature's ``first_token_timeout_s``), so a target slow to start fails over; after
    that only the call's deadline bounds it. With ``emit`` False (a ``chat`` under a
    first-token limit) nothing reaches the caller and the reply is returned whole; with
    ``hold`` (a hedge lane) events before the first text or tool call wait for it, so the
    lane's first event is its first token."""
    adapter = target.adapter
    request = call.request
    assert isinstance(request, ChatRequest)
    if not request.stream:
        request = replace(request, stream=True)
    t0 = clock()
    first_token_s = call.route.first_token_s
    first_by = until
    if first_token_s is not None and t0 + first_token_s < until:
        first_by = t0 + first_token_s
    ttft: float | None = None
    error: BaseException | None = None
    status: int | None = None
    resp: Response | None = None
    parser = None
    opened = False
    created: Usage | None = None
    try:
        reply, created = yield from _exchange(call, target, request, first_by, clock, True)
        if isinstance(reply, WireReply):  # an error status: body already read
            status = reply.status
            raise adapter.parse_error(reply, target.model)
        assert isinstance(reply, OpenStream)
        opened = True
        status = reply.status
        parser = adapter.stream_parser(request, target.model)
        limit = byte_limit(adapter.settings.options, "max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
        received = 0
        settings = adapter.settings
        stall = settings.stall_timeout_s
        if stall is not None and stall >= (settings.first_byte_timeout_s or 0.0):
            stall = None  # the socket's own read timeout is this long: nothing to add per read
        deadline = call.deadline
        read = ReadChunk(first_by, stall)  # effects carry no state: one for every read
        held: list[StreamEvent] = []  # with ``hold``: events before the first token
        while True:
            chunk: bytes = yield read
            if not chunk:
                break
            received += len(chunk)
            if received > limit:  # an endless stream must not grow memory without bound
                raise adapter.invalid(
                    f"stream larger than max_reply_bytes={limit}; refusing to read on (raise "
                    "the provider option max_reply_bytes if the vendor really sends this much)",
                    target.model,
                )
            now = clock()
            if ttft is None:
                if now >= first_by:  # a transport that cannot be bounded: checked here too
                    raise _slow_start(call, target, t0, first_by)
            elif deadline is not None and now >= deadline:  # it covers the whole stream
                raise ProviderTimeout(
                    "the call's deadline passed while the stream was still sending",
                    provider=target.provider,
                    model=target.model,
                )
            for event in parser.feed(chunk):
                etype = event.type
                if ttft is None and (etype == "text" or etype == "tool_call"):
                    ttft = (clock() - t0) * 1000.0
                    read = ReadChunk(deadline, stall)  # started: the call's deadline only
                    if held:
                        for early in held:
                            yield Emit(early)
                        held = []
                if not emit or etype == "tool_call":
                    continue  # complete tool calls are emitted from the final response
                if etype == "text":
                    seen.any = True
                    seen.text.append(event.text)
                elif hold and ttft is None:
                    held.append(event)
                    continue
                yield Emit(event)
        resp = adapter.finalize(request, parser.finish())
        resp.ttft_ms = ttft
        if created is not None:
            resp.usage = resp.usage + created
        for early in held:  # a reply without text (its usage, its reasoning): now
            yield Emit(early)
        return resp
    except ProviderError as exc:
        if exc.provider is None:
            exc.provider, exc.model = target.provider, target.model
        if ttft is None and isinstance(exc, ProviderTimeout) and clock() >= first_by:
            exc = _slow_start(call, target, t0, first_by)
            error = exc
            raise exc from None
        if seen.any and not isinstance(exc, StreamInterrupted):
            partial = getattr(parser, "usage", None)
            exc = StreamInterrupted(
                f"stream failed after delivering text: {exc.message}",
                partial_text="".join(seen.text),
                usage=partial,
                provider=target.provider,
                model=target.model,
                status=exc.status,
                request_id=exc.request_id,
            )
            error = exc
            raise exc from None
        if isinstance(exc, StreamInterrupted) and seen.any:
            exc.partial_text = "".join(seen.text)
        error = exc
        raise
    except GeneratorExit:
        error = _Cancelled()
        raise
    except HedgeLost:
        error = _Lost()
        raise
    finally:
        if opened and not isinstance(error, _Cancelled):
            yield CloseStream()  # on cancellation the driver closes it
        usage = resp.usage if resp is not None else getattr(error, "usage", None) or created
        if usage is None and parser is not None and isinstance(error, _Cancelled):
            usage = getattr(parser, "usage", None)  # a lost hedge bills what it streamed
        _record_attempt(
            call,
            target,
            control,
            record,
            number,
            (clock() - t0) * 1000.0,
            error,
            status,
            usage,
            getattr(resp, "request_id", None),
            ttft,
        )


def _slow_start(call: Call, target: Target, t0: float, first_by: float) -> ProviderTimeout:
    """No text yet when the attempt's time to first token ran out: say which limit."""
    first_token_s = call.route.first_token_s
    if first_token_s is not None and abs(first_by - (t0 + first_token_s)) < 1e-9:
        why = f"no text within first_token_timeout_s={first_token_s:g}"
    else:
        why = (
            f"no text within the {first_by - t0:.3g}s this attempt had (the provider's "
            "timeout_s, or its share of the call's deadline)"
        )
    return ProviderTimeout(
        f"{why}; the call moves on to the next target",
        provider=target.provider,
        model=target.model,
        code=FIRST_TOKEN_TIMEOUT if why.startswith("no text within first") else None,
    )


def stream_flow(
    call: Call,
    control: RouteControl,
    record: Recorder,
    output: OutputSpec | None,
    clock: Clock = time.perf_counter,
) -> FlowGen:
    """Routed stream: a failure before the first text fails over transparently; after text
    was delivered it raises `StreamInterrupted` with the partial text (never a silent
    truncation, never a duplicated prefix)."""
    seen = _Delivered()

    def lane_attempt() -> Callable[[Target, int, float], FlowGen]:
        """A hedge lane's attempts: what they stream is held back until their first text,
        so a lane that loses the race shows the caller nothing."""
        lane_seen = _Delivered()
        return lambda t, n, until: _stream_once(
            call, t, control, record, clock, n, until, lane_seen, hold=True
        )

    try:
        target, resp = yield from _run(
            call,
            control,
            record,
            clock,
            lambda t, n, until: _stream_once(call, t, control, record, clock, n, until, seen),
            lane_attempt,
        )
        resp.tool_calls = distinct_call_ids(resp.tool_calls)  # one result per call
        for tool_call in resp.tool_calls:
            yield Emit(StreamEvent("tool_call", tool_call=tool_call))
        if output is not None and not resp.tool_calls:
            resp.output = output.parse(resp.text)
        resp = _finish_response(call, target, resp, clock)
    except BaseException as exc:
        _call_done(call, control, record, None, exc)
        raise
    _call_done(call, control, record, resp, None)
    yield Emit(StreamEvent("done", response=resp))
    return resp


# --------------------------------------------------------------------------- tool loop


def tool_loop_flow(
    first: Call,
    request: ChatRequest,
    control: RouteControl,
    record: Recorder,
    output: OutputSpec | None,
    functions: dict[str, Any],
    max_steps: int,
    tool_timeout_s: float | None,
    clock: Clock = time.perf_counter,
    stream: bool = False,
) -> FlowGen:
    """Run the model ↔ tools loop: each step is a full routed chat call; tool calls are
    validated and run by the driver (`RunTools`), their results or errors go back to the
    model as tool results, up to ``max_steps`` model calls.

    With ``stream``, each model turn streams its text and tool calls as they come, each tool
    result is emitted as a ``tool_result`` event, and one final ``done`` carries the last
    reply with the whole transcript, usage, cost and attempts (a turn's own ``done`` is not
    passed on)."""

    specs = {t.original_name or t.name: t for t in request.tools}  # names calls come back with
    messages = list(request.messages)
    total_cost: float | None = 0.0
    all_attempts: list[Attempt] = []
    usage = Usage()
    started = clock()
    for _step in range(max_steps):
        call = _turn(first, request.with_messages(messages))
        if stream:
            resp: Response = yield from _without_done(
                stream_flow(call, control, record, output, clock)
            )
        else:
            resp = yield from chat_flow(call, control, record, output, clock)
        all_attempts.extend(resp.attempts)
        usage = usage + resp.usage
        total_cost = (
            None if total_cost is None or resp.cost_usd is None else total_cost + resp.cost_usd
        )
        runnable = [c for c in resp.tool_calls if c.name in functions]
        if not resp.tool_calls or len(runnable) != len(resp.tool_calls):
            resp.messages = [*messages, resp.to_message()]
            resp.attempts = all_attempts
            resp.cost_usd = total_cost
            resp.usage = usage
            resp.latency_ms = (clock() - started) * 1000.0
            if stream:
                yield Emit(StreamEvent("done", response=resp))
            return resp
        messages.append(resp.to_message())
        results = yield from _run_tool_calls(resp.tool_calls, specs, functions, tool_timeout_s)
        for c in resp.tool_calls:
            messages.append(results[c.id])
            if stream:
                yield Emit(StreamEvent("tool_result", text=results[c.id].text, tool_call=c))
    raise ToolLoopExceeded(
        f"the model still asked for tools after max_steps={max_steps}; "
        "raise max_steps or check the tools' results",
        messages,
    )


def _turn(first: Call, request: ChatRequest) -> Call:
    """Each model turn of a tool loop is its own `Call`, sharing the first one's route, key,
    tags and deadline."""
    return Call(
        first.operation,
        first.route,
        request,
        key=first.key,
        tenant=first.tenant,
        tags=first.tags,
        contract_version=first.contract_version,
        deadline=first.deadline,
        budget_hold=first.budget_hold,
        action_id=first.action_id or first.call_id,
    )


def _without_done(flow: FlowGen) -> FlowGen:
    """Relay a stream flow's effects (and what the driver throws in), all but its final
    ``done`` event; return its result."""
    value: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            try:
                effect = flow.send(value) if thrown is None else flow.throw(thrown)
            except StopIteration as stop:
                return stop.value
            value = thrown = None
            if type(effect) is Emit and effect.event.type == "done":
                continue
            try:
                value = yield effect
            except GeneratorExit:
                raise
            except Exception as exc:
                thrown = exc
    finally:
        flow.close()


def _run_tool_calls(
    calls: list[ToolCall],
    specs: dict[str, Any],
    functions: dict[str, Any],
    tool_timeout_s: float | None,
) -> FlowGen:
    """Validate each call's arguments, run the valid ones (`RunTools`), and return the tool
    result message per call id; invalid arguments and failures become errors the model can
    correct."""
    from portal.contracts.schema import list_errors

    to_run: list[ToolCall] = []
    results: dict[str, Message] = {}
    for c in calls:
        spec = specs.get(c.name)
        problems = list_errors(c.arguments, spec.parameters) if spec else []
        if problems:
            detail = "; ".join(f"{p['pointer']}: {p['message']}" for p in problems[:5])
            results[c.id] = tool_result(
                c.id, f"error: invalid arguments: {detail}", name=c.name, is_error=True
            )
        else:
            to_run.append(c)
    if to_run:
        outcomes = yield RunTools(to_run, functions, tool_timeout_s)
        for c, outcome in zip(to_run, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                results[c.id] = tool_result(
                    c.id, f"error: {type(outcome).__name__}: {outcome}", name=c.name, is_error=True
                )
            else:
                try:
                    results[c.id] = tool_result(c.id, outcome, name=c.name)
                except PortalError as exc:
                    results[c.id] = tool_result(c.id, f"error: {exc}", name=c.name, is_error=True)
    return results
