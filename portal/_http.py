"""The one module that speaks httpx2: building clients, sending `WireRequest`s, and turning
httpx2's exceptions into portal's (the single place foreign exceptions are translated)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Protocol

import anyio
import httpcore2
import httpx2

from portal.errors import (
    ConfigError,
    InvalidResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
)
from portal.secret import scrub
from portal.wire import WireRequest

__all__ = [
    "AsyncReply",
    "asend",
    "httpx2",
    "map_exception",
    "new_async_client",
    "new_sync_client",
    "to_httpx",
]

#: pool sized for an app with a few hundred calls in flight; users can pass their own client
DEFAULT_LIMITS = httpx2.Limits(max_connections=512, max_keepalive_connections=256)


#: parsed URLs by string: httpx2 parses a URL in ~25 µs, and a provider sends to a handful
_URLS: dict[str, httpx2.URL] = {}
_URLS_MAX = 1024
#: headers httpx2 computes itself; a request that sets one goes the general way
_AUTO_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


#: a request's headers encoded once per distinct set (an adapter sends the same few), or
#: None when they cannot take the direct path; cleared when full, like `_URLS`
_RAW_HEADERS: dict[tuple[tuple[str, str], ...], list[tuple[bytes, bytes]] | None] = {}
_RAW_HEADERS_MAX = 256


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]] | None:
    key = tuple(headers.items())
    try:
        return _RAW_HEADERS[key]
    except KeyError:
        pass
    try:
        raw: list[tuple[bytes, bytes]] | None = [
            (k.encode("ascii"), v.encode("ascii")) for k, v in key
        ]
    except UnicodeEncodeError:
        raw = None
    if raw is not None and any(k.lower() in _AUTO_HEADERS for k, _ in key):
        raw = None
    if len(_RAW_HEADERS) >= _RAW_HEADERS_MAX:
        _RAW_HEADERS.clear()
    _RAW_HEADERS[key] = raw
    return raw


def _url(url: str) -> httpx2.URL:
    found = _URLS.get(url)
    if found is None:
        if len(_URLS) >= _URLS_MAX:  # per-call URLs (query strings) must not grow memory
            _URLS.clear()
        found = _URLS[url] = httpx2.URL(url)
    return found


def to_httpx(wire: WireRequest, timeout_s: float, connect_s: float | None = None) -> httpx2.Request:
    """The httpx2 request for a wire request. A POST with a body (every model call) takes a
    direct path with the same headers httpx2 would add (Host first, Content-Length last):
    ~5 µs instead of ~50 µs for URL parsing and header normalization on every call.

    ``timeout_s`` bounds each read and write and the wait for a pooled connection,
    ``connect_s`` the connection's setup (``timeout_s`` when not given); the whole attempt's
    deadline is enforced around these by the drivers (`bound`, `attempt_scope`)."""
    connect = timeout_s if connect_s is None else connect_s
    timeout = {"connect": connect, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    url = _url(wire.url)
    body = wire.body
    if body is not None and wire.method == "POST" and url.host:
        raw = _raw_headers(wire.headers)
        if raw is not None:
            request = httpx2.Request(
                "POST",
                url,
                headers=[(b"Host", url.netloc), *raw, (b"Content-Length", b"%d" % len(body))],
                stream=httpx2.ByteStream(body),
                extensions={"timeout": timeout},
            )
            request.read()  # like content=: the body is readable (transports, event hooks)
            return request
    return httpx2.Request(
        wire.method,
        url,
        headers=wire.headers,
        content=body,
        extensions={"timeout": timeout},
    )


class AsyncReply(Protocol):
    """What the async driver reads of a reply opened as a stream: an `httpx2.Response`, or
    the reply aiohttp gave portal's own pools directly (`portal._aiohttp.Reply`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def is_closed(self) -> bool: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


def asend(
    client: httpx2.AsyncClient, wire: WireRequest, timeout_s: float, connect_s: float | None
) -> Awaitable[AsyncReply]:
    """Send a wire request and open its reply as a stream (timeouts as `to_httpx`). On
    portal's own aiohttp pools a model call goes straight to aiohttp, without httpx2's
    request and response objects; everything else goes through ``client``."""
    direct = getattr(client._transport, "send_wire", None)
    if direct is not None:
        sending: Awaitable[AsyncReply] | None = direct(
            wire.method, wire.url, wire.headers, wire.body, timeout_s, connect_s
        )
        if sending is not None:
            return sending
    return client.send(to_httpx(wire, timeout_s, connect_s), stream=True)


# --------------------------------------------------------------------------- sync deadlines
#
# A socket timeout bounds one read, so a server that sends one byte every 100 ms never trips
# it: the status line, the headers or the body can trickle in for minutes. The sync client
# cannot be cancelled from outside, so portal's own sync pools read through a network backend
# that shortens every socket operation to the time left before the bound the driver set for
# this thread (the attempt's deadline, the first byte's, a stream's stall limit), and fails
# it once that time is spent: the deadline holds in every phase, at no cost per read beyond
# a clock reading.


class _Bound(threading.local):
    until: float | None = None  # perf_counter time every operation must end by
    stall: float | None = None  # longest wait for the next bytes (body and stream reads)


_BOUND = _Bound()


def bound(until: float | None, stall: float | None = None) -> None:
    """Bound this thread's next socket operations on portal's sync pools (None: unbounded)."""
    b = _BOUND
    b.until = until
    b.stall = stall


def _left(timeout: float | None, exc: type[Exception], stall: bool = False) -> float | None:
    b = _BOUND
    until = b.until
    if stall and b.stall is not None and (timeout is None or b.stall < timeout):
        timeout = b.stall
    if until is None:
        return timeout
    left = until - time.perf_counter()
    if left <= 0:
        raise exc("the call's deadline passed")
    return left if timeout is None or left < timeout else timeout


class _BoundedStream(httpcore2.NetworkStream):
    """A connection whose every read and write ends by the thread's bound."""

    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore2.ReadTimeout, stall=True))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore2.ConnectTimeout)
        )
        return _BoundedStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """``host``'s addresses, in the resolver's order, or `httpcore2.ConnectTimeout` once
    ``timeout`` has passed (the lookup runs on in its daemon thread, its answer unused)."""
    found: list[Any] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        finally:
            done.set()

    done = threading.Event()
    threading.Thread(target=lookup, name="portal-resolve", daemon=True).start()
    if not done.wait(timeout):
        raise httpcore2.ConnectTimeout(f"looking up {host!r} took too long")
    answer = found[0]
    if isinstance(answer, OSError):
        raise httpcore2.ConnectError(f"{host!r} could not be resolved ({answer})")
    return list(dict.fromkeys(str(info[4][0]) for info in answer))


class _BoundedBackend(httpcore2.NetworkBackend):
    """httpcore2's sync backend, with connections that honour the thread's bound."""

    def __init__(self, inner: httpcore2.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore2.NetworkStream:
        if _BOUND.until is None or _is_ip(host):
            stream = self._inner.connect_tcp(
                host, port, _left(timeout, httpcore2.ConnectTimeout), local_address, socket_options
            )
            return _BoundedStream(stream)
        # a name lookup has no timeout of its own: it runs in a thread the bound can leave
        error: Exception = httpcore2.ConnectError(f"{host!r} resolved to no address")
        for address in _resolve(host, port, _left(timeout, httpcore2.ConnectTimeout)):
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    _left(timeout, httpcore2.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
                continue
            return _BoundedStream(stream)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _left(timeout, httpcore2.ConnectTimeout), socket_options
        )
        return _BoundedStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def environment_proxies() -> bool:
    """True when the environment names a proxy (httpx2's own transports honour it)."""
    import urllib.request

    return any(k in ("http", "https", "all") for k in urllib.request.getproxies_environment())


def _bound_pool(transport: Any) -> None:
    """Make httpx2's sync ``transport`` read through `_BoundedBackend` (its connection pool
    hands the backend to each new connection). A transport of another kind is left as is."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is not None and not isinstance(backend, _BoundedBackend):
        pool._network_backend = _BoundedBackend(backend)  # type: ignore[union-attr]


def map_exception(
    exc: BaseException, provider: str | None, until: float | None = None
) -> ProviderError:
    """Most specific portal error for an httpx2 failure, with the original as ``__cause__``.
    Messages name the failure class only: URLs may carry keys (Azure, Gemini query params).
    A timeout at ``until`` (the attempt's deadline) says so; ``provider`` None leaves the
    naming to the flow (a stream's reads)."""
    cls: type[ProviderError]
    if isinstance(exc, httpx2.TimeoutException):
        if until is not None and time.perf_counter() >= until - _EARLY:
            return deadline_passed(provider, exc)
        cls = ProviderTimeout
        message = f"timed out ({type(exc).__name__})"
    elif isinstance(exc, httpx2.DecodingError):
        cls = InvalidResponse
        message = (
            f"the reply body could not be decoded with its content-encoding ({type(exc).__name__})"
        )
    else:
        cls = ProviderConnectionError
        message = f"connection failed ({type(exc).__name__})"
    err = cls(message, provider=provider)
    # the cause is printed with the traceback: an "Illegal header value b'Bearer sk-...'"
    # from the HTTP library must not show the key
    err.__cause__ = scrub(exc)
    return err


#: a socket timeout set to the time left can fire this much before the clock reads the bound
_EARLY = 0.002


def deadline_passed(provider: str | None, cause: BaseException | None = None) -> ProviderTimeout:
    """The attempt's time ran out while the reply was still arriving (however slowly)."""
    err = ProviderTimeout(
        "timed out: the attempt's time ran out before the reply was complete",
        provider=provider,
    )
    if cause is not None:
        err.__cause__ = scrub(cause)
    return err


def _cut_body(exc: BaseException, provider: str, received: int) -> InvalidResponse:
    return InvalidResponse(
        f"the reply body ended before its declared end after {received} bytes "
        f"({type(exc).__name__}); the vendor or a proxy cut it",
        provider=provider,
    )


def _verify_warning(verify: Any) -> None:
    if verify is False:
        warnings.warn(
            "TLS certificate verification is DISABLED for a portal provider: "
            "traffic and API keys can be intercepted. Only do this against local test servers.",
            stacklevel=3,
        )


def new_sync_client(transport: Any = None, verify: bool = True) -> httpx2.Client:
    _verify_warning(verify)
    client = httpx2.Client(
        transport=transport, limits=DEFAULT_LIMITS, verify=verify, follow_redirects=False
    )
    if transport is None:
        # httpx2 built its own pools (and one per proxy the environment names): each reads
        # through the bounded backend
        for pool in [client._transport, *client._mounts.values()]:
            _bound_pool(pool)
    return client


#: portal's own async clients spread requests over this many smaller connection pools (the
#: same limits in total). httpx2's async pool matches every waiting request against every
#: connection on each request and release, so its cost per call grows with the calls in
#: flight; at 200 in flight four pools cut client CPU per call by about a third and raised
#: throughput 1.4-2x on the benchmark (benchmarks/run.py).
ASYNC_POOL_SHARDS = 4


def _share(limit: int | None, shards: int) -> int | None:
    return None if limit is None else max(1, -(-limit // shards))


class ShardedTransport(httpx2.AsyncBaseTransport):
    """Several `httpx2.AsyncHTTPTransport` pools behind one transport; each request goes to
    the pool with the fewest requests in flight (the first on ties, so sequential calls keep
    reusing one connection)."""

    def __init__(
        self, verify: bool = True, limits: httpx2.Limits = DEFAULT_LIMITS, shards: int = 4
    ) -> None:
        per = httpx2.Limits(
            max_connections=_share(limits.max_connections, shards),
            max_keepalive_connections=_share(limits.max_keepalive_connections, shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        self._pools = [httpx2.AsyncHTTPTransport(verify=verify, limits=per) for _ in range(shards)]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        busy = self._busy
        i = busy.index(min(busy))
        busy[i] += 1
        try:
            return await self._pools[i].handle_async_request(request)
        finally:
            busy[i] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


#: ``[portal] transport`` values: "auto" sends through aiohttp under asyncio when
#: httpx-aiohttp is installed (the default install has it), "aiohttp" insists on it,
#: "httpx2" keeps httpx2's own pools
TRANSPORTS = ("auto", "aiohttp", "httpx2")


def _httpx2_pools(verify: bool) -> httpx2.AsyncBaseTransport:
    if ASYNC_POOL_SHARDS > 1:
        return ShardedTransport(verify, DEFAULT_LIMITS, ASYNC_POOL_SHARDS)
    return httpx2.AsyncHTTPTransport(verify=verify, limits=DEFAULT_LIMITS)


def default_async_transport(verify: bool, kind: str = "auto") -> httpx2.AsyncBaseTransport:
    """The transport of portal's own async pools (see `TRANSPORTS`)."""
    if kind != "httpx2":
        try:
            from portal._aiohttp import FastAsyncTransport
        except ImportError:
            if kind == "aiohttp":
                raise ConfigError(
                    "[portal] transport = 'aiohttp' needs the httpx-aiohttp package: "
                    "pip install httpx-aiohttp, or set transport = 'httpx2'"
                ) from None
        else:
            return FastAsyncTransport(
                verify, DEFAULT_LIMITS, lambda: _httpx2_pools(verify), environment_proxies()
            )
    return _httpx2_pools(verify)


def new_async_client(
    transport: Any = None, verify: bool = True, kind: str = "auto"
) -> httpx2.AsyncClient:
    _verify_warning(verify)
    if transport is None:
        transport = default_async_transport(verify, kind)
    return httpx2.AsyncClient(
        transport=transport, limits=DEFAULT_LIMITS, verify=verify, follow_redirects=False
    )


def reply_too_large(limit: int, provider: str) -> InvalidResponse:
    return InvalidResponse(
        f"reply larger than max_reply_bytes={limit}; refusing to read it (raise the provider "
        "option max_reply_bytes if the vendor really sends replies this large)",
        provider=provider,
    )


def _declared_too_large(resp: httpx2.Response | AsyncReply, limit: int) -> bool:
    declared = resp.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit


def read_by(resp: httpx2.Response, limit: int, provider: str, until: float | None) -> bytes:
    """`read_capped`, on portal's sync pools ending by ``until`` however slowly the body
    arrives; a body a transport that cannot be bounded (the caller's own) delivered later
    is refused all the same: never a late success."""
    bound(until)
    body = read_capped(resp, limit, provider)
    if until is not None and time.perf_counter() > until:
        raise deadline_passed(provider)
    return body


def read_capped(resp: httpx2.Response, limit: int, provider: str) -> bytes:
    """The (decoded) body of a streamed-open response, refused past ``limit`` bytes, so a
    vendor (or a gzip bomb) cannot make portal buffer without bound. Closes the response."""
    try:
        if _declared_too_large(resp, limit):
            raise reply_too_large(limit, provider)
        body = bytearray()
        try:
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise reply_too_large(limit, provider)
        except httpx2.RemoteProtocolError as exc:  # the status and headers came: a cut body
            raise _cut_body(exc, provider, len(body)) from scrub(exc)
        return bytes(body)
    finally:
        resp.close()


async def aread_capped(resp: AsyncReply, limit: int, provider: str) -> bytes:
    """Async twin of `read_capped`."""
    try:
        if _declared_too_large(resp, limit):
            raise reply_too_large(limit, provider)
        body = bytearray()
        try:
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise reply_too_large(limit, provider)
        except httpx2.RemoteProtocolError as exc:  # the status and headers came: a cut body
            raise _cut_body(exc, provider, len(body)) from scrub(exc)
        return bytes(body)
    finally:
        # a body read to the end has already closed the response (httpx2 does so as the
        # iteration ends); skip the shield's ~6 µs then
        if not resp.is_closed:
            with anyio.CancelScope(shield=True):  # a cancelled caller still releases the socket
                await resp.aclose()
