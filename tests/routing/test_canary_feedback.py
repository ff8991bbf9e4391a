"""client.feedback: scores joined to the call's arm in the ledger and judged by the canary
guard; the call span of a canaried feature names the step and why it changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import portal
from portal.metering.ledger import read_records

from .conftest import config, sim_provider

KEYS = [f"user-{i}" for i in range(5000)]
MSG = [portal.user("Where is my order 123?")]


def _cfg(ledger: str, **guard: Any) -> dict[str, Any]:
    cfg = config(
        {"a": sim_provider(), "c": sim_provider()},
        {"f": {"primary": "a:m", "canary": {"target": "c:new", "percent": 50, "guard": guard}}},
    )
    cfg["portal"] = {"ledger": ledger}
    return cfg


def test_feedback_is_a_ledger_row_joined_to_the_calls_arm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    client = portal.Client(_cfg(url), ledger=url)
    answers = [client.chat(feature="f", key=k, messages=MSG) for k in KEYS[:20]]
    assert all(r.call_id for r in answers) and len({r.call_id for r in answers}) == 20
    for i, resp in enumerate(answers):
        client.feedback(resp.call_id if i % 2 else resp, "thumbs", float(i % 3 == 0))
    client.close()
    rows = {r.call_id: r for r in read_records(url, kind="feedback")}
    assert set(rows) == {r.call_id for r in answers}
    for i, resp in enumerate(answers):
        row = rows[resp.call_id]
        assert (row.arm, row.feature, row.target) == (resp.arm, "f", resp.target)
        assert row.tags == {"metric": "thumbs", "value": repr(float(i % 3 == 0))}
    assert {r.arm for r in rows.values()} == {"baseline", "canary"}


def test_feedback_for_another_processs_call_is_joined_from_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = portal.Client(_cfg(url), ledger=url)
    resp = next(
        r for r in (first.chat(feature="f", key=k, messages=MSG) for k in KEYS) if r.arm == "canary"
    )
    first.close()
    second = portal.Client(_cfg(url), ledger=url)  # the thumbs-up arrives at another replica
    second.feedback(resp.call_id, "thumbs", 1.0)
    with pytest.raises(portal.ContractError, match="no call 'nope'"):
        second.feedback("nope", "thumbs", 1.0)
    second.close()
    (row,) = read_records(url, kind="feedback")
    assert (row.call_id, row.arm, row.target) == (resp.call_id, "canary", "c:new")


@pytest.mark.parametrize(
    ("metric", "value", "message"),
    [
        ("thumbs up", 1.0, "metric 'thumbs up'"),
        ("thumbs", float("nan"), "finite number"),
        ("thumbs", "yes", "finite number"),
    ],
)
def test_bad_feedback_names_the_field(metric: str, value: Any, message: str) -> None:
    client = portal.Client(_cfg("none"), ledger=None)
    resp = client.chat(feature="f", key="u", messages=MSG)
    with pytest.raises(portal.ContractError, match=message):
        client.feedback(resp, metric, value)
    client.close()


def test_a_drop_in_feedback_rolls_the_canary_back() -> None:
    client = portal.Client(
        _cfg("none", min_calls=30, feedback={"thumbs": {"min_delta": 0.1}}), ledger=None
    )
    control = client.router.canary
    for key in KEYS[:1500]:
        resp = client.chat(feature="f", key=key, messages=MSG)
        client.feedback(resp, "thumbs", 0.0 if resp.arm == "canary" else 1.0)
        if control.live("f")["percent"] == 0:
            break
    client.close()
    assert control.live("f")["percent"] == 0
    assert "feedback:thumbs" in control.live("f")["reason"]
    assert control.arms("f")[1].calls == 0  # the new step starts from zero


def test_async_feedback() -> None:
    async def main() -> tuple[Any, Any]:
        async with portal.AsyncClient(_cfg("none", feedback={"thumbs": {}}), ledger=None) as client:
            resp = await client.chat(feature="f", key="u1", messages=MSG)
            await client.feedback(resp.call_id, "thumbs", 1.0)
            return resp, client.router.canary.arms("f")

    resp, (base, can) = anyio.run(main)
    arm = can if resp.arm == "canary" else base
    assert arm.feedback["thumbs"].n == 1 and arm.feedback["thumbs"].total == 1.0


def test_the_call_after_a_rollback_says_so_on_its_span() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from portal.metering.meter import Meter
    from portal.metering.otel import Telemetry

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    meter = Meter(kinds={"a": "sim", "c": "sim"}, telemetry=Telemetry(tp, None))
    client = portal.Client(_cfg("none"), meter=meter)
    canary_key = next(
        k for k in KEYS if client.chat(feature="f", key=k, messages=MSG).arm == "canary"
    )
    client.router.canary.rollback("f", "bad tone")
    after = client.chat(feature="f", key=canary_key, messages=MSG)
    later = client.chat(feature="f", key=canary_key, messages=MSG)
    client.close()
    assert after.arm == later.arm == "baseline"
    calls = [s for s in spans.get_finished_spans() if s.parent is None]
    first_after, second_after = (dict(s.attributes or {}) for s in calls[-2:])
    assert first_after["portal.arm"] == "baseline"
    assert first_after["portal.canary.percent"] == 0.0
    assert first_after["portal.canary.event"] == "rollback"
    assert first_after["portal.canary.reason"] == "bad tone"
    assert first_after["portal.canary.target"] == "c:new"
    assert "portal.canary.event" not in second_after  # once, on the next call
