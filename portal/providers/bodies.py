"""Request and reply bodies as bytes: the compact JSON every adapter sends, the depth check
on a reply before it is read, and the size caps a reply and a stream are held to.

Shared by the adapters (encoding), the error parsing (depth) and the flows and drivers that
read replies (size caps); none of it knows a vendor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from portal.wire import JSONTooDeep, loads

__all__ = ["DEFAULT_MAX_REPLY_BYTES", "byte_limit", "dumps", "nested_too_deep"]


#: a whole reply (body, or all bytes of a stream) larger than this is refused
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024


def byte_limit(options: Mapping[str, Any], name: str, default: int) -> int:
    """A size cap from provider options (``max_reply_bytes``, ``max_event_bytes``); the config
    validates these, this only falls back to the default."""
    value = options.get(name)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


#: built once: json.dumps with any option builds a new encoder on every call
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(body: Any) -> bytes:
    """``body`` as compact UTF-8 JSON, the form every adapter sends."""
    return _ENCODE(body).encode()


def nested_too_deep(body: bytes) -> bool:
    """Whether ``body`` is JSON nested past the reader's bound (cheap unless it has many
    brackets)."""
    if body.count(b"[") + body.count(b"{") < 256:
        return False
    try:
        loads(body)
    except JSONTooDeep:
        return True
    except (ValueError, UnicodeDecodeError):
        return False
    return False
