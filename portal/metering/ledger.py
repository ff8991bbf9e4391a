"""The durable ledger: one row per call and one per attempt (retries, failovers, hedge losers
and failed attempts all cost money and time).

`Ledger.record` is what the hot path calls: O(1), thread-safe, never blocks, never raises.
Each sink has its own queue and its own daemon writer thread, so a slow or failing sink never
holds up the caller or the other sinks. A writer batches records, writes them in one
transaction (SQLite, PostgreSQL) or one appended+fsynced chunk (JSONL), and on failure logs
once per error type, keeps the records (up to ``max_buffer``, dropping the oldest and counting
them) and retries with exponential backoff.

`Ledger.flush` returns True only once every record recorded before the call is durably in
every sink: committed with ``synchronous=FULL`` in SQLite's WAL, fsynced in JSONL, committed in
PostgreSQL. Such records survive the process being killed with SIGKILL (and, for SQLite and
JSONL, an OS crash), and the file stays consistent.

Sink URLs::

    sqlite:///relative/path.db      sqlite:////absolute/path.db    (default .portal/ledger.db)
        ?synchronous=normal         survives SIGKILL but not power loss; faster on slow disks
    jsonl:///relative/path.jsonl    jsonl:////absolute/path.jsonl
    postgresql://user@host:5432/db?table=portal_ledger   (psycopg 3, the ``postgres`` extra)
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, Self
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from portal.errors import ConfigError

__all__ = [
    "COLUMNS",
    "DEFAULT_LEDGER_URL",
    "JsonlSink",
    "Ledger",
    "LedgerRecord",
    "PostgresSink",
    "Sink",
    "SOURCE_TAG",
    "SYNTHETIC_SOURCES",
    "SqliteSink",
    "hash_key",
    "is_synthetic",
    "open_sink",
    "read_records",
]

logger = logging.getLogger("portal.metering")

DEFAULT_LEDGER_URL = "sqlite:///.portal/ledger.db"
SUPPORTED_SCHEMES = ("sqlite", "jsonl", "postgresql")

RecordKind = Literal["call", "attempt", "feedback", "canary"]
Operation = Literal["chat", "stream", "embed"]
Arm = Literal["baseline", "canary", "shadow"]
Outcome = Literal["ok", "error", "cancelled", "hedge_lost", "invalid_output"]

#: the tag naming where a call came from: load tests and game days set it, so reports can keep
#: synthetic traffic out of production numbers (``portal report --traffic``)
SOURCE_TAG = "source"
SYNTHETIC_SOURCES = frozenset({"loadtest", "gameday"})


def is_synthetic(record: LedgerRecord) -> bool:
    """Whether a row is load-test or game-day traffic (tagged by `portal.stress`)."""
    return record.tags.get(SOURCE_TAG) in SYNTHETIC_SOURCES


def hash_key(key: str, salt: str) -> str:
    """A stable, keyed pseudonym for a routing/user key: BLAKE2b (16 bytes, hex) keyed with
    ``salt``. The raw key never reaches the ledger; without the salt the hash cannot be
    brute-forced back from a list of likely user ids."""
    salt_bytes = salt.encode()
    if len(salt_bytes) > 64:  # blake2b keys are at most 64 bytes
        salt_bytes = hashlib.blake2b(salt_bytes, digest_size=64).digest()
    return hashlib.blake2b(key.encode(), key=salt_bytes, digest_size=16).hexdigest()


@dataclass(slots=True)
class LedgerRecord:
    """One ledger row. ``kind="call"`` rows sum what the caller saw (``attempt`` = number of
    attempts); ``kind="attempt"`` rows describe one try (``attempt`` = its number, from 1).
    ``kind="feedback"`` rows are a score given to a call later (``call_id``, ``arm`` and
    ``target`` are the call's; ``tags`` hold ``metric`` and ``value``); ``kind="canary"`` rows
    are the canary's decisions (``tags`` hold the event, its step and the guard's figures)."""

    ts: float = field(default_factory=time.time)  # epoch seconds, when the call/attempt began
    kind: RecordKind = "call"
    call_id: str = ""
    operation: Operation = "chat"
    feature: str | None = None
    contract_version: str | None = None
    key_hash: str | None = None  # hash_key(...), never the raw key
    tenant: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    target: str = ""  # "provider:model"
    provider: str = ""
    model: str = ""
    arm: Arm = "baseline"
    attempt: int = 0
    outcome: Outcome = "ok"
    error: str | None = None  # error class name
    status: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None = unknown price, never 0 for "unknown"
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    estimated: bool = False
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written for 1 hour
    service_tier: str | None = None  # the tier the vendor says served it; None = standard
    #: where cost_usd came from: "vendor" (the reply said), "computed" (from a price),
    #: "mixed" (a call whose attempts differ), None when the cost is unknown
    cost_source: str | None = None
    price_source: str | None = None  # "genai-prices 0.2.5", "config", "prices.json", ...
    #: the user action a call row belongs to: a tool loop's steps share the first call's id
    #: (None: the call is the whole action)
    action_id: str | None = None
    #: the attempt (or the call's answer) went to a target that does not hold the call's
    #: cached prompt prefix while another one does: "failover", "hedge" or "route"
    cache_miss_expected: str | None = None
    #: tokens x hours of storage of the explicit prompt caches the attempt (or call) created
    #: (Gemini, Vertex AI), priced by the provider's ``cache_storage``
    cache_storage_token_hours: float = 0.0

    def to_row(self) -> tuple[Any, ...]:
        """Values in `COLUMNS` order; ``tags`` as JSON text, ``estimated`` as 0/1."""
        return (
            self.ts,
            self.kind,
            self.call_id,
            self.operation,
            self.feature,
            self.contract_version,
            self.key_hash,
            self.tenant,
            json.dumps(self.tags, separators=(",", ":"), sort_keys=True) if self.tags else "{}",
            self.target,
            self.provider,
            self.model,
            self.arm,
            self.attempt,
            self.outcome,
            self.error,
            self.status,
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost_usd,
            self.latency_ms,
            self.ttft_ms,
            1 if self.estimated else 0,
            self.cache_write_1h_tokens,
            self.service_tier,
            self.cost_source,
            self.price_source,
            self.action_id,
            self.cache_miss_expected,
            self.cache_storage_token_hours,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LedgerRecord:
        values = dict(zip(COLUMNS, row, strict=True))
        tags = values["tags"]
        if isinstance(tags, str):
            tags = json.loads(tags) if tags else {}
        values["tags"] = dict(tags or {})
        values["estimated"] = bool(values["estimated"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerRecord:
        known = {k: v for k, v in data.items() if k in _FIELD_NAMES}
        if "tags" in known:
            known["tags"] = dict(known["tags"] or {})
        return cls(**known)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LedgerRecord))
_FIELD_NAMES = frozenset(COLUMNS)

_SQL_TYPES = {
    "ts": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "kind": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "call_id": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "operation": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "tags": ("TEXT NOT NULL", "JSONB NOT NULL"),
    "target": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "provider": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "model": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "arm": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "attempt": ("INTEGER NOT NULL", "INTEGER NOT NULL"),
    "outcome": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "status": ("INTEGER", "INTEGER"),
    "input_tokens": ("INTEGER NOT NULL", "BIGINT NOT NULL"),
    "output_tokens": ("INTEGER NOT NULL", "BIGINT NOT NULL"),
    "cached_input_tokens": ("INTEGER NOT NULL", "BIGINT NOT NULL"),
    "cache_write_tokens": ("INTEGER NOT NULL", "BIGINT NOT NULL"),
    "reasoning_tokens": ("INTEGER NOT NULL", "BIGINT NOT NULL"),
    "cost_usd": ("REAL", "DOUBLE PRECISION"),
    "latency_ms": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "ttft_ms": ("REAL", "DOUBLE PRECISION"),
    "estimated": ("INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    "cache_write_1h_tokens": ("INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    "cache_storage_token_hours": (
        "REAL NOT NULL DEFAULT 0",
        "DOUBLE PRECISION NOT NULL DEFAULT 0",
    ),
}


def _col_type(column: str, dialect: int) -> str:
    return _SQL_TYPES.get(column, ("TEXT", "TEXT"))[dialect]


def _ddl_columns(dialect: int) -> str:
    return ", ".join(f"{c} {_col_type(c, dialect)}" for c in COLUMNS)


#: columns added after the first release: an existing table gets them on open
_ADDED_COLUMNS = (
    "cache_write_1h_tokens",
    "service_tier",
    "cost_source",
    "price_source",
    "action_id",
    "cache_miss_expected",
    "cache_storage_token_hours",
)


def _added_columns(have: set[str]) -> list[str]:
    return [c for c in _ADDED_COLUMNS if c not in have]


# ============================================================================ sinks


class Sink(Protocol):
    """Where records go. ``write`` returns only once the batch is durable, or raises."""

    url: str  # for logs: never contains a password

    def write(self, records: Sequence[LedgerRecord]) -> None: ...

    def read(
        self,
        since: float | None = None,
        feature: str | None = None,
        kind: str | None = None,
        call_id: str | None = None,
    ) -> list[LedgerRecord]: ...

    def close(self) -> None: ...


def _path_from(url: str, scheme: str, default: str | None) -> str:
    rest = url[len(scheme) + 3 :].split("?", 1)[0]  # after "scheme://"
    # "sqlite:///x.db" -> "x.db", "sqlite:////abs/x.db" -> "/abs/x.db"
    rest = rest.removeprefix("/")
    if not rest:
        if default is None:
            raise ConfigError(f"ledger {url!r}: give a file path, e.g. {scheme}:///ledger.{scheme}")
        return default
    return rest


#: rows per INSERT statement in `SqliteSink.write` (bounded by SQLite's variable limit)
_ROWS_PER_INSERT = 200


class SqliteSink:
    """A SQLite file in WAL mode; each batch is one transaction."""

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigError(
                f"ledger sqlite: synchronous={synchronous.lower()!r} is not allowed; "
                "use full (default), extra or normal (off would lose flushed records)"
            )
        self.path = path
        self.synchronous = synchronous
        self.url = f"sqlite:///{path}"
        self._conn: sqlite3.Connection | None = None
        self._rows_per_insert = 1
        self._inserts: dict[int, str] = {}

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                with conn:
                    # One index: every read is a time range (reports filter the rest in
                    # Python). Indexes on (feature, ts) and (target, ts) took the writer from
                    # 12 to 20 µs CPU per record (measured), CPU the calling process pays; add
                    # your own for SQL by feature or target.
                    conn.execute(f"CREATE TABLE IF NOT EXISTS ledger ({_ddl_columns(0)})")
                    conn.execute("CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts)")
                    have = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
                    for col in _added_columns(have):  # a ledger written by an older portal
                        conn.execute(f"ALTER TABLE ledger ADD COLUMN {col} {_col_type(col, 0)}")
                    # canary decisions are read back at start: a partial index finds them
                    # without a scan and costs nothing on the call and attempt rows
                    conn.execute(
                        "CREATE INDEX IF NOT EXISTS ledger_canary ON ledger (feature, ts) "
                        "WHERE kind = 'canary'"
                    )
            except BaseException:
                conn.close()
                raise
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._rows_per_insert = max(1, min(_ROWS_PER_INSERT, limit // len(COLUMNS)))
            self._conn = conn
        return self._conn

    def _insert(self, rows: int) -> str:
        sql = self._inserts.get(rows)
        if sql is None:
            one = f"({', '.join('?' * len(COLUMNS))})"
            sql = self._inserts[rows] = (
                f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES {', '.join([one] * rows)}"
            )
        return sql

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """One transaction; rows go in multi-row INSERTs: executemany releases the GIL once
        per row, and a writer thread that does so stalls behind a busy caller thread (and
        costs it a GIL hand-off each time), so fewer, larger statements are much cheaper."""
        conn = self._connect()
        step = self._rows_per_insert
        try:
            with conn:  # one transaction; committed (and synced per `synchronous`) on exit
                i, left = 0, len(records)
                while left:
                    # full statements, then the rest in powers of two: a handful of distinct
                    # statements (cached) whatever the batch sizes
                    n = step if left >= step else 1 << (left.bit_length() - 1)
                    part = records[i : i + n]
                    conn.execute(self._insert(n), [v for r in part for v in r.to_row()])
                    i, left = i + n, left - n
        except sqlite3.Error:
            self.close()  # reopen next time: the file may have been replaced or unlocked
            raise

    def read(
        self,
        since: float | None = None,
        feature: str | None = None,
        kind: str | None = None,
        call_id: str | None = None,
    ) -> list[LedgerRecord]:
        if not os.path.exists(self.path):
            return []
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            where, params = _where(since, feature, "?", kind, call_id)
            try:
                rows = conn.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM ledger{where} ORDER BY ts", params
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
        finally:
            conn.close()
        return [LedgerRecord.from_row(r) for r in rows]

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class JsonlSink:
    """One JSON object per line, appended and fsynced per batch. A line torn by a crash is
    terminated before the next append and skipped by the reader."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.url = f"jsonl:///{path}"
        self._fd: int | None = None
        #: records of a failed batch already on disk whole (the retry skips them)
        self._on_disk: list[LedgerRecord] = []

    def _open(self) -> int:
        if self._fd is None:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size:
                    with open(self.path, "rb") as f:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":  # a torn last line: end it so ours stay whole
                            os.write(fd, b"\n")
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """Append ``records`` as one all-or-nothing batch: a write that fails part-way (a full
        disk) is cut back to where it began, so the ledger's retry of the same batch leaves
        exactly one row per record. Where the cut is not possible (another process appended
        after us, or truncating fails too), the records already written whole are remembered
        and skipped on the retry."""
        fd = self._open()
        done = self._on_disk
        if done:  # whole lines of failed batches that could not be cut back
            records = [r for r in records if not any(r is d for d in done)]
        lines = [
            (json.dumps(r.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n").encode()
            for r in records
        ]
        data = b"".join(lines)
        start = os.fstat(fd).st_size
        written = 0
        try:
            view = memoryview(data)
            while written < len(data):
                written += os.write(fd, view[written:])
            os.fsync(fd)
        except OSError:
            self._undo(fd, start, written, records, lines)
            self.close()
            raise
        self._on_disk = []

    def _undo(
        self,
        fd: int,
        start: int,
        written: int,
        records: Sequence[LedgerRecord],
        lines: list[bytes],
    ) -> None:
        """After a failed append of ``written`` bytes from ``start``: cut the file back to
        ``start``, or remember which records are on disk whole."""
        try:
            if os.fstat(fd).st_size == start + written:  # nobody appended after us
                os.ftruncate(fd, start)
                return
        except OSError:
            pass
        whole, total = 0, 0
        for line in lines:
            total += len(line)
            # a line short of only its newline is whole: the next append ends it, so it
            # reads back as a row (retrying it would write it twice)
            if total - 1 > written:
                break
            whole += 1
        self._on_disk.extend(records[:whole])

    def read(
        self,
        since: float | None = None,
        feature: str | None = None,
        kind: str | None = None,
        call_id: str | None = None,
    ) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return out
        with f:
            for line in f:
                if not line.endswith(b"\n"):
                    continue  # torn by a crash mid-append
                try:
                    rec = LedgerRecord.from_dict(json.loads(line))
                except (ValueError, TypeError):
                    continue  # a torn line later terminated by the next writer
                if since is not None and rec.ts < since:
                    continue
                if feature is not None and rec.feature != feature:
                    continue
                if kind is not None and rec.kind != kind:
                    continue
                if call_id is not None and rec.call_id != call_id:
                    continue
                out.append(rec)
        out.sort(key=lambda r: r.ts)
        return out

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class PostgresSink:
    """A PostgreSQL table (created if missing); each batch is one COPY in one transaction.
    psycopg is imported on first use, so it is only needed by those who use this sink."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        table = query.pop("table", ["portal_ledger"])[-1]
        if not _IDENT.match(table):
            raise ConfigError(
                f"ledger postgresql: table={table!r} is not a plain identifier; "
                "use letters, digits and _ (optionally schema.table)"
            )
        self.table = table
        self._dsn = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(query, doseq=True), "")
        )
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, f"table={table}", ""))
        self._conn: Any = None

    def __repr__(self) -> str:
        return f"PostgresSink({self.url!r})"  # the DSN may hold a password: never shown

    def _table_sql(self) -> Any:
        from psycopg import sql

        return sql.Identifier(*self.table.split("."))

    def _connect(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg
            from psycopg import sql

            conn = psycopg.connect(self._dsn, connect_timeout=10)
            try:
                name = self.table.split(".")[-1]
                with conn.transaction():
                    conn.execute(
                        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                            self._table_sql(), sql.SQL(_ddl_columns(1))
                        )
                    )
                    for col in _ADDED_COLUMNS:  # a ledger written by an older portal
                        conn.execute(
                            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                                self._table_sql(), sql.Identifier(col), sql.SQL(_col_type(col, 1))
                            )
                        )
                    for col in ("ts", "feature", "target"):
                        cols = sql.SQL("ts") if col == "ts" else sql.SQL(f"{col}, ts")
                        conn.execute(
                            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                                sql.Identifier(f"{name}_{col}"), self._table_sql(), cols
                            )
                        )
                    conn.execute(
                        sql.SQL(
                            "CREATE INDEX IF NOT EXISTS {} ON {} (feature, ts) "
                            "WHERE kind = 'canary'"
                        ).format(sql.Identifier(f"{name}_canary"), self._table_sql())
                    )
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def write(self, records: Sequence[LedgerRecord]) -> None:
        from psycopg import sql

        conn = self._connect()
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._table_sql(), sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        )
        est = COLUMNS.index("estimated")
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for r in records:
                    row = list(r.to_row())
                    row[est] = bool(row[est])
                    copy.write_row(row)
        except Exception:
            self.close()
            raise

    def read(
        self,
        since: float | None = None,
        feature: str | None = None,
        kind: str | None = None,
        call_id: str | None = None,
    ) -> list[LedgerRecord]:
        import psycopg
        from psycopg import sql

        where, params = _where(since, feature, "%s", kind, call_id)
        with psycopg.connect(self._dsn, connect_timeout=10) as conn:
            try:
                rows = conn.execute(
                    sql.SQL("SELECT {} FROM {}{} ORDER BY ts").format(
                        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS),
                        self._table_sql(),
                        sql.SQL(where),
                    ),
                    params,
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                return []
        return [LedgerRecord.from_row(r) for r in rows]

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _where(
    since: float | None,
    feature: str | None,
    ph: str,
    kind: str | None = None,
    call_id: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append(f"ts >= {ph}")
        params.append(since)
    if feature is not None:
        clauses.append(f"feature = {ph}")
        params.append(feature)
    if kind == "canary":
        clauses.append("kind = 'canary'")  # written out: the partial index needs the literal
    elif kind is not None:
        clauses.append(f"kind = {ph}")
        params.append(kind)
    if call_id is not None:
        clauses.append(f"call_id = {ph}")
        params.append(call_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def open_sink(url: str) -> Sink:
    """A sink for ``url`` (see the module docstring). Connects lazily, on first write."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        query = parse_qs(urlsplit(url).query)
        sync = query.get("synchronous", ["full"])[-1]
        return SqliteSink(_path_from(url, "sqlite", ".portal/ledger.db"), synchronous=sync)
    if scheme == "jsonl":
        return JsonlSink(_path_from(url, "jsonl", None))
    if scheme in ("postgresql", "postgres"):
        return PostgresSink(url)
    shown = url.split("@", 1)[-1] if "@" in url else url  # never echo credentials
    raise ConfigError(
        f"ledger {shown!r}: unknown sink scheme {scheme or '(none)'!r}; supported: "
        "sqlite:///path.db, jsonl:///path.jsonl, postgresql://user@host/db"
    )


def read_records(
    url: str,
    since: float | None = None,
    feature: str | None = None,
    kind: str | None = None,
    call_id: str | None = None,
) -> list[LedgerRecord]:
    """Every record in the ledger at ``url``, oldest first, optionally filtered."""
    sink = open_sink(url)
    try:
        if kind is None and call_id is None:
            return sink.read(since=since, feature=feature)
        return sink.read(since=since, feature=feature, kind=kind, call_id=call_id)
    finally:
        sink.close()


# ============================================================================ the ledger


class _FlushToken:
    __slots__ = ("event", "ok", "target")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = True
        self.target = 0


class _SinkWorker:
    """One sink's queue and writer thread."""

    def __init__(self, ledger: Ledger, sink: Sink) -> None:
        self.sink = sink
        self.queue: deque[LedgerRecord | _FlushToken] = deque()
        self.wake = threading.Event()
        self.pending: deque[LedgerRecord] = deque()
        self.tokens: list[_FlushToken] = []
        self.moved = 0  # records taken from the queue into pending, ever
        self.written = 0  # records durably written (or dropped), ever
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None
        self._logged: set[str] = set()
        self._ledger = ledger
        self.thread = threading.Thread(
            target=self._run, name=f"portal-ledger[{sink.url}]", daemon=True
        )

    # -------------------------------------------------------------- writer thread
    def _run(self) -> None:
        led = self._ledger
        backoff = 0.0
        retry_at = 0.0
        while True:
            self._take()
            stopping = led._stopping.is_set()
            if self.pending and time.monotonic() >= retry_at:
                if self._write_all():
                    backoff = 0.0
                else:
                    backoff = min(max(backoff * 2, led.retry_initial_s), led.retry_max_s)
                    retry_at = time.monotonic() + backoff
            self._settle_tokens()
            now = time.monotonic()
            if stopping and ((not self.pending and not self.queue) or now >= led._stop_deadline):
                break
            if len(self.queue) >= led.batch_size and not backoff:
                continue  # a full batch arrived while writing: write it now
            # else wait for a full batch, a flush or the interval: a transaction per handful
            # of records (what arrives during one write) costs ~10x the CPU per record
            timeout = led.flush_interval_s
            if backoff:
                timeout = max(0.0, min(retry_at - now, led.retry_max_s))
            if stopping:
                timeout = min(timeout, max(0.0, led._stop_deadline - now))
            self.wake.wait(timeout)
            self.wake.clear()
        self._give_up()
        with contextlib.suppress(Exception):
            self.sink.close()

    def _take(self) -> None:
        """Move queued records into pending; trim pending to max_buffer (oldest first)."""
        q = self.queue
        while True:
            try:
                item = q.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushToken):
                item.target = self.moved
                self.tokens.append(item)
            else:
                self.pending.append(item)
                self.moved += 1
        over = len(self.pending) - self._ledger.max_buffer
        if over > 0:
            for _ in range(over):
                self.pending.popleft()
            self._count_drop(over)

    def _count_drop(self, n: int) -> None:
        self.dropped += n
        self.written += n  # resolved, though not stored
        for t in self.tokens:  # records before these tokens were lost: they cannot succeed
            t.ok = False
        self._settle_tokens()
        logger.warning(
            "portal: ledger sink %s dropped %d record(s): its buffer is full at %d because "
            "the sink is failing or slower than the record rate (%d dropped so far)",
            self.sink.url,
            n,
            self._ledger.max_buffer,
            self.dropped,
        )

    def _write_all(self) -> bool:
        """Write pending in batches. False when the sink failed (records stay pending)."""
        size = self._ledger.batch_size
        while self.pending:
            n = min(len(self.pending), size)
            batch = [self.pending[i] for i in range(n)]
            try:
                self.sink.write(batch)
            except Exception as exc:
                self._failed(exc)
                return False
            for _ in range(n):
                self.pending.popleft()
            self.written += n
            if self.failures:
                logger.warning(
                    "portal: ledger sink %s recovered after %d failed write(s)",
                    self.sink.url,
                    self.failures,
                )
                self.failures = 0
                self.last_error = None
            self._settle_tokens()
        return True

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        name = type(exc).__name__
        self.last_error = f"{name}: {exc}"
        if name not in self._logged:
            self._logged.add(name)
            logger.error(
                "portal: ledger sink %s failed (%s: %s); keeping up to %d records in memory "
                "and retrying with backoff. Further %s errors from this sink are not logged.",
                self.sink.url,
                name,
                exc,
                self._ledger.max_buffer,
                name,
            )

    def _settle_tokens(self) -> None:
        if not self.tokens:
            return
        keep = []
        for t in self.tokens:
            if self.written >= t.target:
                t.event.set()
            else:
                keep.append(t)
        self.tokens = keep

    def _give_up(self) -> None:
        """At shutdown: whatever could not be written is dropped and counted."""
        self._take()
        left = len(self.pending)
        if left:
            self.pending.clear()
            self._count_drop(left)
        for t in self.tokens:
            t.ok = False
            t.event.set()
        self.tokens = []


class Ledger:
    """Batches records to one or more sinks in the background. See the module docstring."""

    def __init__(
        self,
        sinks: Iterable[Sink | str] = (DEFAULT_LEDGER_URL,),
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
        max_buffer: int = 100_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        close_timeout_s: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_buffer < batch_size:
            raise ConfigError(
                f"ledger: need 1 <= batch_size <= max_buffer, got batch_size={batch_size}, "
                f"max_buffer={max_buffer}"
            )
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.close_timeout_s = close_timeout_s
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._closed = False
        self._late = 0  # records offered after close
        self._overflow = 0  # records refused because a writer is stuck
        self._overflow_lock = threading.Lock()
        opened = [open_sink(s) if isinstance(s, str) else s for s in sinks]
        if not opened:
            raise ConfigError(
                "ledger: give at least one sink URL, e.g. sqlite:///.portal/ledger.db"
            )
        self._workers = [_SinkWorker(self, s) for s in opened]
        self._queues = [(w.queue, w.wake) for w in self._workers]
        self._hard_cap = 2 * max_buffer + batch_size
        for w in self._workers:
            w.thread.start()
        _live.add(self)

    @property
    def sinks(self) -> list[Sink]:
        return [w.sink for w in self._workers]

    def record(self, rec: LedgerRecord) -> None:
        """Queue one record for every sink. O(1) per sink, never blocks, never raises."""
        try:
            if self._closed or rec.__class__ is not LedgerRecord:
                self._late += 1  # after close, or not a record: counted as dropped
                return
            batch = self.batch_size
            for q, wake in self._queues:
                if len(q) >= self._hard_cap:  # its writer is stuck inside a write
                    with self._overflow_lock:
                        self._overflow += 1
                    continue
                q.append(rec)
                if len(q) >= batch and not wake.is_set():
                    wake.set()
        except Exception:
            return

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every record recorded so far is durable in every sink. False if that
        did not happen within ``timeout`` seconds (a sink failing) or records were dropped."""
        tokens = []
        for w in self._workers:
            if not w.thread.is_alive():
                return False
            t = _FlushToken()
            w.queue.append(t)
            w.wake.set()
            tokens.append(t)
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in tokens:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not t.event.wait(remaining) or not t.ok:
                return False
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the writers. True when everything recorded was written."""
        if self._closed:
            return self.dropped == 0
        ok = self.flush(self.close_timeout_s if timeout is None else timeout)
        self._closed = True
        self._stop_deadline = time.monotonic() + (
            self.close_timeout_s if timeout is None else timeout
        )
        self._stopping.set()
        for w in self._workers:
            w.wake.set()
        for w in self._workers:
            w.thread.join(max(0.0, self._stop_deadline - time.monotonic()) + 1.0)
        _live.discard(self)
        if self.dropped:
            logger.warning(
                "portal: ledger closed; %d record(s) could not be written: %s",
                self.dropped,
                ", ".join(f"{w.sink.url}: {w.dropped}" for w in self._workers if w.dropped),
            )
        return ok and self.dropped == 0

    @property
    def dropped(self) -> int:
        """Records lost so far: buffer full while a sink failed, recorded after close, or not
        a `LedgerRecord`."""
        return sum(w.dropped for w in self._workers) + self._overflow + self._late

    def stats(self) -> list[dict[str, Any]]:
        """Per sink: url, records written, pending, dropped, failing, last error."""
        return [
            {
                "url": w.sink.url,
                "written": w.written - w.dropped,
                "pending": len(w.pending) + len(w.queue),
                "dropped": w.dropped,
                "failing": w.failures > 0,
                "last_error": w.last_error,
            }
            for w in self._workers
        ]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_live: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for ledger in list(_live):
        with contextlib.suppress(Exception):
            ledger.close()
