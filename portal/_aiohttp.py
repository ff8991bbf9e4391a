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

Portal's own pools go one step further: a model call (a POST with a body) is sent straight
through aiohttp's session (`FastAsyncTransport.send_wire`) and read from aiohttp's response
(`Reply`), without building httpx2's request and response objects, which cost about as much
CPU per call as aiohttp itself at a few hundred calls in flight. The reply decodes its body
with httpx2's own decoders, so size caps, gzip bombs and decoding errors behave the same.

This module is imported only when an `AsyncClient` makes its first pool, never by
``import portal``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import aiohttp
import anyio
import httpx2
from httpx2._decoders import MultiDecoder
from httpx_aiohttp.httpx2 import AiohttpTransport
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = ["FastAsyncTransport", "Reply"]


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


#: bytes asked of aiohttp per read, as httpx2's transport reads from the socket
_CHUNK = 65536


class _Request(aiohttp.ClientRequest):
    """aiohttp's request writing exactly the adapter's headers, as httpx2's transport does:
    Host first, then the adapter's, then Content-Length; no User-Agent, Accept,
    Accept-Encoding or Content-Type of aiohttp's own (so the vendor never compresses a
    reply the request did not ask to be compressed)."""

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = _NO_CONTENT_TYPE


_NO_CONTENT_TYPE: CIMultiDict[None] = CIMultiDict({"Content-Type": None})

#: an ASCII header name and value httpx2's HTTP/1.1 writer (h11) accepts
_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(r"(?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?")
#: a header set aiohttp writes as httpx2 would, as the multidict aiohttp takes without
#: converting it (None: httpx2 must write it), by distinct header set; cleared when full
_PLAIN: dict[tuple[tuple[str, str], ...], CIMultiDictProxy[str] | None] = {}
#: aiohttp's URL per request URL string (a provider sends to a handful)
_URLS: dict[str, URL] = {}
_CACHE_MAX = 256


def _plain(headers: dict[str, str]) -> CIMultiDictProxy[str] | None:
    """The headers for aiohttp when it writes them byte for byte as httpx2 would (every
    model call's); None for anything else (a header httpx2 computes itself, a name or value
    it would refuse), which goes through httpx2."""
    key = tuple(headers.items())
    try:
        return _PLAIN[key]
    except KeyError:
        pass
    plain = all(
        k.isascii()
        and v.isascii()
        and _NAME.fullmatch(k) is not None
        and _VALUE.fullmatch(v) is not None
        and k.lower() not in ("host", "content-length", "transfer-encoding")
        for k, v in key
    )
    if len(_PLAIN) >= _CACHE_MAX:
        _PLAIN.clear()
    found = _PLAIN[key] = CIMultiDictProxy(CIMultiDict(key)) if plain else None
    return found


def _url(url: str) -> URL | None:
    """aiohttp's URL for an http(s) URL with a host, exactly as httpx2 writes it (httpx2
    has parsed and encoded it), or None when httpx2 must handle it."""
    found = _URLS.get(url)
    if found is None:
        parsed = httpx2.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return None
        if len(_URLS) >= _CACHE_MAX:
            _URLS.clear()
        found = _URLS[url] = URL(str(parsed), encoded=True)
    return found


#: aiohttp timeouts per (read, connect) pair: ``connect`` bounds the wait for a pooled
#: connection and its setup (httpx2's pool timeout), ``sock_connect`` the setup alone
_TIMEOUTS: dict[tuple[float, float | None], aiohttp.ClientTimeout] = {}


def _timeout(timeout_s: float, connect_s: float | None) -> aiohttp.ClientTimeout:
    found = _TIMEOUTS.get((timeout_s, connect_s))
    if found is None:
        if len(_TIMEOUTS) >= _CACHE_MAX:
            _TIMEOUTS.clear()
        found = _TIMEOUTS[timeout_s, connect_s] = aiohttp.ClientTimeout(
            total=None,
            connect=timeout_s,
            sock_connect=timeout_s if connect_s is None else connect_s,
            sock_read=timeout_s,
        )
    return found


def _joined(raw: Iterable[tuple[bytes, bytes]], encoding: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in raw:
        key = k.lower().decode(encoding)
        value = v.decode(encoding)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """A reply's headers as ``dict(httpx2.Headers(raw))`` reads them: lower-cased names,
    repeated headers joined with ", ", decoded as ASCII, else UTF-8, else ISO-8859-1."""
    try:
        return _joined(raw, "ascii")
    except UnicodeDecodeError:
        try:
            return _joined(raw, "utf-8")
        except UnicodeDecodeError:
            return _joined(raw, "iso-8859-1")


def _decoder(encoding: str | None) -> Any:
    """httpx2's decoder for a Content-Encoding value (None: the body as it came)."""
    if not encoding:
        return None
    codings = [value.strip().lower() for value in encoding.split(",")]
    decoder = MultiDecoder([coding for coding in codings if coding != "identity"])
    if len(decoder.children) == 1:
        return decoder.children[0]
    if decoder.children:
        return decoder
    return None


class Reply:
    """A reply read straight from aiohttp, with the parts of `httpx2.Response` the drivers
    read: ``status_code``, ``headers`` (lower-cased names), ``aiter_bytes()`` (the decoded
    body; closes the reply at its end), ``is_closed`` and ``aclose()``. Read failures raise
    the httpx2 exception httpx2's transport raises for the same fault."""

    __slots__ = ("_done", "_resp", "headers", "is_closed", "status_code")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self._done = False
        self.status_code = resp.status
        self.headers = _headers(resp.raw_headers)
        self.is_closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        read = self._resp.content.read
        try:
            decoder = _decoder(self.headers.get("content-encoding"))
            if decoder is None:
                while chunk := await read(_CHUNK):
                    yield chunk
            else:
                while chunk := await read(_CHUNK):
                    for piece in decoder.decode(chunk):
                        if piece:
                            yield piece
                for piece in decoder.flush():
                    if piece:
                        yield piece
            self._done = True
        except (aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc) or exc from None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        if self._done:
            self._resp.release()  # read to the end: its connection goes back to the pool
        else:  # a half-read reply's connection is dropped, not pooled
            self._resp.close()
            await _socket_closes()


async def _send(
    session: aiohttp.ClientSession,
    url: URL,
    headers: CIMultiDictProxy[str],
    body: bytes | None,
    timeout: aiohttp.ClientTimeout,
) -> Reply:
    try:
        resp = await session.request(
            "POST", url, headers=headers, data=body, allow_redirects=False, timeout=timeout
        )
    except asyncio.CancelledError:
        await _socket_closes()  # aiohttp dropped the half-open connection
        raise
    except (aiohttp.ClientError, OSError) as exc:
        raise _mapped(exc) or exc from None
    return Reply(resp)


class FastAsyncTransport(httpx2.AsyncBaseTransport):
    """aiohttp's pool under asyncio (one session per event loop, since aiohttp binds a
    session to the loop that made it), httpx2's transport everywhere else. A model call can
    skip httpx2 altogether: see `send_wire`."""

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
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._use_fast = not proxies  # aiohttp would ignore the environment's proxies
        self._closed = False

    def _session(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        session = self._sessions.get(loop)
        if session is None:
            for old in [old for old in self._sessions if old.is_closed()]:
                del self._sessions[old]  # it died with its loop
                self._fast.pop(old, None)
            limits = self._limits
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections or 0,
                keepalive_timeout=limits.keepalive_expiry,
                ssl=httpx2.create_ssl_context(verify=self._verify),
            )
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=connector,
                request_class=_Request,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx2's send() never sends cookies
                auto_decompress=False,  # decoded by httpx2's decoders (`Reply`, httpx2)
            )
        return session

    def _transport(self) -> httpx2.AsyncBaseTransport | None:
        loop = asyncio._get_running_loop()  # None under trio
        if loop is None or not self._use_fast:
            return None
        fast = self._fast.get(loop)
        if fast is None:
            fast = self._fast[loop] = AiohttpTransport(client=self._session(loop))
        return fast

    def send_wire(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        connect_s: float | None,
    ) -> Coroutine[Any, Any, Reply] | None:
        """The send of a model call (a POST with a body) straight through this loop's aiohttp
        session, or None when httpx2 must build it: under trio, with proxies in the
        environment, after `aclose`, or for a request aiohttp would write differently.
        Timeouts as `portal._http.to_httpx` sets them; the attempt's deadline is the
        caller's."""
        loop = asyncio._get_running_loop()
        if loop is None or not self._use_fast or self._closed or body is None or method != "POST":
            return None
        plain = _plain(headers)
        parsed = _url(url)
        if plain is None or parsed is None:
            return None
        session = self._sessions.get(loop) or self._session(loop)
        return _send(session, parsed, plain, body, _timeout(timeout_s, connect_s))

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
        self._closed = True
        loop = asyncio._get_running_loop()
        session = self._sessions.pop(loop, None) if loop is not None else None
        if loop is not None:
            self._fast.pop(loop, None)
        if session is not None:
            await session.close()
        if self._fallback is not None:
            await self._fallback.aclose()

    def __repr__(self) -> str:
        return f"FastAsyncTransport(aiohttp={self._use_fast})"
