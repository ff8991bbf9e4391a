"""Run every client side by side against the mock vendor server and write a Markdown table.

    python benchmarks/run.py            # full run (about 6-10 minutes on 2 cores)
    python benchmarks/run.py --quick    # CI smoke: a few seconds, core rows only
    python benchmarks/run.py --clients httpx2-async,aiohttp --rounds 3

Each measurement runs in a fresh worker process (this script with ``--worker``), so imports,
connection pools and resident memory of one client never mix with another's; the mock
servers run in their own processes, so the client CPU time reported is the client's alone.
Rounds are interleaved (every client once per round, in a rotated order) and the table shows
medians over rounds; ratios are taken per round against the row's baseline, then the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIOS = ("seq", "c200", "stream")
IMPORT_MODULES = (
    "httpx2",
    "httpx",
    "aiohttp",
    "openai",
    "anthropic",
    "litellm",
    "portal",
    "portal.client",
)
#: --quick measures only what the ratio targets need: the baselines and portal's rows.
QUICK_JOBS = {
    ("httpx2-async", "seq"),
    ("httpx2-async", "c200"),
    ("httpx2-async", "stream"),
    ("httpx2-sync", "seq"),
    ("httpx2-sync", "stream"),
    ("httpx2-async-contract", "seq"),
    ("httpx2-async-contract", "c200"),
    ("httpx2-sync-contract", "seq"),
    ("httpx2-failover", "seq"),
    ("portal-async", "seq"),
    ("portal-async", "c200"),
    ("portal-async", "stream"),
    ("portal-sync", "seq"),
    ("portal-sync", "stream"),
    ("portal-failover", "seq"),
    ("aiohttp", "c200"),
    ("httpx2-aiohttp", "seq"),
    ("portal-httpx2", "seq"),
}
VERSIONED = (
    "httpx2",
    "httpx",
    "aiohttp",
    "httpx-aiohttp",
    "openai",
    "anthropic",
    "litellm",
    "uvloop",
    "orjson",
    "pydantic",
)


# ============================================================================ worker side


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class _Tally:
    expected: str
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    chunks: int = 0
    errors: int = 0
    first_error: str = ""

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]

    def check(self, text: str) -> None:
        if text != self.expected:
            self.fail(ValueError(f"completion {text[:80]!r} != expected {self.expected[:80]!r}"))


async def _measure_async(spec: Any, env: Any, job: dict[str, Any]) -> dict[str, Any]:
    session = spec.setup(env)
    scenario, tally = job["scenario"], _Tally(job["expected"])

    async def one(record: bool) -> None:
        t = time.perf_counter()
        try:
            if scenario == "stream":
                parts: list[str] = []
                ttft = 0.0
                async for delta in session.stream():
                    if not parts:
                        ttft = time.perf_counter() - t
                    parts.append(delta)
                text = "".join(parts)
                if record:
                    tally.ttfts.append(ttft)
                    tally.chunks += len(parts)
            else:
                text = await session.call()
        except Exception as exc:  # a failing client is reported, not crashed on
            tally.fail(exc)
            return
        if record:
            tally.latencies.append(time.perf_counter() - t)
        tally.check(text)

    async def many(n: int, concurrency: int, record: bool) -> None:
        remaining = n

        async def lane() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one(record)

        await asyncio.gather(*(lane() for _ in range(min(concurrency, n))))

    await one(False)
    rss_setup = _rss_mb()
    concurrency = env.concurrency if scenario == "c200" else 1
    await many(job["warmup"] if concurrency == 1 else job["warmup_c200"], concurrency, False)
    _settle(session)
    c0, w0 = time.process_time(), time.perf_counter()
    await many(job["n"], concurrency, True)
    _settle(session)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    await session.close()
    return _result(tally, job, cpu, wall, rss_setup)


def _measure_sync(spec: Any, env: Any, job: dict[str, Any]) -> dict[str, Any]:
    session = spec.setup(env)
    scenario, tally = job["scenario"], _Tally(job["expected"])

    def one(record: bool) -> None:
        t = time.perf_counter()
        try:
            if scenario == "stream":
                parts: list[str] = []
                ttft = 0.0
                for delta in session.stream():
                    if not parts:
                        ttft = time.perf_counter() - t
                    parts.append(delta)
                text = "".join(parts)
                if record:
                    tally.ttfts.append(ttft)
                    tally.chunks += len(parts)
            else:
                text = session.call()
        except Exception as exc:
            tally.fail(exc)
            return
        if record:
            tally.latencies.append(time.perf_counter() - t)
        tally.check(text)

    one(False)
    rss_setup = _rss_mb()
    for _ in range(job["warmup"]):
        one(False)
    _settle(session)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(job["n"]):
        one(True)
    _settle(session)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    session.close()
    return _result(tally, job, cpu, wall, rss_setup)


def _settle(session: Any) -> None:
    """Background work a client owes for the calls so far, done now: before the measured
    calls (one-time setup such as creating the ledger's database stays out of the window)
    and at its end, inside the window (the measured calls' ledger rows are paid for, not
    left to a writer that runs after the clock stops)."""
    settle = getattr(session, "settle", None)
    if settle is not None:
        settle()


def _result(
    tally: _Tally, job: dict[str, Any], cpu: float, wall: float, rss_setup: float
) -> dict[str, Any]:
    n = job["n"]
    lat = tally.latencies or [float("nan")]
    out: dict[str, Any] = {
        "n": n,
        "calls_total": 1 + n + (job["warmup_c200"] if job["scenario"] == "c200" else job["warmup"]),
        "cpu_ms": 1000 * cpu / n,
        "calls_s": n / wall,
        "p50_ms": 1000 * _pct(lat, 0.50),
        "p99_ms": 1000 * _pct(lat, 0.99),
        "rss_setup_mb": rss_setup,
        "peak_rss_mb": _peak_rss_mb(),
        "errors": tally.errors,
        "first_error": tally.first_error,
    }
    if job["scenario"] == "stream" and tally.ttfts:
        out["ttft_p50_ms"] = 1000 * _pct(tally.ttfts, 0.50)
        out["ttft_p99_ms"] = 1000 * _pct(tally.ttfts, 0.99)
        out["chunks_per_call"] = tally.chunks / len(tally.ttfts)
        out["cpu_chunk_us"] = 1e6 * cpu / max(tally.chunks, 1)
    return out


def worker_main(raw: str) -> None:
    job = json.loads(raw)
    sys.path.insert(0, str(HERE))
    import clients

    spec = clients.REGISTRY[job["client"]]
    env = clients.Env(
        base_url=job["base_url"],
        failing_url=job["failing_url"],
        concurrency=job["concurrency"],
        chunks=job["chunks"],
    )
    if spec.mode == "async":
        result = asyncio.run(_measure_async(spec, env, job))
    else:
        result = _measure_sync(spec, env, job)
    print(json.dumps(result), flush=True)


# ====================================================================== orchestrator side


class MockServer:
    """A mock_server.py subprocess; it exits when this process closes its stdin."""

    def __init__(self, python: str, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [python, str(HERE / "mock_server.py"), "--port", "0", "--exit-on-stdin-eof", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"mock server did not print its port (got {line!r})")
        self.url = f"http://127.0.0.1:{line}"

    def stats(self) -> dict[str, int]:
        import urllib.request  # not at module level: workers import this file too

        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return dict(json.loads(r.read()))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=5)


def _worker_env(root: Path = ROOT) -> dict[str, str]:
    """The workers' environment; ``root`` is the portal checkout they import."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        env.pop(name, None)
    return env


def run_worker(
    python: str, job: dict[str, Any], timeout: float, root: Path = ROOT
) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [python, str(HERE / "run.py"), "--worker", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_worker_env(root),
            cwd=str(ROOT),
        )
    except subprocess.TimeoutExpired:
        return {"errors": 1, "first_error": f"worker timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"errors": 1, "first_error": f"worker exited {proc.returncode}: {tail}"[:300]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def import_time(python: str, module: str) -> float:
    code = (
        "import time, sys\n"
        "t = time.perf_counter()\n"
        f"import {module}\n"
        "sys.stdout.write(repr(time.perf_counter() - t))\n"
    )
    proc = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        env=_worker_env(),
        cwd=tempfile.gettempdir(),
        timeout=120,
    )
    if proc.returncode != 0:
        return float("nan")
    return float(proc.stdout)


def _importable(python: str, modules: Iterable[str]) -> bool:
    code = "import importlib.util, sys\n" + "".join(
        f"sys.exit(1) if importlib.util.find_spec({m!r}) is None else None\n" for m in modules
    )
    return (
        subprocess.run(
            [python, "-c", code], capture_output=True, env=_worker_env(), cwd=tempfile.gettempdir()
        ).returncode
        == 0
    )


def _ready(python: str, keys: list[str]) -> list[str]:
    """Rows whose modules are installed and whose own readiness check passes, probed in one
    interpreter of the worker's Python (this process may lack the peers)."""
    code = (
        "import importlib.util, json, sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import clients\n"
        "def ok(spec):\n"
        "    try:\n"
        "        if any(importlib.util.find_spec(m) is None for m in spec.requires):\n"
        "            return False\n"
        "    except ImportError:\n"
        "        return False\n"
        "    return spec.available is None or spec.available()\n"
        f"print(json.dumps([k for k in {keys!r} if ok(clients.REGISTRY[k])]))\n"
    )
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=_worker_env(), cwd=str(ROOT)
    )
    return list(json.loads(out.stdout)) if out.returncode == 0 else []


def server_check(python: str, url: str, seconds: int = 3) -> float | None:
    """Requests/s the mock server sustains under wrk (one wrk thread, 64 connections)."""
    if shutil.which("wrk") is None:
        return None
    sys.path.insert(0, str(HERE))
    import clients

    body = json.dumps(clients.PAYLOAD).replace("'", "\\'")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            f"wrk.method = 'POST'\nwrk.body = '{body}'\n"
            "wrk.headers['Content-Type'] = 'application/json'\n"
        )
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", "-c64", f"-d{seconds}s", "-s", script, url + "/v1/chat/completions"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script)
    if "Non-2xx" in out:
        raise RuntimeError(f"mock server answered non-2xx under wrk:\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


#: the target scripts that are not client-vs-client rows: (script, arguments)
EXTRAS = (
    ("router_decision.py", ()),
    ("ledger_throughput.py", ("--records", "200000", "--runs", "5")),
    ("memory_flat.py", ("--calls", "100000")),
)


def run_extras(python: str) -> list[tuple[str, str]]:
    """Run each extra target script; its summary lines (the last two lines for the router,
    which prints one per feature, else the last) go into the report."""
    out = []
    for script, argv in EXTRAS:
        proc = subprocess.run(
            [python, str(HERE / script), *argv],
            capture_output=True,
            text=True,
            env=_worker_env(),
            cwd=str(ROOT),
            timeout=900,
        )
        lines = proc.stdout.strip().splitlines() or [proc.stderr.strip()[-200:]]
        keep = lines[-2:] if script == "router_decision.py" else lines[-1:]
        status = "" if proc.returncode == 0 else f" (exit {proc.returncode})"
        out.append((script, "<br>".join(keep) + status))
        print(f"[extra] {script}: {' / '.join(keep)}{status}", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- reporting


def _med(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


@dataclass
class Results:
    rounds: int
    runs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    imports: dict[str, list[float]] = field(default_factory=dict)
    primary_hits: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def ok(self, key: str, scen: str) -> list[dict[str, Any]]:
        return [r for r in self.runs.get((key, scen), []) if not r.get("errors")]

    def median(self, key: str, scen: str, metric: str) -> float:
        return _med(r.get(metric, float("nan")) for r in self.ok(key, scen))

    def ratio(self, key: str, base: str, scen: str, metric: str) -> float:
        """Median over rounds of this row / baseline row, paired by round."""
        mine, theirs = self.runs.get((key, scen), []), self.runs.get((base, scen), [])
        pairs = [
            a[metric] / b[metric]
            for a, b in zip(mine, theirs, strict=False)
            if not a.get("errors")
            and not b.get("errors")
            and metric in a
            and metric in b
            and b[metric]
        ]
        return _med(pairs)

    def best_ratio(self, key: str, base: str, scen: str, metric: str, lower: bool) -> float:
        """This row's best round over the baseline's best round (lowest CPU or latency,
        highest throughput). Interference from other work on the machine only makes a
        round worse, so best-of-rounds is what a short, noisy run can check reliably."""

        def best(rows: list[dict[str, Any]]) -> float:
            vals = [r[metric] for r in rows if not r.get("errors") and r.get(metric)]
            return (min(vals) if lower else max(vals)) if vals else float("nan")

        return best(self.runs.get((key, scen), [])) / best(self.runs.get((base, scen), []))

    def error(self, key: str, scen: str) -> str:
        for r in self.runs.get((key, scen), []):
            if r.get("errors"):
                return str(r.get("first_error") or "error")
        return ""


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def _x(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}x"


#: the suffix of a row measured with ``--against``'s checkout
AGAINST = "@against"

_AGAINST_METRICS = {"seq": "cpu_ms", "c200": "cpu_ms", "stream": "cpu_chunk_us"}


def render_against(res: Results, specs: dict[str, Any], other: str) -> str:
    """Each portal row against the same row importing portal from ``other``: the median over
    rounds of the paired ratio, so the machine's drift cancels out."""
    lines = [
        "",
        f"## This checkout against {other}",
        "",
        "Same client, same rounds; CPU per call (per delta for streams), this / other.",
        "",
        "| client | scenario | this | other | ratio |",
        "|---|---|---|---|---|",
    ]
    for (key, scen), _ in sorted(res.runs.items()):
        if not key.endswith(AGAINST):
            continue
        mine = key.removesuffix(AGAINST)
        metric = _AGAINST_METRICS[scen]
        lines.append(
            f"| {specs[mine].label} | {scen} | {_f(res.median(mine, scen, metric), 3)} | "
            f"{_f(res.median(key, scen, metric), 3)} | "
            f"{_x(res.ratio(mine, key, scen, metric))} |"
        )
    return "\n".join(lines) + "\n"


def render(res: Results, specs: dict[str, Any], meta: dict[str, Any]) -> str:
    out = [f"# portal benchmark: {meta['date']}", ""]
    out += [
        f"- machine: {meta['machine']}",
        f"- python: {meta['python']}",
        f"- packages: {meta['versions']}",
        f"- command: `{meta['command']}`",
        f"- rounds: {res.rounds} (interleaved), calls per measurement: {meta['sizes']}",
        f"- mock server: {meta['server']}",
        "",
    ]
    chat = [k for k, s in specs.items() if s.group == "chat"]
    fail = [k for k, s in specs.items() if s.group == "failover"]

    def err_row(key: str, scen: str, width: int) -> list[str] | None:
        if res.ok(key, scen):
            return None
        msg = res.error(key, scen) or "not run"
        return [
            specs[key].label + ("" if scen != "c200" else f" ({meta['concurrency']})"),
            f"ERROR: {msg}",
        ] + [""] * (width - 2)

    def table(title: str, note: str, head: list[str], rows: list[list[str]]) -> None:
        if not rows:
            return
        out.extend(
            [f"## {title}", "", note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        )
        out.extend("| " + " | ".join(r) + " |" for r in rows)
        out.append("")

    rows = []
    for k in chat:
        if (k, "seq") not in res.runs:
            continue
        b = specs[k].baseline_for("seq")
        rows.append(
            err_row(k, "seq", 8)
            or [
                specs[k].label,
                _f(res.median(k, "seq", "cpu_ms"), 3),
                _x(res.ratio(k, b, "seq", "cpu_ms")),
                _f(res.median(k, "seq", "calls_s"), 0),
                _f(res.median(k, "seq", "p50_ms"), 3),
                _f(res.median(k, "seq", "p99_ms"), 3),
                _f(res.median(k, "seq", "rss_setup_mb"), 1),
                _f(res.median(k, "seq", "peak_rss_mb"), 1),
            ]
        )
    table(
        "Chat, one call at a time",
        "Client CPU per call (process time of the client process only), ratio against the "
        "baseline: raw httpx2 posting the same JSON (portal's contract rows against the 'same "
        "JSON' rows, every other row against raw httpx2 AsyncClient, or Client if sync), wall latency, "
        "RSS after setup plus one call, and peak RSS.",
        [
            "client",
            "CPU/call ms",
            "x baseline",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "RSS setup MB",
            "peak RSS MB",
        ],
        rows,
    )

    rows = []
    for k in chat:
        if (k, "c200") not in res.runs:
            continue
        b = specs[k].baseline_for("c200")
        rows.append(
            err_row(k, "c200", 7)
            or [
                specs[k].label,
                _f(res.median(k, "c200", "cpu_ms"), 3),
                _x(res.ratio(k, b, "c200", "cpu_ms")),
                _f(res.median(k, "c200", "calls_s"), 0),
                _x(res.ratio(k, b, "c200", "calls_s")),
                _f(res.median(k, "c200", "p50_ms"), 1),
                _f(res.median(k, "c200", "p99_ms"), 1),
            ]
        )
    table(
        f"Chat, {meta['concurrency']} calls in flight",
        "One event loop, N tasks each issuing calls back to back. Raw clients get a pool of "
        "N connections; SDKs keep their shipped defaults.",
        [
            "client",
            "CPU/call ms",
            "x baseline",
            "calls/s",
            "throughput x baseline",
            "p50 ms",
            "p99 ms",
        ],
        rows,
    )

    rows = []
    for k in chat:
        if (k, "stream") not in res.runs:
            continue
        b = specs[k].baseline_for("stream")
        rows.append(
            err_row(k, "stream", 8)
            or [
                specs[k].label,
                _f(res.median(k, "stream", "ttft_p50_ms"), 3),
                _x(res.ratio(k, b, "stream", "ttft_p50_ms")),
                _f(res.median(k, "stream", "cpu_ms"), 3),
                _f(res.median(k, "stream", "cpu_chunk_us"), 1),
                _x(res.ratio(k, b, "stream", "cpu_chunk_us")),
                _f(res.median(k, "stream", "chunks_per_call"), 0),
                _f(res.median(k, "stream", "p50_ms"), 3),
            ]
        )
    table(
        "Chat streaming (SSE), one stream at a time",
        "Time to first text delta, client CPU per stream and per text delta.",
        [
            "client",
            "TTFT p50 ms",
            "TTFT x baseline",
            "CPU/stream ms",
            "CPU/delta µs",
            "CPU/delta x baseline",
            "deltas",
            "p50 ms",
        ],
        rows,
    )

    rows = []
    for k in fail:
        for scen in specs[k].scenarios:
            if (k, scen) not in res.runs:
                continue
            b = specs[k].baseline_for(scen)
            hits = _med(res.primary_hits.get((k, scen), []))
            rows.append(
                err_row(k, scen, 7)
                or [
                    f"{specs[k].label} ({'sequential' if scen == 'seq' else meta['concurrency']})",
                    _f(res.median(k, scen, "cpu_ms"), 3),
                    _x(res.ratio(k, b, scen, "cpu_ms")),
                    _f(res.median(k, scen, "calls_s"), 0),
                    _f(res.median(k, scen, "p50_ms"), 3),
                    _f(res.median(k, scen, "p99_ms"), 3),
                    _f(hits, 2),
                ]
            )
    table(
        "Failover: the primary answers every call with 500",
        "Baseline: a raw httpx2 loop that tries the primary, then the secondary. 'primary "
        "tries/call' counts requests that reached the failing server per call (a router "
        "with cooldowns skips the primary).",
        [
            "client",
            "CPU/call ms",
            "x baseline",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "primary tries/call",
        ],
        rows,
    )

    rows = []
    base = _med(res.imports.get("httpx2", []))
    for mod, vals in res.imports.items():
        m = _med(vals)
        rows.append([f"`import {mod}`", _f(m * 1000, 1), _x(m / base if base == base else m * 0)])
    table(
        "Import time",
        f"Fresh interpreter per run, wall time of the import statement only, median of "
        f"{meta['import_runs']} runs.",
        ["module", "ms", "x httpx2"],
        rows,
    )
    return "\n".join(out)


# -------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One ratio target from issue 6; ``le`` means the ratio must be at most ``limit``."""

    name: str
    key: str
    scen: str
    metric: str
    limit: float
    le: bool = True
    #: the row compared against, when not the row's own baseline for the scenario
    base: str | None = None


# Regression guards the CI-sized run meets on a busy 2-core machine; the goals (throughput 3x,
# sync 1.10x, sync stream 1.1x, failover 0.5x) and where portal stands are in
# docs/performance.md.
TARGETS = (
    Target("async chat CPU/call vs raw httpx2", "portal-async", "seq", "cpu_ms", 1.05),
    Target(
        "async chat on httpx2's pools: CPU/call vs raw httpx2",
        "portal-httpx2",
        "seq",
        "cpu_ms",
        1.15,
    ),
    Target("sync chat CPU/call vs raw httpx2", "portal-sync", "seq", "cpu_ms", 1.15),
    Target(
        "200 in flight: throughput vs raw httpx2", "portal-async", "c200", "calls_s", 1.5, le=False
    ),
    # the goal is 1.5x raw aiohttp; httpx2's client layer over aiohttp alone costs about 2x,
    # so this guards against regressions at 2.5x until portal sends to aiohttp directly
    Target(
        "200 in flight: CPU/call vs raw aiohttp",
        "portal-async",
        "c200",
        "cpu_ms",
        2.5,
        base="aiohttp",
    ),
    Target("stream TTFT vs raw httpx2", "portal-async", "stream", "ttft_p50_ms", 1.2),
    Target("stream CPU/delta vs raw httpx2", "portal-async", "stream", "cpu_chunk_us", 0.8),
    Target("sync stream TTFT vs raw httpx2", "portal-sync", "stream", "ttft_p50_ms", 1.2),
    Target("sync stream CPU/delta vs raw httpx2", "portal-sync", "stream", "cpu_chunk_us", 1.2),
    Target("failover CPU/call vs raw loop", "portal-failover", "seq", "cpu_ms", 1.0),
    Target(
        "RSS after setup vs raw httpx2 on the same transport",
        "portal-async",
        "seq",
        "rss_setup_mb",
        1.5,
        base="httpx2-aiohttp",
    ),
)


def check(
    res: Results,
    specs: dict[str, Any],
    margin: float,
    optional: Iterable[str] = (),
    best_of_rounds: bool = False,
) -> list[str]:
    """Targets missed by more than ``margin`` (1.0 = exactly the target). Rows in
    ``optional`` (an extra's library not installed, e.g. httpx-aiohttp in the dev venv) are
    skipped with a note on stderr; any other row that did not run is a failure.
    ``best_of_rounds`` (the CI-sized --quick run) compares best rounds instead of the median
    of paired ratios: a few hundred calls per round are too few to ride out interference."""
    failures = []
    for t in TARGETS:
        if t.key not in specs:
            if t.key in optional:
                print(f"check: {t.name}: skipped ({t.key} needs an extra)", file=sys.stderr)
            else:
                failures.append(f"{t.name}: row {t.key!r} did not run")
            continue
        base_key = t.base or specs[t.key].baseline_for(t.scen)
        r = (
            res.best_ratio(t.key, base_key, t.scen, t.metric, lower=t.le)
            if best_of_rounds
            else res.ratio(t.key, base_key, t.scen, t.metric)
        )
        bad = r != r or (r > t.limit * margin if t.le else r < t.limit / margin)
        if bad:
            sign = "<=" if t.le else ">="
            failures.append(f"{t.name}: {_x(r)} (target {sign} {t.limit}x, margin {margin})")
    base = _med(res.imports.get("httpx2", []))
    mine = _med(res.imports.get("portal", []))
    if mine != mine or base != base or mine / base > 0.2 * margin:
        failures.append(f"import portal vs httpx2: {_x(mine / base)} (target <= 0.2x)")
    return failures


# ----------------------------------------------------------------------------------- main


def _machine() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), {model}, {platform.system()} {platform.release()}"


def _versions(python: str) -> str:
    code = (
        "import importlib.metadata as m\n"
        f"for n in {VERSIONED!r}:\n"
        "    try: print(n, m.version(n))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout
    return ", ".join(out.split("\n")[:-1]) if out else "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="portal benchmark suite (issue 6)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI mode: core rows, small sizes, 2 rounds; finishes in seconds",
    )
    p.add_argument("--clients", help="comma-separated registry keys (default: all available)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--n-seq", type=int)
    p.add_argument("--n-c200", type=int)
    p.add_argument("--n-stream", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--import-runs", type=int)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--chunks", type=int, default=16, help="text deltas per completion")
    p.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    p.add_argument("--out", default=str(HERE / "results" / "latest.md"))
    p.add_argument(
        "--against",
        metavar="DIR",
        help="another portal checkout (e.g. a git worktree of an older commit): every portal "
        "row also runs importing portal from DIR, in the same interleaved rounds, and a table "
        "compares the two (what a change costs per call)",
    )
    p.add_argument("--no-server-check", action="store_true", help="skip the wrk check")
    p.add_argument(
        "--no-extras",
        action="store_true",
        help="skip router_decision.py, ledger_throughput.py and memory_flat.py (full runs)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a portal ratio target is missed by more than the margin",
    )
    p.add_argument(
        "--check-margin",
        type=float,
        help="tolerance factor on targets (default 1.0, 1.5 with --quick)",
    )
    a = p.parse_args(argv)
    quick = a.quick
    a.rounds = a.rounds or (3 if quick else 5)
    a.n_seq = a.n_seq or (400 if quick else 1000)
    a.n_c200 = a.n_c200 or (2 * a.concurrency if quick else 10 * a.concurrency)
    a.n_stream = a.n_stream or (50 if quick else 300)
    a.warmup = a.warmup if a.warmup is not None else (20 if quick else 100)
    a.import_runs = a.import_runs or (3 if quick else 7)
    a.check_margin = a.check_margin or (1.5 if quick else 1.0)
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    started = time.perf_counter()
    sys.path.insert(0, str(HERE))
    import clients
    import mock_server

    wanted = (
        args.clients.split(",")
        if args.clients
        else [k for k in clients.REGISTRY if not args.quick or any(k == j for j, _ in QUICK_JOBS)]
    )
    unknown = [k for k in wanted if k not in clients.REGISTRY]
    if unknown:
        print(
            f"unknown --clients {unknown}; choose from {sorted(clients.REGISTRY)}", file=sys.stderr
        )
        return 2
    ready = _ready(args.python, wanted)
    specs = {k: clients.REGISTRY[k] for k in wanted if k in ready}
    for key in wanted:
        if key not in ready:
            print(
                f"skip {key}: needs {', '.join(clients.REGISTRY[key].requires)} "
                "(see benchmarks/README.md)",
                file=sys.stderr,
            )
    expected = "".join(
        mock_server._WORDS[i % len(mock_server._WORDS)]
        for i in range(min(args.chunks, clients.MAX_TOKENS))
    )
    good = MockServer(args.python, "--chunks", str(args.chunks))
    bad = MockServer(args.python, "--error-rate", "1", "--error-status", "500")
    res = Results(rounds=args.rounds)
    sizes = {"seq": args.n_seq, "c200": args.n_c200, "stream": args.n_stream}
    try:
        jobs = [
            (k, s)
            for k, spec in specs.items()
            for s in spec.scenarios
            if args.clients or not args.quick or (k, s) in QUICK_JOBS
        ]
        if args.against:
            jobs += [(k + AGAINST, s) for k, s in jobs if k.startswith("portal")]
        for r in range(args.rounds):
            shift = r % max(len(jobs), 1)
            for key, scen in jobs[shift:] + jobs[:shift]:
                job = {
                    "client": key.removesuffix(AGAINST),
                    "scenario": scen,
                    "n": sizes[scen],
                    "warmup": args.warmup,
                    "warmup_c200": 0 if args.quick else 2 * args.concurrency,
                    "concurrency": args.concurrency,
                    "chunks": args.chunks,
                    "base_url": good.url,
                    "failing_url": bad.url,
                    "expected": expected,
                }
                before = bad.stats()["requests"]
                root = Path(args.against) if key.endswith(AGAINST) else ROOT
                out = run_worker(args.python, job, timeout=600, root=root)
                hits = bad.stats()["requests"] - before
                res.runs.setdefault((key, scen), []).append(out)
                if key in specs and specs[key].group == "failover" and not out.get("errors"):
                    res.primary_hits.setdefault((key, scen), []).append(hits / out["calls_total"])
                status = out.get("first_error") or f"{out['cpu_ms']:.3f} ms CPU/call"
                print(
                    f"[round {r + 1}/{args.rounds}] {key:18} {scen:6} {status}",
                    file=sys.stderr,
                    flush=True,
                )
        used = {"httpx2", "portal", "portal.client"} | {
            r.split(".")[0] for s in specs.values() for r in s.requires
        }
        modules = [m for m in IMPORT_MODULES if m in used and _importable(args.python, [m])]
        for m in modules:
            import_time(args.python, m)  # compile .pyc files outside the measurement
        for _ in range(args.import_runs):
            for m in modules:
                res.imports.setdefault(m, []).append(import_time(args.python, m))
        server_rate = (
            None if args.quick or args.no_server_check else server_check(args.python, good.url)
        )
        extras = [] if args.quick or args.no_extras else run_extras(args.python)
    finally:
        good.close()
        bad.close()
    fastest = max(
        (res.median(k, s, "calls_s") for k, s in res.runs if s == "c200"), default=float("nan")
    )
    if server_rate:
        server = (
            f"{server_rate:.0f} requests/s under wrk (1 thread, 64 connections), "
            f"{server_rate / fastest:.1f}x the fastest client's {fastest:.0f} calls/s"
        )
    else:
        server = "not load-checked in this run (needs wrk; skipped in --quick)"
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": _machine(),
        "python": f"{platform.python_version()} ({args.python})",
        "versions": _versions(args.python),
        "command": "python benchmarks/run.py " + " ".join(a for a in (argv or sys.argv[1:])),
        "sizes": ", ".join(f"{k} {v}" for k, v in sizes.items())
        + f", warm-up {args.warmup}, {args.chunks} deltas per completion",
        "server": server,
        "concurrency": args.concurrency,
        "import_runs": args.import_runs,
    }
    text = render(res, specs, meta)
    if args.against:
        text += render_against(res, specs, args.against)
    if extras:
        text += (
            "\n## Router decision, ledger throughput, memory over 100,000 calls\n\n"
            "Each script's summary line (run separately by this command; see its docstring).\n\n"
            "| script | result |\n|---|---|\n"
            + "".join(f"| `{name}` | {line} |\n" for name, line in extras)
        )
    text += f"\nTotal run time: {time.perf_counter() - started:.0f} s.\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    failed = [
        f"{k} {s}: {res.error(k, s)}"
        for (k, s) in res.runs
        if not res.ok(k, s) and not k.endswith(AGAINST)  # an older checkout may lack a row
    ]
    if failed:
        print("measurements that failed:\n  " + "\n  ".join(failed), file=sys.stderr)
    if args.check:
        optional = [
            k for k in wanted if k not in specs and clients.REGISTRY[k].requires != ("portal",)
        ]
        missed = check(res, specs, args.check_margin, optional, best_of_rounds=args.quick)
        if missed:
            print("targets missed:\n  " + "\n  ".join(missed), file=sys.stderr)
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
