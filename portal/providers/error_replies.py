"""Turning a vendor's error reply into portal's `ProviderError` tree: the generic table from
HTTP status (and a few universal codes and phrases) to error class, Retry-After, the common
JSON error shapes, the size-capped body kept for debugging, and the guard that makes
``parse_error`` classify and never raise.

Adapters refine the table for their vendor (`Adapter.classify`, `Adapter.error_details`);
everything that is the same for every vendor is here, once.
"""

from __future__ import annotations

import email.utils
import functools
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InvalidResponse,
    NotFound,
    Overloaded,
    ProviderError,
    RateLimited,
    ServerError,
)
from portal.providers.bodies import nested_too_deep
from portal.providers.shape_guard import SHAPE_ERRORS
from portal.wire import WireReply, loads

if TYPE_CHECKING:
    from portal.providers.adapter import Adapter

__all__ = [
    "error_body",
    "error_class_for_status",
    "error_fields",
    "guard_parse_error",
    "parse_retry_after",
]

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceeds the maximum number of tokens",
    "input length",
    "token limit",
)
_FILTER_MARKERS = ("content_filter", "content_policy", "responsibleaipolicyviolation", "safety")


def error_class_for_status(status: int, code: str | None, message: str) -> type[ProviderError]:
    """The one generic table from HTTP status (and a few universal codes) to error class."""
    text = f"{code or ''} {message}".lower()
    if status in (400, 413, 422):
        if any(m in text for m in _CONTEXT_MARKERS) or status == 413:
            return ContextTooLong
        if any(m in text for m in _FILTER_MARKERS):
            return ContentFiltered
        return BadRequest
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFound
    if status == 408:
        from portal.errors import ProviderTimeout

        return ProviderTimeout
    if status == 429:
        return RateLimited
    if status in (503, 529):
        return Overloaded
    if status >= 500:
        return ServerError
    return BadRequest if 400 <= status < 500 else ServerError


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``retry-after``
    (seconds or an HTTP date). None when absent or unreadable; never negative."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) / 1000.0)
            except ValueError:
                pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def error_fields(data: Any) -> tuple[str, str | None]:
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return str(data)[:500], None
    err = data.get("error", data)
    if isinstance(err, str):
        return err, data.get("code") if isinstance(data.get("code"), str) else None
    if not isinstance(err, dict):
        return str(err)[:500], None
    message = err.get("message") or data.get("message") or ""
    code = err.get("code") or err.get("type") or err.get("status")
    return str(message), (str(code) if code is not None else None)


def error_body(body: bytes) -> Any:
    """Error body kept on the exception for debugging, bounded in size."""
    try:
        return loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return body[:2000].decode("utf-8", "replace")


def guard_parse_error(fn: Callable[..., ProviderError]) -> Callable[..., ProviderError]:
    """``parse_error`` classifies, it never raises: an error body of an unexpected shape is
    classified by its HTTP status alone."""
    if getattr(fn, "__portal_guarded__", False):
        return fn

    @functools.wraps(fn)
    def guarded(self: Adapter, reply: WireReply, model: str) -> ProviderError:
        if nested_too_deep(reply.body):
            return self.reply_error(
                InvalidResponse,
                f"HTTP {reply.status}: the error body is JSON nested too deeply to read",
                reply,
                model,
            )
        try:
            err = fn(self, reply, model)
        except InvalidResponse as exc:  # a parser that refuses the body as unreadable
            err = exc
            err.status = reply.status if err.status is None else err.status
        except SHAPE_ERRORS:
            err = self.reply_error(
                error_class_for_status(reply.status, None, ""),
                f"HTTP {reply.status} (error body of an unexpected shape)",
                reply,
                model,
            )
        return err

    guarded.__portal_guarded__ = True  # type: ignore[attr-defined]
    return guarded
