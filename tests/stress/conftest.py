"""Shared fixtures for the stress tests: a two-vendor sim config and real local mock servers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOCK_SERVER = ROOT / "benchmarks" / "mock_server.py"

# Two simulated vendors at a tenth of real time (time_scale 0.1): "fast" is the primary
# (p50 15 ms simulated as 150 ms x 0.1), "backup" the warm secondary. Breakers cool down in
# 0.4 s so a game day of a few seconds sees them open and close again.
SIM_TOML = """\
[providers.fast]
kind = "sim"
options = {{ seed = 1, latency_p50_ms = 150, latency_p99_ms = 400, time_scale = 0.1, output_tokens = 20 }}
breaker = {{ consecutive_failures = 3, cooldown_s = 0.4, min_calls = 10, window_s = 2 }}

[providers.backup]
kind = "sim"
options = {{ seed = 2, latency_p50_ms = 250, latency_p99_ms = 500, time_scale = 0.1, output_tokens = 20 }}
breaker = {{ consecutive_failures = 3, cooldown_s = 0.4, min_calls = 10, window_s = 2 }}

[features.chat]
primary = "fast:sim-small"
fallbacks = ["backup:sim-medium"]
sla = {{ p95_ms = {p95}, p99_ms = {p99} }}
retry = {{ attempts = 2, base_wait_s = 0.005, max_wait_s = 0.02, retry_after_cap_s = 0.5 }}
timeout_s = 5
{extra}
"""


@pytest.fixture
def sim_config(tmp_path: Path) -> Callable[..., Path]:
    def make(p95: float = 2000, p99: float = 4000, extra: str = "") -> Path:
        path = tmp_path / "portal.toml"
        path.write_text(SIM_TOML.format(p95=p95, p99=p99, extra=extra), encoding="utf-8")
        return path

    return make


@pytest.fixture
def mock_vendor() -> Iterator[Callable[..., int]]:
    """Start `benchmarks/mock_server.py` (an OpenAI-compatible server on 127.0.0.1, in its
    own process so it never competes with the load generator's event loop) with the given
    flags; return its port."""
    procs: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> int:
        proc = subprocess.Popen(
            [sys.executable, str(MOCK_SERVER), "--port", "0", "--exit-on-stdin-eof", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"mock server did not start: {line!r}")
        return int(line)

    yield start
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The demo's config (and its contract files) as `portal demo` writes them."""
    import portal.demo as demo

    path = tmp_path / "demo" / "portal.toml"
    path.parent.mkdir()
    path.write_text(demo.DEMO_CONFIG, encoding="utf-8")
    contract = getattr(demo, "DEMO_CONTRACT", None)
    if contract is not None:
        (path.parent / "contracts").mkdir()
        (path.parent / "contracts" / "support_answer.toml").write_text(contract, encoding="utf-8")
    return path
