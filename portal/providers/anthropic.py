"""Anthropic Messages API (``POST {base_url}/messages``, base_url ``https://api.anthropic.com/v1``).

Wire format: https://docs.anthropic.com/en/api/messages (request/response),
https://docs.anthropic.com/en/docs/build-with-claude/streaming (SSE events),
https://docs.anthropic.com/en/api/errors (error bodies), and the types of the official SDK
(anthropics/anthropic-sdk-python ``src/anthropic/types``: ``StopReason``, ``Usage``,
``ToolChoiceParam``, ``RawMessageStreamEvent``).

Like the ``openai`` kind, ``base_url`` includes the version segment (``.../v1``): a proxy or
gateway that serves ``/v1/messages`` is configured as ``base_url = "https://gw.example/v1"``.

Translation choices:

- system messages (wherever they appear) go to the top-level ``system`` (a string, or text
  blocks when there are several or when prompt caching marks them);
- consecutive turns of the same role are merged (the API wants user/assistant alternation);
  ``tool`` turns become ``tool_result`` blocks of a user turn, so the results of parallel
  calls travel together;
- tool-call ids that do not fit Anthropic's ``^[a-zA-Z0-9_-]+$`` are mapped to a stable
  ``toolu_<hash>`` on both the ``tool_use`` and the matching ``tool_result``;
- ``max_tokens`` is required by the API: ``req.max_tokens``, else ``options["max_tokens"]`` of
  the provider settings, else `DEFAULT_MAX_TOKENS`;
- structured output is a forced tool named after the output (``OutputSpec.name``); its
  ``input`` becomes `Response.text` (JSON) in `finalize` (and directly in the stream parser,
  which knows the request), and is never reported as a tool call;
- ``provider_options={"anthropic": {...}}`` is merged into the body verbatim, except
  ``cache_control`` (e.g. ``{"type": "ephemeral"}``), which portal places as prompt-caching
  breakpoints on the last tool, the last system block and the last block of the last message;
- ``seed`` has no Anthropic equivalent and is not sent.

Finish reasons: see `FINISH_REASON_MAP`; an unknown ``stop_reason`` becomes "stop" when the
reply carries text or tool calls, "error" when it is empty.

Content: ``text`` blocks are the answer, ``tool_use`` blocks the calls. Reasoning blocks
(``thinking``, ``redacted_thinking``) are not part of the answer: their text is
``Response.reasoning`` (a stream emits each piece as a ``reasoning`` event). With extended
thinking on, Anthropic rejects a tool loop's next request unless the assistant turn that made
the calls comes back with its reasoning blocks, unmodified and signed. So the blocks that came
before a call travel on it, ``ToolCall.provider_data = {"anthropic": {"thinking": [...]}}``
(JSON and stream alike), and are sent back where they were: the first call's at the start of
the turn, a later call's right before its ``tool_use``. Any other block (a server tool's
blocks, a type added after this was written) is kept as sent in
``provider_details["unknown_content"]``.
A stream keeps the events of that kind (unknown event types, the start and deltas of an unknown
block, unknown delta types) in ``provider_details["unknown_events"]``, capped at
`MAX_UNKNOWN_EVENTS`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from portal.contracts.cache import CacheHint, cache_ttl, check_breakpoints, marked
from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Response, StreamEvent, Usage
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContextTooLong,
    ContractError,
    NotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from portal.providers.adapter import Adapter, Capabilities
from portal.providers.error_replies import error_body, error_class_for_status, parse_retry_after
from portal.providers.reasoning import carried, carry, join_reasoning, replayed_turn
from portal.providers.schema_transform import close_objects
from portal.providers.streaming import (
    SSEStreamParser,
    StreamParser,
    ToolCallAssembler,
    forced_tool_text,
)
from portal.providers.unknown import keep_unknown
from portal.wire import WireReply, WireRequest

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "FINISH_REASON_MAP",
    "AnthropicAdapter",
    "AnthropicStreamParser",
    "finalize_forced_tool",
    "safe_tool_id",
]

ANTHROPIC_VERSION = "2023-06-01"
#: used when neither the request nor the provider's options say how long a reply may be
DEFAULT_MAX_TOKENS = 4096

FINISH_REASON_MAP: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # a server tool (web search...) paused a long turn; the content so far is kept
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: error.type of the error body -> class (https://docs.anthropic.com/en/api/errors)
ERROR_TYPE_MAP: dict[str, type[ProviderError]] = {
    "invalid_request_error": BadRequest,
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "billing_error": AuthenticationError,
    "not_found_error": NotFound,
    "request_too_large": ContextTooLong,
    "rate_limit_error": RateLimited,
    "api_error": ServerError,
    "timeout_error": ProviderTimeout,
    "overloaded_error": Overloaded,
}

_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")

#: content blocks known and not part of the answer (reasoning), kept on tool calls for replay
OMITTED_BLOCKS: tuple[str, ...] = ("thinking", "redacted_thinking")
#: stream events and delta types known and needing no action: keep-alives, block ends,
#: citation deltas (citations are not part of ``text``)
IGNORED_EVENTS: tuple[str, ...] = ("ping", "content_block_stop")
IGNORED_DELTAS: tuple[str, ...] = ("citations_delta",)
#: the ``ToolCall.provider_data`` namespace this adapter reads and writes
PROVIDER_DATA_KEY = "anthropic"


def thinking_blocks(call: ToolCall) -> list[dict[str, Any]]:
    """The reasoning blocks that came before ``call`` in an Anthropic reply (to replay)."""
    blocks = carried(call, PROVIDER_DATA_KEY, "thinking")
    return [b for b in blocks if b.get("type") in OMITTED_BLOCKS]


def _carry_thinking(call: ToolCall, blocks: list[dict[str, Any]]) -> None:
    carry(call, PROVIDER_DATA_KEY, "thinking", blocks)


def _forced_with_thinking(name: str, output_tool: str | None, choice: Any) -> ContractError:
    """Anthropic allows only tool_choice auto or none with extended thinking."""
    if output_tool is not None:
        what = "structured output on Anthropic is a forced tool call"
        fix = "drop thinking for this call, or route it to a vendor with native structured output"
    else:
        what = f"tool_choice {choice!r} forces a tool call"
        fix = "use tool_choice 'auto' or 'none', or drop thinking for this call"
    return ContractError(
        f"provider {name!r}: {what}, which Anthropic does not allow with extended thinking "
        f"(provider_options thinking); {fix}"
    )


def _thinking_on(options: Mapping[str, Any]) -> bool:
    thinking = options.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") not in (None, "disabled")


def _thinking_text(blocks: Iterable[dict[str, Any]]) -> str:
    return join_reasoning(
        str(b.get("thinking") or "") for b in blocks if b.get("type") == "thinking"
    )


def safe_tool_id(call_id: str, prefix: str = "toolu_") -> str:
    """A tool-call id the vendor accepts: kept when it already fits ``[a-zA-Z0-9_-]``, else a
    stable hash, so the same foreign id maps to the same id in a call and in its result."""
    if _TOOL_ID.match(call_id):
        return call_id
    return prefix + hashlib.sha256(call_id.encode()).hexdigest()[:24]


def output_tool_name(req: ChatRequest) -> str | None:
    """Name of the forced structured-output tool of a request (None without ``output``); a
    user tool of the same name would be ambiguous and is refused."""
    if req.output is None:
        return None
    name = req.output.name
    if any(t.name == name for t in req.tools):
        raise ContractError(
            f"tool {name!r}: a tool has the name of the structured output, which portal sends "
            "as a tool of that name; rename the tool or the output"
        )
    return name


def finalize_forced_tool(req: ChatRequest, response: Response) -> Response:
    """Turn the call of the structured-output tool into the reply's JSON text: it is the
    answer, not a tool call to run. Idempotent (nothing left to move the second time)."""
    name = output_tool_name(req)
    if name is None:
        return response
    answer = [c for c in response.tool_calls if c.name == name]
    if not answer:
        return response
    if response.text:
        response.provider_details["preamble"] = response.text
    response.text = json.dumps(answer[0].arguments, ensure_ascii=False)
    response.tool_calls = [c for c in response.tool_calls if c.name != name]
    if response.finish_reason == "tool_calls" and not response.tool_calls:
        response.finish_reason = "stop"
    return response


#: Anthropic documents at most 4 cache breakpoints per request
MAX_BREAKPOINTS = 4


def cache_marked(block: dict[str, Any], hint: CacheHint | None) -> dict[str, Any]:
    """Put a ``cache_control`` breakpoint on a system block, content block or tool: type
    ``ephemeral``, with ``ttl`` when the marker asked for a lifetime."""
    if hint:
        control: dict[str, Any] = {"type": "ephemeral"}
        ttl = cache_ttl(hint)
        if ttl is not None:
            control["ttl"] = ttl
        block["cache_control"] = control
    return block


def _empty_marked(i: int) -> ContractError:
    return ContractError(
        f"messages[{i}].cache: the message has no content to put a cache breakpoint on; "
        "mark a message with content"
    )


def check_cache_controls(body: dict[str, Any], provider: str) -> None:
    """At most 4 breakpoints, 1-hour ones first, in reading order (tools, system, messages);
    markers and a ``provider_options`` ``cache_control`` count alike."""
    blocks = list(body.get("tools", ()))
    if isinstance(body.get("system"), list):
        blocks += body["system"]
    for turn in body.get("messages", ()):
        if isinstance(turn.get("content"), list):
            blocks += turn["content"]
    controls = [b["cache_control"] for b in blocks if "cache_control" in b]
    ttls = [c.get("ttl") if isinstance(c, Mapping) else None for c in controls]
    check_breakpoints(ttls, f"provider {provider!r} (Anthropic)", MAX_BREAKPOINTS)


class AnthropicAdapter(Adapter):
    """Capabilities follow the documented limits: tool names ``^[a-zA-Z0-9_-]{1,64}$``
    (enforced by ToolSpec), images jpeg/png/gif/webp by base64 or URL, tool_choice
    auto/any/tool/none, input_schema is full JSON Schema (no strict subset). Anthropic does not
    publish a maximum number of tools; none is assumed."""

    kind: ClassVar[str] = "anthropic"
    option_names: ClassVar[frozenset[str] | None] = frozenset({"max_tokens", "thinking"})
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com/v1"
    api_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="tool",
        schema_dialect="json-schema",
        embed=False,
        notes=(
            (
                "structured output is a forced tool (tool_choice type=tool); with user tools "
                "the choice becomes type=any so the model may call a tool or answer"
            ),
            "seed is not supported by the Messages API and is not sent",
            "no embeddings endpoint",
        ),
    )
    chat_path: ClassVar[str] = "/messages"
    cache_ttls: ClassVar[tuple[str, ...]] = ("5m", "1h")

    # -- request ---------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key(), "anthropic-version": ANTHROPIC_VERSION}

    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        return self.json_request(
            self.base_url + self.chat_path, self.chat_body(req, model), self.auth_headers()
        )

    def max_tokens(self, req: ChatRequest) -> int:
        if req.max_tokens is not None:
            return req.max_tokens
        configured = self.settings.options.get("max_tokens")
        if configured is None:
            return DEFAULT_MAX_TOKENS
        try:
            return int(configured)
        except (TypeError, ValueError):
            raise ContractError(
                f"provider {self.name!r}: options.max_tokens must be an integer, got {configured!r}"
            ) from None

    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        options = dict(req.options_for(self.kind))
        cache_control = options.pop("cache_control", None)
        system, messages = self.map_messages(req.messages)
        body: dict[str, Any] = {"model": model, "max_tokens": self.max_tokens(req)}
        if system:
            if cache_control is not None:
                system[-1]["cache_control"] = cache_control
            body["system"] = (
                system[0]["text"]
                if len(system) == 1 and "cache_control" not in system[0]
                else system
            )
        if cache_control is not None and messages:
            last = messages[-1]
            if isinstance(last["content"], str):
                last["content"] = [{"type": "text", "text": last["content"]}]
            if last["content"]:
                last["content"][-1]["cache_control"] = cache_control
        body["messages"] = messages
        tools = [self.map_tool(t) for t in req.tools]
        out_name = output_tool_name(req)
        if out_name is not None:
            tools.append(self.map_output(req))
        if tools:
            if cache_control is not None:
                tools[-1]["cache_control"] = cache_control
            body["tools"] = tools
        choice = self.map_tool_choice(req.tool_choice, out_name, bool(req.tools))
        if choice is not None:
            if choice["type"] in ("any", "tool") and _thinking_on(options):
                raise _forced_with_thinking(self.name, out_name, req.tool_choice)
            body["tool_choice"] = choice
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stop:
            body["stop_sequences"] = req.stop
        if req.stream:
            body["stream"] = True
        body.update(options)
        if cache_control is not None or marked(req):
            check_cache_controls(body, self.name)
        return body

    def map_messages(
        self, messages: list[Message]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(system text blocks, alternating user/assistant turns of content blocks)."""
        system: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []
        for i, m in enumerate(messages):
            if m.role == "system":
                if m.text:
                    system.append(cache_marked({"type": "text", "text": m.text}, m.cache))
                elif m.cache:
                    raise _empty_marked(i)
                continue
            role = "assistant" if m.role == "assistant" else "user"
            blocks = self.map_content(m)
            if m.cache:
                if not blocks:
                    raise _empty_marked(i)
                cache_marked(blocks[-1], m.cache)
            if not blocks:
                continue
            if turns and turns[-1]["role"] == role:
                prev = turns[-1]
                if isinstance(prev["content"], str):
                    prev["content"] = [{"type": "text", "text": prev["content"]}]
                prev["content"].extend(blocks)
            else:
                only_text = len(blocks) == 1 and blocks[0]["type"] == "text" and not m.cache
                content: Any = blocks[0]["text"] if only_text else blocks
                turns.append({"role": role, "content": content})
        return system, turns

    def map_content(self, m: Message) -> list[dict[str, Any]]:
        if m.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": safe_tool_id(m.tool_call_id or ""),
            }
            if isinstance(m.content, list):
                block["content"] = [self.map_part(p) for p in m.content]
            else:
                block["content"] = m.content or ""
            if m.is_error:
                block["is_error"] = True
            return [block]
        blocks = [self.map_part(p) for p in m.parts if not (isinstance(p, TextPart) and not p.text)]
        if m.role == "assistant" and m.tool_calls:
            return replayed_turn(blocks, m.tool_calls, thinking_blocks, self.map_tool_call)
        return blocks

    def map_part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        if part.url is not None:
            return {"type": "image", "source": {"type": "url", "url": part.url}}
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": part.media_type, "data": part.data},
        }

    def map_tool_call(self, call: ToolCall) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": safe_tool_id(call.id),
            "name": call.name,
            "input": call.arguments,
        }

    def map_tool(self, tool: Any) -> dict[str, Any]:
        """A tool definition; ``strict: true`` is sent as Anthropic documents it on the tool
        (structured outputs: tool names and inputs validated against the schema), with every
        object of the schema closed as strict tool use requires (`close_objects`)."""
        params = tool.parameters
        if tool.strict:
            params = close_objects(params, f"tool {tool.name!r}: parameters", "Anthropic")
        out: dict[str, Any] = {"name": tool.name, "input_schema": params}
        if tool.description:
            out["description"] = tool.description
        if tool.strict:
            out["strict"] = True
        return cache_marked(out, tool.cache)

    def map_output(self, req: ChatRequest) -> dict[str, Any]:
        assert req.output is not None
        return {
            "name": output_tool_name(req),
            "description": (
                f"Give the final answer as the input of this tool; it must match the "
                f"{req.output.name} schema."
            ),
            "input_schema": req.output.schema,
        }

    def map_tool_choice(
        self, choice: str | None, output_tool: str | None, has_tools: bool
    ) -> dict[str, Any] | None:
        if output_tool is not None:
            if choice in (None, "auto", "required") and has_tools:
                # the model must either call a user tool or give the structured answer
                return {"type": "any"}
            if choice in (None, "auto", "required", "none"):
                return {"type": "tool", "name": output_tool, "disable_parallel_tool_use": True}
            return {"type": "tool", "name": choice}
        if choice is None:
            return None
        if choice == "auto":
            return {"type": "auto"}
        if choice == "required":
            return {"type": "any"}
        if choice == "none":
            return {"type": "none"}
        return {"type": "tool", "name": choice}

    # -- response --------------------------------------------------------------------------
    def parse_chat(self, reply: WireReply, model: str) -> Response:
        try:
            data = reply.json()
        except ValueError as exc:
            raise self.invalid(f"reply is not JSON ({exc})", model) from None
        if not isinstance(data, dict):
            raise self.invalid("reply is not a JSON object", model)
        if data.get("type") == "error":
            raise self.error_from_body(data, model, reply.status, reply.headers)
        content = data.get("content")
        if not isinstance(content, list):
            raise self.invalid("reply has no content list", model)
        texts: list[str] = []
        calls: list[ToolCall] = []
        details: dict[str, Any] = {}
        reasoning: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []  # reasoning since the last tool call
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind == "tool_use":
                args = block.get("input")
                if not isinstance(args, dict):
                    raise self.invalid(
                        f"tool_use {block.get('name')!r}: input must be a JSON object", model
                    )
                name = str(block.get("name") or "")
                calls.append(ToolCall(str(block.get("id") or ""), name, args))
                _carry_thinking(calls[-1], pending)
                pending = []
            elif kind in OMITTED_BLOCKS:
                reasoning.append(block)
                pending.append(block)
            else:
                keep_unknown(details, block)
        raw = data.get("stop_reason")
        text = "".join(texts)
        if data.get("stop_sequence"):
            details["stop_sequence"] = data["stop_sequence"]
        return Response(
            text=text,
            tool_calls=calls,
            reasoning=_thinking_text(reasoning),
            finish_reason=normalize_finish(raw, bool(text or calls), bool(calls)),  # type: ignore[arg-type]
            raw_finish_reason=raw,
            usage=self._usage(data.get("usage"), model),
            model=data.get("model"),
            request_id=self.request_id(reply.headers) or data.get("id"),
            provider_details=details,
        )

    @staticmethod
    def parse_usage(raw: Any, into: Usage | None = None) -> Usage:
        """Anthropic's ``input_tokens`` excludes cache reads and writes; portal's includes
        them. ``cache_creation`` says how many writes went to the 1-hour cache, and
        ``service_tier`` which tier served the reply. Fields missing from ``raw`` keep their
        value in ``into`` (stream updates).

        A reply that sampled more than once (server-side compaction, server tool loops)
        lists every sampling in ``usage.iterations``, and its top-level counts leave the
        compaction iterations out; Anthropic bills the sum over all iterations, so that sum
        is the usage (`iteration_totals`), never less than the top-level counts."""
        usage = into or Usage()
        if not isinstance(raw, dict):
            return usage
        fresh = raw.get("input_tokens")
        if fresh is None:
            fresh = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        reads = raw.get("cache_read_input_tokens")
        writes = raw.get("cache_creation_input_tokens")
        output = raw.get("output_tokens")
        summed = iteration_totals(raw.get("iterations"))
        if summed is not None:
            fresh = max(int(fresh), summed[0])
            reads = max(int(reads or 0), summed[1])
            writes = max(int(writes or 0), summed[2])
            output = max(int(output or 0), summed[3])
        if reads is not None:
            usage.cached_input_tokens = int(reads)
        if writes is not None:
            usage.cache_write_tokens = int(writes)
        usage.input_tokens = int(fresh) + usage.cached_input_tokens + usage.cache_write_tokens
        if output is not None:
            usage.output_tokens = int(output)
        # cache_creation splits the writes by TTL: 1-hour writes cost 2x input, 5-minute 1.25x
        by_ttl = raw.get("cache_creation")
        if isinstance(by_ttl, dict) and by_ttl.get("ephemeral_1h_input_tokens") is not None:
            usage.cache_write_1h_tokens = min(
                int(by_ttl["ephemeral_1h_input_tokens"]), usage.cache_write_tokens
            )
        tier = raw.get("service_tier")  # "standard", "priority" or "batch"
        if isinstance(tier, str) and tier:
            usage.service_tier = None if tier == "standard" else tier
        return usage

    def _usage(self, raw: Any, model: str, into: Usage | None = None) -> Usage:
        try:
            return self.parse_usage(raw, into)
        except (TypeError, ValueError) as exc:
            raise self.invalid(f"usage not understood ({exc})", model) from None

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        return AnthropicStreamParser(self, model, output_tool_name(req))

    def finalize(self, req: ChatRequest, response: Response) -> Response:
        return finalize_forced_tool(req, response)

    # -- errors ----------------------------------------------------------------------------
    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        cls = ERROR_TYPE_MAP.get(code or "")
        if cls is None:
            return error_class_for_status(status, code, message)
        if cls is BadRequest:
            # "prompt is too long: 210000 tokens > 200000 maximum"
            return error_class_for_status(400, code, message)
        return cls

    def parse_error(self, reply: WireReply, model: str) -> ProviderError:
        err = super().parse_error(reply, model)
        if err.retry_after is None:
            err.retry_after = ratelimit_reset_after(reply.headers)
        if err.request_id is None and isinstance(err.body, dict):
            rid = err.body.get("request_id")
            err.request_id = rid if isinstance(rid, str) else None
        return err

    def error_from_body(
        self,
        data: Mapping[str, Any],
        model: str,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ProviderError:
        """An error object found in a 200 body or an SSE ``error`` event: classified by its
        ``error.type`` the same way as an HTTP error."""
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        assert isinstance(err, dict)
        code = str(err.get("type") or "") or None
        message = str(err.get("message") or "") or f"error event {code or ''}".strip()
        cls = self.classify(status if status and status >= 400 else 500, code, message)
        hdrs = dict(headers or {})
        return cls(
            message,
            provider=self.name,
            model=model,
            status=status if status and status >= 400 else None,
            headers=hdrs,
            request_id=self.request_id(hdrs)
            or (data.get("request_id") if isinstance(data.get("request_id"), str) else None),
            retry_after=parse_retry_after(hdrs),
            body=error_body(json.dumps(data).encode()),
            code=code,
        )


def iteration_totals(iterations: Any) -> tuple[int, int, int, int] | None:
    """(fresh input, cache reads, cache writes, output) summed over ``usage.iterations``
    (``compaction``, ``message`` and any later iteration type alike); None without any."""
    if not isinstance(iterations, list) or not iterations:
        return None
    totals = [0, 0, 0, 0]
    for item in iterations:
        if not isinstance(item, dict):
            raise TypeError("usage.iterations[] entry is not an object")
        for n, name in enumerate(
            (
                "input_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "output_tokens",
            )
        ):
            totals[n] += int(item.get(name) or 0)
    return totals[0], totals[1], totals[2], totals[3]


def normalize_finish(raw: Any, has_content: bool, has_calls: bool) -> str:
    if raw is None:
        return "tool_calls" if has_calls else "stop"
    finish = FINISH_REASON_MAP.get(str(raw))
    if finish is None:
        return "stop" if has_content else "error"
    if finish == "tool_calls" and not has_calls:
        # the only tool_use was the structured-output tool (stream): the answer is complete
        return "stop"
    return finish


def ratelimit_reset_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the exhausted ``anthropic-ratelimit-*`` limit resets (RFC 3339 times),
    used when a 429 carries no ``retry-after``."""
    waits: list[float] = []
    current = time.time() if now is None else now
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if headers.get(f"anthropic-ratelimit-{kind}-remaining") != "0":
            continue
        reset = headers.get(f"anthropic-ratelimit-{kind}-reset")
        if not reset:
            continue
        try:
            when = datetime.fromisoformat(reset)
        except ValueError:
            continue
        waits.append(max(0.0, when.timestamp() - current))
    return max(waits) if waits else None


class AnthropicStreamParser(SSEStreamParser):
    """SSE events ``message_start``, ``content_block_start``/``_delta``/``_stop``,
    ``message_delta`` (stop_reason, cumulative usage), ``message_stop``, ``ping``, ``error``.
    A reply is complete once ``message_stop`` (or a ``message_delta`` stop_reason) arrived."""

    def __init__(self, adapter: AnthropicAdapter, model: str, output_tool: str | None) -> None:
        self.adapter = adapter
        self.model = model
        self.output_tool = output_tool
        self.sse = adapter.sse_decoder()
        self.text: list[str] = []
        self.structured: list[str] | None = None
        self.tools = ToolCallAssembler()
        self.block_kind: dict[int, str] = {}
        self.reasoning: dict[int, dict[str, Any]] = {}  # index -> thinking block, rebuilt
        self.tool_indexes: list[int] = []  # block index of each tool call, in call order
        self.usage: Usage | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.response_model: str | None = None
        self.response_id: str | None = None

    def on_event(self, sse_event: str, data: str, events: list[StreamEvent]) -> None:
        if not data:
            return
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            raise self.adapter.invalid("stream event is not JSON", self.model) from None
        if not isinstance(obj, dict):
            raise self.adapter.invalid("stream event is not a JSON object", self.model)
        kind = obj.get("type")
        if kind == "error":
            raise self.adapter.error_from_body(obj, self.model)
        if kind == "message_start":
            msg = obj.get("message") or {}
            self.response_model = msg.get("model") or self.response_model
            self.response_id = msg.get("id") or self.response_id
            self.usage = self._usage(msg.get("usage"))
        elif kind == "content_block_start":
            index = int(obj.get("index", 0))
            block = obj.get("content_block") or {}
            btype = str(block.get("type"))
            name = str(block.get("name") or "")
            if btype == "tool_use" and name == self.output_tool:
                btype = "output"
                self.structured = self.structured or []
            elif btype == "tool_use":
                self.tools.start(index, block.get("id"), name)
                self.tool_indexes.append(index)
            elif btype == "thinking":
                first = str(block.get("thinking") or "")
                sig = str(block.get("signature") or "")
                self.reasoning[index] = {"type": "thinking", "thinking": first, "signature": sig}
                if first:
                    events.append(StreamEvent("reasoning", text=first))
            elif btype == "redacted_thinking":
                self.reasoning[index] = dict(block)
            elif btype == "text":
                if block.get("text"):
                    self.text.append(block["text"])
                    events.append(StreamEvent("text", text=block["text"]))
            elif btype not in OMITTED_BLOCKS:
                btype = "unknown"
                self.keep_unknown_event(obj)
            self.block_kind[index] = btype
        elif kind == "content_block_delta":
            index = int(obj.get("index", 0))
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if self.block_kind.get(index) == "unknown":
                self.keep_unknown_event(obj)  # the rest of a block portal has no rule for
            elif dtype == "text_delta":
                piece = str(delta.get("text") or "")
                if piece:
                    self.text.append(piece)
                    events.append(StreamEvent("text", text=piece))
            elif dtype == "input_json_delta":
                piece = str(delta.get("partial_json") or "")
                if self.block_kind.get(index) == "output":
                    assert self.structured is not None
                    self.structured.append(piece)
                    if piece:
                        events.append(StreamEvent("text", text=piece))
                else:
                    self.tools.add_arguments(index, piece)
            elif dtype == "thinking_delta" and index in self.reasoning:
                piece = str(delta.get("thinking") or "")
                self.reasoning[index]["thinking"] += piece
                if piece:
                    events.append(StreamEvent("reasoning", text=piece))
            elif dtype == "signature_delta" and index in self.reasoning:
                self.reasoning[index]["signature"] += str(delta.get("signature") or "")
            elif dtype not in IGNORED_DELTAS:
                self.keep_unknown_event(obj)
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop_reason = delta["stop_reason"]
            if isinstance(obj.get("usage"), dict):
                self.usage = self._usage(obj["usage"])
                events.append(StreamEvent("usage", usage=self.usage))
        elif kind == "message_stop":
            self.stopped = True
        elif kind not in IGNORED_EVENTS:
            self.keep_unknown_event(obj)

    def _usage(self, raw: Any) -> Usage:
        return self.adapter._usage(raw, self.model, self.usage)

    def _carry_reasoning(self, calls: list[ToolCall]) -> None:
        """Put each reasoning block on the tool call that followed it (as `parse_chat`)."""
        call_at = dict(zip(self.tool_indexes, calls, strict=False))
        pending: list[dict[str, Any]] = []
        for index in sorted(set(self.reasoning) | set(call_at)):
            if index in self.reasoning:
                pending.append(self.reasoning[index])
            else:
                _carry_thinking(call_at[index], pending)
                pending = []

    def finish(self) -> Response:
        self.drain()
        plain = "".join(self.text)
        if not self.stopped and self.stop_reason is None:
            partial = "".join(self.structured) if self.structured is not None else plain
            raise self.adapter.interrupted(
                "stream ended before the reply was complete (no message_stop)",
                self.model,
                partial,
                self.usage,
            )
        calls = self.tools.finish(self.adapter.name, self.model)
        details: dict[str, Any] = {}
        if self.reasoning:
            self._carry_reasoning(calls)
        text = forced_tool_text(self.structured, plain, details, self.adapter, self.model)
        return Response(
            text=text,
            tool_calls=calls,
            reasoning=_thinking_text(self.reasoning[i] for i in sorted(self.reasoning)),
            finish_reason=normalize_finish(  # type: ignore[arg-type]
                self.stop_reason, bool(text or calls), bool(calls)
            ),
            raw_finish_reason=self.stop_reason,
            usage=self.usage or Usage(),
            model=self.response_model,
            request_id=self.response_id,
            provider_details=self.unknown_details(details),
        )
