"""The sans-IO flows driven by hand: the test is the driver. It sends each effect's answer
in (or throws the transport error in, as the drivers do) and asserts the next decision. No
HTTP, no sleeping, no patched clocks: time is a `FakeClock` handed to the flow."""

from __future__ import annotations

import json
from typing import Any

import pytest

import portal
from portal.config import load_config
from portal.contracts.request import ChatRequest
from portal.effects import Race, RaceLost, Send, Sleep
from portal.errors import AllTargetsFailed, Overloaded, ProviderConnectionError, ProviderTimeout
from portal.routing.call import Call
from portal.routing.control import RouteControl
from portal.routing.flow import chat_flow
from portal.routing.router import AdapterPool, Router
from portal.routing.state import MemoryState
from portal.wire import WireReply

from .conftest import FakeClock

A, B = "a:gpt-4o-mini", "b:gpt-4o"


def _completion(text: str) -> WireReply:
    """An OpenAI chat completion, as documented for POST /v1/chat/completions."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return WireReply(200, {"content-type": "application/json"}, json.dumps(body).encode())


def _error(status: int, retry_after: str | None = None) -> WireReply:
    headers = {"content-type": "application/json"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    body = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
    return WireReply(status, headers, json.dumps(body).encode())


class Recorded:
    """The flow's `Recorder`: what metering would have been told."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.calls: list[BaseException | None] = []

    def cost(self, target: Any, usage: Any) -> float | None:
        return 0.0

    def attempt(self, call: Call, target: Any, attempt: Any, error: BaseException | None) -> None:
        self.attempts.append((attempt.target, attempt.outcome))

    def call(self, call: Call, response: Any, error: BaseException | None) -> None:
        self.calls.append(error)


class Harness:
    def __init__(self, feature: dict[str, Any]) -> None:
        self.clock = FakeClock()
        cfg = load_config(
            {
                "portal": {"ledger": "none"},
                "providers": {
                    "a": {"kind": "openai", "api_key": "sk-test-a"},
                    "b": {"kind": "openai", "api_key": "sk-test-b"},
                },
                "features": {"f": {"primary": A, "fallbacks": [B], **feature}},
            }
        )
        router = Router(cfg, AdapterPool(cfg), MemoryState(self.clock))
        self.control = RouteControl(cfg, router)
        self.record = Recorded()
        self.router = router

    def call(self, timeout_s: float | None = None) -> Call:
        route = self.router.route("f", None, None)
        now = self.clock()
        deadline = None if timeout_s is None else now + timeout_s
        return Call("chat", route, ChatRequest([portal.user("hi")]), started=now, deadline=deadline)

    def flow(self, call: Call) -> Any:
        return chat_flow(call, self.control, self.record, None, clock=self.clock)


def _finish(flow: Any, answer: Any) -> Any:
    with pytest.raises(StopIteration) as stop:
        flow.send(answer)
    return stop.value.value


def test_a_503_is_retried_on_the_same_target_after_the_servers_retry_after() -> None:
    h = Harness({"retry": {"attempts": 3}})
    flow = h.flow(h.call())
    first = next(flow)
    assert isinstance(first, Send) and first.provider == "a"
    assert first.request.url == "https://api.openai.com/v1/chat/completions"
    wait = flow.send(_error(503, retry_after="2"))
    assert wait == Sleep(2.0)
    again = flow.send(None)
    assert isinstance(again, Send) and again.provider == "a"
    resp = _finish(flow, _completion("hello"))
    assert (resp.text, resp.target) == ("hello", A)
    assert h.record.attempts == [(A, "error"), (A, "ok")]
    assert h.record.calls == [None]


def test_a_transport_error_thrown_in_is_retried_with_backoff() -> None:
    h = Harness({"retry": {"attempts": 2, "base_wait_s": 0.5, "max_wait_s": 1.0}})
    flow = h.flow(h.call())
    next(flow)
    wait = flow.throw(ProviderConnectionError("refused", provider="a"))
    assert isinstance(wait, Sleep) and 0 <= wait.seconds <= 1.0
    assert isinstance(flow.send(None), Send)
    assert _finish(flow, _completion("ok")).target == A


def test_when_retries_run_out_the_flow_fails_over_to_the_fallback() -> None:
    h = Harness({"retry": {"attempts": 1}})
    flow = h.flow(h.call())
    assert next(flow).provider == "a"
    nxt = flow.send(_error(503))
    assert isinstance(nxt, Send) and nxt.provider == "b"  # no sleep: straight to b
    resp = _finish(flow, _completion("from b"))
    assert resp.target == B
    assert [a.outcome for a in resp.attempts] == ["error", "ok"]


def test_a_retry_after_over_the_cap_fails_over_instead_of_waiting() -> None:
    h = Harness({"retry": {"attempts": 3, "retry_after_cap_s": 5}})
    flow = h.flow(h.call())
    next(flow)
    nxt = flow.send(_error(429, retry_after="60"))
    assert isinstance(nxt, Send) and nxt.provider == "b"


def test_an_open_breaker_skips_its_target_without_sending() -> None:
    h = Harness({})
    h.control.breakers.trip(A)
    flow = h.flow(h.call())
    first = next(flow)
    assert isinstance(first, Send) and first.provider == "b"
    assert _finish(flow, _completion("b")).target == B


def test_failures_open_the_breaker_for_the_next_call() -> None:
    h = Harness({"retry": {"attempts": 1}})
    for _ in range(5):  # consecutive_failures defaults to 5
        flow = h.flow(h.call())
        assert next(flow).provider == "a"
        assert flow.send(_error(503)).provider == "b"
        _finish(flow, _completion("b"))
    assert h.control.breakers.status(A) == "open"
    flow = h.flow(h.call())
    assert next(flow).provider == "b"


def test_each_attempt_gets_the_time_left_and_a_passed_deadline_stops_the_call() -> None:
    h = Harness({"retry": {"attempts": 3}})
    flow = h.flow(h.call(timeout_s=10.0))
    first = next(flow)
    # the provider's 60 s, capped by the call's deadline less the third kept for b (which
    # has no measured latency yet)
    assert first.timeout_s == pytest.approx(10.0 * 2 / 3)
    assert first.deadline == pytest.approx(h.clock() + 10.0 * 2 / 3)
    h.clock.advance(4.0)
    wait = flow.throw(ProviderTimeout("read timed out", provider="a"))
    assert isinstance(wait, Sleep)
    h.clock.advance(wait.seconds)
    second = flow.send(None)
    # until the start of the third kept for b
    assert second.timeout_s == pytest.approx(10.0 * 2 / 3 - 4.0 - wait.seconds)
    h.clock.advance(20.0)  # the reply comes after the deadline: no third attempt
    with pytest.raises(ProviderTimeout) as info:
        flow.send(_error(503))
    assert str(info.value) == (
        "the call's deadline of 10s was spent after 2 attempts (a:gpt-4o-mini: 4.00s ProviderTimeout, "
        f"a:gpt-4o-mini: {20 + 0:.2f}s Overloaded); raise timeout_s (per call or the feature's timeout_s) "
        "if this call may take longer"
    )
    assert h.record.calls == [info.value]


def test_a_target_with_no_time_left_for_it_hands_over_to_the_next() -> None:
    """With b measured at 2 s p95, a keeps all but 2.5 s of the deadline; once a's share is
    spent (a retry would need the slice kept for b), b is tried with what is left."""
    h = Harness({"retry": {"attempts": 3}})
    for _ in range(20):
        h.control.stats.observe(B, 2000.0)
    flow = h.flow(h.call(timeout_s=10.0))
    first = next(flow)
    assert first.provider == "a" and first.deadline == pytest.approx(h.clock() + 7.5)
    h.clock.advance(7.5)
    nxt = flow.throw(ProviderTimeout("timed out", provider="a"))
    assert isinstance(nxt, Send) and nxt.provider == "b"
    assert nxt.deadline == pytest.approx(h.clock() + 2.5)
    assert _finish(flow, _completion("b")).target == B


def test_a_target_too_slow_for_the_time_left_is_skipped() -> None:
    h = Harness({})
    for _ in range(20):
        h.control.stats.observe(A, 5000.0)
    flow = h.flow(h.call(timeout_s=3.0))
    first = next(flow)
    assert isinstance(first, Send) and first.provider == "b"
    resp = _finish(flow, _completion("b"))
    assert [a.target for a in resp.attempts] == [B]


def test_a_retry_that_would_pass_the_deadline_fails_over_instead() -> None:
    h = Harness({"retry": {"attempts": 3}})
    flow = h.flow(h.call(timeout_s=1.0))
    next(flow)
    nxt = flow.send(_error(503, retry_after="5"))  # waiting 5 s passes the 1 s deadline
    assert isinstance(nxt, Send) and nxt.provider == "b"


def test_hedging_races_the_fallback_and_the_first_answer_wins() -> None:
    h = Harness({"hedge": {"after_ms": 300}})
    flow = h.flow(h.call())
    race = next(flow)
    assert isinstance(race, Race) and race.after_s == pytest.approx(0.3)
    lane_a, lane_b = race.flows
    assert next(lane_a).provider == "a"
    assert next(lane_b).provider == "b"
    with pytest.raises(StopIteration) as won:
        lane_b.send(_completion("fast b"))
    lane_a.close()  # the driver cancels the loser
    resp = _finish(flow, (1, won.value.value))
    assert (resp.text, resp.target) == ("fast b", B)
    assert sorted(h.record.attempts) == [(A, "hedge_lost"), (B, "ok")]


def test_when_every_hedge_lane_fails_the_call_raises_them_all() -> None:
    h = Harness({"hedge": {"after_ms": 300}, "retry": {"attempts": 1}})
    flow = h.flow(h.call())
    race = next(flow)
    errors: list[BaseException] = []
    for lane in race.flows:
        next(lane)
        with pytest.raises((Overloaded, AllTargetsFailed)) as failed:
            while True:  # lane 0 fails over within its own slice of the route: a, then b
                lane.send(_error(503))
        errors.append(failed.value)
    with pytest.raises(AllTargetsFailed) as info:
        flow.send(RaceLost(errors))
    leaves = info.value.exceptions
    assert [e.target for e in leaves] == [A, B, B]  # every attempt's error, once each
    assert all(isinstance(e, Overloaded) for e in leaves)


def test_the_last_target_is_tried_even_when_it_is_usually_too_slow() -> None:
    """Skipping a target too slow for the time left only makes sense with another to go
    to; the last one is the call's only chance (a stream may still deliver part of its
    text)."""
    h = Harness({})
    for target in (A, B):
        for _ in range(20):
            h.control.stats.observe(target, 5000.0)
    flow = h.flow(h.call(timeout_s=3.0))
    first = next(flow)
    assert isinstance(first, Send) and first.provider == "b"
    assert _finish(flow, _completion("b")).target == B
