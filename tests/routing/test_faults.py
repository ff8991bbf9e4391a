"""The fault-injecting transport on its own: each kind, schedules, counts, rates."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest

from portal.stress.faults import Fault, FaultTransport

from .conftest import FakeClock


def ok_handler(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/stream"):
        body = (
            b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
            b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
            b'data: {"choices":[{"delta":{"content":" world"}}]}\n\n'
            b"data: [DONE]\n\n"
        )
        return httpx2.Response(200, content=body)
    return httpx2.Response(200, json={"ok": True})


def client(*faults: Fault, **kw: Any) -> tuple[httpx2.Client, FaultTransport]:
    ft = FaultTransport(httpx2.MockTransport(ok_handler), faults, **kw)
    return httpx2.Client(transport=ft, base_url="http://vendor.test"), ft


def test_outage_refuses_or_answers_503() -> None:
    c, _ = client(Fault("outage", status=0))
    with pytest.raises(httpx2.ConnectError):
        c.get("/x")
    c, _ = client(Fault("outage"))
    assert c.get("/x").status_code == 503


def test_throttle_sends_429_with_retry_after() -> None:
    c, _ = client(Fault("throttle", retry_after_s=120))
    r = c.get("/x")
    assert r.status_code == 429 and r.headers["retry-after"] == "120"


def test_slow_adds_latency_through_the_injected_sleep() -> None:
    slept: list[float] = []
    c, _ = client(Fault("slow", latency_ms=250), sleep=slept.append)
    assert c.get("/x").status_code == 200
    assert slept == [0.25]


def test_slow_latency_distribution_has_the_requested_spread() -> None:
    slept: list[float] = []
    c, _ = client(Fault("slow", latency_ms=100, latency_p99_ms=1000), sleep=slept.append)
    for _ in range(400):
        c.get("/x")
    slept.sort()
    assert 0.07 < slept[200] < 0.14  # p50 near 100 ms
    assert 0.5 < slept[396] < 2.0  # p99 near 1 s


def test_flaky_hits_the_configured_share() -> None:
    c, ft = client(Fault("flaky", rate=0.3, status=500), seed=3)
    codes = [c.get("/x").status_code for _ in range(1000)]
    assert 250 <= codes.count(500) <= 350
    assert ft.injected == codes.count(500)


def test_brownout_is_slow_and_flaky() -> None:
    slept: list[float] = []
    c, _ = client(Fault("brownout", latency_ms=300, rate=0.5), sleep=slept.append, seed=1)
    codes = [c.get("/x").status_code for _ in range(200)]
    assert 70 <= codes.count(503) <= 130
    assert len(slept) == codes.count(503)


def test_schedule_window_and_first_count() -> None:
    clock = FakeClock(0.0)
    c, _ = client(Fault("outage", start_s=10, end_s=20), Fault("throttle", first=2), clock=clock)
    assert [c.get("/x").status_code for _ in range(3)] == [429, 429, 200]
    clock.advance(10)
    assert c.get("/x").status_code == 503
    clock.advance(10)
    assert c.get("/x").status_code == 200


def test_path_filter() -> None:
    c, _ = client(Fault("outage", path="/embeddings"))
    assert c.get("/chat").status_code == 200
    assert c.get("/embeddings").status_code == 503


def test_cut_after_first_token_passes_exactly_one_text_event() -> None:
    c, _ = client(Fault("cut", when="after_first_token"))
    got = b""
    with pytest.raises(httpx2.RemoteProtocolError), c.stream("GET", "/stream") as r:
        for chunk in r.iter_raw():
            got += chunk
    assert b"Hello" in got and b"world" not in got


def test_cut_before_first_token_passes_nothing() -> None:
    c, _ = client(Fault("cut", when="before_first_token"))
    got = b""
    with pytest.raises(httpx2.RemoteProtocolError), c.stream("GET", "/stream") as r:
        for chunk in r.iter_raw():
            got += chunk
    assert got == b""


def test_async_transport_injects_the_same_faults() -> None:
    async def go() -> tuple[int, bytes]:
        ft = FaultTransport(
            httpx2.MockTransport(ok_handler), [Fault("throttle", first=1), Fault("cut")]
        )
        async with httpx2.AsyncClient(transport=ft, base_url="http://vendor.test") as c:
            status = (await c.get("/x")).status_code
            got = b""
            try:
                async with c.stream("GET", "/stream") as r:
                    async for chunk in r.aiter_raw():
                        got += chunk
            except httpx2.RemoteProtocolError:
                pass
            return status, got

    status, got = anyio.run(go)
    assert status == 429 and b"Hello" in got and b"world" not in got


def test_from_dict_rejects_unknown_keys_and_kinds() -> None:
    assert Fault.from_dict({"kind": "throttle", "retry_after_s": 5}).retry_after_s == 5
    with pytest.raises(ValueError, match="retry_after_s"):
        Fault.from_dict({"kind": "throttle", "retry_after": 5})
    with pytest.raises(ValueError, match="outage"):
        Fault.from_dict({"kind": "meteor"})
