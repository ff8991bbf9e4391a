"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) renders all
four plots offline without console errors; the screenshot is kept under artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from portal.config import load_config
from portal.metering.ledger import LedgerRecord
from portal.metering.report import build_report, render_html

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
H0 = 1_760_000_400.0 - (1_760_000_400.0 % 3600)

pytest.importorskip("plotly")


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI; .ci/install-chromium.sh should install it")
        pytest.skip(
            f"{CHROMIUM} is not installed (apt-get install -y chromium); "
            "in CI (CI set) this fails instead"
        )
    return path


def _records() -> list[LedgerRecord]:
    """Three hours of two providers, a canary arm, and an SLA miss in the second hour."""
    out: list[LedgerRecord] = []
    for h in range(3):
        for i in range(40):
            ts = H0 + h * 3600 + i * 60
            provider = "acme" if i % 4 else "cirrus"
            arm = "canary" if provider == "cirrus" else "baseline"
            lat = 200.0 + 30 * (i % 7) + (2500.0 if h == 1 and i % 5 == 0 else 0.0)
            common = dict(
                call_id=f"{h}-{i}",
                feature="support" if i % 3 else "summarize",
                target=f"{provider}:sim-small",
                provider=provider,
                model="sim-small",
                arm=arm,
                input_tokens=120,
                output_tokens=40,
                latency_ms=lat,
                cost_usd=0.0002 if provider == "acme" else 0.0011,
                ttft_ms=90.0,
            )
            out.append(LedgerRecord(ts=ts, kind="attempt", attempt=1, **common))  # type: ignore[arg-type]
            failed = h == 1 and i % 9 == 0
            out.append(
                LedgerRecord(
                    ts=ts,
                    kind="call",
                    attempt=1,  # type: ignore[arg-type]
                    outcome="error" if failed else "ok",
                    error="ServerError" if failed else None,
                    **common,
                )
            )
    return out


CONFIG = load_config(
    {
        "portal": {"ledger": "none"},
        "providers": {
            "acme": {"kind": "sim", "sla": {"p99_ms": 1000, "credit_percent": 10}},
            "cirrus": {"kind": "sim"},
        },
        "features": {
            "support": {
                "primary": "acme:sim-small",
                "sla": {"p95_ms": 1500},
                "canary": {"target": "cirrus:sim-small", "percent": 25},
            },
            "summarize": {"primary": "acme:sim-small"},
        },
    }
)


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    report = build_report(_records(), CONFIG, by="feature")
    assert report["sla"]["breaches"] and report["canary"]  # all four plots have data
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    text = page.read_text()
    assert "<script src=" not in text and "<link " not in text  # the JS is inlined

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: the page must work offline
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages while rendering:\n" + "\n".join(console)
    assert "Uncaught" not in dom.stderr
    for div in ("latency", "cost", "canary", "sla"):
        # plotly replaced each placeholder div with a rendered plot
        m = re.search(rf'<div id="{div}"[^>]*class="[^"]*js-plotly-plot', dom.stdout)
        assert m, f"plot {div!r} did not render"
    assert dom.stdout.count('class="plot-container plotly"') == 4
    assert dom.stdout.count("main-svg") >= 8
    assert "SLA breaches" in dom.stdout and "acme" in dom.stdout

    done = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000  # a real page, not a blank image
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
