"""The HTTP request an adapter builds and the reply a driver reads: the bottom of the stack.

Providers build `WireRequest`s and parse `WireReply`s; the flows hand them between the
adapters and the drivers; nothing here knows a vendor or does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["JSONTooDeep", "WireReply", "WireRequest", "loads"]

#: headers whose values are credentials: never shown in a repr, log line or error
_SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie", "x-amz-security-token"}
)


@dataclass(slots=True)
class WireRequest:
    """An HTTP request, built by an adapter, sent by the client. Its repr hides credentials."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        safe = {
            k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
            for k, v in self.headers.items()
        }
        return f"WireRequest({self.method} {self.url}, headers={safe})"


@dataclass(slots=True)
class WireReply:
    """A complete HTTP reply: status, lower-cased headers, body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return loads(self.body)


class JSONTooDeep(ValueError):
    """A JSON document nested deeper than the reader's recursion bound."""


def loads(data: str | bytes) -> Any:
    """`json.loads`, with a document nested deeper than Python's recursion bound refused as a
    `ValueError` (`JSONTooDeep`) like any other unreadable JSON, not a raw RecursionError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise JSONTooDeep("JSON nested too deeply to read") from None
