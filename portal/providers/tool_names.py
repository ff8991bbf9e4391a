"""Tools under two names: a tool whose name the vendor would refuse (``math.factorial``) is
sent under a legal one (``math_factorial``) and its calls come back under the original.

`Adapter` wraps every ``build_chat`` with `wire_names` and every ``finalize`` with
`caller_names`, so each adapter translates plain requests and the renaming happens once,
for all of them; ``build_chat`` also refuses here a prompt-cache lifetime the wire API
cannot set.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from portal.contracts.cache import marked, refuse_ttls
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Response
from portal.wire import WireRequest

if TYPE_CHECKING:
    from portal.providers.adapter import Adapter

__all__ = ["caller_names", "renamed_tools", "request_with_names", "wire_names"]


def renamed_tools(req: ChatRequest) -> dict[str, str]:
    """Original name -> vendor-legal name of the request's tools that lenient normalization
    renamed (``math.factorial`` -> ``math_factorial``); empty for almost every request."""
    return {t.original_name: t.name for t in req.tools if t.original_name}


def wire_names(fn: Callable[..., WireRequest]) -> Callable[..., WireRequest]:
    """Wrap ``build_chat``: a conversation speaks of renamed tools by their original names
    (tool calls, tool results, ``tool_choice``); the vendor sees the legal ones. A cache
    lifetime the wire API cannot set is refused here, for every adapter."""
    if getattr(fn, "__portal_names__", False):
        return fn

    @functools.wraps(fn)
    def build(self: Adapter, req: ChatRequest, model: str) -> WireRequest:
        if marked(req):
            refuse_ttls(req, f"provider {self.name!r} ({self.kind})", self.cache_ttls)
        renamed = renamed_tools(req) if req.tools else None
        if renamed:
            req = request_with_names(req, renamed)
        return fn(self, req, model)

    build.__portal_names__ = True  # type: ignore[attr-defined]
    return build


def request_with_names(req: ChatRequest, renamed: Mapping[str, str]) -> ChatRequest:
    messages = []
    for m in req.messages:
        calls = m.tool_calls
        if calls and any(c.name in renamed for c in calls):
            calls = [
                dataclasses.replace(c, name=renamed[c.name]) if c.name in renamed else c
                for c in calls
            ]
        name = renamed.get(m.name, m.name) if m.name else m.name
        if calls is not m.tool_calls or name != m.name:
            m = dataclasses.replace(m, tool_calls=calls, name=name)
        messages.append(m)
    choice = req.tool_choice
    return dataclasses.replace(
        req,
        messages=messages,
        tool_choice=renamed.get(choice, choice) if isinstance(choice, str) else choice,
    )


def caller_names(fn: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap ``finalize``: tool calls of renamed tools go back to the caller (and the tool
    loop, which runs the tool's function) under the tool's original name."""
    if getattr(fn, "__portal_names__", False):
        return fn

    @functools.wraps(fn)
    def finalize(self: Adapter, req: ChatRequest, response: Response) -> Response:
        response = fn(self, req, response)
        if response.tool_calls and req.tools:
            back = {legal: original for original, legal in renamed_tools(req).items()}
            if back:
                for call in response.tool_calls:
                    call.name = back.get(call.name, call.name)
        return response

    finalize.__portal_names__ = True  # type: ignore[attr-defined]
    return finalize
