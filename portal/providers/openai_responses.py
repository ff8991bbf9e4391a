"""OpenAI Responses API (``POST /v1/responses``).

Wire format: shared/specs/openai-openapi.yaml, schemas ``CreateResponse`` (request),
``Response`` (reply: ``output`` items ``message``/``output_text``, ``function_call`` with
``call_id``), ``ResponseStreamEvent`` (typed SSE events) and ``ResponseUsage``.

Translation:

- leading system messages become ``instructions``; later ones stay ``system`` input items;
- user/assistant turns are ``{"role", "content"}`` items (``input_text`` / ``input_image``,
  ``detail: "auto"``); assistant tool calls become ``function_call`` items and tool results
  ``function_call_output`` items, paired by ``call_id`` (ids longer than the API's 64
  characters are hashed, deterministically, on both sides);
- tools are flat ``{"type": "function", "name", "parameters", "strict"}`` entries;
- structured output is ``text.format: {"type": "json_schema", "strict": true, ...}`` through the
  OpenAI strict transformer; ``store`` is false unless a provider option says otherwise;
- the API has no ``stop`` nor ``seed``: a request that sets them gets a `ContractError`
  rather than a silently different answer;
- ``status: incomplete`` maps ``max_output_tokens`` → length and ``content_filter`` →
  content_filter; a function call the limit cut off is kept out of ``tool_calls``, in
  ``provider_details["incomplete_tool_calls"]``; ``status: failed`` and ``error`` stream events
  raise the classified error; a ``queued`` / ``in_progress`` (background mode) or
  ``cancelled`` response is no reply and raises a non-retryable `InvalidResponse`, and
  ``background: true`` on a non-streamed call is refused before sending;
- output: ``message`` items (their ``output_text`` and ``refusal`` parts) and ``function_call``
  items are mapped. ``reasoning`` items (``ReasoningItem``) are never in the answer: the text of
  their ``summary`` (``summary_text``) then ``content`` (``reasoning_text``) parts, one block
  per part in order, joined by a blank line, is ``Response.reasoning``; their
  ``encrypted_content`` is dropped and nothing is sent back. A stream emits a ``reasoning``
  event per ``response.reasoning_summary_text.delta`` / ``response.reasoning_text.delta``
  (their ``delta``; the ``.done`` repeats are ignored) and its final reply's ``reasoning`` is
  those pieces, a block per (item, summary or content part), joined the same way. Any other
  item (a built-in tool's call, a type added later) or message part is kept as sent in
  ``provider_details["unknown_content"]``.
  A stream keeps events of a type not in `STREAM_EVENT_TYPES` (the ``ResponseStreamEvent``
  union of the spec) in ``provider_details["unknown_events"]``, capped at
  `MAX_UNKNOWN_EVENTS`; the items themselves arrive whole in ``response.completed``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from portal.contracts.cache import marked
from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Response, StreamEvent, Usage
from portal.errors import ContractError, InvalidResponse, ProviderError
from portal.providers.adapter import Capabilities
from portal.providers.openai import OpenAIAdapter, put_prompt_cache_key, with_tier
from portal.providers.reasoning import join_reasoning
from portal.providers.schema_transform import to_openai_strict
from portal.providers.streaming import (
    INCOMPLETE_TOOL_CALLS,
    SSEStreamParser,
    StreamParser,
    ToolCallAssembler,
    incomplete_call,
)
from portal.providers.unknown import keep_unknown
from portal.wire import WireReply, WireRequest

__all__ = ["OpenAIResponsesAdapter", "OpenAIResponsesStreamParser"]

INCOMPLETE_REASON_MAP: dict[str, str] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
#: statuses of a Response object that is not (or never will be) a finished reply
UNFINISHED_STATUSES = frozenset({"queued", "in_progress", "cancelled"})
_MAX_CALL_ID = 64
#: output items known and not part of the answer (their visible text is ``Response.reasoning``)
OMITTED_ITEMS: tuple[str, ...] = ("reasoning",)
#: stream events whose ``delta`` is a piece of visible reasoning
REASONING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)
#: every ``type`` of the spec's ``ResponseStreamEvent`` union; the parser acts on a few, the
#: others (progress of built-in tools, reasoning parts opening, ``.done`` repeats) need no
#: action
STREAM_EVENT_TYPES = frozenset(
    {
        "error",
        "response.audio.delta",
        "response.audio.done",
        "response.audio.transcript.delta",
        "response.audio.transcript.done",
        "response.code_interpreter_call.completed",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.completed",
        "response.content_part.added",
        "response.content_part.done",
        "response.created",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.failed",
        "response.file_search_call.completed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.image_generation_call.completed",
        "response.image_generation_call.generating",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.partial_image",
        "response.in_progress",
        "response.incomplete",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
        "response.mcp_list_tools.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_text.annotation.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.queued",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.refusal.delta",
        "response.refusal.done",
        "response.shell_call_command.added",
        "response.shell_call_command.delta",
        "response.shell_call_command.done",
        "response.shell_call_output_content.delta",
        "response.shell_call_output_content.done",
        "response.web_search_call.completed",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
    }
)


def reasoning_texts(item: Mapping[str, Any]) -> list[str]:
    """The visible text of a ``reasoning`` item: its ``summary_text`` parts, then its
    ``reasoning_text`` content parts, non-empty ones, in order."""
    out: list[str] = []
    for field, part_type in (("summary", "summary_text"), ("content", "reasoning_text")):
        parts = item.get(field)
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and part.get("type") == part_type:
                text = part.get("text")
                if isinstance(text, str) and text:
                    out.append(text)
    return out


def _cut_call(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``function_call`` item of an incomplete response as `incomplete_call`, when the
    token limit cut it (the item's own status says so, or its arguments are not complete
    JSON); None for a call that came whole."""
    raw = item.get("arguments")
    text = raw if isinstance(raw, str) else json.dumps(raw)
    whole = item.get("status") != "incomplete"
    if whole and isinstance(raw, str):
        try:
            whole = isinstance(json.loads(raw or "{}"), dict)
        except json.JSONDecodeError:
            whole = False
    if whole:
        return None
    call_id = str(item.get("call_id") or item.get("id") or "")
    return incomplete_call(call_id, str(item.get("name") or ""), text or "")


def responses_call_id(call_id: str) -> str:
    """Call ids are at most 64 characters in ``function_call_output``; hash longer ones."""
    if len(call_id) <= _MAX_CALL_ID:
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]


class OpenAIResponsesAdapter(OpenAIAdapter):
    """Documented limits used: 128 function tools; call ids up to 64 characters; strict
    schema limits as in schema_transform."""

    kind: ClassVar[str] = "openai-responses"
    option_names: ClassVar[frozenset[str] | None] = frozenset()
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema",
        schema_dialect="openai-strict",
        embed=True,
        max_tools=128,
        notes=("no stop sequences and no seed in the Responses API: refused",),
    )
    chat_path: ClassVar[str] = "/responses"

    # -- request ---------------------------------------------------------------------------
    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        if req.stop:
            raise ContractError(
                "openai-responses: the Responses API has no stop sequences; remove stop= or "
                "route this call to the 'openai' kind (Chat Completions)"
            )
        if req.seed is not None:
            raise ContractError(
                "openai-responses: the Responses API has no seed; remove seed= or route this "
                "call to the 'openai' kind (Chat Completions)"
            )
        instructions, items = self.map_input(req.messages)
        body: dict[str, Any] = {"model": model, "input": items, "store": False}
        if instructions:
            body["instructions"] = instructions
        if req.tools:
            body["tools"] = [self.map_tool(t) for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = self.map_tool_choice(req.tool_choice)
        if req.output is not None:
            body["text"] = {"format": self.map_output(req)}
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.max_tokens is not None:
            body["max_output_tokens"] = req.max_tokens
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stream:
            body["stream"] = True
        if self.sends_prompt_cache_key and marked(req):
            put_prompt_cache_key(body, req)
        extra = req.options_for(self.kind)
        if extra.get("background") and not req.stream:
            raise ContractError(
                "openai-responses: background=true returns a queued response before the reply "
                "exists, and portal does not poll for it; remove background from "
                "provider_options, or stream the call (stream=True follows a background "
                "response to its end)"
            )
        body.update(extra)
        return body

    def map_input(self, messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
        lead: list[str] = []
        items: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system" and not items:
                lead.append(m.text)
                continue
            if m.role == "tool":
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": responses_call_id(m.tool_call_id or ""),
                        "output": m.text,
                    }
                )
                continue
            if m.role == "assistant":
                if m.text:
                    items.append({"role": "assistant", "content": m.text})
                for call in m.tool_calls or []:
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": responses_call_id(call.id),
                            "name": call.name,
                            "arguments": call.arguments_json(),
                        }
                    )
                continue
            if isinstance(m.content, list) and any(isinstance(p, ImagePart) for p in m.content):
                items.append({"role": m.role, "content": [self.map_part(p) for p in m.content]})
            else:
                items.append({"role": m.role, "content": m.text})
        return join_reasoning(lead), items

    def map_part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "input_text", "text": part.text}
        return {"type": "input_image", "image_url": part.data_url, "detail": "auto"}

    def map_tool(self, tool: Any) -> dict[str, Any]:
        params = tool.parameters
        if tool.strict:
            params = to_openai_strict(params, f"tool {tool.name!r}: parameters").schema
        out: dict[str, Any] = {
            "type": "function",
            "name": tool.name,
            "parameters": params,
            "strict": bool(tool.strict),
        }
        if tool.description:
            out["description"] = tool.description
        return out

    def map_tool_choice(self, choice: str) -> Any:
        if choice in ("auto", "none", "required"):
            return choice
        return {"type": "function", "name": choice}

    def map_output(self, req: ChatRequest) -> dict[str, Any]:
        assert req.output is not None
        strict = to_openai_strict(req.output.schema, "output")
        return {
            "type": "json_schema",
            "name": req.output.name,
            "schema": strict.schema,
            "strict": True,
        }

    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        return self.json_request(
            self.chat_url(model), self.chat_body(req, model), self.auth_headers()
        )

    # -- response --------------------------------------------------------------------------
    def parse_chat(self, reply: WireReply, model: str) -> Response:
        try:
            data = reply.json()
        except ValueError as exc:
            raise self.invalid(f"reply is not JSON ({exc})", model) from None
        if not isinstance(data, dict):
            raise self.invalid("reply is not a JSON object", model)
        if "error" in data and "output" not in data:
            raise self.error_from_body(data, model, reply.status, reply.headers)
        return self.parse_response_object(data, model, self.request_id(reply.headers))

    def parse_response_object(
        self, data: Mapping[str, Any], model: str, request_id: str | None = None
    ) -> Response:
        """A ``Response`` object, from a JSON reply or a ``response.completed`` event."""
        status = data.get("status")
        if status == "failed":
            raise self.failed(data, model)
        if status in UNFINISHED_STATUSES:
            raise self.unfinished(data, model, request_id)
        output = data.get("output")
        if not isinstance(output, list):
            raise self.invalid("reply has no output list", model)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        details: dict[str, Any] = {}
        for item in output:
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "message":
                for part in item.get("content") or []:
                    if not isinstance(part, dict):
                        continue
                    if part.get("type") == "output_text":
                        texts.append(str(part.get("text") or ""))
                    elif part.get("type") == "refusal":
                        details["refusal"] = part.get("refusal")
                    else:
                        keep_unknown(details, part)
            elif kind == "function_call":
                if status == "incomplete" and (cut := _cut_call(item)) is not None:
                    details.setdefault(INCOMPLETE_TOOL_CALLS, []).append(cut)
                else:
                    calls.append(self.parse_function_call(item, model))
            elif kind == "reasoning":
                thoughts.extend(reasoning_texts(item))
            elif kind not in OMITTED_ITEMS:
                keep_unknown(details, item)
        text = "".join(texts)
        raw: str | None = str(status) if status else None
        finish = "tool_calls" if calls else "stop"
        if status == "incomplete":
            reason = (data.get("incomplete_details") or {}).get("reason")
            raw = f"incomplete:{reason}"
            finish = INCOMPLETE_REASON_MAP.get(str(reason), "length" if text else "error")
        if details.get("refusal"):
            finish = "content_filter"
        rid = request_id or data.get("id")
        if finish == "content_filter" and not text and not calls:
            raise self.filtered(details, model, rid)
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=finish,  # type: ignore[arg-type]
            reasoning=join_reasoning(thoughts),
            raw_finish_reason=raw,
            usage=with_tier(
                self.parse_responses_usage(data.get("usage")), data.get("service_tier")
            ),
            model=data.get("model"),
            request_id=rid,
            provider_details=details,
        )

    def parse_function_call(self, item: Mapping[str, Any], model: str) -> ToolCall:
        name = str(item.get("name") or "")
        raw = item.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise self.invalid(
                f"tool call {name!r}: arguments are not valid JSON ({exc.msg})", model
            ) from None
        if not isinstance(args, dict):
            raise self.invalid(f"tool call {name!r}: arguments must be an object", model)
        return ToolCall(str(item.get("call_id") or item.get("id") or ""), name, args)

    @staticmethod
    def parse_responses_usage(raw: Any) -> Usage:
        """``input_tokens`` includes ``cached_tokens``; reasoning is inside ``output_tokens``."""
        if not isinstance(raw, dict):
            return Usage()
        ind = raw.get("input_tokens_details") or {}
        outd = raw.get("output_tokens_details") or {}
        return Usage(
            input_tokens=int(raw.get("input_tokens") or 0),
            output_tokens=int(raw.get("output_tokens") or 0),
            cached_input_tokens=int(ind.get("cached_tokens") or 0),
            cache_write_tokens=int(ind.get("cache_write_tokens") or 0),
            reasoning_tokens=int(outd.get("reasoning_tokens") or 0),
        )

    def unfinished(
        self, data: Mapping[str, Any], model: str, request_id: str | None = None
    ) -> InvalidResponse:
        """A ``queued`` / ``in_progress`` snapshot (background mode) or a ``cancelled``
        response is no reply: refused, not retried (a retry would start another background
        job), naming background mode and the response id to fetch or cancel."""
        status = data.get("status")
        rid = data.get("id")
        return InvalidResponse(
            f"the Responses API returned a response with status {status!r} (id {rid!r}): "
            "a background-mode response that has not finished, which portal does not poll; "
            "remove background from provider_options or stream the call",
            provider=self.name,
            model=model,
            request_id=request_id or (rid if isinstance(rid, str) else None),
            retryable=False,
            body={"id": rid, "status": status, "background": data.get("background")},
        )

    def failed(self, data: Mapping[str, Any], model: str) -> ProviderError:
        """``status: failed`` carries ``error: {code, message}``; classify like an HTTP error."""
        err = data.get("error") or {}
        code = err.get("code") if isinstance(err, dict) else None
        status = 429 if code == "rate_limit_exceeded" else 500
        if code and code.startswith(("invalid_", "image_", "unsupported_", "empty_")):
            status = 400
        return self.error_from_body({"error": err}, model, status)

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        return OpenAIResponsesStreamParser(self, model, req)


class OpenAIResponsesStreamParser(SSEStreamParser):
    """Typed events: ``response.output_text.delta``, ``response.output_item.added`` (a
    ``function_call`` with its ``call_id`` and name), ``response.function_call_arguments.delta``
    keyed by ``output_index``, reasoning deltas (``reasoning`` events), then
    ``response.completed`` with the whole response and usage."""

    def __init__(self, adapter: OpenAIResponsesAdapter, model: str, req: ChatRequest) -> None:
        self.adapter = adapter
        self.model = model
        self.req = req
        self.sse = adapter.sse_decoder()
        self.text: list[str] = []
        #: reasoning blocks by (item, summary or content part), in order of first delta
        self.thoughts: dict[tuple[Any, ...], list[str]] = {}
        self.tools = ToolCallAssembler()
        self.usage: Usage | None = None
        self.final: Response | None = None
        self.with_args: set[Any] = set()

    def on_event(self, sse_event: str, data: str, events: list[StreamEvent]) -> None:
        if not data or data.strip() == "[DONE]":
            return
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            raise self.adapter.invalid("stream event is not JSON", self.model) from None
        if not isinstance(obj, dict):
            raise self.adapter.invalid("stream event is not a JSON object", self.model)
        kind = obj.get("type")
        if kind == "response.output_text.delta":
            delta = str(obj.get("delta") or "")
            if delta:
                self.text.append(delta)
                events.append(StreamEvent("text", text=delta))
        elif kind in REASONING_DELTAS:
            delta = str(obj.get("delta") or "")
            if delta:
                if kind == "response.reasoning_text.delta":
                    part: tuple[Any, ...] = ("content", obj.get("content_index"))
                else:
                    part = ("summary", obj.get("summary_index"))
                block = (obj.get("output_index"), obj.get("item_id"), *part)
                self.thoughts.setdefault(block, []).append(delta)
                events.append(StreamEvent("reasoning", text=delta))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = obj.get("item") or {}
            if item.get("type") == "function_call":
                key = obj.get("output_index", item.get("id"))
                self.tools.start(key, item.get("call_id"), item.get("name"))
                args = item.get("arguments")
                if kind == "response.output_item.done" and args and key not in self.with_args:
                    self.tools.add_arguments(key, args)  # the deltas never came
                    self.with_args.add(key)
        elif kind == "response.function_call_arguments.delta":
            key = obj.get("output_index", obj.get("item_id"))
            self.tools.add_arguments(key, str(obj.get("delta") or ""))
            self.with_args.add(key)
        elif kind in ("response.completed", "response.incomplete"):
            response = obj.get("response") or {}
            self.final = self.adapter.parse_response_object(response, self.model)
            self.usage = self.final.usage
            events.append(StreamEvent("usage", usage=self.usage))
        elif kind == "response.failed":
            raise self.adapter.failed(obj.get("response") or {}, self.model)
        elif kind == "error":
            err = {k: obj.get(k) for k in ("code", "message", "param")}
            code = err.get("code") or ""
            status = 429 if code == "rate_limit_exceeded" else 500
            raise self.adapter.error_from_body({"error": err}, self.model, status)
        elif not isinstance(kind, str) or kind not in STREAM_EVENT_TYPES:
            self.keep_unknown_event(obj)

    def finish(self) -> Response:
        self.drain()
        text = "".join(self.text)
        if self.final is None:
            raise self.adapter.interrupted(
                "stream ended before response.completed", self.model, text, self.usage
            )
        response = self.final
        if not response.text and text:
            response.text = text
        if self.thoughts:  # what the caller saw as reasoning events
            response.reasoning = join_reasoning("".join(b) for b in self.thoughts.values())
        cut = response.provider_details.get(INCOMPLETE_TOOL_CALLS)
        if not response.tool_calls and not cut and self.tools:
            truncated: list[dict[str, Any]] | None = (
                [] if response.finish_reason == "length" else None
            )
            response.tool_calls = self.tools.finish(self.adapter.name, self.model, truncated)
            if truncated:
                response.provider_details[INCOMPLETE_TOOL_CALLS] = truncated
            if response.tool_calls:
                response.finish_reason = "tool_calls"
        self.unknown_details(response.provider_details)
        return self.adapter.finalize(self.req, response)
