"""Crash safety through the whole client, on top of the ledger-level SIGKILL tests in
tests/metering/test_ledger.py (which kill a bare `Ledger` writer):

- a process making real calls through `portal.Client` (SQLite ledger) is killed with SIGKILL
  at random points, repeatedly: every call whose flush was acknowledged is in the file, the
  file passes ``PRAGMA integrity_check``, and the raw user id never reaches it;
- the shared routing state's Redis is killed mid-run and restarted: calls keep succeeding
  while it is gone (local state) and the state is shared again once it is back.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import portal
from portal.metering.ledger import read_records

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, portal
cfg = {
    "portal": {"ledger": sys.argv[1]},
    "providers": {
        "a": {"kind": "sim", "options": {"seed": 1, "time_scale": 0,
                                          "error_rates": {"server_error": 0.2}}},
        "b": {"kind": "sim", "options": {"seed": 2, "time_scale": 0}},
    },
    "features": {"f": {"primary": "a:sim-small", "fallbacks": ["b:sim-large"]}},
}
client = portal.Client(cfg)
n = 0
while True:
    for _ in range(7):
        client.chat(feature="f", messages=[portal.user(f"q{n}")], key="alice@example.com")
        n += 1
    if client.meter.ledger.flush(10):
        print(n, flush=True)
"""


def crash_runs(tmp_path: Path, runs: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked_total = 0
    for _ in range(runs):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip(), "child produced no acknowledgement"
        acked = int(first)
        time.sleep(rnd.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate()
        for line in rest.splitlines():
            if line.strip():
                acked = int(line)
        acked_total += acked
        calls = [r for r in read_records(url) if r.kind == "call"]
        assert len(calls) >= acked_total  # no acknowledged call lost, in any run so far
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("crash.db-*"))
    assert b"alice@example.com" not in raw
    records = read_records(url)
    return {
        "runs": runs,
        "acknowledged": acked_total,
        "calls": sum(r.kind == "call" for r in records),
        "attempts": sum(r.kind == "attempt" for r in records),
    }


def test_sigkill_through_the_client_loses_no_flushed_call(tmp_path: Path) -> None:
    stats = crash_runs(tmp_path, runs=5, seed=11)
    assert stats["attempts"] > stats["calls"]  # retries and failovers were recorded too


@pytest.mark.slow
def test_sigkill_through_the_client_many_times(tmp_path: Path) -> None:
    stats = crash_runs(tmp_path, runs=100, seed=12)
    print(stats)


# --------------------------------------------------------------------------------- Redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A private redis-server on its own loopback port, without persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisProcess(_free_port())
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def test_redis_going_away_and_coming_back_does_not_stop_calls(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    cfg = {
        "portal": {"ledger": "none", "state": f"redis://127.0.0.1:{redis_server.port}/0"},
        "providers": {
            "a": {
                "kind": "sim",
                "options": {"seed": 1, "time_scale": 0},
                "throughput": {"requests_per_min": 100000},
            },
            "b": {"kind": "sim", "options": {"seed": 2, "time_scale": 0}},
        },
        "features": {"f": {"primary": "a:sim-small", "fallbacks": ["b:sim-large"]}},
    }
    msgs = [portal.user("hi")]
    with portal.Client(cfg) as client:
        state = client._core.state

        def calls(n: int) -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                assert client.chat(feature="f", messages=msgs).text
            return time.perf_counter() - t0

        calls(20)
        r = redis.Redis(port=redis_server.port)
        deadline = time.monotonic() + 3
        while not r.keys("portal:*") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.keys("portal:*"), "the state was not shared through redis"

        redis_server.kill()
        took = calls(50)  # Redis gone: every call still answers, without long stalls
        assert took < 10
        deadline = time.monotonic() + 3
        while state.available and time.monotonic() < deadline:
            calls(1)
        assert not state.available
        assert "is unreachable" in caplog.text

        redis_server.start()  # same port, empty: it comes back with nothing
        deadline = time.monotonic() + 5
        while not state.available and time.monotonic() < deadline:
            calls(1)
            time.sleep(0.05)
        assert state.available
        calls(20)
        r = redis.Redis(port=redis_server.port)
        deadline = time.monotonic() + 3
        while not r.keys("portal:*") and time.monotonic() < deadline:
            calls(1)
            time.sleep(0.05)
        assert r.keys("portal:*"), "the state was not shared again after redis came back"
