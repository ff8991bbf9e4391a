"""Cohere v2: chat (``POST /v2/chat``, JSON or SSE) and embeddings (``POST /v2/embed``).

Wire format: Cohere's API reference (docs.cohere.com/reference/chat, /reference/embed,
/reference/errors) and the types of cohere-ai/cohere-python (``src/cohere/v2/raw_client.py``,
``v2/types/v2chat_response.py``, ``v2/types/v2chat_stream_response.py``,
``types/usage.py``, ``types/chat_finish_reason.py``, ``types/tool_content.py``,
``types/content.py``, ``types/response_format_v2.py``).

Choices made here, and why:

- tool_choice: Cohere has ``REQUIRED`` and ``NONE`` only ("auto" is the default and is sent as
  nothing). A named tool cannot be expressed: `ContractError`.
- An assistant turn's text next to tool calls is sent as ``tool_plan`` (Cohere's field for the
  reasoning that precedes calls); Cohere's replies put ``tool_plan`` in provider_details.
- Tool results that are JSON objects go out as a ``document`` block (citable); other results as
  a ``text`` block.
- Structured output: ``response_format = {type: json_object, json_schema: ...}``.
- Finish reasons: COMPLETE and STOP_SEQUENCE -> stop, MAX_TOKENS -> length, TOOL_CALL ->
  tool_calls, ERROR and TIMEOUT -> error. Unknown values: "stop" when text or calls came back,
  "error" otherwise.
- Usage: ``billed_units`` (what Cohere charges for) when present, else ``tokens`` (what the model
  processed, including the prompt template); ``cached_tokens`` are prompt tokens that hit the
  cache, a share of the input. Both raw counts stay in provider_details.
- Content: ``text`` items are the answer; ``thinking`` items (``{"type": "thinking",
  "thinking": "..."}``, Command A Reasoning) are the model's reasoning, in
  ``Response.reasoning`` (items joined by a blank line) and never in the text or sent back;
  any other item is kept as sent in ``provider_details["unknown_content"]``. In a stream, a
  content-delta's ``delta.message.content.thinking`` is a "reasoning" event and its ``text``
  an answer piece; each thinking item (a content-start of type ``thinking``) is one block of
  ``Response.reasoning``. Unknown events and the events of an unknown content item are kept in
  ``provider_details["unknown_events"]`` (capped at `MAX_UNKNOWN_EVENTS`).
- Request id: Cohere documents no request-id header; its replies carry ``x-debug-trace-id``
  (what Cohere support asks for), and chat bodies carry ``id``.
- Errors are ``{"message": "..."}`` (sometimes with ``id``). 498 (invalid token) and 402
  (billing) are authentication-class errors for routing: the key cannot be used, fail over.
  "too many tokens: max tokens must be ..." is about ``max_tokens``, not the context window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import EmbedResponse, Response, StreamEvent, Usage
from portal.contracts.tools import ToolSpec
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContextTooLong,
    ContractError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    ServerError,
)
from portal.providers.adapter import Adapter, Capabilities
from portal.providers.error_replies import error_class_for_status
from portal.providers.reasoning import ReasoningBlocks, join_reasoning
from portal.providers.streaming import SSEStreamParser, StreamParser, ToolCallAssembler
from portal.providers.unknown import keep_unknown
from portal.wire import WireReply, WireRequest

__all__ = ["CohereAdapter", "CohereStreamParser"]

#: content item types that carry the model's reasoning, not the answer
REASONING_CONTENT: tuple[str, ...] = ("thinking",)
#: stream events that need no action
IGNORED_EVENTS: tuple[str, ...] = ("content-end", "tool-call-end", "citation-end", "debug")

FINISH_REASON_MAP: dict[str, str] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "TIMEOUT": "error",
}
STATUS_MAP: dict[int, type[ProviderError]] = {
    402: AuthenticationError,
    498: AuthenticationError,
    499: ProviderConnectionError,
    501: BadRequest,
    504: ProviderTimeout,
}
_INPUT_TYPES = {"query": "search_query", "document": "search_document"}
_EMBED_BATCH_MAX = 96
_CONTEXT_MARKERS = (
    "total number of tokens in the prompt",
    "size limit exceeded",
    "prompt is too long",
)


class CohereAdapter(Adapter):
    """Cohere v2. Documented limits used: 96 texts per embed request; tool_choice only
    REQUIRED / NONE (Command R7B and newer); embed v3+ models require input_type."""

    kind: ClassVar[str] = "cohere"
    option_names: ClassVar[frozenset[str] | None] = frozenset()
    default_base_url: ClassVar[str | None] = "https://api.cohere.com"
    api_key_env: ClassVar[str | None] = "CO_API_KEY"
    capabilities: ClassVar[Capabilities] = Capabilities(
        tool_choice=("auto", "none", "required"),
        structured_output="json_schema",
        schema_dialect="json-schema",
        embed=True,
        notes=(
            "no named tool_choice: refused with ContractError",
            "structured output: response_format json_object with json_schema",
            "images: base64 (as data URL) and URLs through image_url content blocks",
            "embed: at most 96 texts per request; input_type defaults to search_document",
        ),
    )

    # -- request ---------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key()}"}

    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        headers = self.auth_headers()
        if req.stream:
            headers["accept"] = "text/event-stream"
        return self.json_request(self.base_url + "/v2/chat", self.chat_body(req, model), headers)

    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": self.map_messages(req.messages)}
        if req.tools:
            body["tools"] = [self.map_tool(t) for t in req.tools]
            if self.strict_tools(req.tools):
                body["strict_tools"] = True
        choice = self.map_tool_choice(req.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
        if req.output is not None:
            body["response_format"] = {"type": "json_object", "json_schema": req.output.schema}
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["p"] = req.top_p
        if req.stop:
            body["stop_sequences"] = list(req.stop)
        if req.seed is not None:
            body["seed"] = req.seed
        body["stream"] = bool(req.stream)
        body.update(req.options_for(self.kind))
        return body

    def map_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                out.append({"role": "system", "content": m.text})
            elif m.role == "user":
                if isinstance(m.content, list) and any(isinstance(p, ImagePart) for p in m.content):
                    out.append({"role": "user", "content": [self.map_part(p) for p in m.content]})
                else:
                    out.append({"role": "user", "content": m.text})
            elif m.role == "assistant":
                item: dict[str, Any] = {"role": "assistant"}
                if m.tool_calls:
                    if m.text:
                        item["tool_plan"] = m.text
                    item["tool_calls"] = [self.map_tool_call(c) for c in m.tool_calls]
                else:
                    item["content"] = m.text
                out.append(item)
            else:
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": m.tool_call_id,
                        "content": [self.map_tool_result(m)],
                    }
                )
        return out

    @staticmethod
    def map_part(part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        return {"type": "image_url", "image_url": {"url": part.data_url}}

    @staticmethod
    def map_tool_call(call: ToolCall) -> dict[str, Any]:
        return {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json()},
        }

    @staticmethod
    def map_tool_result(m: Message) -> dict[str, Any]:
        text = m.text
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            value = None
        if isinstance(value, dict) and not m.is_error:
            return {"type": "document", "document": {"data": value}}
        if m.is_error:
            text = json.dumps({"error": value if value is not None else text}, ensure_ascii=False)
        return {"type": "text", "text": text}

    @staticmethod
    def map_tool(tool: ToolSpec) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description:
            fn["description"] = tool.description
        return {"type": "function", "function": fn}

    @staticmethod
    def strict_tools(tools: list[ToolSpec]) -> bool:
        """Cohere's ``strict_tools`` is one switch for every tool of a request: on when all
        tools are strict; a request that mixes strict and non-strict tools is refused rather
        than making the non-strict ones strict or the strict ones loose."""
        strict = [t.name for t in tools if t.strict]
        if strict and len(strict) != len(tools):
            loose = [t.name for t in tools if not t.strict]
            raise ContractError(
                f"tools: Cohere's strict_tools applies to every tool of a request, but "
                f"{', '.join(strict)} {'is' if len(strict) == 1 else 'are'} strict and "
                f"{', '.join(loose)} {'is' if len(loose) == 1 else 'are'} not; mark all tools "
                "strict or none for this target"
            )
        return bool(strict)

    def map_tool_choice(self, choice: str | None) -> str | None:
        if choice is None or choice == "auto":
            return None
        if choice == "required":
            return "REQUIRED"
        if choice == "none":
            return "NONE"
        raise ContractError(
            f"tool_choice {choice!r}: Cohere cannot force one named tool (it only has REQUIRED "
            f"and NONE); use tool_choice='required' with only that tool, or route this feature "
            f"to another provider (provider {self.name!r})"
        )

    # -- response --------------------------------------------------------------------------
    def parse_chat(self, reply: WireReply, model: str) -> Response:
        try:
            data = reply.json()
        except ValueError as exc:
            raise self.invalid(f"reply is not JSON ({exc})", model) from None
        if not isinstance(data, dict):
            raise self.invalid("reply is not a JSON object", model)
        message = data.get("message")
        if not isinstance(message, dict):
            raise self.invalid("reply has no message object", model)
        texts: list[str] = []
        thoughts: list[str] = []
        details: dict[str, Any] = {}
        for item in message.get("content") or []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "text":
                texts.append(str(item.get("text") or ""))
            elif item.get("type") in REASONING_CONTENT and isinstance(item.get("thinking"), str):
                if item["thinking"]:
                    thoughts.append(item["thinking"])
            else:
                keep_unknown(details, item)
        text = "".join(texts)
        calls = [self.parse_tool_call(c, model) for c in message.get("tool_calls") or []]
        raw = data.get("finish_reason")
        if message.get("tool_plan"):
            details["tool_plan"] = message["tool_plan"]
        citations = message.get("citations") or []
        if citations:
            details["citations"] = citations
        usage_raw = data.get("usage")
        if isinstance(usage_raw, dict):
            details["usage"] = usage_raw
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=self.finish_reason(raw, text, calls),  # type: ignore[arg-type]
            reasoning=join_reasoning(thoughts),
            raw_finish_reason=raw,
            usage=self.parse_usage(usage_raw),
            model=model,
            request_id=data.get("id") or self.request_id(reply.headers),
            provider_details=details,
            citations=[
                str(c.get("text")) for c in citations if isinstance(c, dict) and c.get("text")
            ],
        )

    @staticmethod
    def finish_reason(raw: Any, text: str, calls: list[ToolCall]) -> str:
        mapped = FINISH_REASON_MAP.get(str(raw)) if raw else None
        if mapped is None:
            mapped = "stop" if (text or calls) else "error"
        if mapped == "stop" and calls:
            mapped = "tool_calls"
        return mapped

    def parse_tool_call(self, raw: Any, model: str) -> ToolCall:
        if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
            raise self.invalid("tool_calls[] entry without a function", model)
        fn = raw["function"]
        args_text = fn.get("arguments") or "{}"
        try:
            args = json.loads(args_text) if isinstance(args_text, str) else args_text
        except json.JSONDecodeError as exc:
            raise self.invalid(
                f"tool call {fn.get('name')!r}: arguments are not valid JSON ({exc.msg})", model
            ) from None
        if not isinstance(args, dict):
            raise self.invalid(f"tool call {fn.get('name')!r}: arguments must be an object", model)
        return ToolCall(str(raw.get("id") or ""), str(fn.get("name") or ""), args)

    @staticmethod
    def parse_usage(raw: Any) -> Usage:
        if not isinstance(raw, dict):
            return Usage()
        billed = raw.get("billed_units") if isinstance(raw.get("billed_units"), dict) else None
        tokens = raw.get("tokens") if isinstance(raw.get("tokens"), dict) else None
        source = billed if billed and billed.get("input_tokens") is not None else (tokens or {})
        input_tokens = int(source.get("input_tokens") or 0)
        return Usage(
            input_tokens=input_tokens,
            output_tokens=int(source.get("output_tokens") or 0),
            cached_input_tokens=min(int(raw.get("cached_tokens") or 0), input_tokens),
        )

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        return CohereStreamParser(self, model)

    # -- errors ----------------------------------------------------------------------------
    def request_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-debug-trace-id") or super().request_id(headers)

    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        text = message.lower()
        if status in (400, 422):
            if "max tokens must be" in text or "max_tokens" in text:
                return BadRequest
            if any(m in text for m in _CONTEXT_MARKERS):
                return ContextTooLong
        if status in STATUS_MAP:
            return STATUS_MAP[status]
        return error_class_for_status(status, code, message)

    # -- embeddings ------------------------------------------------------------------------
    def embed_batch_limit(self, model: str) -> int | None:
        return _EMBED_BATCH_MAX  # the client's flow splits a larger embed into requests

    def build_embed(self, req: EmbedRequest, model: str) -> WireRequest:
        if len(req.inputs) > _EMBED_BATCH_MAX:  # only reached when called directly
            raise ContractError(
                f"inputs: Cohere embeds at most {_EMBED_BATCH_MAX} texts per request, got "
                f"{len(req.inputs)}; split the batch"
            )
        input_type = req.input_type or "document"
        body: dict[str, Any] = {
            "model": model,
            "texts": req.inputs,
            "input_type": _INPUT_TYPES.get(input_type, input_type),
            "embedding_types": ["float"],
        }
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        body.update(req.options_for(self.kind))
        return self.json_request(self.base_url + "/v2/embed", body, self.auth_headers())

    def parse_embed(self, reply: WireReply, model: str) -> EmbedResponse:
        try:
            data = reply.json()
            vectors = [list(map(float, v)) for v in data["embeddings"]["float"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise self.invalid(f"embedding reply not understood ({exc})", model) from None
        billed = (data.get("meta") or {}).get("billed_units") or {}
        return EmbedResponse(
            vectors, Usage(input_tokens=int(billed.get("input_tokens") or 0)), model
        )


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class CohereStreamParser(SSEStreamParser):
    """Typed SSE events: message-start, content-start/delta/end (a ``text`` or a ``thinking``
    item), tool-plan-delta, tool-call-start/delta/end (keyed by ``index``), citation-start/end,
    message-end (finish reason, usage, or an ``error`` string). The reply is complete at
    message-end."""

    def __init__(self, adapter: CohereAdapter, model: str) -> None:
        self.adapter = adapter
        self.model = model
        self.sse = adapter.sse_decoder()
        self.text: list[str] = []
        self.thoughts = ReasoningBlocks()  # one block per thinking item
        self.thinking_item: Any = None  # index of the thinking item being streamed
        self.plan: list[str] = []
        self.tools = ToolCallAssembler()
        self.citations: list[Any] = []
        self.usage: Usage | None = None
        self.usage_raw: Any = None
        self.finish_raw: str | None = None
        self.ended = False
        self.response_id: str | None = None
        self.unknown_items: set[Any] = set()  # indexes of content items of an unknown type

    def on_event(self, name: str, data: str, events: list[StreamEvent]) -> None:
        if not data.strip() or data.strip() == "[DONE]":
            return
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            raise self.adapter.invalid("stream event is not JSON", self.model) from None
        if not isinstance(obj, dict):
            raise self.adapter.invalid("stream event is not a JSON object", self.model)
        kind = obj.get("type") or name
        delta = _obj(obj.get("delta"))
        message = _obj(delta.get("message"))
        if kind == "message-start":
            self.response_id = obj.get("id") or self.response_id
        elif kind == "content-start":
            content = _obj(message.get("content"))
            ctype = content.get("type")
            if ctype in REASONING_CONTENT:
                self.thoughts.close()
                self.thinking_item = obj.get("index")
                self._think(content.get("thinking"), obj.get("index"), events)
            elif ctype is not None and ctype != "text":
                self.unknown_items.add(obj.get("index"))
                self.keep_unknown_event(obj)
        elif kind == "content-delta":
            content = _obj(message.get("content"))
            text = content.get("text")
            thinking = content.get("thinking")
            if self.unknown_items and obj.get("index") in self.unknown_items:
                self.keep_unknown_event(obj)  # the rest of an item portal has no rule for
            elif isinstance(text, str) or isinstance(thinking, str):
                self._think(thinking, obj.get("index"), events)
                if text:
                    self.text.append(text)
                    events.append(StreamEvent("text", text=text))
            else:
                self.keep_unknown_event(obj)
        elif kind == "tool-plan-delta":
            if isinstance(message.get("tool_plan"), str):
                self.plan.append(message["tool_plan"])
        elif kind in ("tool-call-start", "tool-call-delta"):
            call = _obj(message.get("tool_calls"))
            fn = _obj(call.get("function"))
            key = obj.get("index", 0)
            if kind == "tool-call-start":
                self.tools.start(key, call.get("id"), fn.get("name"))
            if fn.get("arguments"):
                self.tools.add_arguments(key, str(fn["arguments"]))
        elif kind == "citation-start":
            citations = message.get("citations")
            if citations:
                self.citations.append(citations)
        elif kind == "message-end":
            self.ended = True
            if delta.get("error"):
                raise ServerError(
                    f"Cohere ended the stream with an error: {delta['error']}",
                    provider=self.adapter.name,
                    model=self.model,
                    request_id=self.response_id,
                    code=str(delta.get("finish_reason") or "ERROR"),
                )
            self.finish_raw = delta.get("finish_reason")
            if isinstance(delta.get("usage"), dict):
                self.usage_raw = delta["usage"]
                self.usage = self.adapter.parse_usage(delta["usage"])
                events.append(StreamEvent("usage", usage=self.usage))
        elif not obj.get("type") and isinstance(obj.get("message"), str):
            # an error body ({"message": ...}) in place of an event: classify it like HTTP's
            status = obj["status"] if isinstance(obj.get("status"), int) else 500
            body = json.dumps(obj).encode()
            raise self.adapter.parse_error(WireReply(status, {}, body), self.model)
        elif kind not in IGNORED_EVENTS:
            self.keep_unknown_event(obj)

    def _think(self, piece: Any, index: Any, events: list[StreamEvent]) -> None:
        """A piece of a thinking item: a "reasoning" event, kept for ``Response.reasoning``."""
        if not isinstance(piece, str) or not piece:
            return
        if index != self.thinking_item:  # no content-start seen for it
            self.thoughts.close()
            self.thinking_item = index
        self.thoughts.add(piece)
        events.append(StreamEvent("reasoning", text=piece))

    def finish(self) -> Response:
        self.drain()
        text = "".join(self.text)
        if not self.ended:
            raise self.adapter.interrupted(
                "stream ended before the reply was complete (no message-end event)",
                self.model,
                text,
                self.usage,
            )
        calls = self.tools.finish(self.adapter.name, self.model)
        details: dict[str, Any] = {}
        if self.plan:
            details["tool_plan"] = "".join(self.plan)
        if self.citations:
            details["citations"] = self.citations
        if self.usage_raw is not None:
            details["usage"] = self.usage_raw
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=self.adapter.finish_reason(self.finish_raw, text, calls),  # type: ignore[arg-type]
            reasoning=self.thoughts.joined(),
            raw_finish_reason=self.finish_raw,
            usage=self.usage or Usage(),
            model=self.model,
            request_id=self.response_id,
            provider_details=self.unknown_details(details),
        )
