"""Canary decisions and quality feedback in the ledger.

The routing state holds the live canary step, but a state store can restart empty and an
in-memory one dies with its process. The ledger is the durable record: every canary
decision (a promotion, a rollback, a change of the guard's verdict) is a ``kind="canary"``
row, and a process that finds no step in its state resumes from the last one here. Scores
given to calls after the fact (``client.feedback``) are ``kind="feedback"`` rows joined to
the call's arm. Events are plain dicts: this module knows nothing of routing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from portal.metering.ledger import Ledger, LedgerRecord, Sink, open_sink

__all__ = ["LedgerJournal", "event_from_record", "event_record", "feedback_record"]

logger = logging.getLogger("portal.metering")

#: events that set the live step (a verdict change alone does not)
STEP_EVENTS = frozenset({"start", "promote", "rollback", "set"})


def event_record(feature: str, event: Mapping[str, Any]) -> LedgerRecord:
    """A canary event as a ledger row: figures in ``tags`` (text), the guard's statistics as
    JSON under ``tags["stats"]``."""
    target = str(event.get("target") or "")
    provider, _, model = target.partition(":")
    tags: dict[str, str] = {}
    for name, value in event.items():
        if name in ("target", "at") or value is None:
            continue
        tags[name] = (
            json.dumps(value, separators=(",", ":"), default=str)
            if isinstance(value, (dict, list))
            else str(value)
        )
    return LedgerRecord(
        ts=float(event.get("at") or time.time()),
        kind="canary",
        call_id=str(event.get("id") or uuid.uuid4().hex),
        feature=feature,
        target=target,
        provider=provider,
        model=model,
        arm="canary",
        tags=tags,
    )


def event_from_record(rec: LedgerRecord) -> dict[str, Any]:
    """The event dict `event_record` stored (numbers and statistics decoded)."""
    out: dict[str, Any] = {"at": rec.ts, "target": rec.target, "id": rec.call_id}
    for name, text in rec.tags.items():
        if name in ("from", "to", "shadow"):
            out[name] = _number(text)
        elif name == "gen":
            out[name] = int(float(text))
        elif name == "stats":
            try:
                out[name] = json.loads(text)
            except ValueError:
                out[name] = text
        else:
            out[name] = text
    return out


def feedback_record(
    call: LedgerRecord | Mapping[str, Any], metric: str, value: float
) -> LedgerRecord:
    """A score for a call, joined to the call's feature, arm and target."""
    get = call.get if isinstance(call, Mapping) else lambda k, d=None: getattr(call, k, d)
    target = str(get("target", "") or "")
    provider, _, model = target.partition(":")
    return LedgerRecord(
        kind="feedback",
        call_id=str(get("call_id", "")),
        operation=get("operation", "chat") or "chat",
        feature=get("feature"),
        key_hash=get("key_hash"),
        tenant=get("tenant"),
        target=target,
        provider=provider,
        model=model,
        arm=get("arm", "baseline") or "baseline",
        tags={"metric": metric, "value": repr(float(value))},
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class LedgerJournal:
    """Writes canary events and feedback to a `Ledger` and reads them back from its sinks
    (or from ledger URLs, for the CLI)."""

    def __init__(self, ledger: Ledger | None, urls: Sequence[str] = ()) -> None:
        self.ledger = ledger
        self._urls = list(urls)

    def _sinks(self) -> list[tuple[Sink, bool]]:
        if self.ledger is not None:
            return [(s, False) for s in self.ledger.sinks]
        return [(open_sink(u), True) for u in self._urls]

    def _read(self, **filters: Any) -> list[LedgerRecord]:
        """Rows from the first sink that answers; sinks that fail are logged and skipped."""
        for sink, owned in self._sinks():
            try:
                return sink.read(**filters)
            except Exception as exc:
                logger.warning(
                    "portal: could not read the ledger %s (%s: %s)",
                    sink.url,
                    type(exc).__name__,
                    exc,
                )
            finally:
                if owned:
                    sink.close()
        return []

    # -- canary events ------------------------------------------------------------------------
    def record(self, feature: str, event: Mapping[str, Any]) -> None:
        """Write the event now (in the background: a rollback must not wait on a disk)."""
        if self.ledger is None:
            return
        self.ledger.record(event_record(feature, event))
        threading.Thread(target=self.ledger.flush, name="portal-canary-event", daemon=True).start()

    def events(self, feature: str, n: int = 20) -> list[dict[str, Any]]:
        """The feature's last ``n`` canary events, newest first."""
        rows = self._read(feature=feature, kind="canary")
        return [event_from_record(r) for r in reversed(rows[-n:])] if n else []

    def last_step(self, feature: str) -> dict[str, Any] | None:
        """The newest event that set the feature's live step, or None."""
        rows = self._read(feature=feature, kind="canary")
        for rec in reversed(rows):
            if rec.tags.get("event") in STEP_EVENTS:
                return event_from_record(rec)
        return None

    # -- feedback -----------------------------------------------------------------------------
    def find_call(self, call_id: str) -> LedgerRecord | None:
        """The ``kind="call"`` row of ``call_id`` (a scan on ledgers without that index)."""
        if self.ledger is not None:
            self.ledger.flush(timeout=5.0)
        rows = self._read(kind="call", call_id=call_id)
        return rows[-1] if rows else None

    def feedback(self, rec: LedgerRecord) -> None:
        if self.ledger is not None:
            self.ledger.record(rec)

    def rows(self, feature: str, since: float | None = None) -> list[LedgerRecord]:
        """Every row of a feature (``portal canary status`` without shared state)."""
        return self._read(feature=feature, since=since)
