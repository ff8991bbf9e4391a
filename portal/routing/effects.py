"""The effects a call's sans-IO flow asks its driver to perform.

A flow is a generator: it yields an effect, the driver performs it and sends the result
back. `Client` and `AsyncClient` are two small drivers of the same flows, so the retry,
failover, canary, streaming and metering logic exists once (STYLE.md, "Sync and async twins").
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from portal.contracts.messages import ToolCall
from portal.contracts.responses import StreamEvent
from portal.providers.base import WireReply, WireRequest

__all__ = [
    "CloseStream",
    "Emit",
    "Flow",
    "HedgeLost",
    "OpenStream",
    "ReadChunk",
    "Race",
    "RaceLost",
    "Retrieve",
    "RunTools",
    "Send",
    "Sleep",
    "Take",
    "WireReply",
]


@dataclass(slots=True)
class Send:
    """Send ``request`` to provider ``provider``. The driver answers with a `WireReply` (body
    read), an `OpenStream` (``stream=True`` and status < 400), or a `ProviderError` for a
    transport failure (timeout, refused connection)."""

    provider: str
    request: WireRequest
    timeout_s: float
    stream: bool = False


@dataclass(slots=True)
class OpenStream:
    """A streamed reply whose body is read with `ReadChunk`."""

    status: int
    headers: dict[str, str]


@dataclass(slots=True)
class ReadChunk:
    """Next bytes of the open stream: ``b""`` at its end, or a `ProviderError`."""


@dataclass(slots=True)
class CloseStream:
    """Release the open stream's connection."""


@dataclass(slots=True)
class Sleep:
    seconds: float


@dataclass(slots=True)
class Take:
    """Take ``dims`` from the committed-throughput bucket ``key`` (atomic: all or nothing).
    The driver answers True (taken) or False (short: the flow overflows to the next target).
    An effect, not a hook call, so the async client can wait on shared state without
    blocking its event loop."""

    key: str
    dims: list[tuple[str, float, float, float]]


@dataclass(slots=True)
class Emit:
    """Hand a stream event to the caller (only stream flows emit)."""

    event: StreamEvent


@dataclass(slots=True)
class RunTools:
    """Run tool calls (concurrently when the driver can); answer with one result or exception
    per call, in order."""

    calls: list[ToolCall]
    functions: dict[str, Any]
    timeout_s: float | None


@dataclass(slots=True)
class Retrieve:
    """RAG: fetch documents for ``query`` (the sync driver calls ``retriever.retrieve``, the
    async one awaits ``retriever.aretrieve``); answer with the list or the exception."""

    retriever: Any
    query: str
    k: int


@dataclass(slots=True)
class Race:
    """Hedging: start ``flows[0]`` now and each next one ``after_s`` later unless one has
    finished; the first to return wins, the others are cancelled. The driver answers with
    (index of the winner, its result); if all raise, with the list of their exceptions
    wrapped in a `RaceLost`."""

    flows: list[Flow]
    after_s: float


class HedgeLost(BaseException):
    """Thrown into a hedge lane's flow when another lane won (recorded as ``hedge_lost``)."""


@dataclass(slots=True)
class RaceLost:
    errors: list[BaseException]


Flow = Generator[Any, Any, Any]
