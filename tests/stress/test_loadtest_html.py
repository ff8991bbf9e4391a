"""The load-test HTML report: the SLA drawn on the latency chart with its verdict, and no
error line when nothing failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from portal.config import load_config
from portal.stress import loadtest
from portal.stress.arrivals import LengthDist, PromptSource
from portal.stress.engine import LoadSpec

pytest.importorskip("plotly")

from portal.stress.html import figures, write_html


def _run(config: Path) -> tuple[dict, object]:
    spec = LoadSpec(
        feature="chat",
        rps=60.0,
        duration_s=1.0,
        prompts=PromptSource(LengthDist.parse("fixed:40")),
        seed=5,
        drain_s=5.0,
    )
    return anyio.run(lambda: loadtest.run_loadtest(load_config(config), spec))


def test_sla_lines_and_verdict(sim_config: Callable[..., Path], tmp_path: Path) -> None:
    doc, result = _run(sim_config(p95=2000, p99=4000))
    lat, thr, *_ = figures(doc, result)
    lines = {round(s.y0): s for s in lat.layout.shapes}
    assert set(lines) == {2000, 4000}
    notes = [a.text for a in lat.layout.annotations]
    assert any(n.startswith("SLA p95 2,000 ms: met") for n in notes), notes
    assert any(n.startswith("SLA p99 4,000 ms: met") for n in notes), notes
    assert [t.name for t in thr.data] == ["sent", "ok"]  # nothing failed: no flat error line
    assert "no errors" in thr.layout.title.text
    page = write_html(doc, result, tmp_path / "r.html").read_text()
    assert "<b>SLA met</b>" in page


def test_a_missed_sla_is_red_and_named(sim_config: Callable[..., Path], tmp_path: Path) -> None:
    doc, result = _run(sim_config(p95=1, p99=4000))
    lat, *_ = figures(doc, result)
    notes = [a.text for a in lat.layout.annotations]
    assert any(n.startswith("SLA p95 1 ms: MISSED (") for n in notes), notes
    page = write_html(doc, result, tmp_path / "r.html").read_text()
    assert "<b>SLA MISSED: p95</b>" in page
