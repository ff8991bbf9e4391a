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
