"""portal: portable, reliable, metered LLM inference as an in-process library.

``import portal`` is kept light (no pydantic, httpx2 or tokenizer loaded until a name that
needs them is used): each public name below maps to the module that defines it, and is
imported on first access. `__all__` is the whole public surface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # clients
    "AsyncClient": "portal.client",
    "Client": "portal.client",
    # config
    "PortalConfig": "portal.config",
    "load_config": "portal.config",
    # contracts
    "Attempt": "portal.contracts.responses",
    "ChatRequest": "portal.contracts.request",
    "EmbedResponse": "portal.contracts.responses",
    "FinishReason": "portal.contracts.responses",
    "ImagePart": "portal.contracts.messages",
    "Message": "portal.contracts.messages",
    "OutputSpec": "portal.contracts.output",
    "Response": "portal.contracts.responses",
    "StreamEvent": "portal.contracts.responses",
    "TextPart": "portal.contracts.messages",
    "ToolCall": "portal.contracts.messages",
    "ToolSpec": "portal.contracts.tools",
    "Usage": "portal.contracts.responses",
    "assistant": "portal.contracts.messages",
    "system": "portal.contracts.messages",
    "tool": "portal.contracts.tools",
    "tool_result": "portal.contracts.messages",
    "user": "portal.contracts.messages",
    # errors
    "AllTargetsFailed": "portal.errors",
    "AuthenticationError": "portal.errors",
    "BadRequest": "portal.errors",
    "BudgetExceeded": "portal.errors",
    "ConfigError": "portal.errors",
    "ContentFiltered": "portal.errors",
    "ContextTooLong": "portal.errors",
    "ContractError": "portal.errors",
    "InvalidResponse": "portal.errors",
    "NotFound": "portal.errors",
    "Overloaded": "portal.errors",
    "PolicyViolation": "portal.errors",
    "PortalError": "portal.errors",
    "ProviderConnectionError": "portal.errors",
    "ProviderError": "portal.errors",
    "ProviderTimeout": "portal.errors",
    "RateLimited": "portal.errors",
    "ServerError": "portal.errors",
    "StreamInterrupted": "portal.errors",
    "ToolLoopExceeded": "portal.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'portal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from portal.client import AsyncClient, Client
    from portal.config import PortalConfig, load_config
    from portal.contracts.messages import (
        ImagePart,
        Message,
        TextPart,
        ToolCall,
        assistant,
        system,
        tool_result,
        user,
    )
    from portal.contracts.output import OutputSpec
    from portal.contracts.request import ChatRequest
    from portal.contracts.responses import (
        Attempt,
        EmbedResponse,
        FinishReason,
        Response,
        StreamEvent,
        Usage,
    )
    from portal.contracts.tools import ToolSpec, tool
    from portal.errors import (
        AllTargetsFailed,
        AuthenticationError,
        BadRequest,
        BudgetExceeded,
        ConfigError,
        ContentFiltered,
        ContextTooLong,
        ContractError,
        InvalidResponse,
        NotFound,
        Overloaded,
        PolicyViolation,
        PortalError,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeout,
        RateLimited,
        ServerError,
        StreamInterrupted,
        ToolLoopExceeded,
    )
