"""`portal loadtest` on simulated vendors: the JSON users read, the SLA exit codes CI gates
on, coordinated omission, and the demo-config smoke run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from portal.cli import loadtest as loadtest_cli
from portal.config import load_config
from portal.stress import loadtest
from portal.stress.arrivals import LengthDist, PromptSource
from portal.stress.engine import LoadSpec


def _spec(**kw: object) -> LoadSpec:
    base: dict[str, object] = {
        "feature": "chat",
        "rps": 100.0,
        "duration_s": 1.5,
        "prompts": PromptSource(LengthDist.parse("lognormal:mean=60,sigma=0.5")),
        "seed": 7,
        "drain_s": 5.0,
    }
    base.update(kw)
    return LoadSpec(**base)  # type: ignore[arg-type]


def test_json_document_shape_and_numbers(sim_config: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    html = tmp_path / "r.html"
    code = loadtest_cli.main(
        [
            "--config",
            str(sim_config()),
            "--feature",
            "chat",
            "--rps",
            "120",
            "--duration",
            "1.5s",
            "--prompts",
            "lognormal:mean=60,sigma=0.5",
            "--output-tokens",
            "fixed:16",
            "--seed",
            "3",
            "--out",
            str(out),
            "--html",
            str(html),
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "portal.loadtest/1"
    assert set(doc) >= {
        "feature",
        "params",
        "requests",
        "offered_rps",
        "throughput_rps",
        "latency_ms",
        "ttft_ms",
        "errors",
        "share",
        "tokens",
        "cost",
        "generator",
        "sla",
        "timeline",
    }
    assert set(doc["latency_ms"]) == {"count", "mean", "p50", "p90", "p95", "p99", "max"}
    req = doc["requests"]
    assert req["sent"] == doc["latency_ms"]["count"] and req["ok"] + req["errors"] == req["sent"]
    assert 120 < req["sent"] < 240  # Poisson around 180
    lat = doc["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    # the primary is sim p50 150 ms x time_scale 0.1 = 15 ms
    assert 10 < lat["p50"] < 60
    assert doc["share"]["target"]["fast:sim-small"]["share"] > 0.9
    assert doc["share"]["arm"] == {"baseline": {"count": req["ok"], "share": 1.0}}
    assert doc["tokens"]["output"] <= 16 * req["ok"]
    assert doc["cost"]["usd"] >= 0 and doc["cost"]["projected_usd_per_day"] == pytest.approx(
        doc["cost"]["usd"] / 1.5 * 86400
    )
    assert doc["sla"]["met"] is True
    assert [c["metric"] for c in doc["sla"]["checks"]] == ["p95_ms", "p99_ms"]
    assert sum(r["sent"] for r in doc["timeline"]) == req["sent"]
    page = html.read_text()
    assert "Latency from intended start" in page and "fast:sim-small" in page


def test_missed_sla_exits_3(
    sim_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = sim_config(p95=1, p99=2)  # 1 ms: no vendor meets it
    code = loadtest_cli.main(
        [
            "--config",
            str(cfg),
            "--feature",
            "chat",
            "--rps",
            "50",
            "--duration",
            "0.6s",
            "--quiet",
        ]
    )
    assert code == 3
    out = capsys.readouterr().out
    assert "SLA: MISSED" in out and "p95_ms" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--feature", "nope"], "--feature 'nope': not in the config"),
        (["--feature", "chat", "--rps", "0"], "--rps 0: must be greater than 0"),
        (["--feature", "chat", "--burst", "lots"], "--burst 'lots'"),
        (["--feature", "chat", "--prompts", "zipf:a=1"], "unknown distribution"),
        (["--feature", "chat", "--duration", "forever"], "--duration: 'forever'"),
        (["--feature", "chat", "--prompts-file", "/nonexistent.jsonl"], "cannot read it"),
        (["--rps", "5"], "required: --feature"),
    ],
)
def test_usage_errors_exit_2(
    sim_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert loadtest_cli.main(["--config", str(sim_config()), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "portal.toml"
    bad.write_text('[features.chat]\nprimary = "ghost:model"\n', encoding="utf-8")
    assert loadtest_cli.main(["--config", str(bad), "--feature", "chat"]) == 2
    assert "ghost" in capsys.readouterr().err


def test_latency_counts_queueing_from_the_intended_start(sim_config: Callable[..., Path]) -> None:
    """Coordinated omission: with one request allowed in flight and ~15 ms service time,
    100 rps arrive faster than they are served; a closed-loop generator would report
    ~15 ms, an open-loop one must report the queue the users would have waited in."""
    cfg = load_config(sim_config())
    doc, result = anyio.run(
        lambda: loadtest.run_loadtest(cfg, _spec(rps=100.0, duration_s=1.0, concurrency_limit=1))
    )
    service = sorted(
        (s.end_s - s.sent_s) * 1000 for s in result.samples if s.end_s and s.sent_s is not None
    )
    # what a closed-loop generator would report: the time each call took once sent
    assert service[len(service) // 2] < 80
    # what users saw: the queue grows for the whole second, so the median waits hundreds of
    # ms and the tail most of the run
    assert doc["latency_ms"]["p50"] > 200
    assert doc["latency_ms"]["p50"] > 5 * service[len(service) // 2]
    assert doc["latency_ms"]["p99"] > 1.3 * doc["latency_ms"]["p50"]


def test_streaming_measures_ttft(sim_config: Callable[..., Path]) -> None:
    cfg = load_config(sim_config())
    doc, _ = anyio.run(lambda: loadtest.run_loadtest(cfg, _spec(stream=True, duration_s=1.0)))
    ttft, lat = doc["ttft_ms"], doc["latency_ms"]
    assert ttft["count"] == doc["requests"]["ok"] > 50
    assert 0 < ttft["p50"] < lat["p50"]


def test_demo_config_smoke(
    demo_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI smoke: the command as users type it, on the demo config, in about two seconds."""
    from portal.cli import main

    cfg = demo_config

    out = tmp_path / "r.json"
    code = main(
        [
            "loadtest",
            "--config",
            str(cfg),
            "--feature",
            "support.answer",
            "--rps",
            "30",
            "--duration",
            "1.5s",
            "--burst",
            "3x:0.5s/1s",
            "--prompts",
            "lognormal:mean=200,sigma=1",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    doc = json.loads(out.read_text())
    assert code == (0 if doc["sla"]["met"] else 3)
    assert doc["requests"]["sent"] > 20 and doc["requests"]["ok"] > 0
    printed = capsys.readouterr()
    assert "served by target" in printed.out and "sent" in printed.err


CACHING_TOML = """
[portal]
ledger = "none"

[providers.a]
kind = "sim"
options = { time_scale = 0.02, prompt_cache = true, prompt_cache_writes = true }
[providers.b]
kind = "sim"
options = { time_scale = 0.02, prompt_cache = true, prompt_cache_writes = true }

[features.docs]
primary = "a:m"
fallbacks = ["b:m"]
strategy = "weighted"
weights = { "a:m" = 1, "b:m" = 1 }
"""


def test_stable_prefix_prompts_repeat_a_cache_marked_system_prompt() -> None:
    import random

    src = PromptSource(LengthDist.parse("fixed:20"), stable_prefix_tokens=1500, stable_prefixes=2)
    rng = random.Random(1)
    drawn = [src.draw(rng).messages for _ in range(40)]
    assert all(m[0]["role"] == "system" and m[0]["cache"] is True for m in drawn)
    assert len({m[0]["content"] for m in drawn}) == 2  # two stable prefixes, reused
    assert all(m[1]["role"] == "user" for m in drawn)
    assert "2 stable prefix(es) of 1500 tokens" in src.describe()
    plain = PromptSource(LengthDist.parse("fixed:20")).draw(rng).messages
    assert [m["role"] for m in plain] == ["user"]
    with pytest.raises(Exception, match="--stable-prefix-tokens"):
        PromptSource(LengthDist.parse("fixed:20"), stable_prefix_tokens=-1)


def test_loadtest_replays_a_stable_prefix_workload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "portal.toml"
    cfg.write_text(CACHING_TOML, encoding="utf-8")
    out = tmp_path / "r.json"
    code = loadtest_cli.main(
        [
            "--config",
            str(cfg),
            "--feature",
            "docs",
            "--rps",
            "60",
            "--duration",
            "1s",
            "--prompts",
            "fixed:30",
            "--stable-prefix-tokens",
            "2000",
            "--seed",
            "5",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["params"]["stable_prefix_tokens"] == 2000
    assert doc["params"]["stable_prefixes"] == 1
    tok = doc["tokens"]
    ok = doc["requests"]["ok"]
    # one prefix, affinity on: the first request writes it, the others read it
    assert tok["cache_hit_requests"] >= ok - 2
    assert tok["cached_input"] >= 1024 * tok["cache_hit_requests"]
    assert 0.8 < tok["cache_hit_rate"] < 1.0
    assert "prompt cache:" in capsys.readouterr().out
