"""The sans-IO flows of a call: chat, stream and embed, with retries, failover, structured
output repair and the tool loop. They yield effects (`portal.routing.effects`) and never do
I/O themselves, so the sync and the async client share every decision made here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from random import getrandbits as _random_bits
from typing import Any, NoReturn, Protocol

from portal.contracts.messages import Message, ToolCall, tool_result
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import Attempt, EmbedResponse, Response, StreamEvent, Usage
from portal.errors import (
    AllTargetsFailed,
    ContractError,
    PortalError,
    ProviderError,
    ProviderTimeout,
    StreamInterrupted,
    ToolLoopExceeded,
)
from portal.providers.base import DEFAULT_MAX_REPLY_BYTES, WireReply, byte_limit
from portal.routing.effects import (
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
    Take,
)
from portal.routing.retry import decide
from portal.routing.router import Route, Target

__all__ = ["Call", "Hooks", "chat_flow", "embed_flow", "stream_flow", "tool_loop_flow"]


class Hooks(Protocol):
    """What the flows ask of the world (routing state) and tell it (metering)."""

    def plan(self, call: Call) -> list[Target]:
        """The route's targets in the order to try them (strategy applied)."""
        ...

    def allow(self, target: Target, call: Call) -> bool:
        """Breaker check (claims the half-open probe when one is due)."""
        ...

    def take(self, target: Target, call: Call) -> Take | None:
        """The committed-throughput effect to perform before an attempt, if any."""
        ...

    def may_retry(self, target: Target, call: Call) -> bool:
        """Retry budget: may this target be retried once more?"""
        ...

    def fallback(self, call: Call, skipped: list[tuple[Target, str]]) -> Target | None:
        """Every target was skipped: the one to try anyway, or None."""
        ...

    def context_window(self, target: Target, call: Call) -> int | None: ...

    def hedge(self, call: Call) -> tuple[float, int] | None:
        """(seconds before a hedge, how many extra targets) or None."""
        ...

    def mark_unhealthy(self, target: Target, err: BaseException) -> None: ...

    def on_attempt(
        self, call: Call, target: Target, attempt: Attempt, error: BaseException | None
    ) -> None: ...

    def on_call(
        self, call: Call, response: Response | EmbedResponse | None, error: BaseException | None
    ) -> None: ...

    def cost(self, target: Target, usage: Usage) -> float | None: ...


def new_call_id() -> str:
    """128 random bits as hex: an identifier, not a secret. `random` (reseeded after fork)
    instead of os.urandom, whose syscall releases the GIL on every call: with the ledger's
    writer thread waiting for it, that hand-off cost more than the id itself."""
    return f"{_random_bits(128):032x}"


@dataclass(slots=True)
class Call:
    """Per-call state: what was asked, where it may go, what happened so far."""

    operation: str  # chat | stream | embed
    route: Route
    request: ChatRequest | EmbedRequest
    key: str | None = None
    tenant: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    contract_version: str | None = None
    started: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    call_id: str = field(default_factory=new_call_id)
    attempts: list[Attempt] = field(default_factory=list)
    cost_usd: float | None = 0.0
    #: estimated tokens of one attempt (committed-throughput buckets), computed on demand
    estimated_tokens: int | None = None
    #: providers whose bucket this call took from and has not settled yet
    reserved: dict[str, int] = field(default_factory=dict)
    #: the budget reservation this call settles against (portal.metering.budgets), if any
    budget_hold: Any = None
    #: the user action this call is part of: a tool loop's steps share the first call's id
    action_id: str | None = None

    def time_left(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now

    def add_cost(self, cost: float | None) -> None:
        if cost is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += cost


Clock = Callable[[], float]
FlowGen = Generator[Any, Any, Any]


# --------------------------------------------------------------------------- one attempt


def _timeout_for(call: Call, target: Target, clock: Clock) -> float:
    default = target.adapter.settings.timeout_s
    left = call.time_left(clock())
    if left is None:
        return default
    if left <= 0:
        raise ProviderTimeout(
            "the call's deadline passed before this attempt could start",
            provider=target.provider,
            model=target.model,
        )
    return min(default, left)


def _send_once(call: Call, target: Target, hooks: Hooks, clock: Clock, number: int) -> FlowGen:
    """One non-streaming attempt; returns (Response | EmbedResponse) or raises ProviderError.
    Records the attempt either way."""
    adapter = target.adapter
    t0 = clock()
    error: BaseException | None = None
    status: int | None = None
    result: Any = None
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
            timeout = _timeout_for(call, target, clock)
            wire = (
                adapter.build_embed(req, target.model)
                if embed
                else adapter.build_chat(req, target.model)
            )
            reply = yield Send(target.provider, wire, timeout)
            if isinstance(reply, BaseException):
                raise reply
            assert isinstance(reply, WireReply)
            status = reply.status
            if reply.status >= 400:
                raise adapter.parse_error(reply, target.model)
            if embed:
                parts.append(adapter.parse_embed(reply, target.model))
            else:
                parts.append(adapter.finalize(req, adapter.parse_chat(reply, target.model)))
        result = _merged(parts) if embed else parts[0]
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
        usage = getattr(result, "usage", None)
        cost = hooks.cost(target, usage) if usage is not None else (0.0 if error else None)
        attempt = Attempt(
            target=target.id,
            outcome=_outcome(error),
            latency_ms=(clock() - t0) * 1000.0,
            number=number,
            error=None if error is None or isinstance(error, _Cancelled) else type(error).__name__,
            status=status if status is not None else getattr(error, "status", None),
            usage=usage,
            cost_usd=cost,
            request_id=getattr(result, "request_id", None) or getattr(error, "request_id", None),
        )
        call.attempts.append(attempt)
        call.add_cost(cost)
        hooks.on_attempt(call, target, attempt, error)


class _Cancelled(BaseException):
    """Marks an attempt abandoned by its caller (cancellation)."""


class _Lost(_Cancelled):
    """Marks a hedge lane's attempt abandoned because another lane won."""


def _outcome(error: BaseException | None) -> Any:
    if error is None:
        return "ok"
    if isinstance(error, _Lost):
        return "hedge_lost"
    return "cancelled" if isinstance(error, _Cancelled) else "error"


# --------------------------------------------------------------------------- failover loop


def _deadline_error(call: Call, attempts: int) -> ProviderTimeout:
    total = None if call.deadline is None else call.deadline - call.started
    return ProviderTimeout(
        f"the call's deadline of {total:.3g}s passed after {attempts} attempt(s); "
        "raise timeout_s (per call or the feature's timeout_s) if this call may take longer",
    )


def _raise_all(call: Call, errors: list[Exception]) -> NoReturn:
    if len(errors) == 1:
        raise errors[0]
    targets = len({getattr(e, "target", None) for e in errors})
    raise AllTargetsFailed(
        f"all {targets} target(s) failed for {call.route.feature or call.route.targets[0].id}",
        errors,
    )


def _routed(
    call: Call,
    hooks: Hooks,
    clock: Clock,
    attempt_flow: Callable[[Target, int], FlowGen],
    order: list[Target] | None = None,
) -> FlowGen:
    """Try targets in order, with retries on each; return (target, result).

    A target is skipped when its breaker is open, when its committed throughput is used up
    (overflow), or after a ContextTooLong when its window is not larger; if every target was
    skipped, ``hooks.fallback`` picks one to try anyway. The deadline covers everything.
    """
    route = call.route
    queue = list(hooks.plan(call) if order is None else order)
    errors: dict[str, Exception] = {}  # the last error of each target, in order tried
    skipped: list[tuple[Target, str]] = []
    need_window: int | None = None  # after ContextTooLong: only larger windows
    tried = False
    forced = False
    while True:
        if not queue:
            pick = None if tried or forced else hooks.fallback(call, skipped)
            if pick is None:
                break
            queue, forced = [pick], True
        target = queue.pop(0)
        if need_window is not None:
            window = hooks.context_window(target, call)
            if window is None or window <= need_window:
                skipped.append((target, "context window not larger"))
                continue
        if not forced and not hooks.allow(target, call):
            skipped.append((target, "breaker open"))
            continue
        here = 0
        while True:
            here += 1
            left = call.time_left(clock())
            if left is not None and left <= 0:
                _raise_all(call, [*errors.values(), _deadline_error(call, len(call.attempts))])
            if not forced:
                take = hooks.take(target, call)
                if take is not None and not (yield take):
                    skipped.append((target, "committed throughput used up"))
                    break
            tried = True
            try:
                result = yield from attempt_flow(target, len(call.attempts) + 1)
                return target, result
            except ProviderError as err:
                errors.pop(target.id, None)
                errors[target.id] = err
                now = clock()
                decision = decide(err, here, route.policy, call.time_left(now), now - call.started)
                if decision.unhealthy:
                    hooks.mark_unhealthy(target, err)
                if decision.action == "raise":
                    raise
                if decision.action == "retry" and hooks.may_retry(target, call):
                    yield Sleep(decision.delay_s)
                    continue
                if decision.action == "failover_larger":
                    window = hooks.context_window(target, call)
                    need_window = window if window is not None else _estimate(call)
                break
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


def _estimate(call: Call) -> int:
    if call.estimated_tokens is None:
        from portal.metering.tokens import count_request

        call.estimated_tokens = (
            count_request(call.request).tokens
            if isinstance(call.request, ChatRequest)
            else sum(len(i) // 4 + 1 for i in call.request.inputs)
        )
    return call.estimated_tokens


def _lane(flow: FlowGen) -> FlowGen:
    """A hedge lane: forwards its flow's effects; when the driver abandons the lane (another
    lane won), the flow's in-flight attempt is told so and recorded as ``hedge_lost``."""
    value: Any = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration as stop:
            return stop.value
        try:
            value = yield effect
        except GeneratorExit:
            try:
                flow.throw(HedgeLost())
            except (HedgeLost, StopIteration):
                pass
            finally:
                flow.close()
            raise


def _leaves(exc: BaseException) -> list[Exception]:
    if isinstance(exc, AllTargetsFailed):
        return [e for sub in exc.exceptions for e in _leaves(sub)]
    return [exc] if isinstance(exc, Exception) else []


def _run(
    call: Call, hooks: Hooks, clock: Clock, attempt_flow: Callable[[Target, int], FlowGen]
) -> FlowGen:
    """`_routed`, hedged when the feature asks for it: lane 0 is the whole route; lane i
    starts at target i after ``after_s`` unless an earlier lane already answered."""
    order = hooks.plan(call)
    hedge = hooks.hedge(call) if call.operation != "stream" and len(order) > 1 else None
    if hedge is None:
        return (yield from _routed(call, hooks, clock, attempt_flow, order))
    after_s, extra = hedge
    lanes = [
        _lane(_routed(call, hooks, clock, attempt_flow, order[i:]))
        for i in range(min(len(order), 1 + extra))
    ]
    outcome = yield Race(lanes, after_s)
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
    resp.attempts = call.attempts
    resp.cost_usd = call.cost_usd
    return resp


def chat_flow(
    call: Call, hooks: Hooks, output: OutputSpec | None, clock: Clock = time.perf_counter
) -> FlowGen:
    """Routed chat with structured output: an invalid reply is retried once on the same
    target with the validation error fed back, then raises `ContractError`."""
    assert isinstance(call.request, ChatRequest)
    base_request = call.request
    try:
        target, resp = yield from _run(
            call, hooks, clock, lambda t, n: _send_once(call, t, hooks, clock, n)
        )
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
                resp = yield from _send_once(call, target, hooks, clock, len(call.attempts) + 1)
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
        hooks.on_call(call, None, exc)
        raise
    hooks.on_call(call, resp, None)
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


def embed_flow(call: Call, hooks: Hooks, clock: Clock = time.perf_counter) -> FlowGen:
    try:
        target, resp = yield from _run(
            call, hooks, clock, lambda t, n: _send_once(call, t, hooks, clock, n)
        )
        assert isinstance(resp, EmbedResponse)
        resp.latency_ms = (clock() - call.started) * 1000.0
        resp.target = target.id
        resp.feature = call.route.feature
        resp.attempts = call.attempts
        resp.cost_usd = call.cost_usd
    except BaseException as exc:
        hooks.on_call(call, None, exc)
        raise
    hooks.on_call(call, resp, None)
    return resp


# --------------------------------------------------------------------------- streaming


class _Delivered:
    """Whether the caller has already seen content: after that, no transparent failover."""

    __slots__ = ("any", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.any = False


def _stream_once(
    call: Call, target: Target, hooks: Hooks, clock: Clock, number: int, seen: _Delivered
) -> FlowGen:
    adapter = target.adapter
    assert isinstance(call.request, ChatRequest)
    t0 = clock()
    ttft: float | None = None
    error: BaseException | None = None
    status: int | None = None
    resp: Response | None = None
    parser = None
    opened = False
    try:
        timeout = _timeout_for(call, target, clock)
        wire = adapter.build_chat(call.request, target.model)
        reply = yield Send(target.provider, wire, timeout, stream=True)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, WireReply):  # an error status: body already read
            status = reply.status
            raise adapter.parse_error(reply, target.model)
        assert isinstance(reply, OpenStream)
        opened = True
        status = reply.status
        parser = adapter.stream_parser(call.request, target.model)
        limit = byte_limit(adapter.settings.options, "max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
        received = 0
        deadline = call.deadline
        read = ReadChunk()  # effects carry no state: one for every read
        while True:
            chunk = yield read
            if isinstance(chunk, BaseException):
                raise chunk
            if not chunk:
                break
            received += len(chunk)
            if received > limit:  # an endless stream must not grow memory without bound
                raise adapter.invalid(
                    f"stream larger than max_reply_bytes={limit}; refusing to read on (raise "
                    "the provider option max_reply_bytes if the vendor really sends this much)",
                    target.model,
                )
            if deadline is not None and clock() >= deadline:  # it covers the whole stream
                raise ProviderTimeout(
                    "the call's deadline passed while the stream was still sending",
                    provider=target.provider,
                    model=target.model,
                )
            for event in parser.feed(chunk):
                if event.type == "tool_call":
                    continue  # complete tool calls are emitted from the final response
                if event.type == "text":
                    if ttft is None:
                        ttft = (clock() - t0) * 1000.0
                    seen.any = True
                    seen.text.append(event.text)
                yield Emit(event)
        resp = adapter.finalize(call.request, parser.finish())
        resp.ttft_ms = ttft
        return resp
    except ProviderError as exc:
        if exc.provider is None:
            exc.provider, exc.model = target.provider, target.model
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
    finally:
        if opened and not isinstance(error, _Cancelled):
            yield CloseStream()  # on cancellation the driver closes it
        usage = resp.usage if resp is not None else getattr(error, "usage", None)
        cost = hooks.cost(target, usage) if usage is not None else (0.0 if error else None)
        attempt = Attempt(
            target=target.id,
            outcome="ok"
            if error is None
            else ("cancelled" if isinstance(error, _Cancelled) else "error"),
            latency_ms=(clock() - t0) * 1000.0,
            number=number,
            error=None if error is None or isinstance(error, _Cancelled) else type(error).__name__,
            status=status,
            usage=usage,
            cost_usd=cost,
            ttft_ms=ttft,
            request_id=getattr(resp, "request_id", None) or getattr(error, "request_id", None),
        )
        call.attempts.append(attempt)
        call.add_cost(cost)
        hooks.on_attempt(call, target, attempt, error)


def stream_flow(
    call: Call, hooks: Hooks, output: OutputSpec | None, clock: Clock = time.perf_counter
) -> FlowGen:
    """Routed stream: a failure before the first text fails over transparently; after text
    was delivered it raises `StreamInterrupted` with the partial text (never a silent
    truncation, never a duplicated prefix)."""
    seen = _Delivered()
    try:
        target, resp = yield from _run(
            call, hooks, clock, lambda t, n: _stream_once(call, t, hooks, clock, n, seen)
        )
        for tool_call in resp.tool_calls:
            yield Emit(StreamEvent("tool_call", tool_call=tool_call))
        if output is not None and not resp.tool_calls:
            resp.output = output.parse(resp.text)
        resp = _finish_response(call, target, resp, clock)
    except BaseException as exc:
        hooks.on_call(call, None, exc)
        raise
    hooks.on_call(call, resp, None)
    yield Emit(StreamEvent("done", response=resp))
    return resp


# --------------------------------------------------------------------------- tool loop


def tool_loop_flow(
    make_call: Callable[[ChatRequest], Call],
    request: ChatRequest,
    hooks: Hooks,
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
        call = make_call(request.with_messages(messages))
        if stream:
            resp: Response = yield from _without_done(stream_flow(call, hooks, output, clock))
        else:
            resp = yield from chat_flow(call, hooks, output, clock)
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


def _without_done(flow: FlowGen) -> FlowGen:
    """Relay a stream flow's effects, all but its final ``done`` event; return its result."""
    value: Any = None
    try:
        while True:
            try:
                effect = flow.send(value)
            except StopIteration as stop:
                return stop.value
            if type(effect) is Emit and effect.event.type == "done":
                value = None
                continue
            value = yield effect
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
