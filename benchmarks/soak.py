"""Soak: many concurrent chat and stream calls through `portal.AsyncClient` (router, retries,
failover, breakers, SQLite ledger) against two local mock vendors that inject errors and
latency, for a fixed duration. Afterwards it checks what a long-running app relies on:

- no exception other than the documented ones (`ProviderError` subclasses, `AllTargetsFailed`);
- no leaked asyncio tasks, file descriptors or sockets (``/proc/self/fd``, after ``aclose``);
- memory flat after warm-up: RSS at the end of the warm-up and at the end of the run, and
  tracemalloc's size of what was allocated after the warm-up and is still alive at the end;
- the ledger holds exactly one call row per call made (flushed on close).

The mock vendors are `benchmarks/mock_server.py` processes (OpenAI wire format on one,
Anthropic on the other), so the server never competes with the client's event loop.

Run: ``python benchmarks/soak.py --duration 300 --concurrency 1000`` (prints JSON).
The test suite runs a short version (tests/reliability/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import portal  # noqa: E402
from portal.metering.ledger import read_records  # noqa: E402

MOCK_SERVER = HERE / "mock_server.py"
#: what a caller may see from portal under vendor faults; anything else is a defect
DOCUMENTED = (portal.ProviderError, portal.AllTargetsFailed)


@dataclass
class SoakResult:
    duration_s: float
    concurrency: int
    calls: int
    streams: int
    ok: int
    errors: dict[str, int]
    unexpected: list[str]
    calls_per_s: float
    fds_before: int
    fds_after: int
    sockets_before: int
    sockets_after: int
    tasks_after: int
    rss_warm_mb: float
    rss_end_mb: float
    traced_growth_mb: float
    ledger_calls: int
    ledger_attempts: int
    attempt_outcomes: dict[str, int] = field(default_factory=dict)
    #: where the memory still alive at the end was allocated (tracemalloc, top lines)
    top_growth: list[str] = field(default_factory=list)


def _fds() -> tuple[int, int]:
    fds = os.listdir("/proc/self/fd")
    socks = 0
    for fd in fds:
        try:
            socks += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return len(fds), socks


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def start_mock(*flags: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(MOCK_SERVER), "--port", "0", "--exit-on-stdin-eof", *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"mock server did not start: {line!r}")
    return proc, int(line)


def stop_mock(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def soak_config(openai_port: int, anthropic_port: int) -> dict[str, Any]:
    """Two vendors behind one feature: OpenAI wire primary, Anthropic wire fallback; short
    retry waits and breaker cool-downs so faults exercise every routing path quickly."""
    breaker = {"consecutive_failures": 5, "cooldown_s": 0.5, "min_calls": 20, "window_s": 5}
    return {
        "providers": {
            "a": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{openai_port}/v1",
                "api_key": "sk-soak-a",
                "timeout_s": 5,
                "breaker": breaker,
            },
            "b": {
                "kind": "anthropic",
                "base_url": f"http://127.0.0.1:{anthropic_port}/v1",
                "api_key": "sk-soak-b",
                "timeout_s": 5,
                "breaker": breaker,
            },
        },
        "features": {
            "soak": {
                "primary": "a:gpt-4o-mini",
                "fallbacks": ["b:claude-haiku-4-5"],
                "retry": {"attempts": 2, "base_wait_s": 0.001, "max_wait_s": 0.01},
                "timeout_s": 10,
            }
        },
    }


async def _one(client: portal.AsyncClient, stream: bool, i: int) -> str:
    msgs = [portal.user(f"soak call {i}: where is my order?")]
    key = f"user-{i % 97}"
    if stream:
        n = 0
        async for ev in client.stream(feature="soak", messages=msgs, key=key):
            n += ev.type == "text"
        return "ok"
    resp = await client.chat(feature="soak", messages=msgs, key=key)
    assert resp.text
    return "ok"


async def _run(
    client: portal.AsyncClient,
    until: float,
    concurrency: int,
    stream_share: float,
    stats: Counter[str],
    unexpected: list[str],
    seed: int,
) -> None:
    rnd = random.Random(seed)
    counter = [0]

    async def worker() -> None:
        while time.monotonic() < until:
            i = counter[0]
            counter[0] += 1
            stream = rnd.random() < stream_share
            stats["streams" if stream else "chats"] += 1
            try:
                stats[await _one(client, stream, i)] += 1
            except DOCUMENTED as exc:
                stats[f"error:{type(exc).__name__}"] += 1
            except Exception as exc:  # a defect: keep the first few for the report
                stats["unexpected"] += 1
                if len(unexpected) < 20:
                    unexpected.append(f"{type(exc).__name__}: {exc}"[:300])

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


async def soak(
    duration_s: float,
    concurrency: int,
    *,
    stream_share: float = 0.4,
    warmup_s: float = 3.0,
    error_rate: float = 0.05,
    latency: str = "uniform:1:30",
    ledger_dir: str | None = None,
    seed: int = 7,
) -> SoakResult:
    procs = []
    try:
        pa, port_a = start_mock(
            "--error-rate",
            str(error_rate),
            "--error-status",
            "503",
            "--latency-ms",
            latency,
            "--chunks",
            "8",
            "--chunk-interval-ms",
            "uniform:0:3",
        )
        procs.append(pa)
        pb, port_b = start_mock(
            "--error-rate",
            str(error_rate / 2),
            "--error-status",
            "429",
            "--retry-after",
            "0",
            "--latency-ms",
            latency,
            "--chunks",
            "8",
        )
        procs.append(pb)
        tmp = ledger_dir or tempfile.mkdtemp(prefix="portal-soak-")
        url = f"sqlite:///{Path(tmp) / 'soak.db'}"
        gc.collect()
        fds_before, socks_before = _fds()
        stats: Counter[str] = Counter()
        unexpected: list[str] = []
        client = portal.AsyncClient(soak_config(port_a, port_b), ledger=url)
        try:
            await _run(
                client,
                time.monotonic() + warmup_s,
                concurrency,
                stream_share,
                stats,
                unexpected,
                seed,
            )
            gc.collect()
            tracemalloc.start(1)  # traces what is allocated from here on and still alive
            rss_warm = _rss_mb()
            warm_snapshot = tracemalloc.take_snapshot()
            t0 = time.monotonic()
            await _run(
                client, t0 + duration_s, concurrency, stream_share, stats, unexpected, seed + 1
            )
            elapsed = time.monotonic() - t0
            gc.collect()
            rss_end, traced = _rss_mb(), tracemalloc.get_traced_memory()[0] / 2**20
            growth = tracemalloc.take_snapshot().compare_to(warm_snapshot, "lineno")[:8]
            tracemalloc.stop()
        finally:
            await client.aclose()
        gc.collect()
        await asyncio.sleep(0.05)  # let closed transports finish their callbacks
        fds_after, socks_after = _fds()
        tasks_after = len(asyncio.all_tasks()) - 1
        records = read_records(url)
    finally:
        for proc in procs:
            stop_mock(proc)
    calls = stats["chats"] + stats["streams"]
    attempts = [r for r in records if r.kind == "attempt"]
    return SoakResult(
        duration_s=round(elapsed, 2),
        concurrency=concurrency,
        calls=calls,
        streams=stats["streams"],
        ok=stats["ok"],
        errors={k[6:]: v for k, v in stats.items() if k.startswith("error:")},
        unexpected=unexpected,
        calls_per_s=round(calls / (elapsed + warmup_s), 1),
        fds_before=fds_before,
        fds_after=fds_after,
        sockets_before=socks_before,
        sockets_after=socks_after,
        tasks_after=tasks_after,
        rss_warm_mb=round(rss_warm, 1),
        rss_end_mb=round(rss_end, 1),
        traced_growth_mb=round(traced, 2),
        ledger_calls=sum(r.kind == "call" for r in records),
        ledger_attempts=len(attempts),
        attempt_outcomes=dict(Counter(r.outcome for r in attempts)),
        top_growth=[str(stat) for stat in growth],
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds after warm-up")
    p.add_argument("--concurrency", type=int, default=1000, help="calls in flight")
    p.add_argument("--stream-share", type=float, default=0.4)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--error-rate", type=float, default=0.05)
    p.add_argument("--latency-ms", default="uniform:1:30")
    args = p.parse_args()
    result = anyio.run(
        lambda: soak(
            args.duration,
            args.concurrency,
            stream_share=args.stream_share,
            warmup_s=args.warmup,
            error_rate=args.error_rate,
            latency=args.latency_ms,
        )
    )
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
