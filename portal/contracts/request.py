"""What an adapter is asked to send: a vendor-neutral chat or embedding request."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from portal.contracts.messages import Message
from portal.contracts.output import OutputSpec
from portal.contracts.tools import ToolChoice, ToolSpec

__all__ = ["ChatRequest", "EmbedRequest"]


@dataclass(slots=True)
class ChatRequest:
    """A chat call after coercion. Adapters translate it; nothing here is vendor-specific
    except ``provider_options``, namespaced by provider kind (``{"anthropic": {...}}``)."""

    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    output: OutputSpec | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    stream: bool = False
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_messages(self, messages: list[Message]) -> ChatRequest:
        return replace(self, messages=messages)

    def options_for(self, kind: str) -> dict[str, Any]:
        """Vendor knobs for one provider kind, merged verbatim into its request body."""
        return self.provider_options.get(kind, {})


@dataclass(slots=True)
class EmbedRequest:
    inputs: list[str]
    dimensions: int | None = None
    input_type: str | None = None  # "query" | "document" for vendors that distinguish them
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_for(self, kind: str) -> dict[str, Any]:
        return self.provider_options.get(kind, {})
