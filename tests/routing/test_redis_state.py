"""Shared state through a real Redis on 127.0.0.1:6379: separate processes share one breaker
and one token bucket; a Redis that is down leaves routing working on local state."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from portal.routing.state import RedisState, open_state

WORKER = Path(__file__).with_name("_redis_worker.py")


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5).ping())
    except Exception:
        return False


needs_redis = pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")


@pytest.fixture
def prefix() -> Any:
    p = f"portal-test-{uuid.uuid4().hex[:12]}"
    yield p
    state = RedisState("redis://127.0.0.1:6379/0", prefix=p, start=False)
    state.clear()
    state.close()


def run(prefix: str, mode: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(WORKER), prefix, mode, str(n)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@needs_redis
def test_two_processes_share_one_breaker_and_one_bucket(prefix: str) -> None:
    first = run(prefix, "fail", 3)  # a is down for this process: 3 failures open its breaker
    assert first["targets"] == ["b:m"] * 3
    assert first["breaker"] == "open"
    second = run(prefix, "ok", 3)  # a is healthy here, but the shared breaker is open
    assert second["a_requests"] == 0
    assert second["targets"] == ["b:m"] * 3
    assert second["breaker"] == "open"


@needs_redis
def test_two_processes_share_one_committed_throughput_bucket(prefix: str) -> None:
    # 4 requests/min on a, shared: the first process uses 3, the second gets the last one
    first = run(prefix + "-tp", "ok", 3)
    assert first["targets"] == ["a:m"] * 3
    second = run(prefix + "-tp", "ok", 3)
    assert second["targets"] == ["a:m", "b:m", "b:m"]


@needs_redis
def test_concurrent_takes_never_exceed_the_bucket(prefix: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), prefix, "take", "20"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        for _ in range(2)
    ]
    taken = [
        json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1])["taken"] for p in procs
    ]
    assert sum(taken) == 10  # the Lua script is atomic: exactly the capacity, fleet-wide


@needs_redis
def test_writes_and_reads_round_trip_through_redis(prefix: str) -> None:
    one = RedisState("redis://127.0.0.1:6379/0", prefix=prefix, start=False)
    two = RedisState("redis://127.0.0.1:6379/0", prefix=prefix, start=False)
    try:
        one.set("canary:f", {"percent": 25.0, "gen": 3})
        one.incr("guard:f", "calls", 5)
        one.hit("w", {"calls": 2.0})
        one.sync()
        assert two.get("canary:f") == {"percent": 25.0, "gen": 3}
        assert two.counters("guard:f") == {"calls": 5.0}
        assert two.window("w", 60) == {"calls": 2.0}
        two.incr("guard:f", "calls", 1)
        assert two.counters("guard:f") == {"calls": 6.0}  # own write visible at once
        two.sync()
        one.sync()
        assert one.counters("guard:f") == {"calls": 6.0}
        assert two.claim("probe", 5) is True
        assert one.claim("probe", 5) is False  # one half-open probe fleet-wide
    finally:
        one.close()
        two.close()


def test_unreachable_redis_falls_back_to_local_state_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import portal

    cfg = {
        "portal": {"ledger": "none", "state": "redis://127.0.0.1:1/0?refresh_ms=20"},
        "providers": {
            "a": {
                "kind": "sim",
                "options": {"time_scale": 0},
                "throughput": {"requests_per_min": 2},
            },
            "b": {"kind": "sim", "options": {"time_scale": 0}},
        },
        "features": {"f": {"primary": "a:m", "fallbacks": ["b:m"]}},
    }
    with caplog.at_level(logging.WARNING, logger="portal.routing"):
        client = portal.Client(cfg, ledger=None)
        targets = [client.chat(feature="f", messages=[portal.user("hi")]).target for _ in range(3)]
        client.close()
    assert targets == ["a:m", "a:m", "b:m"]  # the commitment still holds, locally
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1
    assert "127.0.0.1:1" in down[0].getMessage()


def test_open_state_reads_portal_options_from_the_url() -> None:
    state = open_state("redis://127.0.0.1:1/0?prefix=app1&refresh_ms=250")
    try:
        assert isinstance(state, RedisState)
        assert state.prefix == "app1:" and state.refresh_s == 0.25
    finally:
        state._stop.set()


def test_redis_password_never_appears_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="portal.routing"):
        state = RedisState("redis://user:s3cret@127.0.0.1:1/0", start=False)
        assert state.get("canary:f") is None  # the first read tries Redis, fails, logs
        state._stop.set()
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "s3cret" not in text and "***" in text
