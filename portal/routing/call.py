"""`Call`: the state of one call as its flow runs (what was asked, where it may go, what
happened so far). Routing decisions read it; the flows update it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from random import getrandbits as _random_bits
from typing import Any

from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import Attempt
from portal.routing.router import Route

__all__ = ["Call", "Clock", "estimated_tokens", "new_call_id"]

Clock = Callable[[], float]


def new_call_id() -> str:
    """128 random bits as hex: an identifier, not a secret. `random` (reseeded after fork)
    instead of os.urandom, whose syscall releases the GIL on every call: with the ledger's
    writer thread waiting for it, that hand-off cost more than the id itself."""
    return f"{_random_bits(128):032x}"


@dataclass(slots=True)
class Call:
    """Per-call state: what was asked, where it may go, what happened so far."""

    operation: str  # chat | stream | embed
    route: Route
    request: ChatRequest | EmbedRequest
    key: str | None = None
    tenant: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    contract_version: str | None = None
    started: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    call_id: str = field(default_factory=new_call_id)
    attempts: list[Attempt] = field(default_factory=list)
    cost_usd: float | None = 0.0
    #: estimated tokens of one attempt (committed-throughput buckets), computed on demand
    estimated_tokens: int | None = None
    #: providers whose bucket this call took from and has not settled yet
    reserved: dict[str, int] = field(default_factory=dict)
    #: the budget reservation this call settles against (portal.metering.budgets), if any
    budget_hold: Any = None
    #: the user action this call is part of: a tool loop's steps share the first call's id
    action_id: str | None = None
    #: cache affinity (`RouteControl.plan`): the routing-state key of the marked prefix (None:
    #: no affinity), the target that last served it, whether it was planned first, and how
    #: long the vendor keeps it
    cache_key: str | None = None
    cache_holder: str | None = None
    cache_first: bool = False
    cache_ttl_s: float = 300.0

    def time_left(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now

    def add_cost(self, cost: float | None) -> None:
        if cost is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += cost


def estimated_tokens(call: Call) -> int:
    """Input tokens of one attempt (committed-throughput buckets, cheapest-first order),
    counted once per call."""
    if call.estimated_tokens is None:
        from portal.tokens import count_request

        call.estimated_tokens = (
            count_request(call.request).tokens
            if isinstance(call.request, ChatRequest)
            else sum(len(i) // 4 + 1 for i in call.request.inputs)
        )
    return call.estimated_tokens
