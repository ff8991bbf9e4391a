"""What sharing explicit cache names is worth: Vertex AI ``cachedContents`` created over
two replicas, with the names in a shared routing state and without.

A scripted Vertex AI (``httpx2.MockTransport``: ``projects.locations.cachedContents.create``
and ``generateContent`` with ``cachedContent``, answering after ``--latency-ms``) serves two
clients, replicas of one service. The workload: ``--prefixes`` documents, each marked
``cache="5m"`` and asked ``--calls-per-prefix`` different questions, shuffled and sent
alternately from the two clients. It runs three times: each client on its own in-memory
state (nothing shared), both on one in-memory state, and each on its own `RedisState` over
one Redis (``--redis``, a real fleet's setup). It reports how many caches were created
(each one is billed: its tokens at the input price, and its storage for the TTL) and how
many calls went without a cache (a replica whose copy of the state had not yet seen a name
another one had just created).

    PYTHONPATH=. .venv/bin/python benchmarks/explicit_cache_names.py
    PYTHONPATH=. .venv/bin/python benchmarks/explicit_cache_names.py --latency-ms 0
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from typing import Any

import httpx2

import portal
from portal.routing.state import MemoryState, RedisState

MODEL = "gemini-2.5-flash"
PARENT = "projects/bench/locations/us-central1"
#: USD per 1M tokens (storage: per 1M tokens per hour)
PRICES = {"input": 0.30, "output": 2.50, "cached_input": 0.03, "cache_storage": 1.0}
DOC = "Clause {n}. The supplier delivers within ten days of the order. " * 300


class Vertex:
    """Creates caches and answers generateContent after ``latency_s``; counts both."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.created = 0
        self.uncached = 0
        self.cached = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if self.latency_s:
            time.sleep(self.latency_s)
        body = json.loads(request.content)
        if request.url.path.endswith("/cachedContents"):
            self.created += 1
            return httpx2.Response(
                200,
                json={
                    "name": f"projects/1/locations/us-central1/cachedContents/{self.created}",
                    "usageMetadata": {"totalTokenCount": 4000},
                },
            )
        if "cachedContent" in body:
            self.cached += 1
        else:
            self.uncached += 1
        usage = {"promptTokenCount": 4010, "candidatesTokenCount": 3, "totalTokenCount": 4013}
        if "cachedContent" in body:
            usage["cachedContentTokenCount"] = 4000
        reply = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Ten."}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": usage,
        }
        return httpx2.Response(200, json=reply)


def client(vendor: Vertex) -> portal.Client:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "gcp": {
                "kind": "vertex",
                "api_key": "token",
                "options": {"project": "bench", "location": "us-central1"},
                "prices": {MODEL: PRICES},
            }
        },
        "features": {"docs": {"primary": f"gcp:{MODEL}"}},
    }
    return portal.Client(cfg, transports={"gcp": httpx2.MockTransport(vendor)}, ledger=None)


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    vendor = Vertex(args.latency_ms / 1000.0)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    if mode == "redis":
        states: list[Any] = [RedisState(args.redis, prefix=prefix) for _ in range(2)]
    elif mode == "shared memory":
        one = MemoryState()
        states = [one, one]
    else:
        states = [MemoryState(), MemoryState()]
    clients = [client(vendor), client(vendor)]
    for c, state in zip(clients, states, strict=True):
        c._core.use_state(state)
    work = [(p, q) for p in range(args.prefixes) for q in range(args.calls_per_prefix)]
    random.Random(args.seed).shuffle(work)
    try:
        for n, (p, q) in enumerate(work):
            clients[n % 2].chat(
                feature="docs",
                messages=[
                    portal.user(DOC.format(n=p), cache="5m"),
                    portal.user(f"Question {q} about clause {p}?"),
                ],
            )
    finally:
        for c in clients:
            c.close()
        if mode == "redis":
            states[0].clear()
            for state in states:
                state.close()
    return {
        "state": mode,
        "calls": len(work),
        "caches created": vendor.created,
        "calls without a cache": vendor.uncached,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefixes", type=int, default=20)
    ap.add_argument("--calls-per-prefix", type=int, default=10)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    modes = ["per process", "shared memory"]
    try:
        import redis

        redis.Redis.from_url(args.redis, socket_timeout=0.5).ping()
        modes.append("redis")
    except Exception as exc:
        print(f"(no Redis at {args.redis}: {type(exc).__name__}; its run is skipped)")
    print(
        f"{args.prefixes} prefixes x {args.calls_per_prefix} calls, 2 clients, vendor latency "
        f"{args.latency_ms:g} ms"
    )
    print(f"{'state':<14} {'calls':>6} {'caches created':>15} {'calls without a cache':>22}")
    for mode in modes:
        r = run(mode, args)
        print(
            f"{r['state']:<14} {r['calls']:>6} {r['caches created']:>15} "
            f"{r['calls without a cache']:>22}"
        )


if __name__ == "__main__":
    main()
