"""A Pydantic AI `Model` backed by a portal client (extra ``portal-sdk[pydantic-ai]``).

    agent = Agent(PortalModel(portal.AsyncClient("portal.toml"), feature="support.answer"))

An agent written for Pydantic AI gets portal's routing, failover, canary, budgets, guards and
ledger by changing its model object. Pydantic AI keeps running the agent loop (its tools, its
retries on invalid output); each model request is one portal call with ``run_tools=False``,
so tool calls come back to the agent. Structured output defaults to portal's own (native)
structured output, which every vendor portal routes to can serve; ``ToolOutput`` and
``PromptedOutput`` work too. Errors are portal's exceptions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    BinaryContent,
    CachePoint,
    FinishReason,
    ImageUrl,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    ModelResponseStreamEvent,
    SystemPromptPart,
    TextContent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import (
    Model,
    ModelRequestParameters,
    StreamedResponse,
    _sendable_request_parts,
    check_allow_model_requests,
)
from pydantic_ai.profiles import ModelProfile, ModelProfileSpec
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from portal._call_summary import call_summary
from portal.client import AsyncClient
from portal.contracts.messages import Message, ToolCall, image_from_url
from portal.contracts.output import OutputSpec
from portal.contracts.responses import Response, StreamEvent, Usage

__all__ = ["PortalModel", "PortalStreamedResponse"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_call",
    "content_filter": "content_filter",
    "error": "error",
}
#: Pydantic AI's generic settings that portal forwards (the rest it cannot carry portably)
_SETTINGS = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
}


def _profile() -> ModelProfile:
    """portal serves JSON Schema structured output on every vendor it routes to, so the
    agent's output type goes out as portal's structured output by default."""
    return ModelProfile(
        supports_tools=True,
        supports_json_schema_output=True,
        default_structured_output_mode="native",
    )


class PortalModel(Model):
    """A Pydantic AI model whose every request is a portal call.

    - ``client``: a `portal.AsyncClient` (yours to close).
    - ``feature``: the feature that routes the calls (its targets, canary, budget, guards);
      or ``model``: a ``provider:model`` id (with a feature: pinned first, the feature's
      fallbacks kept).
    - ``key``, ``tenant``, ``tags``: portal's per-call options (sticky canary, ledger).
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        feature: str | None = None,
        model: str | None = None,
        key: str | None = None,
        tenant: str | None = None,
        tags: Mapping[str, str] | None = None,
        settings: ModelSettings | None = None,
        profile: ModelProfileSpec | None = None,
    ) -> None:
        if not isinstance(client, AsyncClient):
            raise UserError("PortalModel needs a portal.AsyncClient (Pydantic AI is async)")
        if feature is None and model is None:
            raise UserError("PortalModel: pass feature= (a feature of the config) or model=")
        self.client = client
        self.feature = feature
        self.model = model
        self.options: dict[str, Any] = {"key": key, "tenant": tenant, "tags": tags}
        super().__init__(settings=settings, profile=profile or _profile())

    @property
    def model_name(self) -> str:
        return self.model or f"feature:{self.feature}"

    @property
    def system(self) -> str:
        return "portal"

    @property
    def base_url(self) -> str | None:
        return None

    # -- requests -------------------------------------------------------------------------
    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        check_allow_model_requests()
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        call = self._call(messages, model_settings, model_request_parameters)
        resp = await self.client.chat(**call)
        return _model_response(resp, self.model_name)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncGenerator[StreamedResponse]:
        check_allow_model_requests()
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        call = self._call(messages, model_settings, model_request_parameters)
        events = self.client.stream(**call)
        try:
            yield PortalStreamedResponse(
                model_request_parameters=model_request_parameters,
                _events=events,
                _model_name=self.model_name,
            )
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    def _call(
        self,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        params: ModelRequestParameters,
    ) -> dict[str, Any]:
        """The keyword arguments of `AsyncClient.chat` / `stream` for one model request."""
        call: dict[str, Any] = {
            "feature": self.feature,
            "model": self.model,
            "messages": self._messages(messages, params),
            "run_tools": False,  # the agent runs its own tools
            **{k: v for k, v in self.options.items() if v is not None},
        }
        tools = [_tool(t) for t in [*params.function_tools, *params.output_tools]]
        if tools:
            call["tools"] = tools
            if not params.allow_text_output:
                call["tool_choice"] = "required"
        if params.output_mode == "native" and params.output_object is not None:
            obj = params.output_object
            call["output"] = OutputSpec.of({**obj.json_schema, "title": obj.name or "final_result"})
        for name, portal_name in _SETTINGS.items():
            value = (settings or {}).get(name)
            if value is not None:
                call[portal_name] = value
        stop = (settings or {}).get("stop_sequences")
        if stop:
            call["stop"] = list(stop)
        timeout = (settings or {}).get("timeout")
        if isinstance(timeout, (int, float)):
            call["timeout_s"] = float(timeout)
        return call

    def _messages(
        self, messages: list[ModelMessage], params: ModelRequestParameters
    ) -> list[Message]:
        out: list[Message] = []
        for message in messages:
            if isinstance(message, ModelRequest):
                out.extend(_request_messages(message))
            elif isinstance(message, ModelResponse):
                out.append(_response_message(message))
            else:
                raise UserError(f"PortalModel: unknown message type {type(message).__name__}")
        instructions = self._get_instruction_parts(messages, params)
        if instructions:
            lead = next((i for i, m in enumerate(out) if m.role != "system"), len(out))
            out[lead:lead] = [Message("system", part.content) for part in instructions]
        return out


# ------------------------------------------------------------------------------ mapping


def _tool(t: ToolDefinition) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name, "parameters": t.parameters_json_schema}
    if t.description:
        fn["description"] = t.description
    if t.strict:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def _request_messages(message: ModelRequest) -> Iterator[Message]:
    for part in _sendable_request_parts(message.parts):
        if isinstance(part, SystemPromptPart):
            yield Message("system", part.content)
        elif isinstance(part, UserPromptPart):
            yield Message("user", _user_content(part))
        elif isinstance(part, ToolReturnPart):
            text, files = part.model_response_str_and_user_content()
            failed = part.outcome in ("failed", "denied", "retried")
            yield Message(
                "tool", text, tool_call_id=part.tool_call_id, name=part.tool_name, is_error=failed
            )
            if files:
                yield Message("user", _user_content(UserPromptPart(content=files)))
        else:
            raise UserError(
                f"PortalModel: portal cannot send a {type(part).__name__} to a model; "
                "run the agent (which prepares the history) rather than calling request() directly"
            )


def _user_content(part: UserPromptPart) -> Any:
    if isinstance(part.content, str):
        return part.content
    out: list[Any] = []
    for item in part.content:
        if isinstance(item, str):
            out.append({"type": "text", "text": item})
        elif isinstance(item, TextContent):
            out.append({"type": "text", "text": item.content})
        elif isinstance(item, ImageUrl):
            out.append(image_from_url(item.url, "image"))
        elif isinstance(item, BinaryContent) and item.is_image:
            out.append(image_from_url(item.data_uri, "image"))
        elif isinstance(item, CachePoint):
            continue
        else:
            raise UserError(
                f"PortalModel: {type(item).__name__} user content is not supported by portal "
                "(text and images are)"
            )
    from portal.contracts.messages import coerce_messages

    return coerce_messages([{"role": "user", "content": out}])[0].content


def _response_message(message: ModelResponse) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.content)
        elif isinstance(part, ToolCallPart):
            calls.append(ToolCall(part.tool_call_id, part.tool_name, part.args_as_dict()))
        elif isinstance(part, ThinkingPart):
            continue  # portal never sends reasoning back to a model
        else:
            raise UserError(
                f"PortalModel: portal cannot replay a {type(part).__name__} to another model"
            )
    return Message("assistant", "\n\n".join(texts) or None, calls or None)


def _usage(usage: Usage) -> RequestUsage:
    return RequestUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        details={"reasoning_tokens": usage.reasoning_tokens} if usage.reasoning_tokens else {},
    )


def _details(resp: Response) -> dict[str, Any]:
    """What portal knows about the call, for whoever reads the message history."""
    return {**call_summary(resp), "finish_reason": resp.raw_finish_reason or resp.finish_reason}


def _parts(resp: Response) -> list[ModelResponsePart]:
    parts: list[ModelResponsePart] = []
    if resp.reasoning:
        parts.append(ThinkingPart(content=resp.reasoning))
    if resp.text:
        parts.append(TextPart(content=resp.text))
    for call in resp.tool_calls:
        parts.append(ToolCallPart(call.name, call.arguments, tool_call_id=call.id))
    return parts


def _model_response(resp: Response, model_name: str) -> ModelResponse:
    return ModelResponse(
        parts=_parts(resp),
        usage=_usage(resp.usage),
        model_name=resp.model or model_name,
        provider_name="portal",
        provider_response_id=resp.request_id,
        finish_reason=_FINISH.get(resp.finish_reason, "stop"),
        provider_details=_details(resp),
    )


@dataclass
class PortalStreamedResponse(StreamedResponse):
    """portal's normalized stream events as Pydantic AI stream events."""

    _events: AsyncIterator[StreamEvent]
    _model_name: str
    _timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    _tool_index: int = field(default=0, init=False)

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        async for event in self._events:
            for out in self._map(event):
                yield out

    def _map(self, event: StreamEvent) -> Iterator[ModelResponseStreamEvent]:
        kind = event.type
        if kind == "text" and event.text:
            yield from self._parts_manager.handle_text_delta(
                vendor_part_id="content", content=event.text
            )
        elif kind == "reasoning" and event.text:
            yield from self._parts_manager.handle_thinking_delta(
                vendor_part_id="reasoning", content=event.text
            )
        elif kind == "tool_call" and event.tool_call is not None:
            call = event.tool_call
            self._tool_index += 1
            yield self._parts_manager.handle_tool_call_part(
                vendor_part_id=f"tool-{self._tool_index}",
                tool_name=call.name,
                args=json.dumps(call.arguments),
                tool_call_id=call.id,
            )
        elif kind == "usage" and event.usage is not None:
            self._add_usage(_usage(event.usage), reported=True, cumulative=True)
        elif kind == "done" and event.response is not None:
            resp = event.response
            self._add_usage(_usage(resp.usage), reported=True, cumulative=True)
            self.finish_reason = _FINISH.get(resp.finish_reason, "stop")
            self.provider_response_id = resp.request_id
            self.provider_details = _details(resp)
            if resp.model:
                self._model_name = resp.model

    async def close_stream(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def provider_name(self) -> str:
        return "portal"

    @property
    def provider_url(self) -> None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self._timestamp
