"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) renders the
headline and all four plots offline without console errors, lines stop at gaps in the data,
money is in dollars; the screenshot is kept under artifacts/ (look at it)."""

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
    """Three hours of two providers (40 minutes of traffic each, then nothing), a canary arm,
    an SLA miss in the second hour, and a load test's calls that the report leaves out."""
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
    for i in range(30):  # a load test at the end of the second hour: not production traffic
        out.append(
            LedgerRecord(
                ts=H0 + 3600 + 2700 + i,
                kind="call",
                call_id=f"lt-{i}",
                feature="support",
                target="acme:sim-small",
                provider="acme",
                model="sim-small",
                attempt=1,  # type: ignore[arg-type]
                latency_ms=9000.0,
                cost_usd=0.5,
                tags={"source": "loadtest"},
            )
        )
    return sorted(out, key=lambda r: r.ts)


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
            "summarize": {"primary": "acme:sim-small", "sla": {"p95_ms": 5000}},
        },
    }
)


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    report = build_report(_records(), CONFIG, by="feature", traffic="production")
    assert report["sla"]["breaches"] and report["canary"]  # all four plots have data
    assert report["traffic"]["left_out_calls"] == {"loadtest": 30}
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
    # the headline a manager reads first
    for text in ("Cost per user action", "SLA per feature", "Vendors", "left out: 30 loadtest"):
        assert text in dom.stdout, text
    assert 'class="badge missed"' in dom.stdout and 'class="badge met"' in dom.stdout
    # money in dollars, never SI prefixes such as "200µ"
    drawn = re.findall(r"<text[^>]*>([^<]*)</text>", dom.stdout)  # every label plotly drew
    assert drawn and not [x for x in drawn if "µ" in x]
    cost_div = dom.stdout.split('<div id="cost"', 1)[1].split('<div id="canary"', 1)[0]
    ticks = re.findall(r'class="ytick"><text[^>]*>([^<]*)</text>', cost_div)
    assert ticks and all(t.startswith("$") for t in ticks), ticks
    # lines stop at gaps (40 minutes of traffic, 20 without, each hour): plotly draws each
    # trace of the latency plot as one piece per stretch of data, three here, not one line
    latency_div = dom.stdout.split('<div id="latency"', 1)[1].split('<div id="cost"', 1)[0]
    traces = latency_div.split('class="trace scatter')[1:]
    pieces = [len(re.findall(r'class="js-line" d="M', tr)) for tr in traces]
    assert pieces and min(pieces) >= 3, pieces  # never one line across the empty stretches

    done = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,3600", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000  # a real page, not a blank image
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
