"""The names a third-party adapter imports, kept at their first address.

An adapter written against ``portal.providers.base`` keeps working: each name here is the
same object as at its home (`adapter`, `settings`, `streaming`, `error_replies`, `bodies`,
`reasoning`, `unknown`). New code imports from `portal.providers` or from those modules.
"""

from __future__ import annotations

from portal.providers.adapter import Adapter, Capabilities
from portal.providers.bodies import DEFAULT_MAX_REPLY_BYTES, byte_limit, dumps
from portal.providers.error_replies import error_class_for_status, parse_retry_after
from portal.providers.reasoning import (
    ReasoningBlocks,
    carried,
    carry,
    join_reasoning,
    replayed_turn,
)
from portal.providers.settings import COMMON_OPTIONS, ProviderSettings, unknown_options
from portal.providers.streaming import (
    INCOMPLETE_TOOL_CALLS,
    SSEStreamParser,
    StreamParser,
    ToolCallAssembler,
    forced_tool_text,
    incomplete_call,
)
from portal.providers.unknown import MAX_UNKNOWN_EVENTS, keep_unknown
from portal.secret import Secret
from portal.wire import WireReply, WireRequest

__all__ = [
    "COMMON_OPTIONS",
    "DEFAULT_MAX_REPLY_BYTES",
    "INCOMPLETE_TOOL_CALLS",
    "MAX_UNKNOWN_EVENTS",
    "Adapter",
    "Capabilities",
    "ProviderSettings",
    "ReasoningBlocks",
    "SSEStreamParser",
    "Secret",
    "StreamParser",
    "ToolCallAssembler",
    "WireReply",
    "WireRequest",
    "byte_limit",
    "carried",
    "carry",
    "dumps",
    "error_class_for_status",
    "forced_tool_text",
    "incomplete_call",
    "join_reasoning",
    "keep_unknown",
    "parse_retry_after",
    "replayed_turn",
    "unknown_options",
]
