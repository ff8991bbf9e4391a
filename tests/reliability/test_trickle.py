"""A call's deadline holds in every phase of a reply, however slowly it arrives.

A loopback server answers every wire API (10 kinds) with that kind's own valid reply, but
trickles it: nothing at all (a hang), the status line one byte at a time, the headers one byte
at a time, or the body (a JSON reply or a stream) one byte at a time. A byte every 20 ms
keeps every socket read short, so no read timeout ever fires; only the call's deadline can end
the call. Each case must end in a `ProviderTimeout` (or a `StreamInterrupted` once a stream
delivered text) close to the deadline: never a late success. The ``fast`` control serves the
same replies at once, so a case that passes does so because of the deadline, not a broken
fixture.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest

import portal
from portal.errors import ProviderTimeout, StreamInterrupted
from tests.reliability._servers import Stop, _read_request
from tests.reliability._vendors import FIXTURES, KINDS, model_of

DEADLINE_S = 0.5
#: a loaded 2-core machine schedules late; the deadline itself is what the test checks
SLACK_S = 0.6
DRIP_S = 0.02
MSG = [portal.user("hi")]
PHASES = ["hang", "status", "headers", "body"]

_CTYPE = {"bedrock": "application/vnd.amazon.eventstream"}


def _reply(kind: str, stream: bool) -> tuple[bytes, bytes]:
    """(status line and headers, body) of the kind's own valid text reply."""
    if stream:
        name = "stream_text.bin" if kind == "bedrock" else "stream_text.sse"
        ctype = _CTYPE.get(kind, "text/event-stream")
    else:
        name, ctype = "reply_text.json", "application/json"
    body = (FIXTURES / kind / name).read_bytes()
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode()
    return head, body


class TrickleServer:
    """``/<phase>/<kind>/<stream|chat>/...``: the kind's reply, trickled from ``phase``."""

    def __init__(self) -> None:
        self.stop = Stop()
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                req = _read_request(sock)
                if req is None:
                    return
                phase, kind, op = req["_path"].strip("/").split("/")[:3]
                outer.serve(sock, phase, kind, op == "stream")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, sock: socket.socket, phase: str, kind: str, stream: bool) -> None:
        head, body = _reply(kind, stream)
        if phase == "hang":
            self.stop.wait(30)
            return
        whole = head + body
        at = {"fast": len(whole), "status": 0, "headers": head.index(b"\r\n") + 2}
        start = at.get(phase, len(head))
        try:
            sock.sendall(whole[:start])
            for i in range(start, len(whole)):
                if self.stop.wait(DRIP_S):
                    return
                sock.sendall(whole[i : i + 1])
        except OSError:
            return  # the client gave up: what the test wants

    def url(self, phase: str, kind: str, stream: bool) -> str:
        return f"http://127.0.0.1:{self.port}/{phase}/{kind}/{'stream' if stream else 'chat'}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[TrickleServer]:
    srv = TrickleServer()
    yield srv
    srv.close()


_OPTIONS: dict[str, dict[str, Any]] = {
    "openai-compatible": {"preset": "vllm"},
    "bedrock": {
        "region_name": "us-east-1",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    },
    "vertex": {"project": "acme-prod", "location": "us-central1"},
}


def config(url: str, kind: str, deadline: float | None) -> dict[str, Any]:
    feature: dict[str, Any] = {"primary": f"p:{model_of(kind)}", "retry": {"attempts": 1}}
    if deadline is not None:
        feature["timeout_s"] = deadline
    return {
        "portal": {"ledger": "none"},
        "providers": {
            "p": {
                "kind": kind,
                "base_url": url,
                "api_key": "sk-trickle-test",
                "timeout_s": 30,
                "options": _OPTIONS.get(kind, {}),
            }
        },
        "features": {"f": feature},
    }


Outcome = tuple[str, BaseException | None, float]


def _sync_case(
    url: str, kind: str, stream: bool, deadline: float | None, ready: threading.Barrier
) -> Outcome:
    with portal.Client(config(url, kind, deadline), ledger=None) as client:
        ready.wait()  # every client built before any call starts: the calls' time only
        t0 = time.perf_counter()
        try:
            if stream:
                list(client.stream(feature="f", messages=MSG))
            else:
                client.chat(feature="f", messages=MSG)
        except portal.PortalError as exc:
            return kind, exc, time.perf_counter() - t0
    return kind, None, time.perf_counter() - t0


async def _async_case(
    client: portal.AsyncClient, kind: str, stream: bool, out: list[Outcome]
) -> None:
    t0 = time.perf_counter()
    try:
        if stream:
            [ev async for ev in client.stream(feature="f", messages=MSG)]
        else:
            await client.chat(feature="f", messages=MSG)
    except portal.PortalError as exc:
        out.append((kind, exc, time.perf_counter() - t0))
        return
    out.append((kind, None, time.perf_counter() - t0))


def run_all(
    server: TrickleServer, phase: str, client: str, stream: bool, deadline: float | None
) -> list[Outcome]:
    """Every kind at once (the cases wait on the server, not on the CPU)."""
    if client == "sync":
        ready = threading.Barrier(len(KINDS))
        with ThreadPoolExecutor(len(KINDS)) as pool:
            futures = [
                pool.submit(_sync_case, server.url(phase, k, stream), k, stream, deadline, ready)
                for k in KINDS
            ]
            return [f.result() for f in futures]

    async def main() -> list[Outcome]:
        out: list[Outcome] = []
        clients = {
            kind: portal.AsyncClient(
                config(server.url(phase, kind, stream), kind, deadline), ledger=None
            )
            for kind in KINDS
        }
        for c in clients.values():
            # its connection pools (TLS contexts included) now, not inside another case's
            # deadline: ten clients building them at once block the event loop for a while
            c._http("p")
        try:
            async with anyio.create_task_group() as tg:
                for kind, c in clients.items():
                    tg.start_soon(_async_case, c, kind, stream, out)
        finally:
            for c in clients.values():
                await c.aclose()
        return out

    return anyio.run(main)


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("phase", PHASES)
def test_the_deadline_holds_while_a_reply_trickles(
    server: TrickleServer, phase: str, client: str, stream: bool, both_transports: str
) -> None:
    if client == "sync" and both_transports == "aiohttp":
        pytest.skip("the sync client has one transport")
    outcomes = run_all(server, phase, client, stream, DEADLINE_S)
    assert len(outcomes) == len(KINDS)
    for kind, err, elapsed in outcomes:
        assert err is not None, f"{kind}: a late success after {elapsed:.2f}s"
        assert isinstance(err, (ProviderTimeout, StreamInterrupted)), f"{kind}: {err!r}"
        if isinstance(err, StreamInterrupted):  # text came before the deadline: never twice
            assert stream and phase == "body", f"{kind}: {err!r}"
        assert elapsed < DEADLINE_S + SLACK_S, (
            f"{kind}: {elapsed:.2f}s for a {DEADLINE_S}s deadline"
        )


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("client", ["sync", "async"])
def test_the_same_replies_sent_at_once_succeed(
    server: TrickleServer, client: str, stream: bool
) -> None:
    outcomes = run_all(server, "fast", client, stream, None)
    assert [(k, e) for k, e, _ in outcomes if e is not None] == []


def test_the_provider_timeout_bounds_an_attempt_without_a_call_deadline(
    server: TrickleServer,
) -> None:
    """No call deadline: the provider's timeout_s is the longest an attempt may take, so a
    body trickling for longer is cut there (before, each fast read reset the timer)."""
    cfg = config(server.url("body", "openai", False), "openai", None)
    cfg["providers"]["p"]["timeout_s"] = 0.5
    t0 = time.perf_counter()
    with portal.Client(cfg, ledger=None) as client, pytest.raises(ProviderTimeout):
        client.chat(feature="f", messages=MSG)
    assert time.perf_counter() - t0 < 0.5 + SLACK_S


def test_a_name_lookup_that_hangs_ends_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DNS lookup has no timeout of its own; the sync client looks names up where the
    call's deadline can leave it (it used to wait as long as the resolver did)."""
    import socket

    release = threading.Event()

    def hanging(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        raise socket.gaierror("never answered")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    cfg = config("http://localhost:9/v1", "openai", DEADLINE_S)  # a name to look up
    t0 = time.perf_counter()
    try:
        with portal.Client(cfg, ledger=None) as client, pytest.raises(ProviderTimeout):
            client.chat(feature="f", messages=MSG)
    finally:
        release.set()
    assert time.perf_counter() - t0 < DEADLINE_S + SLACK_S


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("phase", PHASES)
def test_the_deadline_holds_under_trio(server: TrickleServer, phase: str, stream: bool) -> None:
    """Under trio the async client sends through httpx2's pools and cancels with anyio's
    scopes: the same bound, the same error."""
    url = server.url(phase, "openai", stream)

    async def main() -> tuple[BaseException | None, float]:
        async with portal.AsyncClient(config(url, "openai", DEADLINE_S), ledger=None) as client:
            t0 = time.perf_counter()
            try:
                if stream:
                    [ev async for ev in client.stream(feature="f", messages=MSG)]
                else:
                    await client.chat(feature="f", messages=MSG)
            except portal.PortalError as exc:
                return exc, time.perf_counter() - t0
            return None, time.perf_counter() - t0

    err, elapsed = anyio.run(main, backend="trio")
    assert isinstance(err, ProviderTimeout), repr(err)
    assert elapsed < DEADLINE_S + SLACK_S
