"""`portal gameday` on simulated vendors: every scenario, the report's measurements, the
pass/fail verdict, `[gamedays.NAME]` tables and `--all`, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from portal.cli import gameday as gameday_cli
from portal.config import load_config
from portal.errors import ConfigError
from portal.stress.gameday import GamedayScenario, run_gameday, scenarios_from_config


def _run(cfg_path: Path, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "feature": "chat",
        "target": "fast",
        "at": 0.3,
        "for": 0.5,
        "duration": 1.4,
        "rps": 60,
        "seed": 5,
        "drain": 5,
        "prompts": "lognormal:mean=60,sigma=0.5",
    }
    data.update(kw)
    sc = GamedayScenario.model_validate(data)
    doc, _ = anyio.run(lambda: run_gameday(load_config(cfg_path), sc))
    assert doc["schema"] == "portal.gameday/1"
    assert doc["scenario"]["injected"] > 0
    before = doc["phases"]["before"]
    assert before["errors"] == 0 and before["served_by_faulted_share"] > 0.9
    return doc


def test_outage_fails_over_opens_the_breaker_and_recovers(sim_config: Callable[..., Path]) -> None:
    doc = _run(sim_config(), scenario="outage", duration=2.0)  # connection refused
    during = doc["phases"]["during"]
    assert during["error_rate"] == 0  # every user was served by the secondary
    assert during["served_by_faulted_share"] == 0
    assert doc["failover_s"] is not None and doc["failover_s"] < 0.1
    assert doc["breaker_opened_s"] is not None and doc["breaker_opened_s"] < 0.3
    opened = [e for e in doc["breaker_events"] if e["target"] == "fast:sim-small"]
    assert opened[0]["to"] == "open"
    # cooldown 0.4 s: the half-open probe succeeds and traffic comes back within the run
    assert doc["recovery_s"] is not None and doc["recovery_s"] < 0.8
    assert doc["phases"]["after"]["served_by_faulted_share"] > 0.5
    # the secondary is dearer per request here (its replies are simulated as longer ones)
    assert doc["cost"]["fault_per_request_usd"] is not None
    assert doc["passed"] is True


def test_slow_keeps_traffic_and_fails_a_tight_sla(sim_config: Callable[..., Path]) -> None:
    doc = _run(sim_config(p95=60, p99=200), scenario="slow", fault={"latency_ms": 120})
    before, during = doc["phases"]["before"], doc["phases"]["during"]
    assert during["latency_ms"]["p50"] > before["latency_ms"]["p50"] + 100
    assert doc["failover_s"] is None  # slow is not an error: nothing moved traffic
    assert during["served_by_faulted_share"] > 0.9
    assert doc["passed"] is False
    failed = {c["metric"] for c in doc["checks"] if not c["ok"]}
    assert "p95_ms" in failed
    assert doc["recovery_s"] is not None and doc["recovery_s"] < 0.5


def test_throttle_retries_after_then_fails_over(sim_config: Callable[..., Path]) -> None:
    doc = _run(sim_config(), scenario="throttle", fault={"retry_after_s": 0.05})
    during = doc["phases"]["during"]
    assert during["error_rate"] == 0
    assert during["failovers"] > 0
    assert during["served_by_faulted_share"] < 0.2
    assert doc["phases"]["after"]["served_by_faulted_share"] > 0.5


def test_flaky_is_absorbed_by_retries_and_failover(sim_config: Callable[..., Path]) -> None:
    doc = _run(sim_config(), scenario="flaky", fault={"rate": 0.5, "status": 500})
    during = doc["phases"]["during"]
    assert during["error_rate"] <= 0.02
    assert during["failovers"] > 0
    assert during["attempts_to_faulted"] > during["requests"] * 0.5


def test_brownout_is_slow_and_flaky(sim_config: Callable[..., Path]) -> None:
    doc = _run(
        sim_config(), scenario="brownout", fault={"latency_ms": 60, "rate": 0.3, "status": 503}
    )
    kinds = [f["kind"] for f in doc["scenario"]["faults"]]
    assert kinds == ["brownout", "slow"]
    before, during = doc["phases"]["before"], doc["phases"]["during"]
    assert during["latency_ms"]["p50"] > before["latency_ms"]["p50"] + 40
    assert during["failovers"] > 0
    assert doc["scenario"]["faults"][0]["hits"] > 0 and doc["scenario"]["faults"][1]["hits"] > 0


def test_gameday_tables_are_validated(sim_config: Callable[..., Path]) -> None:
    cfg = load_config(
        sim_config(
            extra="""
[gamedays.bad]
feature = "chat"
scenario = "meltdown"
target = "fast"
at = "soon"
"""
        )
    )
    with pytest.raises(ConfigError) as info:
        scenarios_from_config(cfg)
    text = "\n".join(info.value.errors)
    assert 'gamedays."bad".scenario' in text and 'gamedays."bad".at' in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--feature", "chat", "--scenario", "outage"], "give --target"),
        (["--feature", "chat", "--scenario", "outage", "--target", "nope"], "'nope' is not in"),
        (
            [
                "--feature",
                "chat",
                "--scenario",
                "outage",
                "--target",
                "fast",
                "--at",
                "9s",
                "--duration",
                "5s",
            ],
            "after the run ends",
        ),
        (["--all"], "has no [gamedays.NAME] tables"),
        (["--feature", "chat", "--scenario", "melt", "--target", "fast"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(
    sim_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert gameday_cli.main(["--config", str(sim_config()), *argv]) == 2
    assert message in capsys.readouterr().err


def test_all_on_the_demo_config_smoke(
    demo_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI smoke: `portal gameday --all` on the demo config with two short scenarios."""
    from portal.cli import main

    with demo_config.open("a", encoding="utf-8") as f:
        f.write("""
[gamedays.acme-down]
feature = "support.answer"
scenario = "outage"
target = "acme"
at = "0.2s"
for = "0.5s"
rps = 30
duration = "1s"
seed = 1

[gamedays.acme-slow]
feature = "support.answer"
scenario = "slow"
target = "acme:sim-small"
at = "0.2s"
for = "0.5s"
rps = 30
duration = "1s"
fault = { latency_ms = 1600 }
""")
    out = tmp_path / "suite.json"
    code = main(["gameday", "--config", str(demo_config), "--all", "--out", str(out), "--quiet"])
    suite = json.loads(out.read_text())
    assert suite["schema"] == "portal.gameday-suite/1"
    assert [r["name"] for r in suite["results"]] == ["acme-down", "acme-slow"]
    down, slow = suite["results"]
    assert down["phases"]["during"]["served_by_faulted_share"] == 0
    # 1.6 s of added latency against the demo's 1.5 s p95 SLA: the slow game day must fail
    assert slow["passed"] is False
    assert code == 3 and suite["passed"] is False
    printed = capsys.readouterr().out
    assert "summary:" in printed and "acme-down" in printed and "FAIL" in printed
