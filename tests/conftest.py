"""Suite-wide guards: no test reaches beyond loopback; the anyio backend for async tests."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import httpx2
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (derandomize), so the suite passes or
# fails the same way each time; examples found once are pinned with @example. To explore new
# inputs locally: PORTAL_HYPOTHESIS_PROFILE=explore python -m pytest
settings.register_profile("pinned", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("PORTAL_HYPOTHESIS_PROFILE", "pinned"))

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real HTTP transports refuse any host that is not loopback (ALLOW_MODEL_REQUESTS-style)."""
    real_sync = httpx2.HTTPTransport.handle_request
    real_async = httpx2.AsyncHTTPTransport.handle_async_request

    def guard(request: httpx2.Request) -> None:
        if not _is_loopback(request.url.host):
            raise RuntimeError(f"test tried to reach {request.url.host}: tests stay on loopback")

    def sync(self: Any, request: httpx2.Request) -> Any:
        guard(request)
        return real_sync(self, request)

    async def async_(self: Any, request: httpx2.Request) -> Any:
        guard(request)
        return await real_async(self, request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", sync)
    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", async_)

    try:  # AsyncClient's default transport under asyncio sends through aiohttp
        import aiohttp
    except ImportError:
        return
    real_aiohttp = aiohttp.ClientSession._request

    def aiohttp_request(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        guard(httpx2.Request(method, str(url)))
        return real_aiohttp(self, method, url, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", aiohttp_request)


@pytest.fixture(params=["aiohttp", "httpx2"])
def both_transports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once on each transport AsyncClient can send through (aiohttp, the default
    under asyncio, and httpx2's own pools): what the test asserts must hold on both."""
    from portal import _http

    real = _http.default_async_transport

    def forced(verify: bool, kind: str = "auto") -> httpx2.AsyncBaseTransport:
        return real(verify, request.param)

    monkeypatch.setattr(_http, "default_async_transport", forced)
    return str(request.param)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
