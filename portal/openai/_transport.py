"""An httpx2 transport that serves the official openai SDK's requests through portal.

For code that must keep ``openai.OpenAI()`` as it is::

    http = httpx2.Client(transport=portal.openai.PortalTransport("portal.toml"))
    client = openai.OpenAI(api_key="unused", http_client=http)

``POST .../chat/completions`` and ``POST .../embeddings`` are answered by portal (routing,
canary, metering, guards); the SDK parses the replies with its own code, streams included.
portal's errors come back as OpenAI-shaped error replies with the matching status, so the
SDK raises its own exception classes, and with ``x-should-retry: false``: portal has already
retried and failed over, and the SDK retrying on top would multiply every call. The SDK's API
key never leaves the process (portal uses the keys of its own config).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2

from portal import errors
from portal.client import AsyncClient, Client
from portal.config import PortalConfig
from portal.openai._run import AsyncChunks, Chunks, arun_chat, arun_embed, run_chat, run_embed

__all__ = ["AsyncPortalTransport", "PortalTransport"]

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | PortalConfig | None

#: portal error class -> (HTTP status, OpenAI error type); the first match in MRO order wins
_STATUS: dict[type[Exception], tuple[int, str]] = {
    errors.ContextTooLong: (400, "invalid_request_error"),
    errors.BadRequest: (400, "invalid_request_error"),
    errors.ContractError: (400, "invalid_request_error"),
    errors.ConfigError: (400, "invalid_request_error"),
    errors.PolicyViolation: (400, "invalid_request_error"),
    errors.ContentFiltered: (400, "invalid_request_error"),
    errors.AuthenticationError: (401, "authentication_error"),
    errors.NotFound: (404, "not_found_error"),
    errors.BudgetExceeded: (429, "insufficient_quota"),
    errors.RateLimited: (429, "rate_limit_error"),
    errors.ProviderTimeout: (504, "timeout_error"),
    errors.Overloaded: (503, "overloaded_error"),
    errors.PortalError: (502, "api_error"),
}
_JSON_HEADERS = {"content-type": "application/json", "x-should-retry": "false"}
_SSE_HEADERS = {"content-type": "text/event-stream", "x-should-retry": "false"}


def _error_reply(exc: Exception, request: httpx2.Request) -> httpx2.Response:
    found = exc
    if isinstance(exc, errors.AllTargetsFailed) and exc.exceptions:
        found = exc.exceptions[-1]  # what the last target said decides the status
    status, kind = 500, "api_error"
    for cls in type(found).__mro__:
        if cls in _STATUS:
            status, kind = _STATUS[cls]
            break
    body = {
        "error": {
            "message": str(exc),
            "type": kind,
            "param": None,
            "code": type(exc).__name__,
        }
    }
    return httpx2.Response(status, headers=_JSON_HEADERS, json=body, request=request)


def _not_served(request: httpx2.Request) -> httpx2.Response:
    message = (
        f"portal's transport serves POST /chat/completions and POST /embeddings, not "
        f"{request.method} {request.url.path}"
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "code": "not_found"}}
    return httpx2.Response(404, headers=_JSON_HEADERS, json=body, request=request)


def _route(request: httpx2.Request) -> str | None:
    if request.method != "POST":
        return None
    path = request.url.path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/embeddings"):
        return "embed"
    return None


def _body(request: httpx2.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError as exc:
        raise errors.ContractError(f"request body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise errors.ContractError("request body: expected a JSON object")
    return body


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _stream_error(exc: Exception) -> bytes:
    """An error after the first chunk: OpenAI's in-stream error event (the SDK raises it)."""
    return _event({"error": {"message": str(exc), "type": "api_error", "code": type(exc).__name__}})


class _SSE(httpx2.SyncByteStream):
    def __init__(self, chunks: Chunks) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        try:
            for data in self._chunks:
                yield _event(data)
        except errors.PortalError as exc:
            yield _stream_error(exc)
            return
        yield b"data: [DONE]\n\n"

    def close(self) -> None:
        self._chunks.close()


class _AsyncSSE(httpx2.AsyncByteStream):
    def __init__(self, chunks: AsyncChunks) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._chunks:
                yield _event(data)
        except errors.PortalError as exc:
            yield _stream_error(exc)
            return
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        await self._chunks.aclose()


class PortalTransport(httpx2.BaseTransport):
    """For ``openai.OpenAI(http_client=httpx2.Client(transport=...))``. Give it a config (it
    builds and owns a `portal.Client`) or ``client=`` (yours to close)."""

    def __init__(self, config: ConfigSource = None, *, client: Client | None = None, **kw: Any):
        self._owned = client is None
        self.portal: Client = client if client is not None else Client(config, **kw)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        kind = _route(request)
        if kind is None:
            return _not_served(request)
        try:
            body = _body(request)
            out = run_chat(self.portal, body) if kind == "chat" else run_embed(self.portal, body)
        except errors.PortalError as exc:
            return _error_reply(exc, request)
        if isinstance(out, Chunks):
            return httpx2.Response(200, headers=_SSE_HEADERS, stream=_SSE(out), request=request)
        return httpx2.Response(200, headers=_JSON_HEADERS, json=out, request=request)

    def close(self) -> None:
        if self._owned:
            self.portal.close()


class AsyncPortalTransport(httpx2.AsyncBaseTransport):
    """For ``openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=...))``."""

    def __init__(
        self, config: ConfigSource = None, *, client: AsyncClient | None = None, **kw: Any
    ):
        self._owned = client is None
        self.portal: AsyncClient = client if client is not None else AsyncClient(config, **kw)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        kind = _route(request)
        if kind is None:
            return _not_served(request)
        try:
            body = _body(request)
            if kind == "chat":
                out = await arun_chat(self.portal, body)
            else:
                out = await arun_embed(self.portal, body)
        except errors.PortalError as exc:
            return _error_reply(exc, request)
        if isinstance(out, AsyncChunks):
            return httpx2.Response(
                200, headers=_SSE_HEADERS, stream=_AsyncSSE(out), request=request
            )
        return httpx2.Response(200, headers=_JSON_HEADERS, json=out, request=request)

    async def aclose(self) -> None:
        if self._owned:
            await self.portal.aclose()
