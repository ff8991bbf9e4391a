"""``client.feedback(call_id, metric, value)``: a score for an answer, given after the fact.

A thumbs-up, a judge's score or a business outcome is written to the ledger as a
``kind="feedback"`` row joined to the call's feature, arm and target, and, for a feature with
a canary, counted by the guard when the call's step is still the live one (the guard judges
the metrics listed in ``[features.X.canary.guard.feedback]``). The call is found among this
process's recent calls, else in the ledger (a call made by another process).
"""

from __future__ import annotations

import math
import re
from typing import Any

from portal.contracts.responses import Response
from portal.errors import ContractError
from portal.metering.events import LedgerJournal, feedback_record
from portal.routing.canary import CanaryControl

__all__ = ["record_feedback"]

_METRIC = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def record_feedback(
    canary: CanaryControl,
    journal: LedgerJournal,
    call: str | Response,
    metric: str,
    value: float,
) -> None:
    """Record ``value`` for ``metric`` on ``call`` (a call id or the `Response` itself)."""
    if not isinstance(metric, str) or not _METRIC.match(metric):
        raise ContractError(
            f"feedback: metric {metric!r} must be 1-64 letters, digits, '_', '.' or '-' "
            '(e.g. "thumbs")'
        )
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContractError(
            f"feedback: value must be a finite number (e.g. 1.0 for thumbs up), got {value!r}"
        )
    value = float(value)
    if isinstance(call, Response):
        call_id = call.call_id
        row: dict[str, Any] = {
            "call_id": call_id,
            "feature": call.feature,
            "arm": call.arm,
            "target": call.target or "",
        }
    elif isinstance(call, str) and call:
        call_id = call
        row = {"call_id": call_id}
    else:
        raise ContractError(
            f"feedback: call must be a Response or its call_id (resp.call_id), got {call!r}"
        )
    recent = canary.call_of(call_id)
    gen: int | None = None
    if recent is not None:
        feature, arm, gen, target = recent
        row.update(feature=feature, arm=arm, target=target)
    elif "feature" not in row:
        found = journal.find_call(call_id)
        if found is None:
            raise ContractError(
                f"feedback: no call {call_id!r} in this process or the ledger; pass the id "
                "of a call made with a ledger (resp.call_id)"
            )
        row.update(
            feature=found.feature,
            arm=found.arm,
            target=found.target,
            operation=found.operation,
            key_hash=found.key_hash,
            tenant=found.tenant,
        )
    journal.feedback(feedback_record(row, metric, value))
    name = row.get("feature")
    if name is not None and name in canary.features():
        canary.observe_feedback(name, str(row.get("arm") or "baseline"), gen, metric, value)
