"""A reply's visible reasoning and the vendor data a turn carries back when it is replayed.

Several vendors return reasoning in blocks (some of them signed) that must come back,
unchanged and in place, when the conversation continues; these helpers collect the blocks
while parsing and put them back when a request replays the turn, keyed by vendor so one
vendor's data never reaches another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from portal.contracts.messages import ToolCall

__all__ = ["ReasoningBlocks", "carried", "carry", "join_reasoning", "replayed_turn"]


def join_reasoning(blocks: Iterable[str]) -> str:
    """``Response.reasoning`` from its blocks: the non-empty ones, joined by a blank line."""
    return "\n\n".join(b for b in blocks if b)


class ReasoningBlocks:
    """A reply's visible reasoning, in blocks, as it is parsed or streamed: pieces extend the
    open block (a stream splits one block into pieces) until the parser closes it (answer
    text, a tool call, another item came between). ``pieces`` keeps every piece in arrival
    order; `joined` is ``Response.reasoning``."""

    __slots__ = ("blocks", "open", "pieces")

    def __init__(self) -> None:
        self.blocks: list[list[str]] = []
        self.pieces: list[str] = []
        self.open = False

    def add(self, piece: str) -> None:
        if not piece:
            return
        if self.open:
            self.blocks[-1].append(piece)
        else:
            self.blocks.append([piece])
            self.open = True
        self.pieces.append(piece)

    def close(self) -> None:
        self.open = False

    def joined(self) -> str:
        return join_reasoning("".join(block) for block in self.blocks)


def carried(call: ToolCall, vendor: str, field: str) -> list[dict[str, Any]]:
    """What ``call`` carries for ``vendor`` to replay (``provider_data[vendor][field]``, e.g.
    the signed reasoning that came before it); empty for a call from elsewhere, so one
    vendor's data never reaches another."""
    data = (call.provider_data or {}).get(vendor)
    blocks = data.get(field) if isinstance(data, Mapping) else None
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def carry(call: ToolCall, vendor: str, field: str, blocks: list[dict[str, Any]]) -> None:
    """Put ``blocks`` (if any) on ``call`` for `carried` to find when the turn is replayed."""
    if blocks:
        call.provider_data = {**(call.provider_data or {}), vendor: {field: blocks}}


def replayed_turn(
    blocks: list[dict[str, Any]],
    calls: Sequence[ToolCall],
    before: Callable[[ToolCall], list[dict[str, Any]]],
    map_call: Callable[[ToolCall], dict[str, Any]],
) -> list[dict[str, Any]]:
    """An assistant turn's content for a request: its ``blocks`` (text, images) and its calls,
    each call's ``before`` blocks (signed reasoning) where they came in the reply: the first
    call's at the very start (the turn begins with its reasoning), a later call's right
    before it."""
    out = list(blocks)
    for n, call in enumerate(calls):
        if n == 0:
            out[:0] = before(call)
        else:
            out.extend(before(call))
        out.append(map_call(call))
    return out
