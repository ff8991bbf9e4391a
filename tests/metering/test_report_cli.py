"""`portal report` on the command line: a mistyped ledger is an error naming the fix, a ledger
not written yet is a note, ``--by vendor`` and ``--traffic`` work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal.cli.report import main
from portal.metering.ledger import Ledger, LedgerRecord


def _ledger(path: Path) -> str:
    url = f"sqlite:///{path}"
    ledger = Ledger([url])
    for i in range(6):
        tags = {"source": "loadtest"} if i >= 4 else {}
        for kind in ("attempt", "call"):
            ledger.record(
                LedgerRecord(
                    ts=1_760_000_000.0 + i,
                    kind=kind,  # type: ignore[arg-type]
                    call_id=f"c{i}",
                    feature="support",
                    target=f"{'acme' if i % 2 else 'cirrus'}:m",
                    provider="acme" if i % 2 else "cirrus",
                    model="m",
                    attempt=1,
                    cost_usd=0.001,
                    latency_ms=100.0,
                    tags=tags,
                )
            )
    ledger.close()
    return url


def test_a_mistyped_ledger_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ledger", f"sqlite:///{tmp_path / 'nope.db'}"]) == 2
    err = capsys.readouterr().err
    assert "nope.db: no such file; give the path of an existing ledger" in err


def test_a_ledger_not_written_yet_is_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "portal.toml").write_text('[providers.acme]\nkind = "sim"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["--format", "json"]) == 0
    out = capsys.readouterr()
    assert "does not exist yet (nothing recorded there)" in out.err
    assert json.loads(out.out)["total"]["calls"] == 0


def test_by_vendor_and_traffic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _ledger(tmp_path / "l.db")
    assert main(["--ledger", url, "--since", "all", "--by", "vendor", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["by"] == "provider"
    assert {r["group"]: r["calls"] for r in report["rows"]} == {"acme": 2, "cirrus": 2}
    assert report["traffic"] == {"counted": "production", "left_out_calls": {"loadtest": 2}}
    assert main(["--ledger", url, "--since", "all", "--traffic", "all", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["calls"] == 6
    assert main(["--ledger", url, "--since", "all", "--traffic", "synthetic"]) == 0
    assert "left out: 4 production call(s)" in capsys.readouterr().out
