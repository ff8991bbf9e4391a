"""A fleet against one blocking budget: 200 concurrent calls from two processes through a real
Redis overshoot the limit by at most one call's worst case (benchmarks/budget_overshoot.py,
run here at a tenth of its simulated latency)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "budget_overshoot", ROOT / "benchmarks" / "budget_overshoot.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_processes_200_calls_one_dollar_budget() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable: {exc}")
    r = _bench().run(calls=200, processes=2, limit=1.0, time_scale=0.1)
    assert r["ok"] + r["refused"] == 200
    assert r["ok"] > 0 and r["refused"] > 0  # the budget bound: some served, the rest refused
    assert r["spent_in_redis_usd"] == pytest.approx(r["spent_usd"])  # every cost settled
    assert r["held_after_usd"] == pytest.approx(0.0, abs=1e-9)  # every reservation released
    assert r["spent_usd"] - 1.0 <= r["max_worst_case_usd"]
    assert r["overshoot_usd"] == 0.0  # max_tokens bounds each call: the worst case holds
