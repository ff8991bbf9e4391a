"""The effects a call's sans-IO flow asks its driver to perform.

A flow is a generator: it yields an effect, the driver performs it and sends the answer back
(``flow.send``), or throws the failure into it (``flow.throw``: a transport error, a cut
stream, a failed retriever). `portal.engine.drivers` holds one small driver per I/O style
(sync, async), so the retry, failover, canary, streaming and metering logic exists once.

Each effect says what its driver answers with. Effects sit at the bottom of the stack (they
import only the wire types and the contracts), so the flows (routing) and the layers around
a call (safety, RAG) both yield them without importing each other.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from portal.contracts.messages import ToolCall
from portal.contracts.responses import StreamEvent
from portal.errors import ProviderTimeout
from portal.wire import WireReply, WireRequest

__all__ = [
    "CloseStream",
    "Effect",
    "Emit",
    "Flow",
    "HedgeLost",
    "OpenStream",
    "Race",
    "RaceLost",
    "ReadChunk",
    "Retrieve",
    "RunTools",
    "Send",
    "Sleep",
    "StreamRace",
    "Take",
    "WireReply",
]

T = TypeVar("T")


@dataclass(slots=True)
class Send:
    """Send ``request`` to provider ``provider``. Answer: a `WireReply` (body read, any
    status), or an `OpenStream` when ``stream`` and the status is below 400. A transport
    failure (timeout, refused connection, a body over the size cap) is thrown in as a
    `ProviderError`.

    Times are `time.perf_counter` readings. The driver fails the send with `ProviderTimeout`
    when the status and headers have not all arrived by ``first_byte_by``, or (not streamed)
    the body by ``deadline``, however the bytes trickle in; ``timeout_s`` bounds each socket
    operation, ``connect_s`` a new connection's setup."""

    provider: str
    request: WireRequest
    timeout_s: float
    stream: bool = False
    deadline: float | None = None
    first_byte_by: float | None = None
    connect_s: float | None = None


@dataclass(slots=True)
class OpenStream:
    """A streamed reply whose body is read with `ReadChunk`."""

    status: int
    headers: dict[str, str]


@dataclass(slots=True)
class ReadChunk:
    """Answer: the next bytes of the open stream, ``b""`` at its end. A broken connection is
    thrown in as a `ProviderError`; so is a `ProviderTimeout` when nothing came within
    ``stall_s`` or the read would end after ``until`` (a `time.perf_counter` reading)."""

    until: float | None = None
    stall_s: float | None = None


@dataclass(slots=True)
class CloseStream:
    """Release the open stream's connection. Answer: None."""


@dataclass(slots=True)
class Sleep:
    """Wait ``seconds`` (a retry's back-off). Answer: None."""

    seconds: float


@dataclass(slots=True)
class Take:
    """Take ``dims`` from the committed-throughput bucket ``key`` (atomic: all or nothing).
    Answer: True (taken) or False (short: the flow overflows to the next target). An effect,
    so the async driver can wait on shared state without blocking its event loop."""

    key: str
    dims: list[tuple[str, float, float, float]]


@dataclass(slots=True)
class Emit:
    """Hand a stream event to the caller (only stream flows emit). Answer: None."""

    event: StreamEvent


@dataclass(slots=True)
class RunTools:
    """Run tool calls (concurrently when the driver can). Answer: one result or exception per
    call, in order (a tool's failure goes back to the model, so it is a value here)."""

    calls: list[ToolCall]
    functions: dict[str, Any]
    timeout_s: float | None


@dataclass(slots=True)
class Retrieve:
    """RAG: fetch documents for ``query`` (the sync driver calls ``retriever.retrieve``, the
    async one awaits ``retriever.aretrieve``). Answer: the list; a failure is thrown in."""

    retriever: Any
    query: str
    k: int
    #: the call's deadline (a `time.perf_counter` reading): a retriever still running then
    #: fails the call with `late`
    until: float | None = None

    def late(self) -> ProviderTimeout:
        """The error of a retriever still running at the call's deadline."""
        return ProviderTimeout(
            f"the call's deadline passed while the retriever {self.retriever!r} was still "
            "running; raise timeout_s or make the retriever faster"
        )


@dataclass(slots=True)
class Race:
    """Hedging: start ``flows[0]`` now and each next one ``after_s`` later unless one has
    finished; the first to return wins, the others are cancelled. Answer: (index of the
    winner, its result), or a `RaceLost` with every lane's exception when all raised."""

    flows: list[Flow[Any]]
    after_s: float


@dataclass(slots=True)
class StreamRace:
    """Stream hedging (AsyncClient): start ``flows[0]`` now and each next one ``after_s``
    later unless a lane already streams; the first lane to emit an event wins, the others
    are cancelled before anything of theirs reaches the caller. The driver then passes the
    winner's events on and answers (index of the winner, its result), throws in the
    winner's failure, or answers a `RaceLost` when every lane failed before streaming.
    ``won[i]`` gets an item once lane ``i`` won (so a winner its caller abandons later is
    recorded as cancelled, not as a lost hedge)."""

    flows: list[Flow[Any]]
    after_s: float
    won: list[list[bool]] = field(default_factory=list)


@dataclass(slots=True)
class RaceLost:
    errors: list[BaseException]


class HedgeLost(BaseException):
    """Thrown into a hedge lane's flow when another lane won (recorded as ``hedge_lost``)."""


Effect: TypeAlias = (
    Send | ReadChunk | CloseStream | Sleep | Take | Emit | RunTools | Retrieve | Race | StreamRace
)
"""Everything a flow may yield."""

Flow: TypeAlias = Generator[Effect, Any, T]
"""A sans-IO flow returning ``T``: yields effects, is sent their answers."""
