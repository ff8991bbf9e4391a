"""The layers around one call, in the order DESIGN.md draws them:
safety(in) → RAG → model (and tool loop) → safety(out).

Everything here is pure or sans-IO, so `Client` and `AsyncClient` share it: input guards
run while the request is prepared (a block raises before any vendor is called); the RAG
step and the model call are flows the drivers perform; output guards, placeholder
restoring, citations and the per-call records run on the finished `Response`.

What a call's response carries:

- ``provider_details["guards"]``: every guard decision as ``Decision.to_record()`` (guard,
  action, stage, counts; never the matched text);
- ``provider_details["rag"]``: ``latency_ms`` of retrieval, ``context_tokens`` added,
  ``doc_ids`` injected (plus ``over_budget`` / ``screened_out`` when some were left out);
- ``citations``: the injected document ids the answer cited with ``[doc:ID]``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from portal.contracts.messages import Message, tool_result
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Response, StreamEvent
from portal.effects import Emit
from portal.layers.rag import RagOptions, RagResult, Retriever, cited_ids, rag_step
from portal.layers.safety import (
    Decision,
    GuardBlocked,
    GuardChain,
    StreamRestorer,
    Vault,
    restore_value,
)

__all__ = ["Layers", "chat_pipeline", "screen_input", "stream_pipeline", "wrap_tools"]

FlowGen = Generator[Any, Any, Any]
Recorder = Callable[[Sequence[Decision]], None]


@dataclass(slots=True)
class Layers:
    """The layers of one call and what they decided so far."""

    chain: GuardChain | None = None
    vault: Vault | None = None
    decisions: list[Decision] = field(default_factory=list)
    retriever: Retriever | None = None
    rag: RagOptions | None = None
    count: Callable[[str], int] = len
    record: Recorder | None = None  # the meter's counter
    deadline: float | None = None  # the call's (retrieval counts against it)

    @property
    def restores(self) -> bool:
        """Whether a guard puts placeholders back for the caller (``restore = true``)."""
        if self.chain is None or self.vault is None or not len(self.vault):
            return False
        return any(getattr(g, "restore", False) for g in self.chain.guards)

    def note(self, decisions: Sequence[Decision]) -> None:
        self.decisions.extend(decisions)
        if self.record is not None and decisions:
            self.record(decisions)


def screen_input(layers: Layers, messages: list[Message]) -> list[Message]:
    """Run the input guards; returns the messages to send. A block is counted, then raised."""
    if layers.chain is None or not len(layers.chain):
        return messages
    try:
        result = layers.chain.check_input(messages)
    except GuardBlocked as blocked:
        layers.note(blocked.decisions)
        raise
    layers.vault = result.vault
    layers.note(result.decisions)
    assert result.messages is not None
    return result.messages


# ----------------------------------------------------------------------------- tools


def wrap_tools(layers: Layers, functions: dict[str, Any]) -> dict[str, Any]:
    """Tools get the real values behind placeholders in their arguments (they run in the
    app, not at the vendor), and their results pass the input guards before they go back
    to the model (a tool that returns an email sends ``[EMAIL_2]``, not the address)."""
    if layers.chain is None or not len(layers.chain) or not functions:
        return functions
    return {name: _wrap(layers, fn) for name, fn in functions.items()}


def _wrap(layers: Layers, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(**kwargs: Any) -> Any:
            result = await fn(**_restored(layers, kwargs))
            return _screen_result(layers, fn, result)

        return run_async

    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        result = fn(**_restored(layers, kwargs))
        if inspect.isawaitable(result):
            return result  # the sync driver reports async tools itself
        return _screen_result(layers, fn, result)

    return run


def _restored(layers: Layers, kwargs: dict[str, Any]) -> dict[str, Any]:
    if layers.vault is None or not len(layers.vault):
        return kwargs
    return restore_value(kwargs, layers.vault)  # type: ignore[no-any-return]


def _screen_result(layers: Layers, fn: Callable[..., Any], result: Any) -> Any:
    """The result as the model will see it, after the guards (a block becomes a tool error)."""
    assert layers.chain is not None
    name = getattr(fn, "__name__", "tool")
    msgs = [tool_result("screen", result, name=name)]
    vault = layers.vault if layers.vault is not None else Vault()
    layers.vault = vault
    decisions: list[Decision] = []
    for guard in layers.chain.guards:
        r = guard.check_input(msgs, vault=vault)
        decisions.extend(r.decisions)
        if r.blocked is not None:
            layers.note(decisions)
            raise GuardBlocked(
                f"safety guard {r.blocked.guard!r} blocked the tool result: {r.blocked.reason}",
                guard=r.blocked.guard,
                reason=r.blocked.reason,
                stage="input",
                decisions=decisions,
            )
        if r.messages is not None:
            msgs = r.messages
    layers.note(decisions)
    return msgs[0].text


# ----------------------------------------------------------------------------- chat


def chat_pipeline(
    layers: Layers,
    request: ChatRequest,
    run: Callable[[ChatRequest], FlowGen],
    output: OutputSpec | None,
) -> FlowGen:
    """RAG (if any), the model flow ``run`` (plain chat or the tool loop), output guards."""
    rag = None
    if layers.retriever is not None:
        rag = yield from _rag(layers, request)
        request = request.with_messages(rag.messages)
    resp: Response = yield from run(request)
    return finish(layers, resp, rag, output)


def _rag(layers: Layers, request: ChatRequest) -> FlowGen:
    assert layers.retriever is not None
    result: RagResult = yield from rag_step(
        layers.retriever,
        layers.rag or RagOptions(),
        request.messages,
        count=layers.count,
        chain=layers.chain,
        deadline=layers.deadline,
    )
    layers.note(result.decisions)
    return result


def finish(
    layers: Layers, resp: Response, rag: RagResult | None, output: OutputSpec | None
) -> Response:
    """Output guards on the answer and the visible reasoning (a block raises), restored
    placeholders, citations and records."""
    chain, vault = layers.chain, layers.vault
    if chain is not None and len(chain):
        text = _screened(layers, chain, resp.text)
        if text is not None and text != resp.text:
            resp.text = text
            if output is not None and resp.output is not None:
                resp.output = output.parse(resp.text)
        if resp.reasoning:  # the visible reasoning is screened like the answer
            thought = _screened(layers, chain, resp.reasoning)
            if thought is not None:
                resp.reasoning = thought
        if vault is not None and len(vault) and resp.tool_calls and layers.restores:
            resp.tool_calls = [
                dataclasses.replace(c, arguments=restore_value(c.arguments, vault))
                for c in resp.tool_calls
            ]
    if rag is not None:
        resp.citations = cited_ids(resp.text, rag.documents)
        resp.provider_details["rag"] = rag.details
    if layers.decisions:
        resp.provider_details["guards"] = [d.to_record() for d in layers.decisions]
    return resp


def _screened(layers: Layers, chain: Any, text: str) -> str | None:
    """``text`` through the output guards: their rewrite (None: unchanged); a block raises,
    its decisions noted either way."""
    try:
        out = chain.check_output(text, layers.vault)
    except GuardBlocked as blocked:
        layers.note(blocked.decisions)
        raise
    layers.note(out.decisions)
    return out.text  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- stream


def stream_pipeline(
    layers: Layers,
    request: ChatRequest,
    run: Callable[[ChatRequest], FlowGen],
    output: OutputSpec | None,
) -> FlowGen:
    """`chat_pipeline` for streams: text deltas are restored on the fly (a placeholder split
    across deltas is held back until complete); output guards run on the final text, so a
    block raises after the deltas were shown and redactions apply to the final response."""
    rag = None
    if layers.retriever is not None:
        rag = yield from _rag(layers, request)
        request = request.with_messages(rag.messages)
    restorer = StreamRestorer(layers.vault) if layers.restores and layers.vault else None
    inner = run(request)
    value: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            try:
                effect = inner.send(value) if thrown is None else inner.throw(thrown)
            except StopIteration as stop:
                return stop.value
            value = thrown = None
            if type(effect) is Emit and restorer is not None and effect.event.type == "text":
                text = restorer.feed(effect.event.text)
                if text:
                    yield Emit(StreamEvent("text", text=text))
                continue
            if type(effect) is Emit and effect.event.type == "done":
                if restorer is not None:
                    rest = restorer.flush()
                    if rest:
                        yield Emit(StreamEvent("text", text=rest))
                resp = effect.event.response
                if resp is not None:
                    finish(layers, resp, rag, output)
                yield effect
                continue
            try:
                value = yield effect
            except GeneratorExit:
                raise
            except Exception as exc:  # a transport failure: the inner flow handles it
                thrown = exc
    finally:
        inner.close()
