"""portal: portable, reliable, metered LLM inference as an in-process library.

``import portal`` is kept light (no pydantic, httpx2 or tokenizer loaded until a name that
needs them is used): each public name below maps to the module that defines it, and is
imported on first access. `__all__` is the whole public surface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from portal._version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    # clients
    "AsyncClient": "portal.client",
    "Client": "portal.client",
    # config
    "PortalConfig": "portal.config",
    "load_config": "portal.config",
    # contracts
    "Attempt": "portal.contracts.responses",
    "ChatArgs": "portal.contracts.request",
    "CacheHint": "portal.contracts.cache",
    "CacheTTL": "portal.contracts.cache",
    "ChatRequest": "portal.contracts.request",
    "EmbedArgs": "portal.contracts.request",
    "SamplingParams": "portal.contracts.request",
    "EmbedResponse": "portal.contracts.responses",
    "FinishReason": "portal.contracts.responses",
    "ImagePart": "portal.contracts.messages",
    "Message": "portal.contracts.messages",
    "OutputSpec": "portal.contracts.output",
    "Response": "portal.contracts.responses",
    "StreamEvent": "portal.contracts.responses",
    "TextPart": "portal.contracts.messages",
    "ToolCall": "portal.contracts.messages",
    "SchemaChange": "portal.contracts.tools",
    "ToolSpec": "portal.contracts.tools",
    "Usage": "portal.contracts.responses",
    "assistant": "portal.contracts.messages",
    "system": "portal.contracts.messages",
    "tool": "portal.contracts.tools",
    "tool_from_schema": "portal.contracts.tools",
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


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.client import (
        AsyncClient as AsyncClient,
    )
    from portal.client import (
        Client as Client,
    )
    from portal.config import (
        PortalConfig as PortalConfig,
    )
    from portal.config import (
        load_config as load_config,
    )
    from portal.contracts.cache import (
        CacheHint as CacheHint,
    )
    from portal.contracts.cache import (
        CacheTTL as CacheTTL,
    )
    from portal.contracts.messages import (
        ImagePart as ImagePart,
    )
    from portal.contracts.messages import (
        Message as Message,
    )
    from portal.contracts.messages import (
        TextPart as TextPart,
    )
    from portal.contracts.messages import (
        ToolCall as ToolCall,
    )
    from portal.contracts.messages import (
        assistant as assistant,
    )
    from portal.contracts.messages import (
        system as system,
    )
    from portal.contracts.messages import (
        tool_result as tool_result,
    )
    from portal.contracts.messages import (
        user as user,
    )
    from portal.contracts.output import (
        OutputSpec as OutputSpec,
    )
    from portal.contracts.request import (
        ChatArgs as ChatArgs,
    )
    from portal.contracts.request import (
        ChatRequest as ChatRequest,
    )
    from portal.contracts.request import (
        EmbedArgs as EmbedArgs,
    )
    from portal.contracts.request import (
        SamplingParams as SamplingParams,
    )
    from portal.contracts.responses import (
        Attempt as Attempt,
    )
    from portal.contracts.responses import (
        EmbedResponse as EmbedResponse,
    )
    from portal.contracts.responses import (
        FinishReason as FinishReason,
    )
    from portal.contracts.responses import (
        Response as Response,
    )
    from portal.contracts.responses import (
        StreamEvent as StreamEvent,
    )
    from portal.contracts.responses import (
        Usage as Usage,
    )
    from portal.contracts.tools import (
        SchemaChange as SchemaChange,
    )
    from portal.contracts.tools import (
        ToolSpec as ToolSpec,
    )
    from portal.contracts.tools import (
        tool as tool,
    )
    from portal.contracts.tools import (
        tool_from_schema as tool_from_schema,
    )
    from portal.errors import (
        AllTargetsFailed as AllTargetsFailed,
    )
    from portal.errors import (
        AuthenticationError as AuthenticationError,
    )
    from portal.errors import (
        BadRequest as BadRequest,
    )
    from portal.errors import (
        BudgetExceeded as BudgetExceeded,
    )
    from portal.errors import (
        ConfigError as ConfigError,
    )
    from portal.errors import (
        ContentFiltered as ContentFiltered,
    )
    from portal.errors import (
        ContextTooLong as ContextTooLong,
    )
    from portal.errors import (
        ContractError as ContractError,
    )
    from portal.errors import (
        InvalidResponse as InvalidResponse,
    )
    from portal.errors import (
        NotFound as NotFound,
    )
    from portal.errors import (
        Overloaded as Overloaded,
    )
    from portal.errors import (
        PolicyViolation as PolicyViolation,
    )
    from portal.errors import (
        PortalError as PortalError,
    )
    from portal.errors import (
        ProviderConnectionError as ProviderConnectionError,
    )
    from portal.errors import (
        ProviderError as ProviderError,
    )
    from portal.errors import (
        ProviderTimeout as ProviderTimeout,
    )
    from portal.errors import (
        RateLimited as RateLimited,
    )
    from portal.errors import (
        ServerError as ServerError,
    )
    from portal.errors import (
        StreamInterrupted as StreamInterrupted,
    )
    from portal.errors import (
        ToolLoopExceeded as ToolLoopExceeded,
    )
