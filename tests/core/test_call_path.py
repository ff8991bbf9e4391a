"""The path of one call reads top to bottom in a few files: from `Client.chat` to the HTTP
send, the functions a reader follows (every portal frame on the stack when the call is
prepared, when the flow asks for the send, when the adapter builds the request and when the
driver sends it) stay few, and the flow never calls back into `portal.client`."""

from __future__ import annotations

import inspect
import json
import sys
from types import FrameType
from typing import Any

import httpx2

import portal

REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _portal_frames(frame: FrameType | None) -> list[str]:
    out = []
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        name = frame.f_code.co_qualname
        if module.startswith("portal") and "__create_fn__" not in name:
            out.append(f"{module}.{name}")
        frame = frame.f_back
    return out[::-1]


def _trace_one_call() -> tuple[list[list[str]], list[str]]:
    """(the stacks at each hand-off, every portal function called) for one sync chat."""
    stacks: list[list[str]] = []
    called: list[str] = []
    marks = {"Call", "Send", "WireRequest"}  # the hand-offs: prepared, asked, built

    def handler(request: httpx2.Request) -> httpx2.Response:
        stacks.append(_portal_frames(inspect.currentframe()))
        sys.setprofile(None)
        return httpx2.Response(200, json=REPLY)

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("portal"):
            return
        called.append(f"{module}.{frame.f_code.co_qualname}")
        if frame.f_code.co_name == "__init__" and "__create_fn__" in frame.f_code.co_qualname:
            owner = frame.f_locals.get("self")
            if type(owner).__name__ in marks:
                stacks.append(_portal_frames(frame.f_back))

    cfg = {
        "portal": {"ledger": "none"},
        "providers": {"o": {"kind": "openai", "api_key": "sk-test-key-000"}},
        "features": {"f": {"primary": "o:gpt-4o-mini"}},
    }
    with portal.Client(cfg, transports={"o": httpx2.MockTransport(handler)}) as client:
        messages = [portal.user("hi")]
        client.chat(feature="f", messages=messages)  # warm: caches filled
        stacks.clear()
        sys.setprofile(profile)
        try:
            resp = client.chat(feature="f", messages=messages)
        finally:
            sys.setprofile(None)
    assert resp.text == "hi"
    return stacks, called


def test_the_path_from_chat_to_the_http_send_is_short() -> None:
    stacks, _ = _trace_one_call()
    assert len(stacks) == 4, stacks  # Call, Send, WireRequest, then the transport
    spine = list(dict.fromkeys(name for stack in stacks for name in stack))
    assert spine[0] == "portal.client.Client.chat"
    assert len(spine) <= 20, json.dumps(spine, indent=1)
    modules = {name.rsplit(".", 1)[0].rsplit(".", 1)[0] for name in spine}
    assert len(modules) <= 8, modules


def test_the_flow_never_calls_back_into_the_client_module() -> None:
    _, called = _trace_one_call()
    first_flow = next(i for i, n in enumerate(called) if n.startswith("portal.routing.flow."))
    after = called[first_flow:]
    assert not [n for n in after if n.startswith("portal.client.") and "_http" not in n], after
