"""The soak (benchmarks/soak.py) as a test: a short run in the normal suite (and CI), a long
one with ``-m slow``; the long figures in docs/reliability.md come from the command line
(``python benchmarks/soak.py --duration 300 --concurrency 1000``). Mock vendors inject 5%
errors (503 on the primary, 429 on the fallback) and 1-30 ms of latency; 40% of the calls
stream.

Flatness (`soak.check`): with nothing in flight and after ``gc.collect()``, tracemalloc's
traced size at the end is within max(4 MB, 10%) of the size after warm-up, and RSS grows by
at most 16 MB over the second half (RSS reaches the allocator's high-water mark in the first
half and does not shrink; a leak keeps growing it)."""

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


def check(result: Any) -> None:
    assert soak_mod.check(result) == []
    assert result.ledger_attempts > result.ledger_calls  # the faults really were injected
    assert result.attempt_outcomes.get("error", 0) > 0
    assert len(result.checkpoints) == 5  # warm-up end + 4 phases, each with calls made
    calls = [c.calls for c in result.checkpoints]
    assert calls == sorted(set(calls))


def test_short_soak(tmp_path: Path) -> None:
    result = anyio.run(lambda: soak_mod.soak(12.0, 200, warmup_s=3.0, ledger_dir=str(tmp_path)))
    assert result.calls > 600  # ~1,300-2,000 here; fewer on a busy 2-core machine
    check(result)


@pytest.mark.slow
def test_long_soak(tmp_path: Path) -> None:
    result = anyio.run(lambda: soak_mod.soak(180.0, 1000, warmup_s=10.0, ledger_dir=str(tmp_path)))
    assert result.calls > 10_000
    check(result)


def test_check_catches_a_leak_and_a_lost_ledger_row() -> None:
    """The checks can fail: growth past the bounds and a missing ledger row are reported."""
    mark = soak_mod.Checkpoint(t_s=0.0, calls=0, rss_mb=100.0, traced_mb=20.0)
    flat = soak_mod.SoakResult(
        duration_s=60.0, concurrency=10, calls=100, streams=40, ok=90,
        errors={"ProviderTimeout": 10}, unexpected=[], calls_per_s=1.7,
        fds_before=9, fds_after=9, sockets_before=2, sockets_after=2, tasks_after=0,
        rss_warm_mb=100.0, rss_mid_mb=120.0, rss_end_mb=125.0,
        traced_warm_mb=20.0, traced_mid_mb=21.0, traced_end_mb=22.0,
        ledger_calls=100, ledger_attempts=110, checkpoints=[mark],
    )  # fmt: skip
    assert soak_mod.check(flat) == []
    leaky = soak_mod.SoakResult(**{**vars(flat), "traced_end_mb": 26.0, "rss_end_mb": 140.0})
    assert [m.split()[0] for m in soak_mod.check(leaky)] == ["traced", "RSS"]
    lost = soak_mod.SoakResult(**{**vars(flat), "ledger_calls": 99})
    assert soak_mod.check(lost) == ["ledger has 99 call rows for 100 calls"]
