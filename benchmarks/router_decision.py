"""How long the router's per-call decision takes with the default in-memory state.

The decision is what every call pays before its first byte: the canary arm (sticky hash of
the key), the ordered targets (strategy), the breaker check of the first target and its
committed-throughput bucket. Budget: under 20 µs per call. Prints the median of 25 rounds
of 2,000 calls each (median per call, in µs) for a plain feature and for a feature with a
canary, fallbacks, a breaker config and a throughput commitment.

    .venv/bin/python benchmarks/router_decision.py
"""

from __future__ import annotations

import statistics
import time

from portal.config import load_config
from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest
from portal.routing.control import RouteControl
from portal.routing.flow import Call
from portal.routing.router import AdapterPool, Router
from portal.routing.state import MemoryState

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {
        "a": {"kind": "sim", "throughput": {"requests_per_min": 1e9}},
        "b": {"kind": "sim", "breaker": {"consecutive_failures": 3}},
        "c": {"kind": "sim"},
    },
    "features": {
        "plain": {"primary": "a:m1"},
        "full": {
            "primary": "a:m1",
            "fallbacks": ["b:m2", "c:m3"],
            "canary": {"target": "c:m4", "percent": 5, "ramp": [5, 25, 50]},
        },
    },
}


def decide(control: RouteControl, router: Router, feature: str, key: str, req: ChatRequest) -> None:
    route = router.route(feature, key, None)
    call = Call("chat", route, req, key=key)
    first = control.plan(call)[0]
    if control.allow(first, call):
        take = control.take(first, call)
        if take is not None:
            control.state.take(take.key, take.dims)


def main(rounds: int = 25, per_round: int = 2000) -> None:
    cfg = load_config(CONFIG)
    state = MemoryState()
    router = Router(cfg, AdapterPool(cfg), state)
    control = RouteControl(cfg, router)
    req = ChatRequest(messages=[Message("user", "hello")])
    keys = [f"user-{i}" for i in range(per_round)]
    for feature in ("plain", "full"):
        for k in keys[:200]:  # warm caches (adapters, chains, policies)
            decide(control, router, feature, k, req)
        medians = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for k in keys:
                decide(control, router, feature, k, req)
            medians.append((time.perf_counter() - t0) / per_round * 1e6)
        print(
            f"{feature:>6}: median {statistics.median(medians):.2f} µs/call "
            f"(min {min(medians):.2f}, max {max(medians):.2f}) over {rounds}x{per_round} calls"
        )


if __name__ == "__main__":
    main()
