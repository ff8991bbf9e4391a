"""`OpenAI` and `AsyncOpenAI`: the openai SDK's call shape over a portal client.

``client.chat.completions.create(...)`` and ``client.embeddings.create(...)`` take the
official SDK's arguments and return its own types (``ChatCompletion``,
``ChatCompletionChunk``, ``CreateEmbeddingResponse``), while the call runs through portal:
``model`` names a feature of the config (its routing, canary, budgets, guards) or a
``provider:model`` id, and ``extra_body={"portal": {...}}`` carries portal's per-call options.
Errors are portal's exceptions (`portal.RateLimited`, `portal.AllTargetsFailed`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

from portal.client import AsyncClient, Client
from portal.config import PortalConfig
from portal.errors import ContractError
from portal.openai._run import (
    AsyncChunks,
    Chunks,
    arun_chat,
    arun_embed,
    merge_body,
    run_chat,
    run_embed,
)

__all__ = ["AsyncChatStream", "AsyncOpenAI", "ChatStream", "OpenAI"]

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | PortalConfig | None
C = TypeVar("C", Client, AsyncClient)


def _completion(data: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(data)


def _embeddings(data: dict[str, Any]) -> CreateEmbeddingResponse:
    if data["data"] and isinstance(data["data"][0]["embedding"], str):
        # base64 asked for: the SDK's own type holds the string unvalidated, as the SDK does
        return CreateEmbeddingResponse.construct(**data)
    return CreateEmbeddingResponse.model_validate(data)


def _parse_body(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``parse()`` takes a pydantic model as ``response_format``: it becomes portal's
    structured output, validated, and the reply's ``message.parsed``."""
    model = kwargs.pop("response_format", None)
    if kwargs.get("stream"):
        raise ContractError("parse() does not stream; use create(stream=True)")
    if not isinstance(model, type) or not hasattr(model, "model_json_schema"):
        raise ContractError("parse(): response_format must be a pydantic model class")
    from portal.contracts.output import OutputSpec

    spec = OutputSpec.of(model)
    body = merge_body(kwargs)
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": spec.name, "schema": spec.schema},
    }
    return body, model


def _parsed(data: dict[str, Any], model: type[Any]) -> ParsedChatCompletion[Any]:
    message = data["choices"][0]["message"]
    if message.get("content"):
        message["parsed"] = model.model_validate_json(message["content"])
    return ParsedChatCompletion[model].model_validate(data)  # type: ignore[valid-type]


class ChatStream:
    """``create(stream=True)``: iterate for ``ChatCompletionChunk``; close (or use ``with``)
    to stop early. Vendor and routing errors before the first token raised from ``create``."""

    def __init__(self, chunks: Chunks) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(next(self._chunks))

    def close(self) -> None:
        self._chunks.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatStream:
    """Async twin of `ChatStream`: ``async for chunk in stream``."""

    def __init__(self, chunks: AsyncChunks) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(await anext(self._chunks))

    async def close(self) -> None:
        await self._chunks.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Resource(Generic[C]):
    def __init__(self, client: C) -> None:
        self._client: C = client


class Completions(_Resource[Client]):
    def create(self, **kwargs: Any) -> ChatCompletion | ChatStream:
        """The arguments of ``openai.OpenAI().chat.completions.create``."""
        out = run_chat(self._client, merge_body(kwargs))
        return ChatStream(out) if isinstance(out, Chunks) else _completion(out)

    def parse(self, **kwargs: Any) -> ParsedChatCompletion[Any]:
        """``create`` with ``response_format=<pydantic model>``; ``message.parsed`` is it."""
        body, model = _parse_body(kwargs)
        out = run_chat(self._client, body)
        assert isinstance(out, dict)
        return _parsed(out, model)


class AsyncCompletions(_Resource[AsyncClient]):
    async def create(self, **kwargs: Any) -> ChatCompletion | AsyncChatStream:
        """The arguments of ``openai.AsyncOpenAI().chat.completions.create``."""
        out = await arun_chat(self._client, merge_body(kwargs))
        return AsyncChatStream(out) if isinstance(out, AsyncChunks) else _completion(out)

    async def parse(self, **kwargs: Any) -> ParsedChatCompletion[Any]:
        body, model = _parse_body(kwargs)
        out = await arun_chat(self._client, body)
        assert isinstance(out, dict)
        return _parsed(out, model)


class Chat(_Resource[Client]):
    @property
    def completions(self) -> Completions:
        return Completions(self._client)


class AsyncChat(_Resource[AsyncClient]):
    @property
    def completions(self) -> AsyncCompletions:
        return AsyncCompletions(self._client)


class Embeddings(_Resource[Client]):
    def create(self, **kwargs: Any) -> CreateEmbeddingResponse:
        """The arguments of ``openai.OpenAI().embeddings.create``."""
        return _embeddings(run_embed(self._client, merge_body(kwargs)))


class AsyncEmbeddings(_Resource[AsyncClient]):
    async def create(self, **kwargs: Any) -> CreateEmbeddingResponse:
        return _embeddings(await arun_embed(self._client, merge_body(kwargs)))


class OpenAI:
    """``portal.openai.OpenAI("portal.toml")``: the official client's calls, routed by portal.

    ``config`` and the keyword arguments are `portal.Client`'s; or pass ``client=`` to share
    an existing portal client (it is then yours to close)."""

    def __init__(self, config: ConfigSource = None, *, client: Client | None = None, **kw: Any):
        self._owned = client is None
        self.portal: Client = client if client is not None else Client(config, **kw)
        self.chat = Chat(self.portal)
        self.embeddings = Embeddings(self.portal)

    def close(self) -> None:
        if self._owned:
            self.portal.close()

    def __enter__(self) -> OpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOpenAI:
    """Async twin of `OpenAI`, over a `portal.AsyncClient`."""

    def __init__(
        self, config: ConfigSource = None, *, client: AsyncClient | None = None, **kw: Any
    ):
        self._owned = client is None
        self.portal: AsyncClient = client if client is not None else AsyncClient(config, **kw)
        self.chat = AsyncChat(self.portal)
        self.embeddings = AsyncEmbeddings(self.portal)

    async def close(self) -> None:
        if self._owned:
            await self.portal.aclose()

    async def __aenter__(self) -> AsyncOpenAI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
