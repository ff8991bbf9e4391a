"""One OpenAI-shaped request run through a portal client, as OpenAI-shaped dicts.

The clients (`portal.openai.OpenAI` / `AsyncOpenAI`) validate these dicts into the openai
SDK's types; the transport writes them as JSON or server-sent events. A streamed call reads
its first event before returning, so routing and vendor errors surface from ``create()``, as
they do with the official SDK, not from the first iteration.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from portal.client import AsyncClient, Client
from portal.contracts.responses import StreamEvent
from portal.errors import ContractError
from portal.openai._reply import ChunkWriter, completion, embeddings
from portal.openai._request import chat_args, embed_args, is_given

__all__ = [
    "AsyncChunks",
    "Chunks",
    "arun_chat",
    "arun_embed",
    "merge_body",
    "run_chat",
    "run_embed",
]


def merge_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request body the official SDK would send for these keyword arguments:
    ``extra_body`` merged in, ``timeout`` as portal's deadline. Headers and query strings
    have nowhere to go through portal, so they are refused rather than dropped."""
    for name in ("extra_headers", "extra_query"):
        if kwargs.pop(name, None):
            raise ContractError(
                f"{name}: portal builds each vendor's request itself and cannot forward raw "
                "headers or query parameters; vendor fields go in "
                "extra_body={'portal': {'provider_options': {'<kind>': {...}}}}"
            )
    extra = kwargs.pop("extra_body", None)
    timeout = kwargs.pop("timeout", None)
    if extra:
        if not isinstance(extra, Mapping):
            raise ContractError(f"extra_body: expected a dict, got {type(extra).__name__}")
        kwargs.update(extra)
    if is_given(timeout):
        seconds = timeout if isinstance(timeout, (int, float)) else getattr(timeout, "read", None)
        portal = kwargs.get("portal")
        if seconds is not None and (not isinstance(portal, Mapping) or "timeout_s" not in portal):
            kwargs["portal"] = {**(portal or {}), "timeout_s": float(seconds)}
    return kwargs


class Chunks:
    """``chat.completion.chunk`` dicts of one streamed call (sync)."""

    def __init__(self, events: Iterator[StreamEvent], writer: ChunkWriter) -> None:
        self._events = events
        self._writer = writer
        self._pending: deque[dict[str, Any]] = deque()

    def fill(self) -> bool:
        """Read events until a chunk is ready; False at the end of the stream."""
        while not self._pending:
            try:
                event = next(self._events)
            except StopIteration:
                return False
            self._pending.extend(self._writer.feed(event))
        return True

    def __iter__(self) -> Chunks:
        return self

    def __next__(self) -> dict[str, Any]:
        if not self._pending and not self.fill():
            raise StopIteration
        return self._pending.popleft()

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


class AsyncChunks:
    """``chat.completion.chunk`` dicts of one streamed call (async)."""

    def __init__(self, events: AsyncIterator[StreamEvent], writer: ChunkWriter) -> None:
        self._events = events
        self._writer = writer
        self._pending: deque[dict[str, Any]] = deque()

    async def fill(self) -> bool:
        """Read events until a chunk is ready; False at the end of the stream."""
        while not self._pending:
            try:
                event = await anext(self._events)
            except StopAsyncIteration:
                return False
            self._pending.extend(self._writer.feed(event))
        return True

    def __aiter__(self) -> AsyncChunks:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if not self._pending and not await self.fill():
            raise StopAsyncIteration
        return self._pending.popleft()

    async def aclose(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


def run_chat(client: Client, body: Mapping[str, Any]) -> dict[str, Any] | Chunks:
    args = chat_args(body, client.config.features)
    if not args.stream:
        return completion(client.chat(**args.call), args.model)
    chunks = Chunks(client.stream(**args.call), ChunkWriter(args.model, args.include_usage))
    try:
        chunks.fill()
    except BaseException:
        chunks.close()
        raise
    return chunks


async def arun_chat(client: AsyncClient, body: Mapping[str, Any]) -> dict[str, Any] | AsyncChunks:
    args = chat_args(body, client.config.features)
    if not args.stream:
        return completion(await client.chat(**args.call), args.model)
    events = client.stream(**args.call)
    chunks = AsyncChunks(events, ChunkWriter(args.model, args.include_usage))
    try:
        await chunks.fill()
    except BaseException:
        await chunks.aclose()
        raise
    return chunks


def run_embed(client: Client, body: Mapping[str, Any]) -> dict[str, Any]:
    args = embed_args(body, client.config.features)
    return embeddings(client.embed(**args.call), args.model, args.base64)


async def arun_embed(client: AsyncClient, body: Mapping[str, Any]) -> dict[str, Any]:
    args = embed_args(body, client.config.features)
    return embeddings(await client.embed(**args.call), args.model, args.base64)
