"""The asyncio fast path: httpx2's API over aiohttp's connection pool (httpx-aiohttp).

At a few hundred calls in flight aiohttp costs about a third of httpx2's CPU per call, so
`AsyncClient` sends through it by default under asyncio. Everything portal relies on behaves
as on httpx2's own transport: redirects are never followed, bodies stay undecoded until
httpx2 reads them (so size caps and decoding errors are the same), timeouts per phase come
from the request, and every aiohttp failure becomes the httpx2 exception httpx2's transport
raises for the same fault (httpx-aiohttp's own mapping turns a dropped connection into a
connect timeout, which would make portal call a reset a timeout). Where aiohttp cannot serve
(trio, or proxies configured in the environment, which aiohttp ignores by default) the call
goes through httpx2's pools instead.

This module is imported only when an `AsyncClient` makes its first pool, never by
``import portal``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import anyio
import httpx2
from httpx_aiohttp.httpx2 import AiohttpTransport

__all__ = ["FastAsyncTransport"]


def _mapped(exc: BaseException) -> httpx2.TransportError | None:
    """The httpx2 exception httpx2's own transport raises for the fault behind ``exc``
    (an aiohttp error, or httpx-aiohttp's mapping of one), or None if it is not one."""
    cause = exc.__cause__ if isinstance(exc, httpx2.TransportError) else exc
    if cause is None:
        return exc if isinstance(exc, httpx2.TransportError) else None
    # aiohttp's messages can carry the request URL; name the failure and the OS reason only
    reason = getattr(cause, "strerror", None)
    message = f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__
    cls: type[httpx2.TransportError]
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        cls = httpx2.ConnectTimeout
    elif isinstance(cause, TimeoutError):  # aiohttp's socket-read timeout and asyncio's
        cls = httpx2.ReadTimeout
    elif isinstance(cause, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        cls = httpx2.ProxyError
    elif isinstance(cause, aiohttp.ClientConnectorError):
        cls = httpx2.ConnectError
    elif isinstance(
        # a dropped connection, a cut body, a malformed status line or header
        cause,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        cls = httpx2.RemoteProtocolError
    elif isinstance(cause, aiohttp.ClientError | OSError):
        cls = httpx2.ReadError
    elif isinstance(exc, httpx2.TransportError):
        return exc
    else:
        return None
    return cls(message)


async def _socket_closes() -> None:
    """Let a dropped connection's socket close before returning, as it does on httpx2's
    transport: asyncio closes a socket on the loop's next turn, so take that turn (shielded,
    since this runs while the caller is being cancelled)."""
    with anyio.CancelScope(shield=True):
        await asyncio.sleep(0)


class _MappedStream(httpx2.AsyncByteStream):
    """A response body whose read failures surface as httpx2's exceptions."""

    __slots__ = ("_inner", "_read")

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner
        self._read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
            self._read = True
        except (httpx2.TransportError, aiohttp.ClientError, OSError) as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from None

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except (aiohttp.ClientError, OSError, httpx2.TransportError):
            pass  # closing a connection that already failed is not a second failure
        if not self._read:  # a half-read reply's connection is dropped, not pooled
            await _socket_closes()


class FastAsyncTransport(httpx2.AsyncBaseTransport):
    """aiohttp's pool under asyncio (one per event loop, since aiohttp binds a session to the
    loop that made it), httpx2's transport everywhere else."""

    def __init__(
        self,
        verify: bool,
        limits: httpx2.Limits,
        fallback: Callable[[], httpx2.AsyncBaseTransport],
        proxies: bool = False,
    ) -> None:
        self._verify = verify
        self._limits = limits
        self._make_fallback = fallback
        self._fallback: httpx2.AsyncBaseTransport | None = None
        self._fast: dict[asyncio.AbstractEventLoop, AiohttpTransport] = {}
        self._use_fast = not proxies  # aiohttp would ignore the environment's proxies

    def _transport(self) -> httpx2.AsyncBaseTransport | None:
        loop = asyncio._get_running_loop()  # None under trio
        if loop is None or not self._use_fast:
            return None
        fast = self._fast.get(loop)
        if fast is None:
            for old in [old for old in self._fast if old.is_closed()]:
                del self._fast[old]  # its session died with its loop
            fast = self._fast[loop] = AiohttpTransport(verify=self._verify, limits=self._limits)
        return fast

    def _slow(self) -> httpx2.AsyncBaseTransport:
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        fast = self._transport()
        if fast is None:
            return await self._slow().handle_async_request(request)
        try:
            response = await fast.handle_async_request(request)
        except asyncio.CancelledError:
            await _socket_closes()  # aiohttp dropped the half-open connection
            raise
        except (httpx2.TransportError, aiohttp.ClientError, OSError) as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from None
        response.stream = _MappedStream(response.stream)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        loop = asyncio._get_running_loop()
        fast = self._fast.pop(loop, None) if loop is not None else None
        if fast is not None:
            await fast.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()

    def __repr__(self) -> str:
        return f"FastAsyncTransport(aiohttp={self._use_fast})"
