"""The ledger: real SQLite files, JSONL, real PostgreSQL, failing sinks, SIGKILL safety."""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from portal.errors import ConfigError
from portal.metering.ledger import (
    COLUMNS,
    Ledger,
    LedgerRecord,
    hash_key,
    open_sink,
    read_records,
)

ROOT = Path(__file__).resolve().parents[2]
PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


def full_record(i: int = 0, **kw: object) -> LedgerRecord:
    values: dict[str, object] = dict(
        ts=1_700_000_000.0 + i,
        kind="attempt",
        call_id=f"call-{i}",
        operation="stream",
        feature="support.answer",
        contract_version="3",
        key_hash=hash_key("user-42", "salt"),
        tenant="acme",
        tags={"team": "cx", "env": "prod"},
        target="anthropic:claude-haiku-4-5",
        provider="anthropic",
        model="claude-haiku-4-5",
        arm="canary",
        attempt=2,
        outcome="error",
        error="RateLimited",
        status=429,
        input_tokens=1200,
        output_tokens=30,
        cached_input_tokens=1000,
        cache_write_tokens=100,
        reasoning_tokens=7,
        cost_usd=0.00042,
        latency_ms=812.5,
        ttft_ms=120.25,
        estimated=True,
        cache_miss_expected="failover",
    )
    values.update(kw)
    return LedgerRecord(**values)  # type: ignore[arg-type]


def test_hash_key_is_keyed_and_never_the_raw_key() -> None:
    h = hash_key("user-42", "s1")
    assert len(h) == 32 and int(h, 16) >= 0
    assert "user-42" not in h
    assert h == hash_key("user-42", "s1") != hash_key("user-42", "s2")
    assert hash_key("user-42", "x" * 100) != hash_key("user-42", "x" * 99)  # long salts work


def test_sqlite_roundtrip_all_fields_wal_and_indexes(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "ledger.db"
    url = f"sqlite:///{db}"
    with Ledger([url], batch_size=10, flush_interval_s=0.05) as led:
        recs = [full_record(i) for i in range(25)] + [
            full_record(100, feature="other", cost_usd=None, ttft_ms=None, tags={})
        ]
        for r in recs:
            led.record(r)
        assert led.flush(5)
    got = read_records(url)
    assert got == recs
    assert [r.call_id for r in read_records(url, since=1_700_000_020.0)] == [
        f"call-{i}" for i in (20, 21, 22, 23, 24, 100)
    ]
    assert [r.feature for r in read_records(url, feature="other")] == ["other"]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # (name, partial): one full index, each more one costs the writer's CPU per record; the
    # canary-event index is partial, so call and attempt rows never enter it
    idx = {(row[1], row[4]) for row in conn.execute("PRAGMA index_list(ledger)")}
    assert idx == {("ledger_ts", 0), ("ledger_canary", 1)}
    conn.close()


def test_relative_sqlite_url_and_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_records("sqlite:///.portal/ledger.db") == []
    with Ledger(["sqlite:///.portal/ledger.db"]) as led:
        led.record(full_record())
        assert led.flush(5)
    assert (tmp_path / ".portal" / "ledger.db").exists()
    assert len(read_records("sqlite:///.portal/ledger.db")) == 1


def test_jsonl_roundtrip_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    url = f"jsonl:///{path}"
    with Ledger([url], flush_interval_s=0.05) as led:
        led.record(full_record(1))
        assert led.flush(5)
    # a crash mid-append leaves half a line
    with open(path, "ab") as f:
        f.write(b'{"ts": 1700000002.0, "kind": "call", "call_')
    assert [r.call_id for r in read_records(url)] == ["call-1"]
    with Ledger([url], flush_interval_s=0.05) as led:  # a new process appends after it
        led.record(full_record(3))
        assert led.flush(5)
    assert read_records(url) == [full_record(1), full_record(3)]


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_BASE, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 (database test) is unreachable: {exc}")
    table = f"ledger_test_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_BASE}?table={table}"
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()


def test_postgres_roundtrip(pg_url: str) -> None:
    recs = [full_record(i) for i in range(30)] + [full_record(99, cost_usd=None, tags={})]
    with Ledger([pg_url], batch_size=8, flush_interval_s=0.05) as led:
        for r in recs:
            led.record(r)
        assert led.flush(10)
    assert read_records(pg_url) == recs
    assert len(read_records(pg_url, since=1_700_000_025.0, feature="support.answer")) == 6


def test_postgres_url_password_never_shown() -> None:
    sink = open_sink("postgresql://app:s3cret@db.internal:5432/ledger?table=calls")
    assert "s3cret" not in sink.url and "s3cret" not in repr(sink)
    with pytest.raises(ConfigError) as err:
        open_sink("mysql://app:s3cret@db/ledger")
    assert "s3cret" not in str(err.value)
    assert "sqlite:///" in str(err.value) and "jsonl:///" in str(err.value)
    assert "postgresql://" in str(err.value)
    with pytest.raises(ConfigError, match="table="):
        open_sink("postgresql://db/x?table=bad;drop")
    with pytest.raises(ConfigError, match="synchronous"):
        open_sink("sqlite:///x.db?synchronous=off")


class FlakySink:
    """Fails while ``broken`` is set; stores what it accepted."""

    def __init__(self) -> None:
        self.url = "flaky://test"
        self.broken = True
        self.rows: list[LedgerRecord] = []
        self.attempts = 0

    def write(self, records: Sequence[LedgerRecord]) -> None:
        self.attempts += 1
        if self.broken:
            raise ConnectionError("database is down")
        self.rows.extend(records)

    def read(self, since: float | None = None, feature: str | None = None) -> list[LedgerRecord]:
        return list(self.rows)

    def close(self) -> None:
        pass


def test_failing_sink_keeps_records_recovers_and_does_not_starve_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakySink()
    good = f"sqlite:///{tmp_path / 'ok.db'}"
    led = Ledger(
        [flaky, good], batch_size=5, flush_interval_s=0.02, retry_initial_s=0.02, retry_max_s=0.05
    )
    with caplog.at_level(logging.ERROR, logger="portal.metering"):
        for i in range(20):
            led.record(full_record(i))  # must not raise although a sink is failing
        assert led.flush(timeout=0.5) is False  # the flaky sink cannot be durable yet
        assert len(read_records(good)) == 20  # the healthy sink got everything meanwhile
        time.sleep(0.2)
    assert flaky.attempts >= 3
    errors = [r for r in caplog.records if "database is down" in r.getMessage()]
    assert len(errors) == 1  # once per error type, not per record or retry
    assert led.stats()[0]["failing"] is True
    flaky.broken = False
    assert led.flush(timeout=5) is True
    assert flaky.rows == [full_record(i) for i in range(20)]
    assert led.dropped == 0 and led.stats()[0]["failing"] is False
    assert led.close()


def test_full_buffer_drops_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakySink()
    led = Ledger(
        [flaky],
        batch_size=10,
        max_buffer=100,
        flush_interval_s=0.01,
        retry_initial_s=0.01,
        retry_max_s=0.02,
    )
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        for i in range(250):
            led.record(full_record(i))
        assert led.flush(timeout=0.5) is False
        assert led.dropped == 150
        flaky.broken = False
        assert led.flush(timeout=5) is True
    # what is kept is bounded by max_buffer, in order; everything else is counted as dropped
    kept = [int(r.call_id.split("-")[1]) for r in flaky.rows]
    assert len(kept) == 100 and kept == sorted(kept) and len(set(kept)) == 100
    assert any("dropped" in r.getMessage() for r in caplog.records)
    led.record("not a record")  # type: ignore[arg-type]  # never raises, counted as dropped
    assert led.dropped == 151
    led.close()


def test_close_gives_up_on_a_dead_sink_in_time_and_reports() -> None:
    flaky = FlakySink()
    led = Ledger([flaky], flush_interval_s=0.01, retry_initial_s=0.01, retry_max_s=0.02)
    for i in range(7):
        led.record(full_record(i))
    start = time.monotonic()
    assert led.close(timeout=0.3) is False
    assert time.monotonic() - start < 3
    assert led.dropped == 7
    led.record(full_record(8))  # after close: ignored, counted
    assert led.dropped == 8


def test_record_is_cheap_on_the_hot_path(tmp_path: Path) -> None:
    led = Ledger([f"sqlite:///{tmp_path / 'hot.db'}"], max_buffer=200_000)
    rec = full_record()
    n = 50_000
    start = time.perf_counter()
    for _ in range(n):
        led.record(rec)
    per_call_us = (time.perf_counter() - start) / n * 1e6
    assert per_call_us < 20, per_call_us  # measured ~0.3 us; generous for a shared CI box
    assert led.flush(30)
    led.close()
    assert len(read_records(f"sqlite:///{tmp_path / 'hot.db'}")) == n


def test_columns_match_record_fields() -> None:
    assert COLUMNS[0] == "ts" and "estimated" in COLUMNS and len(COLUMNS) == 33
    assert COLUMNS[-7:-3] == (
        "cache_write_1h_tokens",
        "service_tier",
        "cost_source",
        "price_source",
    )
    assert COLUMNS[-3:] == ("action_id", "cache_miss_expected", "cache_storage_token_hours")
    assert LedgerRecord.from_row(full_record().to_row()) == full_record()


CHILD = """
import sys
from portal.metering.ledger import Ledger, LedgerRecord
led = Ledger([sys.argv[1]], batch_size=50, flush_interval_s=0.01)
n = 0
while True:
    for _ in range(37):
        led.record(LedgerRecord(ts=float(n), call_id=str(n), feature="crash"))
        n += 1
    if led.flush(10):
        print(n, flush=True)
"""


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_sigkill_never_loses_flushed_records(tmp_path: Path, scheme: str) -> None:
    rnd = random.Random(1234)
    path = tmp_path / f"crash.{'db' if scheme == 'sqlite' else 'jsonl'}"
    url = f"{scheme}:///{path}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = 0  # records acknowledged by earlier (killed) children
    for _ in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        acked = 0
        first = proc.stdout.readline()  # wait until it is running and has flushed once
        assert first.strip(), "child produced no acknowledgement"
        acked = int(first)
        time.sleep(rnd.uniform(0.0, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate()
        for line in rest.splitlines():
            if line.strip():
                acked = int(line)  # lines fully printed were acknowledged before the kill
        got = read_records(url)
        ids = {r.call_id for r in got if r.ts >= 0}
        # this child's ids restart at 0: count its acknowledged ones beyond earlier runs
        assert len(got) >= base + acked
        assert {str(i) for i in range(acked)} <= ids
        base = len(got)
        if scheme == "sqlite":
            conn = sqlite3.connect(path)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()


def test_the_key_hash_cache_stays_bounded_and_hashes_stay_right() -> None:
    from portal.metering.ledger import hash_key
    from portal.metering.meter import KEY_HASH_CACHE, Meter

    meter = Meter(key_salt="s")
    keys = [f"user-{i}" for i in range(KEY_HASH_CACHE + 500)]
    hashes = [meter.key_hash(k) for k in keys]
    assert len(meter._hashes) <= KEY_HASH_CACHE  # a million users do not grow the process
    assert hashes == [hash_key(k, "s") for k in keys]
    assert meter.key_hash(keys[-1]) == hash_key(keys[-1], "s")  # recent keys still cached
    assert keys[-1] in meter._hashes
