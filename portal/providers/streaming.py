"""The pieces every streamed reply is parsed with: the `StreamParser` contract (raw bytes in,
normalized events out, the final `Response` at the end), its Server-Sent-Events form, and
the assembly of tool calls whose arguments arrive in fragments.

The wire decoding itself (event-stream lines, UTF-8 split anywhere) is `portal.providers.sse`;
what a parser keeps of events it has no rule for is `portal.providers.unknown`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from portal.contracts.messages import ToolCall
from portal.contracts.responses import Response, StreamEvent
from portal.errors import InvalidResponse
from portal.providers.shape_guard import guard_shape
from portal.providers.sse import SSEDecoder
from portal.providers.unknown import MAX_UNKNOWN_EVENTS

if TYPE_CHECKING:
    from portal.providers.adapter import Adapter

__all__ = [
    "INCOMPLETE_TOOL_CALLS",
    "SSEStreamParser",
    "StreamParser",
    "ToolCallAssembler",
    "forced_tool_text",
    "incomplete_call",
]


class StreamParser:
    """Incremental parser of one streamed reply. `feed` takes raw bytes as they arrive and
    returns the normalized events they complete; `finish` is called at end of stream and
    returns the final `Response`, or raises `StreamInterrupted` if the vendor never said the
    reply was complete. Vendor errors inside the stream raise `ProviderError` subclasses.

    Events (or delta blocks) of a type the parser has no rule for go to `keep_unknown_event`;
    `unknown_details` puts them on the final reply's ``provider_details``."""

    # class-level defaults: subclasses do not call a base ``__init__``
    _unknown_events: list[Any] | None = None
    _unknown_dropped: int = 0

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name in ("feed", "finish"):
            if name in cls.__dict__:
                setattr(cls, name, guard_shape(cls.__dict__[name], name))

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        raise NotImplementedError(f"{type(self).__name__}.feed")

    def finish(self) -> Response:
        raise NotImplementedError(f"{type(self).__name__}.finish")

    def keep_unknown_event(self, event: Any) -> None:
        """Keep an event the parser has no rule for, as the vendor sent it: the first
        `MAX_UNKNOWN_EVENTS` are kept, later ones only counted."""
        kept = self._unknown_events
        if kept is None:
            kept = self._unknown_events = []
        if len(kept) < MAX_UNKNOWN_EVENTS:
            kept.append(event)
        else:
            self._unknown_dropped += 1

    def unknown_details(self, details: dict[str, Any]) -> dict[str, Any]:
        """``details`` with the kept unknown events under ``unknown_events`` (and, past the
        cap, their number under ``unknown_events_dropped``); unchanged when there were none."""
        if self._unknown_events:
            details["unknown_events"] = self._unknown_events
            if self._unknown_dropped:
                details["unknown_events_dropped"] = self._unknown_dropped
        return details


class ToolCallAssembler:
    """Assembles streamed tool calls from fragments keyed by the vendor's index or id, with
    several calls interleaved. Arguments are JSON text that is only complete at the end.

    A call's id and name are set once, by the first fragment that carries them: servers that
    repeat the name in every chunk of a call do not make it ``nameName``; only arguments are
    appended."""

    def __init__(self) -> None:
        self._order: list[Any] = []
        self._ids: dict[Any, str] = {}
        self._names: dict[Any, str] = {}
        self._args: dict[Any, list[str]] = {}

    def start(self, key: Any, call_id: str | None = None, name: str | None = None) -> None:
        if key not in self._args:
            self._order.append(key)
            self._args[key] = []
        if call_id and key not in self._ids:
            self._ids[key] = call_id
        if name and key not in self._names:
            self._names[key] = name

    def add_arguments(self, key: Any, fragment: str) -> None:
        if key not in self._args:
            self.start(key)
        self._args[key].append(fragment)

    def __bool__(self) -> bool:
        return bool(self._order)

    def finish(
        self,
        provider: str | None = None,
        model: str | None = None,
        truncated: list[dict[str, Any]] | None = None,
    ) -> list[ToolCall]:
        """The assembled calls. With ``truncated`` (a reply cut by the token limit), a call
        whose arguments are not complete JSON is appended there (`incomplete_call`) instead
        of raising `InvalidResponse`: it is not a call anyone may run."""
        calls = []
        for key in self._order:
            raw = "".join(self._args[key]).strip()
            try:
                args = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                if truncated is not None:
                    truncated.append(
                        incomplete_call(
                            self._ids.get(key, f"call_{key}"), self._names.get(key), raw
                        )
                    )
                    continue
                raise InvalidResponse(
                    f"tool call {self._names.get(key)!r}: streamed arguments are not valid JSON "
                    f"({exc.msg})",
                    provider=provider,
                    model=model,
                ) from None
            if not isinstance(args, dict):
                raise InvalidResponse(
                    f"tool call {self._names.get(key)!r}: arguments must be a JSON object",
                    provider=provider,
                    model=model,
                )
            calls.append(
                ToolCall(self._ids.get(key, f"call_{key}"), self._names.get(key, ""), args)
            )
        return calls


#: ``Response.provider_details`` key of the tool calls a token limit cut off (see
#: `incomplete_call`); they are never in ``Response.tool_calls``
INCOMPLETE_TOOL_CALLS = "incomplete_tool_calls"


def incomplete_call(call_id: str, name: str | None, arguments: str) -> dict[str, Any]:
    """A tool call the token limit cut off: its id, its name and the arguments text as far
    as it came. Kept on ``provider_details["incomplete_tool_calls"]`` of a reply whose
    ``finish_reason`` is "length", so nothing runs a call with half its arguments."""
    return {"id": call_id, "name": name or "", "arguments": arguments}


def forced_tool_text(
    structured: list[str] | None,
    plain: str,
    details: dict[str, Any],
    adapter: Adapter,
    model: str,
) -> str:
    """The reply text of a stream whose structured output came as a forced tool call's
    streamed input (Anthropic, Bedrock): the tool's JSON, with any plain text before it kept
    as ``details["preamble"]``. Without a forced tool, the plain text itself."""
    if structured is None:
        return plain
    try:
        value = json.loads("".join(structured).strip() or "{}")
    except json.JSONDecodeError as exc:
        raise adapter.invalid(
            f"structured output streamed as invalid JSON ({exc.msg})", model
        ) from None
    if plain:
        details["preamble"] = plain
    return json.dumps(value, ensure_ascii=False)


class SSEStreamParser(StreamParser):
    """A `StreamParser` for vendors that stream Server-Sent Events: `feed` decodes the bytes
    with ``self.sse`` (set by the subclass, usually ``adapter.sse_decoder()``) and hands each
    event to `on_event`; `drain` hands over a trailing event at the end of the stream."""

    sse: SSEDecoder

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for sse in self.sse.feed(chunk):
            self.on_event(sse.event, sse.data, events)
        return events

    def drain(self) -> None:
        for sse in self.sse.close():
            self.on_event(sse.event, sse.data, [])

    def on_event(self, sse_event: str, data: str, events: list[StreamEvent]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.on_event")
