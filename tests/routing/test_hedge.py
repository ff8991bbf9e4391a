"""Hedging: AsyncClient sends the same request to the next target when the first has not
answered after hedge.after_ms; the first good answer wins, the other is cancelled and
metered as hedge_lost. The sync Client runs hedged features unhedged and says so once."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import pytest

import portal
from portal.stress.faults import Fault

from .conftest import config, faulty, sim_provider

HEDGED = config(
    {"a": sim_provider(), "b": sim_provider()},
    {"f": {"primary": "a:m", "fallbacks": ["b:m"], "hedge": {"after_ms": 50}}},
)


def test_slow_primary_loses_to_the_hedge() -> None:
    a = faulty("a", Fault("slow", latency_ms=2000))
    client = portal.AsyncClient(HEDGED, transports={"a": a}, ledger=None)

    async def go() -> Any:
        t0 = time.perf_counter()
        resp = await client.chat(feature="f", messages=[portal.user("hi")])
        return resp, time.perf_counter() - t0

    resp, took = anyio.run(go)
    anyio.run(client.aclose)
    assert resp.target == "b:m"
    assert took < 1.0  # did not wait for the 2 s primary
    by_target = {x.target: x.outcome for x in resp.attempts}
    assert by_target == {"a:m": "hedge_lost", "b:m": "ok"}


def test_fast_primary_wins_without_a_hedge() -> None:
    client = portal.AsyncClient(HEDGED, ledger=None)

    async def go() -> Any:
        return await client.chat(feature="f", messages=[portal.user("hi")])

    resp = anyio.run(go)
    anyio.run(client.aclose)
    assert resp.target == "a:m"
    assert [x.target for x in resp.attempts] == ["a:m"]


def test_failing_primary_starts_the_hedge_at_once() -> None:
    cfg = config(
        {"a": sim_provider(), "b": sim_provider()},
        {
            "f": {
                "primary": "a:m",
                "fallbacks": ["b:m"],
                "hedge": {"after_ms": 5000},
                "retry": {"attempts": 1},
            }
        },
    )
    a = faulty("a", Fault("outage", status=0))
    client = portal.AsyncClient(cfg, transports={"a": a}, ledger=None)

    async def go() -> Any:
        with anyio.fail_after(2):
            return await client.chat(feature="f", messages=[portal.user("hi")])

    resp = anyio.run(go)
    anyio.run(client.aclose)
    assert resp.target == "b:m"


def test_hedge_lanes_all_failing_raise_each_targets_error() -> None:
    cfg = config(
        {"a": sim_provider(), "b": sim_provider()},
        {
            "f": {
                "primary": "a:m",
                "fallbacks": ["b:m"],
                "hedge": {"after_ms": 10},
                "retry": {"attempts": 1},
            }
        },
    )
    a = faulty("a", Fault("brownout", latency_ms=50, status=503))
    b = faulty("b", Fault("outage", status=503))
    client = portal.AsyncClient(cfg, transports={"a": a, "b": b}, ledger=None)

    async def go() -> Any:
        return await client.chat(feature="f", messages=[portal.user("hi")])

    with pytest.raises(portal.AllTargetsFailed) as info:
        anyio.run(go)
    anyio.run(client.aclose)
    assert {e.target for e in info.value.exceptions} == {"a:m", "b:m"}


def test_sync_client_runs_hedged_features_unhedged_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = faulty("a", Fault("slow", latency_ms=100))
    client = portal.Client(HEDGED, transports={"a": a}, ledger=None)
    with caplog.at_level(logging.WARNING, logger="portal.routing"):
        r1 = client.chat(feature="f", messages=[portal.user("hi")])
        r2 = client.chat(feature="f", messages=[portal.user("hi")])
    client.close()
    assert r1.target == r2.target == "a:m"  # waited for the slow primary
    warnings = [r for r in caplog.records if "AsyncClient" in r.getMessage()]
    assert len(warnings) == 1
