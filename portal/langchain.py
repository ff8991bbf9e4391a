"""A LangChain chat model backed by a portal client (extra ``portal-sdk[langchain]``).

    llm = ChatPortal(client=portal.Client("portal.toml"), feature="support.answer")

A chain or agent written for LangChain gets portal's routing, failover, canary, budgets,
guards and ledger by changing its model object. ``bind_tools`` sends the tools through
portal (tool calls come back as ``AIMessage.tool_calls``; LangChain runs them);
``with_structured_output`` uses portal's own structured output (validated, and repaired or
failed over by the feature's rules), or tool calling with ``method="function_calling"``.
Give ``client=`` (a `portal.Client`) for ``invoke``/``stream``, ``async_client=`` (a
`portal.AsyncClient`) for ``ainvoke``/``astream``, or both. Errors are portal's exceptions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from portal._call_summary import call_summary
from portal.client import AsyncClient, Client
from portal.contracts.messages import Message, ToolCall
from portal.contracts.responses import Response, StreamEvent, Usage
from portal.errors import ConfigError, ContractError

__all__ = ["ChatPortal"]

_ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user"}
_ROLES.update({"assistant": "assistant", "ai": "assistant"})


class ChatPortal(BaseChatModel):
    """LangChain's ``BaseChatModel`` whose every call is a portal call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any = Field(default=None, exclude=True)
    """A `portal.Client`, for the sync methods (``invoke``, ``stream``, ``batch``)."""
    async_client: Any = Field(default=None, exclude=True)
    """A `portal.AsyncClient`, for the async methods (``ainvoke``, ``astream``, ``abatch``)."""
    feature: str | None = None
    """The feature that routes the calls (targets, canary, budget, guards)."""
    model: str | None = None
    """A ``provider:model`` id (with a feature: pinned first, the feature's fallbacks kept)."""
    key: str | None = None
    tenant: str | None = None
    portal_tags: dict[str, str] | None = None
    """portal's ledger tags (LangChain's own ``tags`` are for its callbacks)."""
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None

    @model_validator(mode="after")
    def _check(self) -> ChatPortal:
        if self.client is None and self.async_client is None:
            raise ConfigError("ChatPortal: pass client=portal.Client(...) and/or async_client=")
        if self.client is not None and not isinstance(self.client, Client):
            raise ConfigError("ChatPortal: client= must be a portal.Client")
        if self.async_client is not None and not isinstance(self.async_client, AsyncClient):
            raise ConfigError("ChatPortal: async_client= must be a portal.AsyncClient")
        if self.feature is None and self.model is None:
            raise ConfigError("ChatPortal: pass feature= (a feature of the config) or model=")
        return self

    @property
    def _llm_type(self) -> str:
        return "portal"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"feature": self.feature, "model": self.model}

    # -- calls ----------------------------------------------------------------------------
    def _call_args(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        call: dict[str, Any] = {
            "feature": self.feature,
            "model": self.model,
            "messages": [_message(m, i) for i, m in enumerate(messages)],
            "run_tools": False,  # LangChain runs the tools
        }
        for name, value in (
            ("key", self.key),
            ("tenant", self.tenant),
            ("tags", self.portal_tags),
            ("temperature", self.temperature),
            ("max_tokens", self.max_tokens),
            ("timeout_s", self.timeout_s),
        ):
            if value is not None:
                call[name] = value
        if stop:
            call["stop"] = list(stop)
        for name in ("tools", "tool_choice", "output", "temperature", "max_tokens", "key"):
            if kwargs.get(name) is not None:
                call[name] = kwargs.pop(name)
        kwargs.pop("ls_structured_output_format", None)
        if kwargs:
            raise ContractError(
                f"ChatPortal: unknown argument(s) {', '.join(sorted(kwargs))}; portal takes "
                "tools, tool_choice, output, temperature, max_tokens, key"
            )
        return call

    def _sync(self) -> Client:
        if self.client is None:
            raise ConfigError("ChatPortal: the sync methods need client=portal.Client(...)")
        return self.client  # type: ignore[no-any-return]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        resp = self._sync().chat(**self._call_args(messages, stop, kwargs))
        return _result(resp)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.async_client is None:
            return await super()._agenerate(messages, stop, None, **kwargs)  # sync in a thread
        resp = await self.async_client.chat(**self._call_args(messages, stop, kwargs))
        return _result(resp)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        events = self._sync().stream(**self._call_args(messages, stop, kwargs))
        index = _Index()
        try:
            for event in events:
                chunk = _chunk(event, index)
                if chunk is not None:
                    if run_manager is not None and event.type == "text":
                        run_manager.on_llm_new_token(event.text, chunk=chunk)
                    yield chunk
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.async_client is None:
            async for fallback in super()._astream(messages, stop, None, **kwargs):
                yield fallback
            return
        events = self.async_client.stream(**self._call_args(messages, stop, kwargs))
        index = _Index()
        try:
            async for event in events:
                chunk = _chunk(event, index)
                if chunk is not None:
                    if run_manager is not None and event.type == "text":
                        await run_manager.on_llm_new_token(event.text, chunk=chunk)
                    yield chunk
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    # -- tools and structured output --------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The tools go to portal in OpenAI's function shape, translated for each vendor."""
        specs = [convert_to_openai_tool(t) for t in tools]
        bound: dict[str, Any] = {"tools": specs, **kwargs}
        choice = _tool_choice(tool_choice, specs)
        if choice is not None:
            bound["tool_choice"] = choice
        return self.bind(**bound)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """``method="json_schema"`` (default): portal's structured output, validated against
        the schema by portal on every vendor. ``"function_calling"``: a forced tool call."""
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if method != "json_schema":
            raise ContractError(
                f"with_structured_output: method {method!r}; use 'json_schema' or "
                "'function_calling'"
            )
        kwargs.pop("strict", None)
        if kwargs:
            raise ContractError(f"with_structured_output: unknown argument(s) {sorted(kwargs)}")
        output, parse = _output(schema)
        llm = self.bind(output=output, ls_structured_output_format={"schema": schema})
        parser = RunnableLambda(lambda message: parse(message.content))
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=lambda x: parse(x["raw"].content), parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [fallback], exception_key="parsing_error"
        )


# ------------------------------------------------------------------------------ mapping


class _Index:
    """Indices of streamed tool calls within one reply."""

    def __init__(self) -> None:
        self.next = 0


def _tool_choice(choice: Any, specs: list[dict[str, Any]]) -> str | None:
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, str):
        return choice  # "auto", "none", "required" or a tool name (checked by portal)
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    raise ContractError(
        "tool_choice: expected 'auto', 'any', 'none', 'required', a tool name or True, "
        f"got {choice!r}"
    )


def _output(schema: dict[str, Any] | type) -> tuple[Any, Callable[[Any], Any]]:
    """What portal is asked for (a pydantic model or a JSON Schema) and how the reply's text
    becomes the value (portal has validated it already)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        model = schema
        return model, lambda text: model.model_validate_json(text)
    if isinstance(schema, Mapping):
        if "function" in schema or ("name" in schema and "parameters" in schema):
            fn = schema.get("function", schema)
            json_schema = {**fn["parameters"], "title": fn["name"]}
        else:
            json_schema = dict(schema)
        return json_schema, lambda text: json.loads(text)
    tool = convert_to_openai_tool(schema)  # a TypedDict or similar
    json_schema = {**tool["function"]["parameters"], "title": tool["function"]["name"]}
    return json_schema, lambda text: json.loads(text)


def _message(m: BaseMessage, i: int) -> Message:
    where = f"messages[{i}]"
    if isinstance(m, ToolMessage):
        content = m.content if isinstance(m.content, str) else json.dumps(m.content)
        return Message(
            "tool", content, tool_call_id=m.tool_call_id, name=m.name, is_error=m.status == "error"
        )
    if isinstance(m, AIMessage):
        calls = [ToolCall(str(c["id"]), c["name"], dict(c["args"])) for c in m.tool_calls]
        return Message("assistant", _text(m.content, where) or None, calls or None)
    if isinstance(m, SystemMessage):
        return Message("system", _text(m.content, where))
    if isinstance(m, HumanMessage):
        return _user(m.content, where)
    if isinstance(m, ChatMessage) and m.role in _ROLES:
        role = _ROLES[m.role]
        if role == "user":
            return _user(m.content, where)
        return Message(role, _text(m.content, where))  # type: ignore[arg-type]
    raise ContractError(
        f"{where}: portal cannot send a {type(m).__name__} "
        f"(role {getattr(m, 'role', m.type)!r}); use system, human, ai or tool messages"
    )


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for j, block in enumerate(content):
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, Mapping) and block.get("type") in ("reasoning", "thinking"):
            continue  # reasoning is never sent back to a model
        else:
            kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
            raise ContractError(f"{where}.content[{j}]: {kind!r} blocks are text-only here")
    return "".join(parts)


def _user(content: Any, where: str) -> Message:
    from portal.contracts.messages import coerce_messages

    if isinstance(content, str):
        return Message("user", content)
    parts: list[Any] = []
    for j, block in enumerate(content):
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
        elif isinstance(block, Mapping) and block.get("type") in ("text", "image_url"):
            parts.append(dict(block))
        elif isinstance(block, Mapping) and block.get("type") == "image":
            if block.get("url"):
                parts.append({"type": "image_url", "image_url": {"url": block["url"]}})
            elif block.get("base64"):
                media = block.get("mime_type") or "image/png"
                url = f"data:{media};base64,{block['base64']}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
            else:
                raise ContractError(f"{where}.content[{j}]: an image block needs url or base64")
        else:
            kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
            raise ContractError(
                f"{where}.content[{j}]: {kind!r} content is not supported by portal "
                "(text and images are)"
            )
    return coerce_messages([{"role": "user", "content": parts}])[0]


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "input_token_details": {
            "cache_read": usage.cached_input_tokens,
            "cache_creation": usage.cache_write_tokens,
        },
        "output_token_details": {"reasoning": usage.reasoning_tokens},
    }


def _metadata(resp: Response) -> dict[str, Any]:
    return {
        "model_name": resp.model,
        "finish_reason": resp.finish_reason,
        "portal": call_summary(resp),
    }


def _result(resp: Response) -> ChatResult:
    message = AIMessage(
        content=resp.text,
        tool_calls=[
            {"name": c.name, "args": c.arguments, "id": c.id, "type": "tool_call"}
            for c in resp.tool_calls
        ],
        usage_metadata=_usage(resp.usage),  # type: ignore[arg-type]
        response_metadata=_metadata(resp),
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


def _chunk(event: StreamEvent, index: _Index) -> ChatGenerationChunk | None:
    if event.type == "text" and event.text:
        return ChatGenerationChunk(message=AIMessageChunk(content=event.text))
    if event.type == "tool_call" and event.tool_call is not None:
        call = event.tool_call
        chunk = {
            "name": call.name,
            "args": call.arguments_json(),
            "id": call.id,
            "index": index.next,
            "type": "tool_call_chunk",
        }
        index.next += 1
        return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
    if event.type == "done" and event.response is not None:
        resp = event.response
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage(resp.usage),  # type: ignore[arg-type]
                response_metadata=_metadata(resp),
                chunk_position="last",
            )
        )
    return None
