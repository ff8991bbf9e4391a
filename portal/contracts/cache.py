"""The neutral prompt-cache hint: which prefix of a request is worth caching, and for how long.

A ``cache=`` marker on a message or a tool says "the request up to and including this is a
stable prefix". ``True`` asks for the vendor's default lifetime; ``"5m"`` or ``"1h"`` asks
for that lifetime where the vendor lets a request choose it. Adapters translate the marks
(Anthropic ``cache_control``, Bedrock ``cachePoint``, OpenAI ``prompt_cache_key``) and refuse
a lifetime they cannot honour instead of dropping it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from portal.errors import ContractError

if TYPE_CHECKING:
    from portal.contracts.messages import Message
    from portal.contracts.request import ChatRequest
    from portal.contracts.tools import ToolSpec

__all__ = [
    "CacheHint",
    "CacheTTL",
    "cache_lifetime_s",
    "cache_ttl",
    "check_breakpoints",
    "check_cache",
    "explicit_ttls",
    "mark_auto",
    "marked",
    "prefix_key",
    "refuse_ttls",
]

#: a lifetime some vendors let a request choose
CacheTTL = Literal["5m", "1h"]
#: ``True`` (the vendor's default lifetime) or an explicit `CacheTTL`
CacheHint = bool | CacheTTL
_TTLS = ("5m", "1h")


def check_cache(value: Any, where: str) -> CacheHint | None:
    """The hint as given, or a `ContractError` naming the allowed values."""
    if value is None or value is True or value is False or value in _TTLS:
        return value  # type: ignore[no-any-return]
    raise ContractError(
        f"{where}.cache: expected True, False, '5m' or '1h', got {value!r}; "
        "cache=True asks for the vendor's default cache lifetime"
    )


def cache_ttl(hint: CacheHint | None) -> CacheTTL | None:
    """The explicit lifetime of a hint (``None`` for ``True``, ``False`` and no hint)."""
    return hint if isinstance(hint, str) else None


#: how long the breakpoint vendors keep a prefix after its last use, per lifetime
_LIFETIME_S = {"5m": 300.0, "1h": 3600.0}


def cache_lifetime_s(req: ChatRequest) -> float:
    """How long the vendor keeps the request's marked prefix after a use: an hour when a
    marker asks for ``"1h"``, else five minutes (Anthropic's and Bedrock's default, and
    OpenAI's usual lifetime)."""
    return max((_LIFETIME_S[t] for _, h in _marks(req) if (t := cache_ttl(h))), default=300.0)


def explicit_ttls(req: ChatRequest) -> list[CacheTTL]:
    """The lifetimes the request's markers ask for explicitly, in order (empty for
    ``cache=True`` markers)."""
    return [t for _, h in _marks(req) if (t := cache_ttl(h)) is not None]


def marked(req: ChatRequest) -> bool:
    """Whether any message or tool of the request carries a cache marker (a quick scan,
    so unmarked requests pay nothing else)."""
    return any(t.cache for t in req.tools) or any(m.cache for m in req.messages)


def refuse_ttls(req: ChatRequest, vendor: str, allowed: Sequence[str] = ()) -> None:
    """Raise when a marker asks for a lifetime ``vendor`` cannot set per request."""
    for where, hint in _marks(req):
        ttl = cache_ttl(hint)
        if ttl is not None and ttl not in allowed:
            choice = f"one of {', '.join(repr(t) for t in allowed)}" if allowed else "cache=True"
            raise ContractError(
                f"{where}.cache={ttl!r}: {vendor} cannot set a cache lifetime per request "
                f"(its prompt cache lifetime is the vendor's own); use {choice}, or route "
                "this call to a vendor that takes the lifetime (Anthropic, Bedrock)"
            )


def check_breakpoints(ttls: Sequence[str | None], where: str, limit: int = 4) -> None:
    """Refuse, before sending, what the breakpoint vendors (Anthropic, Bedrock) reject:
    more than ``limit`` breakpoints, or a 1-hour one after a shorter one. ``ttls`` are the
    breakpoints' lifetimes (``None`` for the default 5 minutes) in the order the vendor reads
    the prefix: tools, then system, then messages."""
    if len(ttls) > limit:
        raise ContractError(
            f"{where}: {len(ttls)} cache breakpoints in one request, at most {limit} allowed; "
            "keep cache= on the system prompt, the last tool and the last stable message only "
            "(a breakpoint caches everything before it)"
        )
    shorter_seen = False
    for ttl in ttls:
        if ttl == "1h" and shorter_seen:
            raise ContractError(
                f"{where}: a cache='1h' breakpoint comes after a 5-minute one; 1-hour "
                "breakpoints must come first (tools, then system, then messages): give the "
                "earlier markers '1h' too, or this one cache=True"
            )
        shorter_seen = shorter_seen or ttl != "1h"


def _marks(req: ChatRequest) -> list[tuple[str, CacheHint]]:
    out: list[tuple[str, CacheHint]] = [
        (f"tools[{i}]", t.cache) for i, t in enumerate(req.tools) if t.cache
    ]
    out += [(f"messages[{i}]", m.cache) for i, m in enumerate(req.messages) if m.cache]
    return out


def prefix_key(req: ChatRequest) -> str | None:
    """A stable key for the marked prefix: the tools up to the last marked one and the
    messages up to the last marked one, hashed (SHA-256, 32 hex digits). ``None`` when
    nothing is marked. Two requests sharing the marked prefix share the key whatever
    follows it, which is what OpenAI's ``prompt_cache_key`` routes on."""
    tools = _upto_last_marked(req.tools)
    messages = _upto_last_marked(req.messages)
    if not tools and not messages:
        return None
    payload = {
        "tools": [t.to_dict() for t in tools],
        "messages": [m.to_dict() for m in messages],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "portal-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _upto_last_marked(items: Sequence[Message] | Sequence[ToolSpec]) -> list[Any]:
    for i in range(len(items) - 1, -1, -1):
        if items[i].cache:
            return list(items[: i + 1])
    return []


def mark_auto(
    messages: list[Message], tools: list[ToolSpec]
) -> tuple[list[Message], list[ToolSpec]]:
    """A feature's ``cache = "auto"``: the last leading system message and the last tool
    get ``cache=True`` unless the caller marked something there already."""
    from dataclasses import replace

    out_messages = list(messages)
    last_system = None
    for i, m in enumerate(out_messages):
        if m.role != "system":
            break
        last_system = i
    if last_system is not None and out_messages[last_system].cache is None:
        out_messages[last_system] = replace(out_messages[last_system], cache=True)
    out_tools = list(tools)
    if out_tools and out_tools[-1].cache is None:
        out_tools[-1] = replace(out_tools[-1], cache=True)
    return out_messages, out_tools
