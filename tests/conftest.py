"""Suite-wide guards: no test reaches beyond loopback; the anyio backend for async tests."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx2
import pytest

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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
