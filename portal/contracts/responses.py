"""What a call returns: the normalized `Response`, its `Usage`, per-attempt records, stream
events and embeddings.

These are plain slotted dataclasses, not pydantic models: they are built on the hot path of
every call from data the adapters already checked, so validation would only cost time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from portal.contracts.messages import Message, ToolCall

__all__ = [
    "FINISH_REASONS",
    "Attempt",
    "Embedding",
    "EmbedResponse",
    "FinishReason",
    "Response",
    "StreamEvent",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "tool_calls", "content_filter", "error")


@dataclass(slots=True)
class Usage:
    """Tokens of one reply. ``input_tokens`` includes cached ones; the cached share is
    ``cached_input_tokens`` (cache reads) and ``cache_write_tokens`` (cache writes, of which
    ``cache_write_1h_tokens`` went to a 1-hour cache), so cost code never counts a token
    twice. ``estimated`` is True when portal counted them itself. ``service_tier`` is the tier
    the vendor says served the reply ("priority", "flex", "batch"; None = standard),
    ``reported_cost_usd`` a cost the vendor or gateway returned with it, and
    ``cache_storage_token_hours`` the tokens times hours of an explicit cache the call
    created (Gemini bills their storage by the hour)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_1h_tokens: int = 0
    service_tier: str | None = None
    reported_cost_usd: float | None = None
    cache_storage_token_hours: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        reported = (
            None
            if self.reported_cost_usd is None or other.reported_cost_usd is None
            else self.reported_cost_usd + other.reported_cost_usd
        )
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.service_tier if self.service_tier == other.service_tier else None,
            reported,
            self.cache_storage_token_hours + other.cache_storage_token_hours,
        )


Outcome = Literal["ok", "error", "cancelled", "hedge_lost", "invalid_output"]


@dataclass(slots=True)
class Attempt:
    """One try against one target: retries, failovers and hedge losers each get one."""

    target: str
    outcome: Outcome
    latency_ms: float
    number: int = 1
    error: str | None = None  # error class name
    status: int | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    request_id: str | None = None
    #: why this attempt went to a target that does not hold the call's cached prompt prefix
    #: while another one does: "failover", "hedge" or "route" (None: no loss expected)
    cache_miss_expected: str | None = None


OutputT = TypeVar("OutputT")


@dataclass(slots=True)
class Response(Generic[OutputT]):
    """The normalized reply of a chat call, whatever vendor served it. Generic in
    ``output``: ``client.chat(..., output=Answer)`` returns a ``Response[Answer]``."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    raw_finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None  # the model the vendor says answered
    request_id: str | None = None
    #: the validated structured output (an instance of ``output=``'s model), else None
    output: OutputT = None  # type: ignore[assignment]
    cost_usd: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    target: str | None = None
    arm: str = "baseline"
    feature: str | None = None
    #: the call's id in the ledger; give it to ``client.feedback`` to score this answer
    call_id: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    #: targets of the route left out before the first attempt because they cannot serve this
    #: call (its output schema or tools), each with why
    skipped: dict[str, str] = field(default_factory=dict)
    provider_details: dict[str, Any] = field(default_factory=dict)
    citations: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # transcript of a tool loop
    #: the model's visible reasoning (thinking text or summaries) when the vendor returns it;
    #: never part of ``text``. Blocks joined by a blank line.
    reasoning: str = ""

    def to_message(self) -> Message:
        """The assistant turn to append when continuing the conversation."""
        return Message("assistant", self.text or None, list(self.tool_calls) or None)


EventType = Literal["text", "reasoning", "tool_call", "tool_result", "usage", "done"]


@dataclass(slots=True)
class StreamEvent:
    """One normalized stream event.

    - "text": ``text`` is a piece of the answer.
    - "reasoning": ``text`` is a piece of the model's visible reasoning, as it streams (never
      part of the answer).
    - "tool_call": ``tool_call`` is complete, its arguments assembled.
    - "tool_result": a streamed tool loop ran ``tool_call``; ``text`` went back to the model.
    - "usage": ``usage`` so far. "done": ``response`` is the final reply.
    """

    type: EventType
    text: str = ""
    tool_call: ToolCall | None = None
    usage: Usage | None = None
    response: Response[Any] | None = None


@dataclass(slots=True)
class Embedding:
    index: int
    vector: list[float]


@dataclass(slots=True)
class EmbedResponse:
    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0
    target: str | None = None
    feature: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
