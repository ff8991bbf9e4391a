"""`portal.providers.base` keeps every name a third-party adapter imported from it, as the
same object as at its home module, and a subclass of its `Adapter` gets the guards that
every adapter gets."""

from __future__ import annotations

import importlib

import pytest

import portal.providers
import portal.providers.base as base
from portal.errors import InvalidResponse
from portal.wire import WireReply

HOMES = {
    "Adapter": "portal.providers.adapter",
    "Capabilities": "portal.providers.adapter",
    "ProviderSettings": "portal.providers.settings",
    "COMMON_OPTIONS": "portal.providers.settings",
    "unknown_options": "portal.providers.settings",
    "StreamParser": "portal.providers.streaming",
    "SSEStreamParser": "portal.providers.streaming",
    "ToolCallAssembler": "portal.providers.streaming",
    "INCOMPLETE_TOOL_CALLS": "portal.providers.streaming",
    "incomplete_call": "portal.providers.streaming",
    "forced_tool_text": "portal.providers.streaming",
    "error_class_for_status": "portal.providers.error_replies",
    "parse_retry_after": "portal.providers.error_replies",
    "DEFAULT_MAX_REPLY_BYTES": "portal.providers.bodies",
    "byte_limit": "portal.providers.bodies",
    "dumps": "portal.providers.bodies",
    "ReasoningBlocks": "portal.providers.reasoning",
    "carried": "portal.providers.reasoning",
    "carry": "portal.providers.reasoning",
    "join_reasoning": "portal.providers.reasoning",
    "replayed_turn": "portal.providers.reasoning",
    "MAX_UNKNOWN_EVENTS": "portal.providers.unknown",
    "keep_unknown": "portal.providers.unknown",
    "Secret": "portal.secret",
    "WireReply": "portal.wire",
    "WireRequest": "portal.wire",
}


@pytest.mark.parametrize("name", sorted(HOMES))
def test_each_old_name_is_the_object_at_its_home(name: str) -> None:
    home = importlib.import_module(HOMES[name])
    assert getattr(base, name) is getattr(home, name)
    if name in portal.providers.__all__:
        assert getattr(portal.providers, name) is getattr(home, name)


def test_every_exported_name_has_a_home() -> None:
    assert sorted(base.__all__) == sorted(HOMES)


def test_an_adapter_written_against_the_old_module_is_guarded() -> None:
    class Mine(base.Adapter):
        kind = "mine"

        def parse_chat(self, reply: WireReply, model: str) -> portal.Response:
            return reply.json()["choices"][0]  # type: ignore[no-any-return]

    adapter = Mine(base.ProviderSettings(name="m", kind="mine", base_url="http://x"))
    with pytest.raises(InvalidResponse, match="does not have the documented shape"):
        adapter.parse_chat(WireReply(200, {}, b"{}"), "model-1")
    err = adapter.parse_error(WireReply(429, {"retry-after": "3"}, b"[[[[[[["), "model-1")
    assert isinstance(err, portal.RateLimited) and err.retry_after == 3.0
