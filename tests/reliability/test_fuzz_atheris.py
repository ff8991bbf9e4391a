"""A short coverage-guided run of the atheris harnesses (tests/reliability/fuzz/) in the
normal suite; run them directly for longer (``-runs=`` / ``-max_total_time=``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

FUZZ = Path(__file__).resolve().parent / "fuzz"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("harness", "runs"), [("fuzz_sse.py", 10000), ("fuzz_eventstream.py", 1500)]
)
def test_harness_finds_nothing(harness: str, runs: int, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / harness),
            f"-runs={runs}",
            "-seed=1",
            "-max_len=4096",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Done {runs} runs" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
