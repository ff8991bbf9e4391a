"""The ledger reconciles exactly with what callers saw; the report reads it the same way
from SQLite and PostgreSQL; the `portal report` command's formats."""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import portal
from portal.cli.report import main
from portal.errors import PortalError
from portal.metering.ledger import LedgerRecord, read_records
from portal.metering.report import build_report, load_records, parse_since

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


def _config(ledgers: list[str]) -> dict[str, Any]:
    """A flaky primary (fails over to b), a sometimes-failing secondary (some calls fail
    for the user), a 30% canary on c; instant sim vendors."""

    def sim(seed: int, **errors: float) -> dict[str, Any]:
        return {
            "kind": "sim",
            "options": {"seed": seed, "time_scale": 0, "error_rates": errors, "retry_after_s": 0},
        }

    return {
        "portal": {"ledger": ledgers},
        "providers": {
            "a": sim(1, server_error=0.35),
            "b": sim(2, server_error=0.5),
            "c": sim(3),
        },
        "features": {
            "support": {
                "primary": "a:sim-small",
                "fallbacks": ["b:sim-large"],
                "retry": {"attempts": 2, "base_wait_s": 0, "max_wait_s": 0},
                "canary": {"target": "c:sim-large", "percent": 30},
            },
            "search": {
                "primary": "a:sim-embed",
                "fallbacks": ["b:sim-embed"],
                "retry": {"attempts": 1},
            },
        },
    }


def _run(ledgers: list[str], n: int = 60) -> tuple[list[Any], int]:
    """Calls through portal.Client; returns (responses the callers saw, failed calls)."""
    seen: list[Any] = []
    failed = 0
    client = portal.Client(_config(ledgers))
    try:
        for i in range(n):
            try:
                if i % 6 == 5:
                    seen.append(client.embed(feature="search", inputs=[f"query {i}"]))
                elif i % 6 == 4:
                    done = [
                        e.response
                        for e in client.stream(
                            feature="support",
                            messages=[portal.user(f"summarize ticket {i}")],
                            key=f"user-{i}",
                        )
                        if e.type == "done"
                    ]
                    seen.append(done[0])
                else:
                    seen.append(
                        client.chat(
                            feature="support",
                            messages=[portal.user(f"where is order {i}?")],
                            key=f"user-{i}",
                        )
                    )
            except PortalError:
                failed += 1
    finally:
        client.close()  # flushes the ledger
    return seen, failed


def _fsum(values: Any) -> float:
    return math.fsum(v for v in values if v is not None)


def test_ledger_totals_reconcile_exactly_with_what_callers_saw(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    responses, failed = _run([url], n=90)
    records = read_records(url)
    calls = [r for r in records if r.kind == "call"]
    attempts = [r for r in records if r.kind == "attempt"]
    assert failed > 0, "the setup should make some calls fail for the user"
    assert any(len({a.target for a in r.attempts}) > 1 for r in responses), "no failover seen"
    assert any(getattr(r, "arm", "baseline") == "canary" for r in responses), "no canary seen"

    assert len(calls) == len(responses) + failed
    assert sum(1 for r in calls if r.outcome == "error") == failed

    # per (feature, target, arm): calls, cost, attempts and tokens, exactly
    want: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {"calls": 0, "cost": [], "attempts": 0, "in": 0, "out": 0}
    )
    for r in responses:
        g = want[(r.feature, r.target, getattr(r, "arm", "baseline"))]
        g["calls"] += 1
        g["cost"].append(r.cost_usd)
        g["attempts"] += len(r.attempts)
        g["in"] += r.usage.input_tokens
        g["out"] += r.usage.output_tokens
    got: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {"calls": 0, "cost": [], "attempts": 0, "in": 0, "out": 0}
    )
    for c in calls:
        if c.outcome == "error":
            continue
        g = got[(c.feature, c.target, c.arm)]
        g["calls"] += 1
        g["cost"].append(c.cost_usd)
        g["attempts"] += c.attempt
        g["in"] += c.input_tokens
        g["out"] += c.output_tokens
    assert set(got) == set(want)
    for key in want:
        assert got[key]["calls"] == want[key]["calls"], key
        assert _fsum(got[key]["cost"]) == _fsum(want[key]["cost"]), key
        assert got[key]["attempts"] == want[key]["attempts"], key
        assert (got[key]["in"], got[key]["out"]) == (want[key]["in"], want[key]["out"]), key

    # attempt rows: one per attempt the callers saw (plus those of failed calls), and their
    # costs add up to the call rows' costs
    ok_ids = {c.call_id for c in calls if c.outcome != "error"}
    assert sum(1 for a in attempts if a.call_id in ok_ids) == sum(
        len(r.attempts) for r in responses
    )
    assert _fsum(a.cost_usd for a in attempts if a.call_id in ok_ids) == pytest.approx(
        _fsum(r.cost_usd for r in responses), rel=1e-12
    )
    per_target_attempts: dict[str, int] = defaultdict(int)
    for r in responses:
        for a in r.attempts:
            per_target_attempts[a.target] += 1
    ledger_per_target: dict[str, int] = defaultdict(int)
    for a in attempts:
        if a.call_id in ok_ids:
            ledger_per_target[a.target] += 1
    assert ledger_per_target == per_target_attempts

    # the report over that ledger says the same
    report = build_report(records, portal.Client(_config(["none"])).config, by="target")
    for row in report["rows"]:
        saw = [r for r in responses if r.target == row["group"]]
        assert row["calls"] - row["errors"] == len(saw)
        assert row["cost_usd"] == pytest.approx(_fsum(r.cost_usd for r in saw), rel=1e-12)
    fallback_saw = sum(1 for r in responses if r.attempts and (r.attempts[0].target != r.target))
    assert report["total"]["fallback_calls"] == fallback_saw
    assert report["total"]["calls"] == len(responses) + failed
    assert report["attempts"] == len(attempts)
    assert report["canary"] and report["canary"][0]["feature"] == "support"
    canary_saw = [r for r in responses if getattr(r, "arm", None) == "canary"]
    assert report["canary"][0]["canary"]["calls"] == len(canary_saw) + sum(
        1 for c in calls if c.arm == "canary" and c.outcome == "error"
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_BASE, connect_timeout=3, autocommit=True)
    except Exception as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 (database test) is unreachable: {exc}")
    table = f"report_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_BASE}?table={table}"
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()


def _without_meta(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "meta"}


def test_same_report_over_sqlite_and_postgresql(tmp_path: Path, pg_url: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _run([sqlite_url, pg_url], n=36)
    config = portal.Client(_config(["none"])).config
    from_sqlite = load_records([sqlite_url])
    from_pg = load_records([pg_url])
    assert len(from_sqlite) == len(from_pg) > 36
    for by in ("feature", "provider", "target", "arm", "day"):
        a = build_report(from_sqlite, config, by=by)
        b = build_report(from_pg, config, by=by)
        assert _without_meta(a) == _without_meta(b), by
    # both ledgers at once: each record counted once
    both = load_records([sqlite_url, pg_url])
    assert len(both) == len(from_sqlite)
    # and through the command, as JSON
    outs = []
    for url in (sqlite_url, pg_url):
        out = tmp_path / f"r{len(outs)}.json"
        assert main(["--ledger", url, "--since", "all", "--format", "json", "--out", str(out)]) == 0
        outs.append(_without_meta(json.loads(out.read_text())))
    assert outs[0] == outs[1]
    assert outs[0]["total"]["calls"] == 36


def _rec(ts: float, **kw: Any) -> LedgerRecord:
    base: dict[str, Any] = {
        "kind": "call",
        "call_id": uuid.uuid4().hex,
        "feature": "f",
        "target": "a:m",
        "provider": "a",
        "model": "m",
        "attempt": 1,
        "cost_usd": 0.001,
        "latency_ms": 100.0,
    }
    base.update(kw)
    return LedgerRecord(ts=ts, **base)


def test_errors_by_class_count_what_users_saw_and_what_failover_absorbed() -> None:
    t0 = 1_760_000_000.0
    recs = [
        # absorbed: a 429 on a, then b served the call
        _rec(t0, kind="attempt", call_id="c1", outcome="error", error="RateLimited"),
        _rec(t0, kind="attempt", call_id="c1", attempt=2, target="b:m", provider="b"),
        _rec(t0, call_id="c1", attempt=2, target="b:m", provider="b"),
        # seen: every try failed
        _rec(t0 + 1, kind="attempt", call_id="c2", outcome="error", error="ServerError"),
        _rec(t0 + 1, call_id="c2", outcome="error", error="AllTargetsFailed"),
        # refused before any vendor: a call row without attempts
        _rec(
            t0 + 2,
            call_id="c3",
            attempt=0,
            target="",
            provider="",
            model="",
            outcome="error",
            error="GuardBlocked",
            cost_usd=0.0,
        ),
        _rec(
            t0 + 3, feature="g", kind="attempt", call_id="c4", outcome="error", error="RateLimited"
        ),
        _rec(t0 + 3, feature="g", call_id="c4", outcome="error", error="RateLimited"),
    ]
    rep = build_report(recs, None, by="feature")
    assert rep["errors"] == [
        {"group": "f", "error": "AllTargetsFailed", "calls": 1, "attempts": 0},
        {"group": "f", "error": "GuardBlocked", "calls": 1, "attempts": 0},
        {"group": "f", "error": "RateLimited", "calls": 0, "attempts": 1},
        {"group": "f", "error": "ServerError", "calls": 0, "attempts": 1},
        {"group": "g", "error": "RateLimited", "calls": 1, "attempts": 1},
    ]
    by_target = build_report(recs, None, by="target")["errors"]
    assert {"group": "a:m", "error": "RateLimited", "calls": 1, "attempts": 2} in by_target
    assert {"group": "(none)", "error": "GuardBlocked", "calls": 1, "attempts": 0} in by_target
    from portal.metering.report import render_text

    text = render_text(rep)
    assert "errors by feature" in text and "GuardBlocked" in text
    assert "errors by" not in render_text(build_report(recs[1:3], None))  # no errors seen


def test_report_numbers_on_a_hand_built_ledger(tmp_path: Path) -> None:
    from portal.metering.ledger import Ledger

    t0 = 1_760_000_000.0
    recs = [
        _rec(
            t0 + i, latency_ms=float(100 * (i + 1)), input_tokens=10, output_tokens=5, ttft_ms=50.0
        )
        for i in range(10)
    ]
    recs.append(_rec(t0 + 20, outcome="error", error="ServerError", cost_usd=0.0))
    recs.append(_rec(t0 + 21, outcome="cancelled", cost_usd=0.0))
    recs.append(_rec(t0 + 22, cost_usd=None))  # unknown price: counted apart, never as 0
    url = f"jsonl:///{tmp_path / 'l.jsonl'}"
    with Ledger([url]) as ledger:
        for r in recs:
            ledger.record(r)
    rep = build_report(load_records([url]), None, by="feature")
    row = rep["rows"][0]
    assert row["calls"] == 13
    assert row["errors"] == 1
    assert row["error_rate"] == pytest.approx(1 / 12)  # the cancelled call does not count
    assert row["p50_ms"] == 500.0  # 11 ok latencies: 100, 100, 200, ..., 1000
    assert row["unknown_cost_calls"] == 1
    assert row["cost_usd"] == pytest.approx(0.010)
    assert row["cost_per_call_usd"] == pytest.approx(0.010 / 12)
    assert row["cost_per_1k_calls_usd"] == pytest.approx(1000 * 0.010 / 12)
    assert row["ttft_p50_ms"] == 50.0
    assert rep["sla"] is None  # no config, no SLA targets

    # --feature and --since filter; csv has one row per group plus the total
    out = tmp_path / "r.csv"
    assert (
        main(
            [
                "--ledger",
                url,
                "--since",
                "2025-01-01",
                "--format",
                "csv",
                "--out",
                str(out),
                "--by",
                "arm",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["arm"] for r in rows] == ["baseline", "total"]
    assert rows[1]["calls"] == "13"
    assert (
        main(
            [
                "--ledger",
                url,
                "--since",
                "all",
                "--feature",
                "nope",
                "--format",
                "json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["total"]["calls"] == 0


def test_report_reads_the_config_ledger_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "portal.toml"
    cfg.write_text(
        '[portal]\nledger = "jsonl:///data/ledger.jsonl"\n'
        '[providers.a]\nkind = "sim"\noptions = { time_scale = 0 }\n'
        '[features.f]\nprimary = "a:sim-small"\n',
        encoding="utf-8",
    )
    (tmp_path / "data").mkdir()
    with portal.Client.from_config(cfg) as client:
        for i in range(3):
            client.chat(feature="f", messages=[portal.user(f"hi {i}")])
    monkeypatch.chdir(tmp_path / "data")  # the path resolves against the config, not the cwd
    assert main(["--config", str(cfg), "--format", "table", "--out", str(tmp_path / "t.txt")]) == 0
    text = (tmp_path / "t.txt").read_text()
    assert "portal report: 3 calls" in text
    row = next(line for line in text.splitlines() if line.startswith("f "))
    assert row.split()[1] == "3"
    assert not (tmp_path / "data" / "data").exists()


def test_report_command_errors_name_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert "--config portal.toml or --ledger" in capsys.readouterr().err
    assert main(["--ledger", "sqlite:///x.db", "--since", "yesterday"]) == 2
    assert "24h" in capsys.readouterr().err
    assert main(["--ledger", "postgresql://app:s3cret@127.0.0.1:1/db", "--since", "all"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the ledger" in err and "s3cret" not in err


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("24h", now) == now - 86400
    assert parse_since("30m", now) == now - 1800
    assert parse_since("all", now) is None
    assert parse_since("1970-01-02", now) == 86400.0
