"""Provider adapters: one module per wire API, each a pure translator (see `Adapter`).

Public for third-party adapters: subclass `Adapter` (build a `WireRequest`, parse a
`WireReply`, a `StreamParser` for streams, `parse_error` into portal's errors), declare its
`Capabilities`, and `register` its kind (or use the ``portal.providers`` entry-point group).
Names load on first use, so importing a submodule stays cheap. Docs: docs/providers.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Adapter": "portal.providers.base",
    "Capabilities": "portal.providers.base",
    "ProviderSettings": "portal.providers.base",
    "SSEDecoder": "portal.providers.sse",
    "SSEStreamParser": "portal.providers.base",
    "ServerSentEvent": "portal.providers.sse",
    "StreamParser": "portal.providers.base",
    "ToolCallAssembler": "portal.providers.base",
    "WireReply": "portal.wire",
    "WireRequest": "portal.wire",
    "error_class_for_status": "portal.providers.base",
    "known_kinds": "portal.providers.registry",
    "parse_retry_after": "portal.providers.base",
    "register": "portal.providers.registry",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.providers.base import Adapter as Adapter
    from portal.providers.base import Capabilities as Capabilities
    from portal.providers.base import ProviderSettings as ProviderSettings
    from portal.providers.base import SSEStreamParser as SSEStreamParser
    from portal.providers.base import StreamParser as StreamParser
    from portal.providers.base import ToolCallAssembler as ToolCallAssembler
    from portal.providers.base import error_class_for_status as error_class_for_status
    from portal.providers.base import parse_retry_after as parse_retry_after
    from portal.providers.registry import known_kinds as known_kinds
    from portal.providers.registry import register as register
    from portal.providers.sse import ServerSentEvent as ServerSentEvent
    from portal.providers.sse import SSEDecoder as SSEDecoder
    from portal.wire import WireReply as WireReply
    from portal.wire import WireRequest as WireRequest
