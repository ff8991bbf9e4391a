"""Tail latency under the faults portal's routing exists for, on loopback vendors.

Two OpenAI-format vendors on 127.0.0.1 (a thread per connection): ``slow`` misbehaves,
``fast`` answers in about 20 ms. Scenarios:

- ``hang``: ``slow`` accepts every request and never answers. A feature with a 3 s deadline
  fails over to ``fast``: the share of calls served within the deadline, and latency
  percentiles, on both clients (the deadline keeps a slice for the fallback).
- ``first_token``: streams; ``slow`` sends its first token after 2 s on 30% of requests
  (100 ms otherwise). Time to first token, without help, with ``first_token_timeout_s``,
  and with stream hedging (AsyncClient), plus the tokens billed by lost hedges.

    python benchmarks/tail_latency.py [--calls 200] [--json out.json]

Not a test: it prints a table; docs/routing.md quotes a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import socketserver
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import portal

DEADLINE_S = 3.0
SLA_TTFT_MS = 800.0
MSG = [portal.user("Where is my order 123?")]


def _json_reply() -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
    return json.dumps(body).encode()


def _sse(text: str) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


_SSE_END = (
    "data: "
    + json.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        }
    )
    + "\n\ndata: [DONE]\n\n"
).encode()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 512  # the listen backlog: calls arrive 20 at a time


class Vendors:
    """``/<mode>/v1/chat/completions`` on one loopback port; modes ``fast``, ``hang``,
    ``first_token`` (30% of streams start after 2 s)."""

    def __init__(self, seed: int = 7) -> None:
        self.stop = threading.Event()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.serve(self.request)

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{mode}/v1"

    def serve(self, sock: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                return
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        length = next(
            (
                int(v)
                for k, _, v in (ln.partition(":") for ln in lines[1:])
                if k.lower() == "content-length"
            ),
            0,
        )
        while len(body) < length:
            body += sock.recv(65536)
        mode = path.strip("/").split("/")[0]
        stream = b'"stream":true' in body.replace(b" ", b"")
        try:
            if mode == "hang":
                self.stop.wait(60)
                return
            if not stream:
                time.sleep(0.02)
                reply = _json_reply()
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    + f"content-length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                return
            with self.lock:
                slow = mode == "first_token" and self.rng.random() < 0.3
            sock.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            )
            if self.stop.wait(2.0 if slow else 0.1):
                return
            for i in range(8):
                sock.sendall(_sse(f"word{i} "))
                time.sleep(0.01)
            sock.sendall(_SSE_END)
        except OSError:
            return  # the client gave up on it

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _config(
    vendors: Vendors, slow_mode: str, feature: dict[str, Any], ledger: str
) -> dict[str, Any]:
    return {
        "portal": {"ledger": ledger},
        "providers": {
            "slow": {"kind": "openai", "api_key": "sk-bench", "base_url": vendors.url(slow_mode)},
            "fast": {"kind": "openai", "api_key": "sk-bench", "base_url": vendors.url("fast")},
        },
        "features": {"f": {"primary": "slow:m", "fallbacks": ["fast:m"], **feature}},
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ----------------------------------------------------------------------------------- hang


def hang(vendors: Vendors, calls: int) -> list[dict[str, Any]]:
    feature = {"timeout_s": DEADLINE_S, "retry": {"attempts": 1}}
    cfg = _config(vendors, "hang", feature, "none")
    rows = []

    def summary(client: str, took: list[float], served: int, waited: int) -> dict[str, Any]:
        return {
            "scenario": "hang",
            "client": client,
            "calls": len(took),
            "served_within_deadline": served / len(took),
            "waited_for_the_hanging_target": waited,
            "p50_ms": statistics.median(took) * 1000,
            "p99_ms": _pct(took, 0.99) * 1000,
            "max_ms": max(took) * 1000,
        }

    # sync: 8 threads
    sync_client = portal.Client(cfg)
    took: list[float] = []
    served = waited = 0

    def one_sync() -> tuple[float, bool, bool]:
        t0 = time.perf_counter()
        try:
            resp = sync_client.chat(feature="f", messages=MSG)
        except portal.PortalError:
            return time.perf_counter() - t0, False, True
        elapsed = time.perf_counter() - t0
        return elapsed, elapsed <= DEADLINE_S, any(a.target == "slow:m" for a in resp.attempts)

    with ThreadPoolExecutor(8) as pool:
        for elapsed, ok, tried in pool.map(lambda _: one_sync(), range(calls)):
            took.append(elapsed)
            served += ok
            waited += tried
    sync_client.close()
    rows.append(summary("sync", took, served, waited))

    async def run_async() -> dict[str, Any]:
        took: list[float] = []
        served = waited = 0
        gate = asyncio.Semaphore(20)
        async with portal.AsyncClient(cfg) as client:

            async def one() -> None:
                nonlocal served, waited
                async with gate:
                    t0 = time.perf_counter()
                    try:
                        resp = await client.chat(feature="f", messages=MSG)
                    except portal.PortalError:
                        took.append(time.perf_counter() - t0)
                        return
                    elapsed = time.perf_counter() - t0
                    took.append(elapsed)
                    served += elapsed <= DEADLINE_S
                    waited += any(a.target == "slow:m" for a in resp.attempts)

            await asyncio.gather(*(one() for _ in range(calls)))
        return summary("async", took, served, waited)

    rows.append(asyncio.run(run_async()))
    return rows


# ---------------------------------------------------------------------------- first token


def first_token(vendors: Vendors, calls: int, tmp: Path) -> list[dict[str, Any]]:
    variants: dict[str, dict[str, Any]] = {
        "no help": {},
        "first_token_timeout_s = 0.6": {"first_token_timeout_s": 0.6},
        "hedge streams after 300 ms": {"hedge": {"after_ms": 300, "streams": True}},
    }
    rows = []
    for name, extra in variants.items():
        ledger = tmp / f"ledger-{len(rows)}.db"
        cfg = _config(
            vendors,
            "first_token",
            {"timeout_s": 10, "retry": {"attempts": 1}, **extra},
            f"sqlite:///{ledger}",
        )

        async def run(cfg: dict[str, Any] = cfg) -> tuple[list[float], int, int, int]:
            ttfts: list[float] = []
            lost = lost_tokens = 0
            gate = asyncio.Semaphore(20)
            async with portal.AsyncClient(cfg) as client:

                async def one() -> None:
                    nonlocal lost, lost_tokens
                    async with gate:
                        t0 = time.perf_counter()
                        first = None
                        async for ev in client.stream(feature="f", messages=MSG):
                            if ev.type == "text" and first is None:
                                first = time.perf_counter() - t0
                            if ev.type == "done":
                                for a in ev.response.attempts:
                                    if a.outcome == "hedge_lost":
                                        lost += 1
                                        lost_tokens += a.usage.total_tokens if a.usage else 0
                        ttfts.append(first if first is not None else float("inf"))

                await asyncio.gather(*(one() for _ in range(calls)))
            return ttfts, lost, lost_tokens, calls

        ttfts, lost, lost_tokens, n = asyncio.run(run())
        rows.append(
            {
                "scenario": "first_token",
                "variant": name,
                "calls": n,
                "ttft_p50_ms": statistics.median(ttfts) * 1000,
                "ttft_p99_ms": _pct(ttfts, 0.99) * 1000,
                "within_sla": sum(t * 1000 <= SLA_TTFT_MS for t in ttfts) / n,
                "lost_hedges": lost,
                "tokens_billed_by_lost_hedges": lost_tokens,
                # a vendor may bill a cancelled request's prompt: 12 tokens each here
                "prompt_tokens_if_billed": lost * 12,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import tempfile

    vendors = Vendors()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = hang(vendors, args.calls) + first_token(vendors, args.calls, Path(tmp))
    finally:
        vendors.close()
    for row in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
