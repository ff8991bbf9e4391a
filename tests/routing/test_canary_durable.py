"""Canary decisions are durable and visible: ledger events, a step that survives a state store
restarted empty and a process restart, `portal canary status` from the ledger."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import portal
from portal.cli.routing import canary_main
from portal.config import load_config
from portal.metering.events import LedgerJournal
from portal.metering.ledger import Ledger, read_records
from portal.routing.canary import CanaryControl
from portal.routing.state import MemoryState, RedisState
from portal.stress.faults import Fault

from .conftest import FakeClock, config, faulty, sim_provider

KEYS = [f"user-{i}" for i in range(5000)]


def _cfg(ledger: str, target: str = "c:new", state: str = "memory", **canary: Any) -> dict:
    cfg = config(
        {"a": sim_provider(), "c": sim_provider()},
        {"f": {"primary": "a:m", "canary": {"target": target, "percent": 50, **canary}}},
    )
    cfg["portal"] = {"ledger": ledger, "state": state}
    return cfg


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5).ping()
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")


def test_a_rollback_survives_a_process_restart(tmp_path: Path) -> None:
    """In-memory state dies with the process; the ledger brings the rollback back."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    client = portal.Client(_cfg(url), ledger=url)
    client.router.canary.rollback("f", "bad answers")
    client.close()

    again = portal.Client(_cfg(url), ledger=url)  # a new process: empty memory state
    try:
        control = again.router.canary
        assert control.percent("f", 50.0) == 0.0
        assert "bad answers" in control.live("f")["reason"]
        assert all(
            again.chat(feature="f", key=k, messages=[portal.user("hi")]).arm == "baseline"
            for k in KEYS[:40]
        )
    finally:
        again.close()


def test_a_new_canary_target_starts_from_its_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    client = portal.Client(_cfg(url), ledger=url)
    client.router.canary.rollback("f", "bad answers")
    client.close()
    fresh = portal.Client(_cfg(url, target="c:newer"), ledger=url)
    try:
        assert fresh.router.canary.percent("f", 50.0) == 50.0  # another release
    finally:
        fresh.close()


def test_a_rollback_survives_redis_restarted_empty() -> None:
    """Redis restarted without its data must not bring a rolled-back canary back to 50%."""
    _redis_or_skip()
    prefix = f"portal-test-{uuid.uuid4().hex[:12]}"
    cfg = load_config(_cfg("none"))
    state = RedisState("redis://127.0.0.1:6379/0", prefix=prefix, start=False)
    other = RedisState("redis://127.0.0.1:6379/0", prefix=prefix, start=False)
    try:
        control = CanaryControl(cfg, state)
        assert control.percent("f", 50.0) == 50.0
        control.rollback("f", "drill")
        state.sync()
        state.clear()  # what a restarted, empty Redis holds
        state.sync()  # the local copy now mirrors the empty store
        assert control.percent("f", 50.0) == 0.0
        state.sync()  # ...and the store was re-seeded for the rest of the fleet
        assert CanaryControl(cfg, other).percent("f", 50.0) == 0.0
    finally:
        state.clear()
        state.close()
        other.close()


def test_a_guard_rollback_is_a_ledger_event_with_its_figures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    c = faulty("c", Fault("flaky", status=500, rate=0.5))
    client = portal.Client(_cfg(url, guard={"min_calls": 20}), ledger=url, transports={"c": c})
    with caplog.at_level("WARNING", logger="portal.routing"):
        for key in KEYS[:600]:
            client.chat(feature="f", key=key, messages=[portal.user("hi")])
            if client.router.canary.live("f")["percent"] == 0:
                break
    client.close()
    assert client.router.canary.live("f")["percent"] == 0
    warning = next(r.getMessage() for r in caplog.records if "rolled back" in r.getMessage())
    assert "f" in warning and "errors" in warning and "%" in warning  # feature, metric, figures
    events = [r for r in read_records(url, kind="canary")]
    rollback = [e for e in events if e.tags["event"] == "rollback"]
    assert len(rollback) == 1
    tags = rollback[0].tags
    assert tags["by"] == "guard" and tags["metric"] == "errors" and tags["to"] == "0.0"
    assert rollback[0].target == "c:new" and rollback[0].feature == "f"
    stats = json.loads(tags["stats"])
    assert stats["verdict"] == "rollback"
    assert any(m["metric"] == "errors" and m["verdict"] == "rollback" for m in stats["metrics"])


def test_a_verdict_change_is_recorded_once_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = load_config(_cfg("none", guard={"min_calls": 10, "metrics": ["p95"]}))
    state = MemoryState(FakeClock())
    ledger = Ledger([url])
    one = CanaryControl(cfg, state, check_every=1, journal=LedgerJournal(ledger))
    two = CanaryControl(cfg, state, check_every=1, journal=LedgerJournal(ledger))
    for _ in range(400):
        for control in (one, two):
            control.observe("f", "baseline", True, 100.0, None)
            control.observe("f", "canary", True, 100.0, None)
    assert ledger.close()
    verdicts = [e for e in state.events("canary:f:events") if e["event"] == "verdict"]
    assert [e["verdict"] for e in verdicts] == ["promote"]
    rows = [r for r in read_records(url, kind="canary") if r.tags["event"] == "verdict"]
    assert len(rows) == 1 and rows[0].tags["verdict"] == "promote"


def _write(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    path = tmp_path / "portal.toml"
    path.write_text(f"""
[portal]
ledger = "{url}"

[providers.a]
kind = "sim"
options = {{ time_scale = 0 }}
[providers.c]
kind = "sim"
options = {{ time_scale = 0 }}

[features.f]
primary = "a:m"
[features.f.canary]
target = "c:new"
percent = 50
""")
    return path, url


def test_canary_status_reads_the_ledger_without_shared_state(tmp_path: Path) -> None:
    path, url = _write(tmp_path)
    client = portal.Client(path)
    for key in KEYS[:200]:
        client.chat(feature="f", key=key, messages=[portal.user("hi")])
    client.close()
    rows = read_records(url, kind="call")
    by_arm = {arm: sum(r.arm == arm for r in rows) for arm in ("baseline", "canary")}
    out = io.StringIO()
    assert canary_main(["status", "f", "--config", str(path)], out) == 0
    text = out.getvalue()
    assert f"calls {by_arm['baseline']:>7}" in text and f"calls {by_arm['canary']:>7}" in text
    assert "verdict: " in text and "errors" in text and "p99" in text
    assert "read from the ledger" in text


def test_status_shows_a_rollback_recorded_by_another_process(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    client = portal.Client(path)
    client.router.canary.rollback("f", "tone regression")
    client.close()
    out = io.StringIO()
    assert canary_main(["status", "f", "--config", str(path)], out) == 0
    text = out.getvalue()
    assert "at 0%" in text and "tone regression" in text and "rollback by hand" in text
