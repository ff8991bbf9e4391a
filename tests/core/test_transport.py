"""Which transport AsyncClient's own pools send through: aiohttp under asyncio by default,
httpx2's pools under trio, with proxies in the environment, or when the config says so."""

from __future__ import annotations

import builtins
from typing import Any

import anyio
import httpx2
import pytest

import portal
from portal import _http
from portal._aiohttp import FastAsyncTransport, _mapped
from portal.errors import ConfigError


def _config(url: str, transport: str | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "portal": {"ledger": "none"},
        "providers": {"v": {"kind": "openai", "base_url": url, "api_key": "sk-test"}},
        "features": {"f": {"primary": "v:m", "retry": {"attempts": 1}}},
    }
    if transport is not None:
        cfg["portal"]["transport"] = transport
    return cfg


def _pool(client: portal.AsyncClient) -> httpx2.AsyncBaseTransport:
    return client._http("v")._transport


async def _which(client: portal.AsyncClient) -> str:
    """Where the pool sends a request on the running event loop: aiohttp or httpx2."""
    pool = _pool(client)
    if not isinstance(pool, FastAsyncTransport):
        return "httpx2"
    return "aiohttp" if pool._transport() is not None else "httpx2"


def test_asyncio_default_is_aiohttp() -> None:
    async def main() -> str:
        async with portal.AsyncClient(_config("http://127.0.0.1:9/v1")) as client:
            return await _which(client)

    assert anyio.run(main) == "aiohttp"


def test_trio_falls_back_to_httpx2() -> None:
    async def main() -> str:
        async with portal.AsyncClient(_config("http://127.0.0.1:9/v1")) as client:
            return await _which(client)

    assert anyio.run(main, backend="trio") == "httpx2"


def test_config_keeps_httpx2_pools() -> None:
    async def main() -> str:
        async with portal.AsyncClient(_config("http://127.0.0.1:9/v1", "httpx2")) as client:
            assert isinstance(_pool(client), _http.ShardedTransport)
            return await _which(client)

    assert anyio.run(main) == "httpx2"


def test_proxy_in_the_environment_keeps_httpx2(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp ignores HTTPS_PROXY unless told; httpx2 honours it, so portal keeps httpx2."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")

    async def main() -> str:
        async with portal.AsyncClient(_config("http://127.0.0.1:9/v1")) as client:
            return await _which(client)

    assert anyio.run(main) == "httpx2"


def test_aiohttp_asked_for_but_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_aiohttp(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "portal._aiohttp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_aiohttp)
    with pytest.raises(ConfigError, match=r"transport = 'aiohttp' needs the httpx-aiohttp"):
        _http.default_async_transport(True, "aiohttp")
    # "auto" quietly keeps httpx2 when the package is not there
    assert isinstance(_http.default_async_transport(True, "auto"), _http.ShardedTransport)


def test_unknown_transport_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match=r"portal\.transport"):
        portal.AsyncClient(_config("http://127.0.0.1:9/v1", "curl"))


def test_import_portal_does_not_import_aiohttp() -> None:
    import subprocess
    import sys

    code = "import sys, portal; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("connect-timeout", httpx2.ConnectTimeout),
        ("read-timeout", httpx2.ReadTimeout),
        ("refused", httpx2.ConnectError),
        ("disconnected", httpx2.RemoteProtocolError),
        ("payload", httpx2.RemoteProtocolError),
        ("bad-status-line", httpx2.RemoteProtocolError),
    ],
)
def test_aiohttp_faults_map_to_httpx2_exceptions(fault: str, expected: type) -> None:
    """The same fault raises the same httpx2 exception on both transports, so portal
    classifies it the same (a dropped connection is not a timeout)."""
    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("127.0.0.1", 9, False, None, None, None, None)
    cause: BaseException = {
        "connect-timeout": aiohttp.ConnectionTimeoutError("connect"),
        "read-timeout": aiohttp.SocketTimeoutError("read"),
        "refused": aiohttp.ClientConnectorError(key, OSError(111, "refused")),
        "disconnected": aiohttp.ServerDisconnectedError(),
        "payload": aiohttp.ClientPayloadError("cut"),
        "bad-status-line": aiohttp.ClientResponseError(None, (), status=400),  # type: ignore[arg-type]
    }[fault]
    assert type(_mapped(cause)) is expected
    # httpx-aiohttp's own mapping (e.g. a reset as ConnectTimeout) is replaced by the cause's
    wrapped = httpx2.ConnectTimeout("x")
    wrapped.__cause__ = cause
    assert type(_mapped(wrapped)) is expected


# ---- the direct path: model calls sent straight through aiohttp -------------------------


def _served(url: str, transport: str, calls: int = 1) -> list[str]:
    """Make ``calls`` chat calls on ``transport``; the replies' texts."""

    async def main() -> list[str]:
        texts = []
        async with portal.AsyncClient(_config(url, transport)) as client:
            for _ in range(calls):
                resp = await client.chat(feature="f", messages=[portal.user("hi")])
                texts.append(resp.text)
        return texts

    return anyio.run(main)


def test_both_transports_write_the_same_request_head() -> None:
    """aiohttp writes exactly the headers the adapter built, in httpx2's order (Host first,
    Content-Length last): no User-Agent, Accept-Encoding or Content-Type of its own."""
    from tests.reliability._servers import bad_server

    with bad_server() as server:
        heads = {}
        for transport in ("httpx2", "aiohttp"):
            assert _served(server.url("ok"), transport) == ["ok"]
            heads[transport] = server.seen[-1]["_head"]
    assert heads["aiohttp"] == heads["httpx2"]
    names = [line.split(":")[0].lower() for line in heads["aiohttp"].split("\n")]
    assert names[0] == "host" and names[-1] == "content-length"
    assert "user-agent" not in names and "accept-encoding" not in names


def test_a_cookie_the_vendor_sets_is_never_sent_back() -> None:
    """httpx2's send() never adds cookies; aiohttp's session would keep and send them."""
    from tests.reliability._servers import bad_server

    with bad_server() as server:
        url = f"http://localhost:{server.port}/cookie/v1"  # a host name: cookies are kept
        for transport in ("httpx2", "aiohttp"):
            before = len(server.seen)
            assert _served(url, transport, calls=2) == ["ok", "ok"]
            assert [r.get("cookie") for r in server.seen[before:]] == [None, None]


@pytest.mark.usefixtures("both_transports")
def test_a_gzip_reply_is_decoded() -> None:
    from tests.reliability._servers import bad_server

    with bad_server() as server:
        assert _served(server.url("gzip-ok"), "auto") == ["ok"]


def test_reply_headers_read_as_httpx2_reads_them() -> None:
    """Lower-cased names, repeats joined with ", ", ASCII else UTF-8 else ISO-8859-1."""
    from portal._aiohttp import _headers

    cases: list[list[tuple[bytes, bytes]]] = [
        [(b"Content-Type", b"application/json"), (b"X-Request-Id", b"req_1")],
        [(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"Retry-After", b"3")],
        [(b"X-Note", "caf\u00e9".encode()), (b"X-Other", b"plain")],
        [(b"X-Note", b"caf\xe9")],  # not UTF-8
        [],
    ]
    for raw in cases:
        assert _headers(raw) == dict(httpx2.Headers(raw))


def test_send_wire_takes_model_calls_and_leaves_the_rest_to_httpx2() -> None:
    """A POST with plain headers goes straight to aiohttp; a GET, a header aiohttp would
    write differently, trio (no asyncio loop) and a closed pool go through httpx2."""
    pool = _http.default_async_transport(True, "aiohttp")
    assert isinstance(pool, FastAsyncTransport)
    url = "http://127.0.0.1:9/v1/chat/completions"
    plain = {"content-type": "application/json", "authorization": "Bearer sk-test"}

    def direct(method: str = "POST", headers: dict[str, str] = plain, target: str = url) -> bool:
        sending = pool.send_wire(method, target, headers, b"{}", 5.0, None)
        if sending is None:
            return False
        sending.close()  # never awaited: nothing was sent
        return True

    async def main() -> list[bool]:
        checks = [
            direct(),
            not direct("GET"),
            not direct(headers={**plain, "host": "elsewhere"}),
            not direct(headers={**plain, "x-bad": "a\r\nb"}),
            not direct(headers={**plain, "x-name": "caf\u00e9"}),
            not direct(target="ftp://127.0.0.1:9/v1"),
        ]
        await pool.aclose()
        checks.append(not direct())
        return checks

    assert all(anyio.run(main))
    assert pool.send_wire("POST", url, plain, b"{}", 5.0, None) is None  # no event loop


def test_sync_pools_for_environment_proxies_honour_the_deadline_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a proxy in the environment httpx2 builds a pool per proxy; each reads through
    the backend that ends socket operations at the call's bound (before, a proxy turned the
    bound off for the sync client)."""
    from portal import _http

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    client = _http.new_sync_client()
    pools = [client._transport, *client._mounts.values()]
    assert len(pools) >= 2  # the direct pool and the proxies'
    for pool in pools:
        assert isinstance(pool._pool._network_backend, _http._BoundedBackend), pool
    client.close()


def test_deadline_timers_do_not_pile_up_when_calls_never_wait() -> None:
    """Each async attempt arms an asyncio timer for its deadline; asyncio drops cancelled
    ones only as its loop turns, so calls that never wait (an in-process transport) kept
    every one of them: 100,000 calls grew memory by a third. The driver gives the loop a
    turn now and then."""
    import asyncio
    import json

    body = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()

    def reply(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=body)

    cfg = {
        "portal": {"ledger": "none"},
        "providers": {"v": {"kind": "openai", "api_key": "sk-test"}},
        "features": {"f": {"primary": "v:m"}},
    }

    async def main() -> int:
        transports = {"v": httpx2.MockTransport(reply)}
        async with portal.AsyncClient(cfg, transports=transports) as client:
            for _ in range(5000):
                await client.chat(feature="f", messages=[portal.user("hi")])
            return len(asyncio.get_running_loop()._scheduled)  # type: ignore[attr-defined]

    assert asyncio.run(main()) < 2048
