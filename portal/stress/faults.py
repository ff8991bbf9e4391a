"""A fault-injecting httpx2 transport: wrap any transport (sync or async) and, on a schedule,
make its vendor go down, slow down, throttle, flake, brown out, hang, trickle its replies in,
hold back its first token or cut streams mid-way.

Used by the routing tests and by game days::

    faults = FaultTransport(SimTransport(...), [
        Fault("throttle", retry_after_s=120),                 # every request: 429
        Fault("outage", start_s=60, end_s=120, status=0),     # refused connections for a minute
        Fault("brownout", latency_ms=800, rate=0.3),           # slow, and 30% 503s
        Fault("cut", when="after_first_token", first=1),       # the first stream dies mid-way
        Fault("hang"),                                         # accepts, never answers
        Fault("trickle", interval_ms=100),                     # one byte every 100 ms
        Fault("slow_first_token", latency_ms=400, latency_p99_ms=6000),
    ])
    client = portal.Client(cfg, transports={"openai": faults})

A request gets the first fault that is active (inside its time window, within its ``first``
count, matching its ``path``) and whose ``rate`` roll hits. Time comes from ``clock``, and
waits go through ``sleep`` / ``async_sleep``, so tests can run on injected time.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx2

__all__ = ["Fault", "FaultKind", "FaultTransport"]

FaultKind = Literal[
    "outage", "slow", "throttle", "flaky", "brownout", "cut", "hang", "trickle", "slow_first_token"
]
_KINDS = (
    "outage",
    "slow",
    "throttle",
    "flaky",
    "brownout",
    "cut",
    "hang",
    "trickle",
    "slow_first_token",
)


@dataclass(slots=True)
class Fault:
    """One injected fault.

    kind       outage: ``status`` (0 = connection refused) · slow: added latency ·
               throttle: 429 with Retry-After · flaky: ``status`` errors ·
               brownout: latency and ``status`` errors · cut: the stream dies ·
               hang: the request is accepted and never answered (it ends only when the
               client's read timeout fires, as on a real socket) · trickle: the reply's
               body arrives one byte every ``interval_ms`` · slow_first_token: the status
               and headers come at once, the body (a stream's first event) only after
               the added latency
    start_s, end_s   active window, seconds since the transport started (end None: forever)
    first      only the first N requests this fault matches (None: all)
    rate       share of matching requests it hits (1.0: all)
    status     HTTP status for outage / flaky / brownout (0: refuse the connection)
    latency_ms, latency_p99_ms   added latency: fixed, or lognormal with this p50/p99
    retry_after_s   the Retry-After of a throttle
    when       cut: "before_first_token" (no bytes at all) or "after_first_token"
    interval_ms  trickle: the pause before each byte
    path       only requests whose URL path contains this
    """

    kind: FaultKind
    start_s: float = 0.0
    end_s: float | None = None
    first: int | None = None
    rate: float = 1.0
    status: int = 503
    latency_ms: float = 0.0
    latency_p99_ms: float | None = None
    retry_after_s: float = 1.0
    when: Literal["before_first_token", "after_first_token"] = "after_first_token"
    interval_ms: float = 100.0
    path: str | None = None
    hits: int = field(default=0, compare=False)
    _seen: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Fault.kind: {self.kind!r} is not one of {', '.join(_KINDS)}")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"Fault.rate: must be between 0 and 1, got {self.rate:g}")
        if self.when not in ("before_first_token", "after_first_token"):
            raise ValueError(
                f"Fault.when: {self.when!r}; use 'before_first_token' or 'after_first_token'"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """From a game-day table, e.g. ``{kind = "throttle", retry_after_s = 120}``."""
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("_") and f != "hits"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"fault: unknown key(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    def latency_s(self, rng: random.Random) -> float:
        if self.latency_ms <= 0:
            return 0.0
        p50 = self.latency_ms / 1000.0
        if not self.latency_p99_ms or self.latency_p99_ms <= self.latency_ms:
            return p50
        sigma = (math.log(self.latency_p99_ms / 1000.0) - math.log(p50)) / 2.326
        return rng.lognormvariate(math.log(p50), sigma)


_TEXT = re.compile(rb'"(?:content|text)"\s*:\s*"[^"]')


class FaultTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Wraps ``inner`` (an httpx2 sync and/or async transport) and injects ``faults``."""

    def __init__(
        self,
        inner: Any,
        faults: Sequence[Fault] = (),
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.inner = inner
        self.faults = list(faults)
        self.clock = clock
        self.sleep = sleep
        self.async_sleep = async_sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.started = clock()
        self.requests = 0
        self.injected = 0

    def restart(self) -> None:
        """Restart the schedule's clock (game days call this when the load starts)."""
        self.started = self.clock()

    def set_faults(self, faults: Sequence[Fault]) -> None:
        with self._lock:
            self.faults = list(faults)

    def _pick(self, request: httpx2.Request) -> tuple[Fault | None, float]:
        now = self.clock() - self.started
        with self._lock:
            self.requests += 1
            for f in self.faults:
                if now < f.start_s or (f.end_s is not None and now >= f.end_s):
                    continue
                if f.path is not None and f.path not in request.url.path:
                    continue
                if f.first is not None and f._seen >= f.first:
                    continue
                f._seen += 1
                if f.rate < 1 and self._rng.random() >= f.rate:
                    continue
                f.hits += 1
                self.injected += 1
                return f, f.latency_s(self._rng)
        return None, 0.0

    @staticmethod
    def _error(request: httpx2.Request, f: Fault, status: int) -> httpx2.Response:
        if status == 0:
            raise httpx2.ConnectError("connection refused (injected fault)", request=request)
        headers = {"content-type": "application/json"}
        if status == 429:
            headers["retry-after"] = f"{f.retry_after_s:g}"
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        body = {"error": {"message": f"injected {f.kind} ({status})", "type": kind, "code": kind}}
        return httpx2.Response(status, json=body, headers=headers, request=request)

    def _immediate(self, request: httpx2.Request, f: Fault) -> httpx2.Response | None:
        """The response a fault gives without calling the inner transport, if any."""
        if f.kind == "outage" or f.kind in ("flaky", "brownout"):
            return self._error(request, f, f.status)
        if f.kind == "throttle":
            return self._error(request, f, 429)
        return None

    # -- sync -------------------------------------------------------------------------------
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        fault, delay = self._pick(request)
        if fault is None:
            return self.inner.handle_request(request)  # type: ignore[no-any-return]
        if fault.kind == "hang":
            self.sleep(_read_timeout(request))
            raise _hang_timeout(request)
        if delay and fault.kind != "slow_first_token":
            self.sleep(delay)
        early = self._immediate(request, fault)
        if early is not None:
            return early
        response = self.inner.handle_request(request)
        if fault.kind == "cut":
            return _rewrap(request, response, _SyncCut(response.stream, fault.when))
        if fault.kind == "trickle":
            pause = fault.interval_ms / 1000.0
            return _rewrap(request, response, _SyncDelayed(response.stream, self.sleep, pause))
        if fault.kind == "slow_first_token":
            return _rewrap(request, response, _SyncDelayed(response.stream, self.sleep, delay, 1))
        return response  # type: ignore[no-any-return]

    # -- async ------------------------------------------------------------------------------
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        fault, delay = self._pick(request)
        if fault is None:
            return await self.inner.handle_async_request(request)  # type: ignore[no-any-return]
        if fault.kind == "hang":
            await self.async_sleep(_read_timeout(request))
            raise _hang_timeout(request)
        if delay and fault.kind != "slow_first_token":
            await self.async_sleep(delay)
        early = self._immediate(request, fault)
        if early is not None:
            return early
        response = await self.inner.handle_async_request(request)
        if fault.kind == "cut":
            return _rewrap(request, response, _AsyncCut(response.stream, fault.when))
        if fault.kind == "trickle":
            pause = fault.interval_ms / 1000.0
            delayed = _AsyncDelayed(response.stream, self.async_sleep, pause)
            return _rewrap(request, response, delayed)
        if fault.kind == "slow_first_token":
            delayed = _AsyncDelayed(response.stream, self.async_sleep, delay, 1)
            return _rewrap(request, response, delayed)
        return response  # type: ignore[no-any-return]

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()


def _rewrap(request: httpx2.Request, response: httpx2.Response, stream: Any) -> httpx2.Response:
    return httpx2.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        request=request,
        extensions=response.extensions,
    )


#: how long a hang lasts when the request carries no read timeout (a real socket would wait
#: forever; a game day must end)
HANG_WITHOUT_TIMEOUT_S = 600.0


def _read_timeout(request: httpx2.Request) -> float:
    """The read timeout the client set on this request: how long a hung vendor holds it."""
    timeout = request.extensions.get("timeout") or {}
    read = timeout.get("read")
    return HANG_WITHOUT_TIMEOUT_S if read is None else float(read)


def _hang_timeout(request: httpx2.Request) -> httpx2.ReadTimeout:
    return httpx2.ReadTimeout("no reply (injected hang)", request=request)


class _SyncDelayed(httpx2.SyncByteStream):
    """The inner body, each of its first ``limit`` pieces (one byte each, or all of them when
    ``limit`` is None) after ``pause`` seconds: a trickle, or a held-back first token."""

    def __init__(
        self, inner: Any, sleep: Callable[[float], None], pause: float, limit: int | None = None
    ) -> None:
        self.inner, self.sleep, self.pause, self.limit = inner, sleep, pause, limit

    def __iter__(self) -> Iterator[bytes]:
        held = 0
        for chunk in self.inner:
            if self.limit is not None:
                if held < self.limit:
                    held += 1
                    self.sleep(self.pause)
                yield chunk
                continue
            for i in range(len(chunk)):
                self.sleep(self.pause)
                yield chunk[i : i + 1]

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class _AsyncDelayed(httpx2.AsyncByteStream):
    """Async twin of `_SyncDelayed`."""

    def __init__(
        self,
        inner: Any,
        sleep: Callable[[float], Awaitable[None]],
        pause: float,
        limit: int | None = None,
    ) -> None:
        self.inner, self.sleep, self.pause, self.limit = inner, sleep, pause, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held = 0
        async for chunk in self.inner:
            if self.limit is not None:
                if held < self.limit:
                    held += 1
                    await self.sleep(self.pause)
                yield chunk
                continue
            for i in range(len(chunk)):
                await self.sleep(self.pause)
                yield chunk[i : i + 1]

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()


def _cut_error() -> httpx2.RemoteProtocolError:
    return httpx2.RemoteProtocolError(
        "peer closed connection without sending complete message body (injected cut)"
    )


class _Cutter:
    """Passes SSE bytes through until the cut point, then raises like a dropped connection."""

    def __init__(self, when: str) -> None:
        self.before = when == "before_first_token"
        self.buffer = b""

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, cut now)."""
        if self.before:
            return b"", True
        self.buffer += chunk
        out = b""
        while True:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                return out, False
            event, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
            out += event
            if _TEXT.search(event):
                return out, True


class _SyncCut(httpx2.SyncByteStream):
    def __init__(self, inner: Any, when: str) -> None:
        self.inner = inner
        self.cutter = _Cutter(when)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            data, cut = self.cutter.feed(chunk)
            if data:
                yield data
            if cut:
                raise _cut_error()
        raise _cut_error()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class _AsyncCut(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, when: str) -> None:
        self.inner = inner
        self.cutter = _Cutter(when)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            data, cut = self.cutter.feed(chunk)
            if data:
                yield data
            if cut:
                raise _cut_error()
        raise _cut_error()

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()
