"""What the routing features cost per call, unused and used (docs/performance.md, "What the
features of this release cost when unused").

Two kinds of figures, both in one process with no network:

- micro-timings (``timeit``, best of 7): deadline planning per attempt, routing (route and
  plan) per feature kind, the servable check of a call's own ``output=``, the attempt's
  deadline scope in the async driver;
- ``AsyncClient.chat`` end to end over ``httpx2.MockTransport`` (three-target chains, no
  ledger), CPU per call in interleaved rounds, each feature against a plain one.

    python benchmarks/feature_costs.py [--rounds 9] [--calls 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

import httpx2

import portal
from portal.contracts.messages import Message
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest
from portal.engine.async_driver import _Within
from portal.engine.prepare import servable
from portal.routing.call import Call

PROVIDERS = {
    p: {"kind": "openai-compatible", "base_url": f"http://{p}.invalid/v1", "api_key": "k"}
    for p in ("a", "b", "c")
}
CHAIN: dict[str, Any] = {"primary": "a:m", "fallbacks": ["b:m", "c:m"]}
FEATURES: dict[str, dict[str, Any]] = {
    "plain": dict(CHAIN),
    "deadline": dict(CHAIN, timeout_s=30),
    "affinity": dict(CHAIN, cache_affinity=True),
    "canary": {"primary": "a:m", "fallbacks": ["b:m"], "canary": {"target": "c:m", "percent": 0}},
    "shadow": {
        "primary": "a:m",
        "fallbacks": ["b:m"],
        "canary": {"target": "c:m", "percent": 0, "shadow": 5},
    },
    "hedged": dict(CHAIN, hedge={"after_ms": 5000, "streams": True}),
}
REPLY = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


async def _nothing() -> None:
    return None


def _config() -> dict[str, Any]:
    return {"portal": {"ledger": "none"}, "providers": PROVIDERS, "features": FEATURES}


def _best(fn: Callable[[], Any], number: int = 20000) -> float:
    """µs per call, best of 7 repeats."""
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def micro() -> None:
    client = portal.AsyncClient(_config())
    control = client._core.control
    router = client.router
    first, second = router.adapters.target("a:m"), router.adapters.target("b:m")
    req = ChatRequest(messages=[Message("user", "hi")])

    call = Call(
        "chat", router.route("deadline", None, None), req, deadline=time.perf_counter() + 30
    )
    plain = Call("chat", router.route("plain", None, None), req)
    assert call.deadline is not None

    def planned() -> None:  # what `_routed` and `_attempt_until` add with a deadline
        left = call.time_left(time.perf_counter())
        assert left is not None
        control.too_slow(first, left)
        control.reserve(second, call.deadline - call.started)  # type: ignore[operator]

    def unplanned() -> None:
        plain.time_left(time.perf_counter())

    print(
        f"deadline planning, targets unmeasured: +{_best(planned) - _best(unplanned):.2f} µs/attempt"
    )
    for _ in range(256):
        control.stats.observe(first.id, random.uniform(100, 900))
        control.stats.observe(second.id, random.uniform(100, 900))

    def planned_and_observed() -> None:  # a sample per attempt: the sorted copy refreshes
        planned()
        control.stats.observe(first.id, 500.0)

    def observed() -> None:
        control.stats.observe(first.id, 500.0)

    extra = _best(planned_and_observed) - _best(observed)
    print(f"deadline planning, 256 samples per target: +{extra:.2f} µs/attempt")

    for name in FEATURES:

        def decide(name: str = name) -> None:
            control.plan(Call("chat", router.route(name, None, None), req))

        print(f"route + plan, feature {name!r}: {_best(decide):.2f} µs")
    marked = ChatRequest(messages=[Message("user", "hi", cache=True)])

    def decide_marked() -> None:
        control.plan(Call("chat", router.route("affinity", None, None), marked))

    print(
        f"route + plan, feature 'affinity', a call with a cache marker: {_best(decide_marked):.2f} µs"
    )

    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["answer", "n"],
        "additionalProperties": False,
    }
    own = ChatRequest(messages=[Message("user", "hi")], output=OutputSpec.of(schema))
    route = router.route("plain", None, None)
    cache: dict[tuple[Any, ...], str | None] = {}
    servable(route, own, "output=", cache)
    print(
        "servable check, output= over three targets: "
        f"{_best(lambda: servable(route, own, 'output=', cache)):.2f} µs/call"
    )
    asyncio.run(client.aclose())

    async def scopes(n: int = 50000) -> None:
        for label, ahead in (("no limit", None), ("a limit 60 s ahead", 60.0)):
            best = float("inf")
            for _ in range(5):
                t = time.process_time()
                for _ in range(n):
                    async with _Within(None if ahead is None else time.perf_counter() + ahead):
                        await _nothing()
                best = min(best, (time.process_time() - t) / n * 1e6)
            print(f"the async driver's deadline scope, {label}: {best:.2f} µs/use")

    asyncio.run(scopes())


def end_to_end(rounds: int, calls: int) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=REPLY, headers={"content-type": "application/json"})

    async def main() -> None:
        transports = {p: httpx2.MockTransport(handler) for p in PROVIDERS}
        client = portal.AsyncClient(_config(), transports=transports)
        msgs = [portal.user("hi")]

        async def run(feature: str, n: int) -> None:
            for _ in range(n):
                await client.chat(feature=feature, messages=msgs)

        names = list(FEATURES)
        for name in names:
            await run(name, 300)
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t = time.process_time()
                await run(name, calls)
                cpu[name].append((time.process_time() - t) / calls * 1e6)
        for name in names:
            ratio = statistics.median(a / b for a, b in zip(cpu[name], cpu["plain"], strict=True))
            print(
                f"AsyncClient.chat, feature {name!r}: {statistics.median(cpu[name]):.1f} µs/call, {ratio:.3f}x plain"
            )
        await client.aclose()

    asyncio.run(main())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=1500)
    args = p.parse_args()
    micro()
    end_to_end(args.rounds, args.calls)
