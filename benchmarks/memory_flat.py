"""Is portal's memory flat over many calls? (issue 6, target 6: within 5% after warm-up.)

Runs N calls (default 100,000) through `AsyncClient.chat` with the benchmark's feature,
contract and SQLite ledger, and prints resident memory after the warm-up and every 10% after.
The vendor is an in-process `httpx2.MockTransport` answering the same JSON the mock server
sends: 100,000 calls over loopback sockets take minutes on 2 cores, while everything portal
keeps per call (routing state, meter summaries, ledger queue, caches) is exercised the same
way without sockets. Exit status 1 when the growth after warm-up exceeds ``--limit``.

    python benchmarks/memory_flat.py [--calls 100000] [--warmup 10000] [--limit 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients
import httpx2

import portal


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reply_body() -> bytes:
    content = json.dumps({"answer": "Hello there!", "order_id": "123", "needs_human": False})
    return json.dumps(
        {
            "id": "chatcmpl-mem",
            "object": "chat.completion",
            "created": 1,
            "model": clients.MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        }
    ).encode()


async def run(calls: int, warmup: int, every: int) -> list[tuple[int, float]]:
    body = reply_body()
    n = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal n
        n += 1
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    env = clients.Env("http://127.0.0.1:9", "http://127.0.0.1:9", 1, 16)
    client = portal.AsyncClient(
        clients._portal_config(env),
        ledger=clients._portal_ledger(),
        transports={"bench": httpx2.MockTransport(handler)},
    )
    points: list[tuple[int, float]] = []
    try:
        for i in range(1, calls + 1):
            r = await client.chat(
                feature="bench.answer", input=clients.QUESTION, max_tokens=clients.MAX_TOKENS
            )
            if r.output["answer"] != "Hello there!":
                raise SystemExit(f"call {i}: unexpected output {r.output!r}")
            if i == warmup or (i > warmup and (i - warmup) % every == 0):
                assert client.meter.ledger is not None
                client.meter.ledger.flush()  # what is queued is not a leak: write it first
                gc.collect()
                points.append((i, rss_mb()))
    finally:
        await client.aclose()
    assert n == calls
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=0.05)
    args = parser.parse_args()
    every = max(1, (args.calls - args.warmup) // 10)
    started = time.perf_counter()
    points = asyncio.run(run(args.calls, args.warmup, every))
    base = points[0][1]
    for i, mb in points:
        print(f"after {i:>7,} calls: RSS {mb:6.1f} MB ({(mb - base) / base:+.1%})")
    growth = (points[-1][1] - base) / base
    peak = (max(mb for _, mb in points) - base) / base
    print(
        f"growth after warm-up: {growth:+.1%} at the end, {peak:+.1%} at most "
        f"(limit {args.limit:.0%}); {args.calls:,} calls in {time.perf_counter() - started:.0f} s"
    )
    return 0 if peak <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
