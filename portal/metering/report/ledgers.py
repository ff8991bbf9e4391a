"""Where a report's records come from: the period (``--since``), the ledgers a config writes
to, and reading them merged, each record once."""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portal.config import PortalConfig
    from portal.metering.ledger import LedgerRecord

__all__ = ["TRAFFIC", "ledger_urls", "load_records", "parse_since", "shown_url", "split_traffic"]

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ============================================================================ inputs


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``24h``, ``30m``, ``7d``, ``2w``, an ISO date/time (UTC if no zone), or ``all`` →
    epoch seconds (None for all)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    now = time.time() if now is None else now
    m = _SINCE.match(text.strip().lower())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use a duration like 24h, 30m, 7d, 2w, an ISO date such as "
            "2025-11-01, or 'all'"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


def ledger_urls(config: PortalConfig) -> list[str]:
    """The ledgers a client built from ``config`` writes to, with relative sqlite/jsonl
    paths resolved against the config's folder (same rules as the client)."""
    base = Path(config.base_dir)
    urls = [u for u in config.portal.ledgers if u != "none"]
    if not config.portal.ledgers:
        urls = [f"sqlite:///{base / '.portal' / 'ledger.db'}"]
    out = []
    for url in urls:
        scheme, sep, rest = url.partition(":///")
        if sep and scheme in ("sqlite", "jsonl") and not rest.startswith("/"):
            url = f"{scheme}:///{base / rest}"
        out.append(url)
    return out


def shown_url(url: str) -> str:
    """A ledger URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def load_records(
    urls: Sequence[str], since: float | None = None, feature: str | None = None
) -> list[LedgerRecord]:
    """Records of every ledger in ``urls``, merged (duplicates once), oldest first."""
    from portal.metering.ledger import read_records

    seen: set[tuple[Any, ...]] = set()
    out: list[LedgerRecord] = []
    absent = set(missing_ledgers(urls))
    for url in urls:
        if url in absent:
            continue  # nothing recorded yet; never create an empty database by reading
        for r in read_records(url, since=since, feature=feature):
            key = (r.kind, r.call_id, r.attempt, r.target, round(r.ts, 6)) if r.call_id else None
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            out.append(r)
    out.sort(key=lambda r: r.ts)
    return out


def missing_ledgers(urls: Sequence[str]) -> list[str]:
    """The file ledgers (SQLite, JSONL) in ``urls`` whose file does not exist."""
    out = []
    for url in urls:
        for scheme in ("sqlite:///", "jsonl:///"):
            if url.startswith(scheme) and not Path(url.removeprefix(scheme)).exists():
                out.append(url)
    return out


#: which calls a report counts: production (load tests and game days left out), only the
#: synthetic ones, or all
TRAFFIC = ("production", "synthetic", "all")


def split_traffic(
    records: Sequence[LedgerRecord], traffic: str
) -> tuple[list[LedgerRecord], dict[str, int]]:
    """The records of ``traffic``, and how many call rows were left out, per source."""
    from portal.metering.ledger import SOURCE_TAG, is_synthetic

    if traffic not in TRAFFIC:
        raise ValueError(f"--traffic must be one of {', '.join(TRAFFIC)}, got {traffic!r}")
    if traffic == "all":
        return list(records), {}
    keep_synthetic = traffic == "synthetic"
    kept: list[LedgerRecord] = []
    left_out: dict[str, int] = {}
    for r in records:
        if is_synthetic(r) == keep_synthetic:
            kept.append(r)
        elif r.kind == "call":
            source = r.tags.get(SOURCE_TAG) or "production"
            left_out[source] = left_out.get(source, 0) + 1
    return kept, dict(sorted(left_out.items()))
