"""How accurate is `portal loadtest`, and how fast can one process drive it?

Starts benchmarks/mock_server.py (its own process) with a known injected latency, runs the
load generator through the real AsyncClient and router at increasing rates, and prints for
each rate: requests sent, throughput achieved, measured p50/p99 against the injected
p50/p99, the error (measured - injected: what the client, router, HTTP stack and the
generator add), and the generator's own dispatch lag (how late requests started).

    python benchmarks/loadgen_accuracy.py                      # fixed 40 ms, 100..1600 rps
    python benchmarks/loadgen_accuracy.py --latency lognormal:40:0.5 --rates 100,300
    python benchmarks/loadgen_accuracy.py --json results.json

A rate is "sustained" when throughput is within 5% of the offered rate, the dispatch lag
p99 stays under 10 ms and no request errors.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portal.config import load_config  # noqa: E402
from portal.stress.arrivals import LengthDist, PromptSource  # noqa: E402
from portal.stress.engine import LoadSpec  # noqa: E402
from portal.stress.loadtest import run_loadtest  # noqa: E402

TOML = """\
[providers.mock]
kind = "openai-compatible"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "sk-bench-not-a-secret"

[features.bench]
primary = "mock:mock-model"
timeout_s = 30
"""


def injected(spec: str) -> tuple[float, float]:
    """(p50, p99) in ms of the mock server's latency SPEC."""
    parts = spec.split(":")
    if len(parts) == 1:
        return float(parts[0]), float(parts[0])
    if parts[0] == "lognormal":
        median, sigma = float(parts[1]), float(parts[2])
        return median, median * math.exp(2.326 * sigma)
    raise SystemExit(f"--latency {spec!r}: use a fixed number of ms or lognormal:MEDIAN:SIGMA")


def start_server(latency: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "mock_server.py"),
            "--port",
            "0",
            "--exit-on-stdin-eof",
            "--latency-ms",
            latency,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def one_rate(config: Path, rate: float, duration: float, prompt_tokens: int) -> dict[str, Any]:
    cfg = load_config(config)
    spec = LoadSpec(
        feature="bench",
        rps=rate,
        duration_s=duration,
        seed=1,
        drain_s=30.0,
        prompts=PromptSource(LengthDist.parse(f"fixed:{prompt_tokens}")),
    )
    doc, _ = anyio.run(lambda: run_loadtest(cfg, spec))
    return doc


class _Resp:
    """The fields the engine reads from a portal Response."""

    def __init__(self) -> None:
        from portal.contracts.responses import Usage

        self.target, self.arm = "stub:model", "baseline"
        self.attempts: list[Any] = []
        self.usage, self.cost_usd = Usage(10, 10), 0.0


class StubClient:
    """No HTTP, no router: each call just waits the injected latency, so what is left is
    the generator's own cost and error."""

    class _Router:
        def route(self, *a: Any) -> Any:
            class R:
                targets: list[Any] = []

            return R()

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.router = self._Router()

    async def chat(self, **kw: Any) -> _Resp:
        await anyio.sleep(self.latency_s)
        return _Resp()


def generator_only(rate: float, duration: float, latency_ms: float) -> dict[str, Any]:
    from portal.stress.engine import run_load
    from portal.stress.results import summarize

    spec = LoadSpec(
        feature="bench",
        rps=rate,
        duration_s=duration,
        seed=1,
        drain_s=30.0,
        prompts=PromptSource(LengthDist.parse("fixed:100")),
    )
    result = anyio.run(lambda: run_load(StubClient(latency_ms / 1000), spec))
    return summarize(result, None, {})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", default="40", help="mock server latency SPEC (ms)")
    p.add_argument("--rates", default="100,200,400,800,1200,1600")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per rate")
    p.add_argument("--prompt-tokens", type=int, default=100)
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument(
        "--generator-only",
        action="store_true",
        help="no client or server: a stub that sleeps the (fixed) latency",
    )
    args = p.parse_args(argv)
    want50, want99 = injected(args.latency)
    if args.generator_only:
        print(f"generator only (stub client sleeping {want50:g} ms), {args.duration:g} s per rate")
        print(
            f"{'rate':>6} {'sent':>6} {'thru':>7} {'p50':>7} {'err50':>7} {'p99':>7} "
            f"{'err99':>7} {'lag p99':>8}"
        )
        for rate in (float(r) for r in args.rates.split(",")):
            doc = generator_only(rate, args.duration, want50)
            lat, lag = doc["latency_ms"], doc["generator"]["dispatch_lag_ms"]
            print(
                f"{rate:6.0f} {doc['requests']['sent']:6d} {doc['throughput_rps']:7.1f} "
                f"{lat['p50']:7.1f} {lat['p50'] - want50:+7.1f} {lat['p99']:7.1f} "
                f"{lat['p99'] - want99:+7.1f} {lag['p99']:8.2f}",
                flush=True,
            )
        return 0
    proc, port = start_server(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "portal.toml"
            config.write_text(TOML.format(port=port), encoding="utf-8")
            print(
                f"injected latency {args.latency} ms: p50 {want50:.1f} ms, p99 {want99:.1f} ms; "
                f"{args.duration:g} s per rate"
            )
            head = (
                f"{'rate':>6} {'sent':>6} {'thru':>7} {'p50':>7} {'err50':>7} {'p99':>7} "
                f"{'err99':>7} {'lag p50':>8} {'lag p99':>8} {'errors':>6}  sustained"
            )
            print(head)
            for rate in (float(r) for r in args.rates.split(",")):
                doc = one_rate(config, rate, args.duration, args.prompt_tokens)
                lat, lag = doc["latency_ms"], doc["generator"]["dispatch_lag_ms"]
                sustained = (
                    doc["throughput_rps"] >= 0.95 * doc["offered_rps"]
                    and (lag["p99"] or 0) < 10
                    and doc["requests"]["errors"] == 0
                )
                row = {
                    "rate": rate,
                    "sent": doc["requests"]["sent"],
                    "throughput_rps": doc["throughput_rps"],
                    "p50_ms": lat["p50"],
                    "p99_ms": lat["p99"],
                    "p50_error_ms": lat["p50"] - want50,
                    "p99_error_ms": lat["p99"] - want99,
                    "lag_p50_ms": lag["p50"],
                    "lag_p99_ms": lag["p99"],
                    "errors": doc["requests"]["errors"],
                    "sustained": sustained,
                }
                rows.append(row)
                print(
                    f"{rate:6.0f} {row['sent']:6d} {row['throughput_rps']:7.1f} "
                    f"{lat['p50']:7.1f} {row['p50_error_ms']:+7.1f} {lat['p99']:7.1f} "
                    f"{row['p99_error_ms']:+7.1f} {lag['p50']:8.2f} {lag['p99']:8.2f} "
                    f"{row['errors']:6d}  {'yes' if sustained else 'NO'}",
                    flush=True,
                )
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": args.latency, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
