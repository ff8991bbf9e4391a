"""The soak (benchmarks/soak.py) as a test: a short run in the normal suite, a long one with
``-m slow``. Mock vendors inject 5% errors (503 on the primary, 429 on the fallback) and
1-30 ms of latency; 40% of the calls stream."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "portal_soak", Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
)
assert _SPEC is not None and _SPEC.loader is not None
soak_mod: Any = importlib.util.module_from_spec(_SPEC)
sys.modules["portal_soak"] = soak_mod  # dataclasses look their module up
_SPEC.loader.exec_module(soak_mod)

#: memory a run may add after warm-up and still count as flat
RSS_TOLERANCE_MB = 30.0
LONG_RSS_TOLERANCE_MB = 64.0  # 1000 in flight: more pooled connections, tracemalloc overhead
TRACED_TOLERANCE_MB = 3.0
LONG_TRACED_TOLERANCE_MB = 8.0


def check(
    result: Any, rss_mb: float = RSS_TOLERANCE_MB, traced_mb: float = TRACED_TOLERANCE_MB
) -> None:
    assert result.unexpected == [], result.unexpected  # only documented errors
    assert result.tasks_after == 0
    assert result.fds_after == result.fds_before
    assert result.sockets_after == result.sockets_before
    assert result.ledger_calls == result.calls  # every call is in the ledger, none twice
    assert result.ledger_attempts > result.ledger_calls  # the faults really were injected
    assert result.attempt_outcomes.get("error", 0) > 0
    assert result.rss_end_mb - result.rss_warm_mb < rss_mb, result.top_growth
    assert result.traced_growth_mb < traced_mb, result.top_growth
    assert result.ok + sum(result.errors.values()) == result.calls


def test_short_soak(tmp_path: Path) -> None:
    result = anyio.run(lambda: soak_mod.soak(12.0, 200, warmup_s=3.0, ledger_dir=str(tmp_path)))
    assert result.calls > 1000
    check(result)


@pytest.mark.slow
def test_long_soak(tmp_path: Path) -> None:
    result = anyio.run(lambda: soak_mod.soak(180.0, 1000, warmup_s=10.0, ledger_dir=str(tmp_path)))
    assert result.calls > 10_000
    check(result, LONG_RSS_TOLERANCE_MB, LONG_TRACED_TOLERANCE_MB)
