"""Hedging: AsyncClient sends the same request to the next target when the first has not
answered after hedge.after_ms; the first good answer wins, the other is cancelled and
metered as hedge_lost. The sync Client runs hedged features unhedged and says so once."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

import portal
from portal.stress.faults import Fault
from tests.helpers import openai_stream_chunks

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


# ------------------------------------------------------------------ streams, raced to text


def _vendor(name: str, first_token_ms: float) -> httpx2.MockTransport:
    """An OpenAI-format vendor whose stream says ``from <name>`` in five chunks, the first
    after ``first_token_ms`` (headers at once), and counts its usage at the end."""

    async def body() -> AsyncIterator[bytes]:
        await anyio.sleep(first_token_ms / 1000)
        for chunk in openai_stream_chunks([f"from {name} "] * 5):
            yield chunk
            await anyio.sleep(0.01)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx2.MockTransport(handler)


def _stream_config(hedge: dict[str, Any]) -> dict[str, Any]:
    vendor = {"kind": "openai", "api_key": "sk-test"}
    return config(
        {"a": dict(vendor), "b": dict(vendor)},
        {"f": {"primary": "a:m", "fallbacks": ["b:m"], "hedge": hedge}},
    )


STREAM_HEDGED = _stream_config({"after_ms": 100, "streams": True})


def _stream(a_ms: float, b_ms: float, cfg: dict[str, Any] = STREAM_HEDGED) -> Any:
    transports = {"a": _vendor("a", a_ms), "b": _vendor("b", b_ms)}

    async def go() -> Any:
        async with portal.AsyncClient(cfg, transports=transports, ledger=None) as client:
            t0 = time.perf_counter()
            events = [ev async for ev in client.stream(feature="f", messages=[portal.user("hi")])]
            return events, time.perf_counter() - t0

    return anyio.run(go)


def _text(events: list[Any]) -> str:
    return "".join(ev.text for ev in events if ev.type == "text")


def test_a_stream_slow_to_its_first_token_loses_to_the_hedge() -> None:
    events, took = _stream(a_ms=2000, b_ms=0)
    assert _text(events) == "from b " * 5  # the caller saw one vendor only
    done = events[-1].response
    assert done.target == "b:m" and took < 1.0
    assert {x.target: x.outcome for x in done.attempts} == {"a:m": "hedge_lost", "b:m": "ok"}


def test_a_stream_that_starts_in_time_is_not_hedged() -> None:
    events, _ = _stream(a_ms=0, b_ms=0)
    done = events[-1].response
    assert _text(events) == "from a " * 5
    assert done.target == "a:m" and [x.target for x in done.attempts] == ["a:m"]


def test_the_first_lane_to_stream_wins_even_if_it_started_first() -> None:
    """a streams at 250 ms, the hedge b (started at 100 ms) only at 600 ms: a wins, b is
    cancelled before any of its text reaches the caller."""
    events, took = _stream(a_ms=250, b_ms=600)
    assert _text(events) == "from a " * 5
    done = events[-1].response
    assert done.target == "a:m" and took < 0.55
    assert {x.target: x.outcome for x in done.attempts} == {"a:m": "ok", "b:m": "hedge_lost"}


def test_streams_are_not_hedged_unless_the_feature_says_so() -> None:
    events, took = _stream(a_ms=400, b_ms=0, cfg=_stream_config({"after_ms": 100}))
    assert _text(events) == "from a " * 5 and took >= 0.4


def test_stream_hedging_on_the_sync_client_is_a_config_error() -> None:
    with pytest.raises(portal.ConfigError, match=r"features\.f\.hedge\.streams.*AsyncClient"):
        portal.Client(STREAM_HEDGED, ledger=None)


def test_a_winning_stream_its_caller_abandons_is_cancelled_not_a_lost_hedge(
    tmp_path: Path,
) -> None:
    from portal.metering.ledger import read_records

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = {**STREAM_HEDGED, "portal": {"ledger": url}}
    transports = {"a": _vendor("a", 2000), "b": _vendor("b", 0)}

    async def go() -> None:
        async with portal.AsyncClient(cfg, transports=transports) as client:
            events = client.stream(feature="f", messages=[portal.user("hi")])
            async for ev in events:
                if ev.type == "text":
                    break  # the caller has what it wanted
            await events.aclose()

    anyio.run(go)
    attempts = {r.target: r.outcome for r in read_records(url, kind="attempt")}
    assert attempts == {"a:m": "hedge_lost", "b:m": "cancelled"}


def test_config_check_says_stream_hedging_needs_the_async_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from portal.cli import main as cli_main

    path = tmp_path / "portal.toml"
    path.write_text(
        """
[providers.a]
kind = "sim"
[providers.b]
kind = "sim"
[features.f]
primary = "a:m"
fallbacks = ["b:m"]
hedge = { after_ms = 300, streams = true }
"""
    )
    assert cli_main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "features.f.hedge.streams" in out and "a sync portal.Client refuses" in out


def test_a_caller_that_gives_up_mid_race_gets_control_back_and_no_lane_is_left() -> None:
    import asyncio

    a = faulty("a", Fault("slow", latency_ms=2000))
    b = faulty("b", Fault("slow", latency_ms=2000))

    async def go() -> tuple[float, int]:
        async with portal.AsyncClient(HEDGED, transports={"a": a, "b": b}, ledger=None) as c:
            t0 = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.chat(feature="f", messages=[portal.user("hi")]), 0.3)
            took = time.perf_counter() - t0
            await asyncio.sleep(0)
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return took, len(left)

    took, left = asyncio.run(go())
    assert took < 1.0 and left == 0
