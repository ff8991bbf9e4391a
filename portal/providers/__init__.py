"""Provider adapters: one module per wire API, each a pure translator (see `Adapter`).

Public for third-party adapters: subclass `Adapter` (build a `WireRequest`, parse a
`WireReply`, a `StreamParser` for streams, `parse_error` into portal's errors), declare its
`Capabilities`, and `register` its kind (or use the ``portal.providers`` entry-point group).
Names load on first use, so importing a submodule stays cheap. Docs: docs/providers.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Adapter": "portal.providers.adapter",
    "Capabilities": "portal.providers.adapter",
    "ProviderSettings": "portal.providers.settings",
    "SSEDecoder": "portal.providers.sse",
    "SSEStreamParser": "portal.providers.streaming",
    "ServerSentEvent": "portal.providers.sse",
    "StreamParser": "portal.providers.streaming",
    "ToolCallAssembler": "portal.providers.streaming",
    "WireReply": "portal.wire",
    "WireRequest": "portal.wire",
    "error_class_for_status": "portal.providers.error_replies",
    "known_kinds": "portal.providers.registry",
    "parse_retry_after": "portal.providers.error_replies",
    "register": "portal.providers.registry",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.providers.adapter import Adapter as Adapter
    from portal.providers.adapter import Capabilities as Capabilities
    from portal.providers.error_replies import error_class_for_status as error_class_for_status
    from portal.providers.error_replies import parse_retry_after as parse_retry_after
    from portal.providers.registry import known_kinds as known_kinds
    from portal.providers.registry import register as register
    from portal.providers.settings import ProviderSettings as ProviderSettings
    from portal.providers.sse import ServerSentEvent as ServerSentEvent
    from portal.providers.sse import SSEDecoder as SSEDecoder
    from portal.providers.streaming import SSEStreamParser as SSEStreamParser
    from portal.providers.streaming import StreamParser as StreamParser
    from portal.providers.streaming import ToolCallAssembler as ToolCallAssembler
    from portal.wire import WireReply as WireReply
    from portal.wire import WireRequest as WireRequest
