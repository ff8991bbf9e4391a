"""OpenAI Chat Completions (``POST /v1/chat/completions``) and Embeddings (``POST /v1/embeddings``).

Wire format: OpenAI's OpenAPI description (shared/specs/openai-openapi.yaml), schemas
``CreateChatCompletionRequest``, ``CreateChatCompletionResponse``,
``CreateChatCompletionStreamResponse``, ``CreateEmbeddingRequest``/``Response``, ``ErrorResponse``.
Several other kinds reuse this file's mapping (azure-openai, openai-compatible, mistral, sim).

Choices made here, one per vendor rule:

- structured output is ``response_format: json_schema`` with ``strict: true``; the schema is
  rewritten by `schema_transform.to_openai_strict` and `finalize` drops the nulls strict mode
  added for optional properties;
- an unknown ``finish_reason`` becomes "tool_calls" when tool calls came back, "stop" when text
  came back, and "error" when nothing did (the raw value is kept in ``raw_finish_reason``);
- ``message.content`` is a string in OpenAI's replies; servers that send a list of typed parts
  (Mistral's reasoning models: ``text`` and ``thinking`` chunks) get their ``text`` parts as
  the answer, the text chunks inside each ``thinking`` part (Mistral's ``ThinkChunk``) as
  ``Response.reasoning``, and any other part kept as sent in
  ``provider_details["unknown_content"]`` (``["unknown_events"]`` in a stream, capped);
- reasoning in a separate message / delta field goes to ``Response.reasoning`` (and to
  "reasoning" stream events), never into the text: ``reasoning_content`` (DeepSeek's
  reasoning models, vLLM's reasoning parsers) or ``reasoning`` (Groq with
  ``reasoning_format: parsed``, OpenRouter); a message or delta that carries both is read
  for ``reasoning_content`` only, so the same text is never taken twice. Reasoning is never
  sent back to the model;
- a reply stopped by the content filter (or a refusal) with neither text nor tool calls raises
  `ContentFiltered`, in the JSON and the streaming path alike;
- errors are classified by the body's ``code`` / ``type`` first (so an error chunk inside a
  200 stream classifies like the HTTP error), then by status; ``insufficient_quota`` is a
  `RateLimited` that is not retryable (waiting does not refill a quota: fail over instead).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from portal.contracts.cache import marked, prefix_key
from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import EmbedResponse, Response, StreamEvent, Usage
from portal.errors import (
    AuthenticationError,
    ContentFiltered,
    ContextTooLong,
    NotFound,
    Overloaded,
    ProviderError,
    RateLimited,
)
from portal.providers.adapter import Adapter, Capabilities
from portal.providers.error_replies import error_class_for_status
from portal.providers.reasoning import ReasoningBlocks, join_reasoning
from portal.providers.schema_transform import drop_added_nulls, to_openai_strict
from portal.providers.streaming import (
    INCOMPLETE_TOOL_CALLS,
    SSEStreamParser,
    StreamParser,
    ToolCallAssembler,
    incomplete_call,
)
from portal.providers.unknown import keep_unknown
from portal.wire import WireReply, WireRequest

__all__ = [
    "FINISH_REASON_MAP",
    "OpenAIAdapter",
    "OpenAIChatStreamParser",
    "normalize_finish",
    "reasoning_field",
    "split_content",
]

FINISH_REASON_MAP: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

#: OpenAI error ``code`` / ``type`` values that decide the class whatever the status
ERROR_CODE_MAP: dict[str, type[ProviderError]] = {
    "context_length_exceeded": ContextTooLong,
    "string_above_max_length": ContextTooLong,
    "rate_limit_exceeded": RateLimited,
    "insufficient_quota": RateLimited,
    "tokens_exceeded": RateLimited,
    "invalid_api_key": AuthenticationError,
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "model_not_found": NotFound,
    "content_filter": ContentFiltered,
    "content_policy_violation": ContentFiltered,
    "engine_overloaded": Overloaded,
    "overloaded": Overloaded,
    "server_is_overloaded": Overloaded,
}
#: codes after which retrying the same target cannot succeed
NOT_RETRYABLE_CODES = frozenset({"insufficient_quota"})

#: the HTTP status an error ``type`` stands for, for an error object that arrives without one
#: (a chunk inside a 200 stream): OpenAI's ``invalid_request_error`` / ``server_error``, and
#: the Anthropic-style names several compatible servers use
ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "tokens": 429,
    "requests": 429,
    "server_error": 500,
    "api_error": 500,
    "internal_error": 500,
    "overloaded_error": 529,
    "service_unavailable": 503,
    "timeout_error": 408,
}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def normalize_finish(raw: Any, has_text: bool, has_calls: bool, table: Mapping[str, str]) -> str:
    """The normalized finish reason; unknown raw values follow the module's documented rule."""
    if raw is None:
        return "tool_calls" if has_calls else "stop"
    mapped = table.get(str(raw))
    if mapped is None:
        mapped = "tool_calls" if has_calls else ("stop" if has_text else "error")
    if mapped == "stop" and has_calls:
        mapped = "tool_calls"
    return mapped


#: typed ``content`` parts that carry the model's reasoning, not the answer: Mistral's
#: ``ThinkChunk`` ``{"type": "thinking", "thinking": [TextChunk | ReferenceChunk | ...]}``
REASONING_PART_TYPES: tuple[str, ...] = ("thinking",)


def _is_text_part(part: Mapping[str, Any]) -> bool:
    kind = part.get("type")
    return kind == "text" or (kind is None and "text" in part)


def thinking_text(part: Mapping[str, Any]) -> str | None:
    """The text of one Mistral ``ThinkChunk``: its ``thinking`` list's text chunks, joined
    (reference chunks in that list carry no text); None when ``thinking`` is not a list."""
    inner = part.get("thinking")
    if not isinstance(inner, list):
        return None
    return "".join(
        str(p.get("text") or "") for p in inner if isinstance(p, dict) and _is_text_part(p)
    )


def split_content(content: Any) -> tuple[str, list[str], list[Any]]:
    """(answer text, reasoning texts, parts portal has no rule for) of a message's or a delta's
    ``content``: a string, or a list of typed parts whose ``text`` parts are the answer and
    whose ``thinking`` parts (Mistral's ``ThinkChunk``) are reasoning, one string per part;
    anything else is returned as sent so the caller can keep it raw."""
    if not content:
        return "", [], []
    if isinstance(content, str):
        return content, [], []
    if not isinstance(content, list):
        return str(content), [], []
    texts: list[str] = []
    thoughts: list[str] = []
    unknown: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if _is_text_part(part):
            texts.append(str(part.get("text") or ""))
        elif part.get("type") in REASONING_PART_TYPES and (
            (thought := thinking_text(part)) is not None
        ):
            if thought:
                thoughts.append(thought)
        else:
            unknown.append(part)  # includes a thinking part of a shape Mistral does not document
    return "".join(texts), thoughts, unknown


def reasoning_field(obj: Mapping[str, Any]) -> str:
    """A message's reasoning field: ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning``
    (Groq, OpenRouter), the first non-empty one ("" when neither is a string). The stream
    parser inlines the same two lookups on every delta."""
    value = obj.get("reasoning_content") or obj.get("reasoning")
    return value if isinstance(value, str) else ""


def _status_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and 400 <= value <= 599 else None


def embedded_status(data: Mapping[str, Any]) -> int | None:
    """The HTTP status an error object carries itself: ``error.status_code`` (Groq's in-stream
    errors), a numeric ``error.code`` (OpenRouter, vLLM) or ``error.status``; None if none."""
    err = data.get("error")
    if not isinstance(err, Mapping):
        return None
    for name in ("status_code", "code", "status"):
        found = _status_value(err.get(name))
        if found is not None:
            return found
    return _status_value(data.get("code"))  # vLLM's top-level {"object": "error", "code": 400}


def _type_status(data: Mapping[str, Any]) -> int | None:
    err = data.get("error")
    if not isinstance(err, Mapping):
        return None
    for name in ("code", "type"):
        found = ERROR_TYPE_STATUS.get(str(err.get(name)))
        if found is not None:
            return found
    return None


def legacy_call_id(reply_id: Any) -> str:
    """The id given to a legacy ``function_call`` (it has none on the wire): derived from the
    reply's id, so calls of different replies in one conversation never share an id."""
    return f"call_{reply_id}" if isinstance(reply_id, str) and reply_id else "call_function_call"


def _complete_json(text: str) -> bool:
    try:
        json.loads(text or "{}")
    except json.JSONDecodeError:
        return False
    return True


def _filter_hits(choice: Mapping[str, Any]) -> list[str]:
    """The categories of a choice's ``content_filter_results`` marked ``filtered: true``."""
    results = choice.get("content_filter_results")
    if not isinstance(results, Mapping):
        return []
    return sorted(k for k, v in results.items() if isinstance(v, Mapping) and v.get("filtered"))


def parse_duration(raw: str | None) -> float | None:
    """OpenAI's ``x-ratelimit-reset-*`` values: ``1s``, ``6m0s``, ``120ms``, ``1h2m``."""
    if not raw:
        return None
    total = 0.0
    matched = False
    for number, unit in _DURATION.findall(raw):
        matched = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if matched else None


def put_prompt_cache_key(body: dict[str, Any], req: ChatRequest) -> None:
    """OpenAI caches prompt prefixes on its own; ``prompt_cache_key`` steers requests that
    share the marked prefix to the same cache (a hash of that prefix, so it is stable
    across processes and never holds the prompt itself)."""
    key = prefix_key(req)
    if key is not None:
        body["prompt_cache_key"] = key


class OpenAIAdapter(Adapter):
    """Documented limits used: 128 tools per request; function names ``^[a-zA-Z0-9_-]{1,64}$``;
    strict schemas: 5000 properties, 10 nesting levels, 1000 enum values (see schema_transform)."""

    kind: ClassVar[str] = "openai"
    option_names: ClassVar[frozenset[str] | None] = frozenset()
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema",
        schema_dialect="openai-strict",
        embed=True,
        max_tools=128,
        notes=(
            (
                "strict json_schema: optional properties sent as required+nullable, nulls removed "
                "from the reply; validation-only keywords left to portal's validator"
            ),
        ),
    )
    chat_path: ClassVar[str] = "/chat/completions"
    embed_path: ClassVar[str] = "/embeddings"
    #: OpenAI renamed max_tokens to max_completion_tokens; compatible servers often want the old
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    #: whether ``stream_options: {"include_usage": true}`` is sent with streamed requests
    stream_usage: ClassVar[bool] = True
    #: whether the request's ``seed`` is sent, and under which name
    seed_field: ClassVar[str | None] = "seed"
    #: whether the wire API documents ``prompt_cache_key`` (sent for a request with cache
    #: markers, derived from the marked prefix); compatible vendors do not
    sends_prompt_cache_key: ClassVar[bool] = True

    # -- request ---------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key()}"}

    def chat_url(self, model: str) -> str:
        return self.base_url + self.chat_path

    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": self.map_messages(req.messages)}
        if req.tools:
            body["tools"] = [self.map_tool(t) for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = self.map_tool_choice(req.tool_choice)
        if req.output is not None:
            body["response_format"] = self.map_output(req)
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.max_tokens is not None:
            body[self.max_tokens_field] = req.max_tokens
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stop:
            body["stop"] = req.stop
        if req.seed is not None and self.seed_field:
            body[self.seed_field] = req.seed
        if req.stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        if self.sends_prompt_cache_key and marked(req):
            put_prompt_cache_key(body, req)
        body.update(req.options_for(self.kind))
        return body

    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        return self.json_request(
            self.chat_url(model), self.chat_body(req, model), self.auth_headers()
        )

    def map_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "tool":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": self.map_tool_call_id(m.tool_call_id or ""),
                        "content": m.text,
                    }
                )
                continue
            item: dict[str, Any] = {"role": m.role}
            if isinstance(m.content, list) and any(isinstance(p, ImagePart) for p in m.content):
                item["content"] = [self.map_part(p) for p in m.content]
            else:
                item["content"] = (
                    m.text if (m.content is not None or m.role != "assistant") else None
                )
            if m.tool_calls:
                item["tool_calls"] = [self.map_tool_call(c) for c in m.tool_calls]
            if m.name and m.role != "tool":
                item["name"] = m.name
            out.append(item)
        return out

    def map_part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        return {"type": "image_url", "image_url": {"url": part.data_url}}

    def map_tool_call_id(self, call_id: str) -> str:
        """Tool-call ids as this vendor wants them; OpenAI takes any string."""
        return call_id

    def map_tool_call(self, call: ToolCall) -> dict[str, Any]:
        return {
            "id": self.map_tool_call_id(call.id),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json()},
        }

    def map_tool(self, tool: Any) -> dict[str, Any]:
        params = tool.parameters
        if tool.strict:
            params = to_openai_strict(params, f"tool {tool.name!r}: parameters").schema
        fn: dict[str, Any] = {"name": tool.name, "parameters": params}
        if tool.description:
            fn["description"] = tool.description
        if tool.strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}

    def map_tool_choice(self, choice: str) -> Any:
        if choice in ("auto", "none", "required"):
            return choice
        return {"type": "function", "function": {"name": choice}}

    def map_output(self, req: ChatRequest) -> dict[str, Any]:
        assert req.output is not None
        strict = to_openai_strict(req.output.schema, "output")
        return {
            "type": "json_schema",
            "json_schema": {"name": req.output.name, "schema": strict.schema, "strict": True},
        }

    # -- response --------------------------------------------------------------------------
    def parse_chat(self, reply: WireReply, model: str) -> Response:
        try:
            data = reply.json()
        except ValueError as exc:
            raise self.invalid(f"reply is not JSON ({exc})", model) from None
        if not isinstance(data, dict):
            raise self.invalid("reply is not a JSON object", model)
        if "error" in data and "choices" not in data:
            raise self.error_from_body(data, model, reply.status, reply.headers)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.invalid("reply has no choices[0]", model)
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            if choice.get("finish_reason") == "content_filter" or _filter_hits(choice):
                # Azure's filtered completion: a choice without a message
                raise self.filtered(
                    self.reply_details(data, choice),
                    model,
                    self.request_id(reply.headers) or data.get("id"),
                )
            raise self.invalid("choices[0].message is missing", model)
        text, thoughts, unknown = split_content(message.get("content"))
        field = reasoning_field(message)
        if field:
            thoughts.insert(0, field)
        raw_finish = choice.get("finish_reason")
        cut: list[dict[str, Any]] = []
        calls = self.parse_tool_calls(message.get("tool_calls") or [], model, raw_finish, cut)
        legacy = message.get("function_call")
        if not calls and isinstance(legacy, dict):  # the deprecated single function call
            calls.append(
                self.parse_tool_call(
                    {"id": legacy_call_id(data.get("id")), "function": legacy}, model
                )
            )
        finish = normalize_finish(raw_finish, bool(text), bool(calls), self.finish_reason_map())
        details: dict[str, Any] = self.reply_details(data, choice)
        if cut:
            details[INCOMPLETE_TOOL_CALLS] = cut
        for part in unknown:
            keep_unknown(details, part)
        if message.get("refusal"):
            details["refusal"] = message["refusal"]
            finish = "content_filter"
        request_id = self.request_id(reply.headers) or data.get("id")
        if finish == "content_filter" and not text and not calls:
            raise self.filtered(details, model, request_id)
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=finish,  # type: ignore[arg-type]
            reasoning=join_reasoning(thoughts),
            raw_finish_reason=raw_finish,
            usage=with_tier(self.parse_usage(data.get("usage")), data.get("service_tier")),
            model=data.get("model"),
            request_id=request_id,
            provider_details=details,
        )

    def finish_reason_map(self) -> Mapping[str, str]:
        return FINISH_REASON_MAP

    def reply_details(self, data: Mapping[str, Any], choice: Mapping[str, Any]) -> dict[str, Any]:
        """Vendor extras worth keeping on ``Response.provider_details``; Azure's content
        filter results (``prompt_filter_results``, a choice's ``content_filter_results``,
        also sent by servers in front of Azure) under ``content_filter``."""
        details = {k: data[k] for k in ("system_fingerprint", "service_tier") if data.get(k)}
        flt: dict[str, Any] = {}
        if data.get("prompt_filter_results"):
            flt["prompt"] = data["prompt_filter_results"]
        if choice.get("content_filter_results"):
            flt["completion"] = choice["content_filter_results"]
        if flt:
            details["content_filter"] = flt
        return details

    def filtered(
        self, details: Mapping[str, Any], model: str, request_id: str | None = None
    ) -> ContentFiltered:
        """`ContentFiltered` for a reply the model refused or the content filter stopped,
        naming the filter categories that fired when the reply lists them."""
        refusal = details.get("refusal")
        completion = (details.get("content_filter") or {}).get("completion") or {}
        hits = _filter_hits({"content_filter_results": completion})
        if refusal:
            message = f"the model refused: {refusal}"
        elif hits:
            message = f"the content filter stopped the reply ({', '.join(hits)})"
        else:
            message = "the vendor's content filter stopped the reply"
        return ContentFiltered(
            message, provider=self.name, model=model, request_id=request_id, body=dict(details)
        )

    def parse_tool_calls(
        self, raws: list[Any], model: str, raw_finish: Any, cut: list[dict[str, Any]]
    ) -> list[ToolCall]:
        """A message's ``tool_calls``. In a reply the token limit stopped
        (``finish_reason: "length"``), a call whose arguments are not complete JSON goes to
        ``cut`` (`incomplete_call`), not into the reply's calls."""
        calls = []
        for raw in raws:
            fn = raw.get("function") if isinstance(raw, dict) else None
            if raw_finish == "length" and isinstance(fn, dict):
                args = fn.get("arguments")
                if isinstance(args, str) and not _complete_json(args):
                    cut.append(incomplete_call(str(raw.get("id") or ""), fn.get("name"), args))
                    continue
            calls.append(self.parse_tool_call(raw, model))
        return calls

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
        """``prompt_tokens`` already includes ``cached_tokens``; reasoning is inside completion.
        Gateways such as OpenRouter add the call's cost in USD as ``usage.cost`` and the
        tokens written to a vendor's cache as ``prompt_tokens_details.cache_write_tokens``."""
        if not isinstance(raw, dict):
            return Usage()
        prompt_details = raw.get("prompt_tokens_details") or {}
        completion_details = raw.get("completion_tokens_details") or {}
        return Usage(
            input_tokens=int(raw.get("prompt_tokens") or 0),
            output_tokens=int(raw.get("completion_tokens") or 0),
            cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
            cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
            reported_cost_usd=reported_cost(raw),
        )

    def usage_from_chunk(self, chunk: Mapping[str, Any]) -> Usage | None:
        """Usage carried by one stream chunk, if any (servers put it in different places)."""
        usage = chunk.get("usage")
        return self.parse_usage(usage) if isinstance(usage, dict) else None

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        return OpenAIChatStreamParser(self, model, req)

    def finalize(self, req: ChatRequest, response: Response) -> Response:
        """Strict mode made optional properties required-but-nullable; drop those nulls."""
        if req.output is not None and response.text:
            try:
                data = json.loads(response.text)
            except json.JSONDecodeError:
                return response  # the router's validation reports it
            cleaned = drop_added_nulls(data, req.output.schema)
            if cleaned != data:
                response.text = json.dumps(cleaned, ensure_ascii=False)
        strict_tools = {t.name: t for t in req.tools if t.strict}
        if strict_tools:
            for call in response.tool_calls:
                spec = strict_tools.get(call.name)
                if spec is not None:
                    call.arguments = drop_added_nulls(call.arguments, spec.parameters)
        return response

    # -- errors ----------------------------------------------------------------------------
    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        """``{"error": {"message", "type", "param", "code"}}``; the code wins over the type."""
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            return super().error_details(reply)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code = err.get("code") or err.get("type")
            return str(err.get("message") or ""), (str(code) if code is not None else None)
        return super().error_details(reply)

    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        if code is not None and code in ERROR_CODE_MAP:
            return ERROR_CODE_MAP[code]
        return error_class_for_status(status, code, message)

    def parse_error(self, reply: WireReply, model: str) -> ProviderError:
        err = super().parse_error(reply, model)
        if err.code in NOT_RETRYABLE_CODES:
            err.retryable = False
        if err.retry_after is None and isinstance(err, RateLimited):
            resets = [
                parse_duration(reply.headers.get(h))
                for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
            ]
            known = [r for r in resets if r is not None]
            if known:
                err.retry_after = max(known)
        return err

    def error_from_body(
        self,
        data: Mapping[str, Any],
        model: str,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ProviderError:
        """An error object found inside a 200 body or a stream chunk, classified exactly as
        the same error sent with an HTTP status: by its ``code`` / ``type`` first, then by the
        status the object itself carries (Groq's ``error.status_code``, OpenRouter's and
        vLLM's numeric ``error.code``), then by the status its ``type`` stands for
        (`ERROR_TYPE_STATUS`). ``err.status`` is a status that was on the wire (the HTTP one,
        or the object's own), never one portal made up; with neither, an unknown error is a
        retryable `ServerError` without a status."""
        http = status if status is not None and status >= 400 else None
        own = embedded_status(data)
        wire = http or own
        judged = wire or _type_status(data) or 500
        body = json.dumps(data).encode()
        err = self.parse_error(WireReply(judged, dict(headers or {}), body), model)
        err.status = wire
        return err

    # -- embeddings ------------------------------------------------------------------------
    def embed_body(self, req: EmbedRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "input": req.inputs, "encoding_format": "float"}
        if req.dimensions is not None:
            body["dimensions"] = req.dimensions
        body.update(req.options_for(self.kind))
        return body

    def embed_url(self, model: str) -> str:
        return self.base_url + self.embed_path

    def embed_batch_limit(self, model: str) -> int | None:
        """OpenAI's Embeddings API takes at most 2,048 inputs per request (its OpenAPI spec),
        and so does Azure OpenAI (its embeddings how-to). Other kinds built on this adapter
        document none: their users set the provider option ``embed_batch_size``."""
        return 2048 if self.kind in ("openai", "azure-openai") else None

    def build_embed(self, req: EmbedRequest, model: str) -> WireRequest:
        return self.json_request(
            self.embed_url(model), self.embed_body(req, model), self.auth_headers()
        )

    def parse_embed(self, reply: WireReply, model: str) -> EmbedResponse:
        try:
            data = reply.json()
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            vectors = [list(map(float, item["embedding"])) for item in items]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.invalid(f"embedding reply not understood ({exc})", model) from None
        usage_raw = data.get("usage") or {}
        usage = Usage(input_tokens=int(usage_raw.get("prompt_tokens") or 0))
        return EmbedResponse(vectors, usage, data.get("model"))


class OpenAIChatStreamParser(SSEStreamParser):
    """Chat Completions chunks: text deltas, tool-call fragments by index, a usage chunk with
    empty choices, then ``data: [DONE]``. Reasoning pieces (a delta's ``reasoning_content`` /
    ``reasoning`` field, or the ``thinking`` parts of a typed-parts ``content``) become
    "reasoning" events and ``Response.reasoning``; a reasoning block that follows answer text
    is a new block, set off by a blank line."""

    def __init__(self, adapter: OpenAIAdapter, model: str, req: ChatRequest | None = None) -> None:
        self.adapter = adapter
        self.model = model
        self.req = req
        self.sse = adapter.sse_decoder()
        self.text: list[str] = []
        self.reasoning = ReasoningBlocks()
        self._text_seen = 0  # len(self.text) at the last reasoning piece
        self.tools = ToolCallAssembler()
        self.usage: Usage | None = None
        self.finish_raw: str | None = None
        self.done = False
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.details: dict[str, Any] = {}

    def on_event(self, sse_event: str, data: str, events: list[StreamEvent]) -> None:
        if not data:
            return
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            raise self.adapter.invalid("stream chunk is not JSON", self.model) from None
        if not isinstance(obj, dict):
            raise self.adapter.invalid("stream chunk is not a JSON object", self.model)
        if obj.get("error"):  # an error chunk: OpenAI, Groq, OpenRouter mid-stream
            raise self.adapter.error_from_body(obj, self.model)
        self.response_model = obj.get("model") or self.response_model
        self.response_id = obj.get("id") or self.response_id
        usage = self.adapter.usage_from_chunk(obj)
        if usage is not None:
            usage = with_tier(usage, obj.get("service_tier"))
            self.usage = usage
            events.append(StreamEvent("usage", usage=usage))
        choices = obj.get("choices") or []
        if not choices and (found := self.adapter.reply_details(obj, {})):
            self._details(found)
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought:  # DeepSeek / vLLM / Groq / OpenRouter reasoning field
                self._reason(thought, events)
            content = delta.get("content")
            if content:
                if not isinstance(content, str):  # typed parts (Mistral reasoning models)
                    content, thoughts, unknown = split_content(content)
                    for piece in thoughts:
                        self._reason(piece, events)
                    for part in unknown:
                        self.keep_unknown_event(part)
                if content:
                    self.text.append(content)
                    events.append(StreamEvent("text", text=content))
            if delta.get("refusal"):
                self.details["refusal"] = self.details.get("refusal", "") + delta["refusal"]
            for frag in delta.get("tool_calls") or []:
                key = frag.get("index", 0)
                fn = frag.get("function") or {}
                self.tools.start(key, frag.get("id"), fn.get("name"))
                args = fn.get("arguments")
                if args:
                    self.tools.add_arguments(
                        key, args if isinstance(args, str) else json.dumps(args)
                    )
            legacy = delta.get("function_call")
            if isinstance(legacy, dict):  # the deprecated single function call, in pieces
                self.tools.start(
                    "function_call", legacy_call_id(self.response_id), legacy.get("name")
                )
                args = legacy.get("arguments")
                if args:
                    self.tools.add_arguments("function_call", str(args))
            if choice.get("finish_reason"):
                self.finish_raw = choice["finish_reason"]
            if found := self.adapter.reply_details(obj, choice):
                self._details(found)

    def _reason(self, piece: Any, events: list[StreamEvent]) -> None:
        """One streamed piece of reasoning: kept for ``Response.reasoning`` and passed on as a
        "reasoning" event (never a "text" one)."""
        if not isinstance(piece, str):
            return
        if len(self.text) != self._text_seen:
            self.reasoning.close()  # answer text came in between: a new block
        self._text_seen = len(self.text)
        self.reasoning.add(piece)
        events.append(StreamEvent("reasoning", text=piece))

    def _details(self, found: dict[str, Any]) -> None:
        """Merge per-chunk extras; nested tables (Azure's content_filter) merge key by key."""
        for key, value in found.items():
            old = self.details.get(key)
            self.details[key] = (
                {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
            )

    def finish(self) -> Response:
        self.drain()
        text = "".join(self.text)
        if not self.done and self.finish_raw is None:
            raise self.adapter.interrupted(
                "stream ended before the reply was complete (no finish_reason, no [DONE])",
                self.model,
                text,
                self.usage,
            )
        raw = self.finish_raw
        cut: list[dict[str, Any]] | None = [] if raw == "length" else None
        calls = self.tools.finish(self.adapter.name, self.model, cut)
        if cut:
            self.details[INCOMPLETE_TOOL_CALLS] = cut
        finish = normalize_finish(raw, bool(text), bool(calls), self.adapter.finish_reason_map())
        if self.details.get("refusal"):
            finish = "content_filter"
        if finish == "content_filter" and not text and not calls:
            raise self.adapter.filtered(self.details, self.model, self.response_id)
        response: Response[Any] = Response(
            text=text,
            tool_calls=calls,
            finish_reason=finish,  # type: ignore[arg-type]
            reasoning=self.reasoning.joined(),
            raw_finish_reason=raw,
            usage=self.usage or Usage(),
            model=self.response_model,
            request_id=self.response_id,
            provider_details=self.unknown_details(self.details),
        )
        return self.adapter.finalize(self.req, response) if self.req is not None else response


def reported_cost(raw: Mapping[str, Any]) -> float | None:
    """A cost in USD the server put in ``usage.cost`` (OpenRouter and some gateways do), or
    None; anything but a finite number >= 0 is ignored (the cost is then computed)."""
    cost = raw.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        return None
    return float(cost) if 0 <= cost < float("inf") else None


def with_tier(usage: Usage, tier: Any) -> Usage:
    """``usage`` with the reply's ``service_tier`` ("priority", "flex"; "default" and the
    like are the standard tier, kept as None): it selects the rates the call is billed at."""
    if isinstance(tier, str) and tier and tier not in ("default", "auto", "standard"):
        usage.service_tier = tier
    return usage
