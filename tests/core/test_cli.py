"""The `portal` command as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import portal
from portal.cli import main


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"portal {portal.__version__}"


def test_config_check_lists_every_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "portal.toml"
    cfg.write_text(
        textwrap.dedent("""
        [providers.a]
        kind = "sim"
        options = { latency_p50_ms = -1 }
        [features.f]
        primary = "a:m"
        [features.f.canary]
        target = "a:n"
        percent = 200
    """)
    )
    out = run("config", "check", "--config", str(cfg))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{cfg}: 1 problem(s)",
        "  portal.toml: features.f.canary.percent: must be between 0 and 100, got 200",
    ]
    cfg.write_text(cfg.read_text().replace("200", "5"))
    out = run("config", "check", "--config", str(cfg))
    assert out.returncode == 1
    assert out.stderr.splitlines()[1] == (
        "  providers.a.options.latency_p50_ms: Input should be greater than or equal to 0"
    )
    cfg.write_text(cfg.read_text().replace("-1", "50"))
    out = run("config", "check", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{cfg}: ok (1 provider(s), 1 feature(s))"


def test_no_command_prints_help_and_exits_2(capsys: object) -> None:
    assert main([]) == 2


def test_demo_runs_offline_and_prints_real_numbers(tmp_path: Path) -> None:
    out = run("demo", "--out", str(tmp_path / "demo"), "--users", "60", "--no-html")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "portal demo: 60 user actions on 3 simulated vendors" in text
    assert "calls by feature:" in text and "calls by target:" in text  # from the ledger
    assert "canary vs baseline:" in text and "errors seen by users: 0" in text
    assert "errors by feature:" in text  # the flaky primary's failures, absorbed by failover
    for name in (
        "support.answer",
        "support.summarize",
        "search.embed",
        "acme:sim-small",
        "bolt:sim-medium",
    ):
        assert name in text
    assert "structured output (" in text and "tool loop (" in text
    assert (tmp_path / "demo" / "portal.toml").exists()
    assert (tmp_path / "demo" / "ledger.db").exists()


def test_config_check_reports_data_path_policy(tmp_path: Path) -> None:
    cfg = tmp_path / "portal.toml"
    cfg.write_text(
        textwrap.dedent("""
        [providers.us]
        kind = "sim"
        region = "us"
        tags = ["soc2"]
        [providers.ap]
        kind = "sim"
        region = "ap"
        [features.f]
        primary = "us:m"
        fallbacks = ["ap:m"]
        allowed = { regions = ["us", "eu"], tags = ["soc2"] }
    """)
    )
    out = run("config", "check", "--config", str(cfg))
    assert out.returncode == 1
    assert out.stderr.splitlines()[1:] == [
        "  features.\"f\".fallbacks[0]: target ap:m is in region 'ap', outside the allowed "
        "regions ['us', 'eu'] (see allowed)",
        "  features.\"f\".fallbacks[0]: target ap:m lacks the required tag(s) ['soc2'] "
        "(see allowed)",
    ]
