"""The one module that speaks httpx2: building clients, sending `WireRequest`s, and turning
httpx2's exceptions into portal's (the single place foreign exceptions are translated)."""

from __future__ import annotations

import warnings
from typing import Any

import httpx2

from portal.errors import ProviderConnectionError, ProviderError, ProviderTimeout
from portal.providers.base import WireRequest

__all__ = ["map_exception", "new_async_client", "new_sync_client", "to_httpx", "httpx2"]

#: pool sized for an app with a few hundred calls in flight; users can pass their own client
DEFAULT_LIMITS = httpx2.Limits(max_connections=512, max_keepalive_connections=256)


def to_httpx(wire: WireRequest, timeout_s: float) -> httpx2.Request:
    return httpx2.Request(
        wire.method,
        wire.url,
        headers=wire.headers,
        content=wire.body,
        extensions={"timeout": httpx2.Timeout(timeout_s).as_dict()},
    )


def map_exception(exc: BaseException, provider: str) -> ProviderError:
    """Most specific portal error for an httpx2 failure, with the original as ``__cause__``.
    Messages name the failure class only: URLs may carry keys (Azure, Gemini query params)."""
    cls: type[ProviderError]
    if isinstance(exc, httpx2.TimeoutException):
        cls = ProviderTimeout
        message = f"timed out ({type(exc).__name__})"
    else:
        cls = ProviderConnectionError
        message = f"connection failed ({type(exc).__name__})"
    err = cls(message, provider=provider)
    err.__cause__ = exc
    return err


def _verify_warning(verify: Any) -> None:
    if verify is False:
        warnings.warn(
            "TLS certificate verification is DISABLED for a portal provider: "
            "traffic and API keys can be intercepted. Only do this against local test servers.",
            stacklevel=3,
        )


def new_sync_client(transport: Any = None, verify: bool = True) -> httpx2.Client:
    _verify_warning(verify)
    return httpx2.Client(
        transport=transport, limits=DEFAULT_LIMITS, verify=verify, follow_redirects=False
    )


def new_async_client(transport: Any = None, verify: bool = True) -> httpx2.AsyncClient:
    _verify_warning(verify)
    return httpx2.AsyncClient(
        transport=transport, limits=DEFAULT_LIMITS, verify=verify, follow_redirects=False
    )
