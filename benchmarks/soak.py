"""Soak: many concurrent chat and stream calls through `portal.AsyncClient` (router, retries,
failover, breakers, SQLite ledger) against two local mock vendors that inject errors and
latency, for a fixed duration. Afterwards it checks what a long-running app relies on:

- no exception other than the documented ones (`ProviderError` subclasses, `AllTargetsFailed`);
- no leaked asyncio tasks, file descriptors or sockets (``/proc/self/fd``, after ``aclose``);
- memory flat after warm-up: tracemalloc runs from the start of the warm-up, and the run is
  cut into ``checkpoints`` phases; between phases every call has finished (nothing in
  flight), so a checkpoint's traced size is what the client keeps, not what calls hold. The
  traced size at the end is compared with the one after warm-up (a leak grows it with every
  call), and RSS over the second half (pymalloc arenas and the C allocator keep their peak:
  RSS rises to a high-water mark during the first phases, then stays);
- the ledger holds exactly one call row per call made (flushed on close).

The mock vendors are `benchmarks/mock_server.py` processes (OpenAI wire format on one,
Anthropic on the other), so the server never competes with the client's event loop.

Run: ``python benchmarks/soak.py --duration 300 --concurrency 1000`` (prints JSON; exits 1
if a check fails). ``--trace-frames 12 --snapshots DIR`` keeps deeper tracebacks and dumps a
tracemalloc snapshot per checkpoint, to see what grew (`Snapshot.compare_to` by traceback).
The test suite runs a short version (tests/reliability/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
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


#: flatness bounds (see `check`): a leak of even ~100 bytes per call shows over 20,000 calls
TRACED_GROWTH_MB = 4.0  # traced size at the end minus after warm-up (absolute) ...
TRACED_GROWTH_SHARE = 0.10  # ... or this share of the warm size, whichever is larger
RSS_SECOND_HALF_MB = 16.0  # RSS at the end minus at the middle checkpoint


@dataclass
class Checkpoint:
    """Memory with no call in flight, after a ``gc.collect()``."""

    t_s: float  # since the end of the warm-up
    calls: int
    rss_mb: float
    traced_mb: float
    tracemalloc_mb: float = 0.0  # tracemalloc's own bookkeeping (in RSS, not in traced)


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
    rss_mid_mb: float
    rss_end_mb: float
    traced_warm_mb: float
    traced_mid_mb: float
    traced_end_mb: float
    ledger_calls: int
    ledger_attempts: int
    checkpoints: list[Checkpoint] = field(default_factory=list)
    attempt_outcomes: dict[str, int] = field(default_factory=dict)
    #: allocation sites that grew most from the warm-up to the end (tracemalloc)
    top_growth: list[str] = field(default_factory=list)
    rss_peak_mb: float = 0.0  # the process's high-water mark (VmHWM)
    #: RSS at the end once tracemalloc stopped and glibc returned its free heap pages
    #: (``malloc_trim``): what is left is live memory; the rest was allocator high-water
    rss_end_trimmed_mb: float | None = None


def check(
    r: SoakResult,
    traced_mb: float = TRACED_GROWTH_MB,
    traced_share: float = TRACED_GROWTH_SHARE,
    rss_mb: float = RSS_SECOND_HALF_MB,
) -> list[str]:
    """What a long-running app relies on; returns the failed checks (empty: all passed)."""
    bad = []
    if r.unexpected:
        bad.append(f"undocumented exceptions: {r.unexpected}")
    if r.tasks_after:
        bad.append(f"{r.tasks_after} asyncio tasks left")
    if (r.fds_after, r.sockets_after) != (r.fds_before, r.sockets_before):
        bad.append(
            f"fds {r.fds_before}->{r.fds_after}, sockets {r.sockets_before}->{r.sockets_after}"
        )
    if r.ledger_calls != r.calls:
        bad.append(f"ledger has {r.ledger_calls} call rows for {r.calls} calls")
    if r.ok + sum(r.errors.values()) != r.calls:
        bad.append("outcomes do not add up to the calls")
    allowed = max(traced_mb, traced_share * r.traced_warm_mb)
    if r.traced_end_mb - r.traced_warm_mb > allowed:
        bad.append(
            f"traced {r.traced_warm_mb} -> {r.traced_end_mb} MB (> {allowed:.1f} MB): "
            f"{r.top_growth}"
        )
    if r.rss_end_mb - r.rss_mid_mb > rss_mb:
        bad.append(f"RSS {r.rss_mid_mb} -> {r.rss_end_mb} MB over the second half (> {rss_mb} MB)")
    return bad


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


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _trimmed_rss_mb() -> float | None:
    """RSS after glibc's ``malloc_trim(0)``; None where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        gc.collect()
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return round(_rss_mb(), 1)


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
    checkpoints: int = 4,
    trace_frames: int = 1,
    snapshots: str | None = None,
) -> SoakResult:
    """``checkpoints`` phases after the warm-up (at least 2: the middle one is where the
    second half starts). ``snapshots``: a directory to dump a tracemalloc snapshot into at
    every checkpoint (``snap0.pickle`` after warm-up ... ``snapN.pickle`` at the end)."""
    checkpoints = max(2, checkpoints)
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
        marks: list[Checkpoint] = []
        tracemalloc.start(trace_frames)  # before the client: its pools and caches count too
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
            t0 = time.monotonic()
            # snapshots go to files: one held in memory would count in the next traced sizes
            snap_dir = Path(snapshots or tmp)
            for phase in range(checkpoints + 1):
                if phase:
                    # a slow drain (calls queued to their deadline) must not leave a phase
                    # with no calls: each one runs for at least half its planned length
                    phase_s = duration_s / checkpoints
                    await _run(
                        client,
                        max(t0 + phase_s * phase, time.monotonic() + phase_s / 2),
                        concurrency,
                        stream_share,
                        stats,
                        unexpected,
                        seed + phase,
                    )
                gc.collect()  # nothing in flight here: what is traced is what the client keeps
                marks.append(
                    Checkpoint(
                        t_s=round(time.monotonic() - t0, 1),
                        calls=stats["chats"] + stats["streams"],
                        rss_mb=round(_rss_mb(), 1),
                        traced_mb=round(tracemalloc.get_traced_memory()[0] / 2**20, 2),
                        tracemalloc_mb=round(tracemalloc.get_tracemalloc_memory() / 2**20, 1),
                    )
                )
                if snapshots or phase in (0, checkpoints):
                    tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.Filter(False, tracemalloc.__file__)]
                    ).dump(str(snap_dir / f"snap{phase}.pickle"))
            elapsed = time.monotonic() - t0
            tracemalloc.stop()
            rss_trimmed = _trimmed_rss_mb()
            growth = tracemalloc.Snapshot.load(str(snap_dir / f"snap{checkpoints}.pickle"))
            growth_stats = growth.compare_to(
                tracemalloc.Snapshot.load(str(snap_dir / "snap0.pickle")), "lineno"
            )[:8]
            del growth
        finally:
            await client.aclose()
        gc.collect()
        await asyncio.sleep(0.05)  # let closed transports finish their callbacks
        fds_after, socks_after = _fds()
        tasks_after = len(asyncio.all_tasks()) - 1
        records = read_records(url)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        for proc in procs:
            stop_mock(proc)
    calls = stats["chats"] + stats["streams"]
    attempts = [r for r in records if r.kind == "attempt"]
    warm, mid, end = marks[0], marks[checkpoints // 2], marks[-1]
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
        rss_warm_mb=warm.rss_mb,
        rss_mid_mb=mid.rss_mb,
        rss_end_mb=end.rss_mb,
        traced_warm_mb=warm.traced_mb,
        traced_mid_mb=mid.traced_mb,
        traced_end_mb=end.traced_mb,
        ledger_calls=sum(r.kind == "call" for r in records),
        ledger_attempts=len(attempts),
        checkpoints=marks,
        attempt_outcomes=dict(Counter(r.outcome for r in attempts)),
        top_growth=[str(stat) for stat in growth_stats],
        rss_peak_mb=round(_peak_rss_mb(), 1),
        rss_end_trimmed_mb=rss_trimmed,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds after warm-up")
    p.add_argument("--concurrency", type=int, default=1000, help="calls in flight")
    p.add_argument("--stream-share", type=float, default=0.4)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--error-rate", type=float, default=0.05)
    p.add_argument("--latency-ms", default="uniform:1:30")
    p.add_argument("--checkpoints", type=int, default=4, help="memory checkpoints after warm-up")
    p.add_argument("--trace-frames", type=int, default=1, help="tracemalloc traceback depth")
    p.add_argument("--snapshots", default=None, help="dump a tracemalloc snapshot per checkpoint")
    args = p.parse_args()
    if args.snapshots:
        Path(args.snapshots).mkdir(parents=True, exist_ok=True)
    result = anyio.run(
        lambda: soak(
            args.duration,
            args.concurrency,
            stream_share=args.stream_share,
            warmup_s=args.warmup,
            error_rate=args.error_rate,
            latency=args.latency_ms,
            checkpoints=args.checkpoints,
            trace_frames=args.trace_frames,
            snapshots=args.snapshots,
        )
    )
    failed = check(result)
    print(json.dumps(asdict(result) | {"failed_checks": failed}, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
