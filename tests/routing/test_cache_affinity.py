"""Cache affinity: a call whose marked prefix was served recently goes to the target that
served it, fleet-wide through the routing state, only among the targets the call could have
gone to first; a call served elsewhere records the cache it will not read."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import portal
from portal.contracts.cache import cache_lifetime_s, prefix_key
from portal.contracts.messages import coerce_messages
from portal.contracts.request import ChatRequest
from portal.metering.ledger import read_records
from portal.routing.state import RECALL_STALE_S, MemoryState, RedisState
from portal.stress.faults import Fault

from .conftest import FakeClock, config, faulty, sim_provider
from .test_redis_state import needs_redis

SYSTEM = "You are the support assistant of an online shop. " * 40


def _messages(question: str, system: str = SYSTEM, cache: Any = True) -> list[Any]:
    return [portal.system(system, cache=cache), portal.user(question)]


def _cfg(**feature: Any) -> dict[str, Any]:
    providers = {n: sim_provider() for n in ("a", "b", "c")}
    providers["c"]["region"] = "us"
    for n in ("a", "b"):
        providers[n]["region"] = "eu"
    feat = {
        "primary": "a:m",
        "fallbacks": ["b:m"],
        "strategy": "weighted",
        "weights": {"a:m": 1, "b:m": 1},
        "retry": {"attempts": 1},
        **feature,
    }
    return config(providers, {"f": feat})


def _key(system: str = SYSTEM, arm: str = "baseline") -> str:
    req = ChatRequest(messages=coerce_messages(_messages("x", system)))
    return f"affinity:f:{arm}:{prefix_key(req)}"


def test_two_clients_sharing_a_state_stick_to_the_target_that_served_the_prefix(
    make: Any,
) -> None:
    state = MemoryState()
    one, two = make(_cfg(), state=state), make(_cfg(), state=state)
    first = one.chat(feature="f", messages=_messages("q0")).target
    served = Counter(
        r.chat(feature="f", messages=_messages(f"q{i}")).target
        for i in range(1, 40)
        for r in (one, two)
    )
    assert served == Counter({first: 78})
    # without markers the weights split calls as before (nothing is hashed or stuck)
    plain = Counter(
        one.chat(feature="f", messages=_messages(f"p{i}", cache=None)).target for i in range(60)
    )
    assert set(plain) == {"a:m", "b:m"}
    # another prefix is its own cache: it is placed by the weights, then sticks too
    others = {
        one.chat(feature="f", messages=_messages("q", system=f"other {i} " + SYSTEM)).target
        for i in range(40)
    }
    assert others == {"a:m", "b:m"}


def test_a_route_reason_says_why_the_call_stuck(make: Any) -> None:
    r = make(_cfg(), state=MemoryState())
    r.control.state.remember(_key(), "b:m", 300)
    from portal.routing.call import Call

    for i in range(20):
        req = ChatRequest(messages=coerce_messages(_messages(f"q{i}")))
        call = Call("chat", r.client.router.route("f", f"user-{i}", None), req, key=f"user-{i}")
        order = [t.id for t in r.control.plan(call)]
        assert order == ["b:m", "a:m"]
        assert call.cache_holder == "b:m" and call.cache_first
        if any("cache affinity" in why for why in call.route.reasons):
            assert call.route.reasons[-1] == "cache affinity: b:m served this prefix last"


def test_the_affinity_expires_with_the_vendors_cache_lifetime(make: Any) -> None:
    clock = FakeClock()
    state = MemoryState(clock)
    r = make(_cfg(), state=state)
    first = r.chat(feature="f", messages=_messages("q0")).target
    assert state.recall(_key()) == first
    clock.advance(299)
    assert state.recall(_key()) == first
    clock.advance(2)
    assert state.recall(_key()) is None
    # a marker asking for an hour (on the vendors that take one) keeps it for an hour
    hour = ChatRequest(messages=coerce_messages(_messages("q1", cache="1h")))
    assert cache_lifetime_s(hour) == 3600.0
    assert cache_lifetime_s(ChatRequest(messages=coerce_messages(_messages("q1")))) == 300.0


def test_a_hot_prefix_is_written_once_per_tenth_of_its_lifetime(make: Any) -> None:
    clock = FakeClock()
    state = MemoryState(clock)
    writes: list[str] = []
    remember = state.remember

    def counting(key: str, value: Any, ttl_s: float) -> None:
        writes.append(key)
        remember(key, value, ttl_s)

    state.remember = counting  # type: ignore[method-assign]
    r = make(_cfg(), state=state)
    for i in range(50):
        r.chat(feature="f", messages=_messages(f"q{i}"))
    assert len(writes) == 1
    clock.advance(31)
    r.chat(feature="f", messages=_messages("again"))
    assert len(writes) == 2


def test_the_sticky_pick_stays_inside_the_policy_and_the_weights(make: Any) -> None:
    state = MemoryState()
    # c is outside the data-path policy (region us: a replica with an older config sent the
    # prefix there); b has no weight (fallback only)
    r = make(_cfg(weights={"a:m": 1}, allowed={"regions": ["eu"]}), state=state)
    state.remember(_key(), "c:m", 300)
    resp = r.chat(feature="f", messages=_messages("q"))
    assert resp.target == "a:m"
    assert resp.attempts[-1].cache_miss_expected == "route"  # the prefix sat on c
    state.remember(_key(), "b:m", 300)
    resp = r.chat(feature="f", messages=_messages("q2"))
    assert resp.target == "a:m"  # b could not have been first: no stickiness to it


def test_the_canary_arm_is_kept_and_has_its_own_affinity(make: Any) -> None:
    state = MemoryState()
    cfg = _cfg(canary={"target": "c:new", "percent": 100})
    r = make(cfg, state=state)
    state.remember(_key(), "a:m", 300)  # the baseline arm's holder
    resp = r.chat(feature="f", key="user-1", messages=_messages("q"))
    assert resp.target == "c:new" and resp.arm == "canary"
    assert state.recall(_key(arm="canary")) == "c:new"
    assert state.recall(_key()) == "a:m"  # the canary arm never moves the baseline's


def test_a_model_pin_neither_reads_nor_moves_the_affinity(make: Any) -> None:
    state = MemoryState()
    r = make(_cfg(), state=state)
    state.remember(_key(), "a:m", 300)
    assert r.chat(feature="f", model="b:m", messages=_messages("q")).target == "b:m"
    assert state.recall(_key()) == "a:m"


def test_affinity_can_be_turned_off(make: Any) -> None:
    state = MemoryState()
    r = make(_cfg(cache_affinity=False), state=state)
    served = {r.chat(feature="f", messages=_messages(f"q{i}")).target for i in range(60)}
    assert served == {"a:m", "b:m"}
    assert state.recall(_key()) is None


def test_failover_away_from_the_holder_records_the_expected_cache_loss(
    tmp_path: Path, kind: str, make: Any
) -> None:
    state = MemoryState()
    healthy = make(_cfg(), state=state)
    holder = healthy.chat(feature="f", messages=_messages("q0")).target
    other = "b:m" if holder == "a:m" else "a:m"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = _cfg()
    cfg["portal"]["ledger"] = url
    down = {holder[0]: faulty(holder[0], Fault("outage", status=503))}
    cls = portal.Client if kind == "sync" else portal.AsyncClient
    client: Any = cls(cfg, transports=down, ledger=url)
    client._core.use_state(state)

    async def chat() -> Any:
        try:
            return await client.chat(feature="f", messages=_messages("q1"))
        finally:
            await client.aclose()

    if kind == "sync":
        with client:
            resp = client.chat(feature="f", messages=_messages("q1"))
    else:
        import anyio

        resp = anyio.run(chat)
    assert resp.target == other
    assert [(a.target, a.cache_miss_expected) for a in resp.attempts] == [
        (holder, None),
        (other, "failover"),
    ]
    assert state.recall(_key()) == other  # the prefix now lives on the target that served it
    rows = read_records(url)
    calls = [r for r in rows if r.kind == "call"]
    attempts = [r for r in rows if r.kind == "attempt"]
    assert [c.cache_miss_expected for c in calls] == ["failover"]
    assert sorted((a.target, a.cache_miss_expected or "") for a in attempts) == sorted(
        [(holder, ""), (other, "failover")]
    )


@pytest.mark.anyio
async def test_a_hedge_away_from_the_holder_records_the_expected_cache_loss() -> None:
    from portal.providers.simulated import SimOptions, SimTransport

    state = MemoryState()
    cfg = _cfg(strategy="cheapest", weights=None, hedge={"after_ms": 20, "max_extra": 1})
    slow = {"a": SimTransport(SimOptions(latency_p50_ms=400, latency_p99_ms=400), "a")}
    client = portal.AsyncClient(cfg, transports=slow, ledger=None)
    client._core.use_state(state)
    try:
        state.remember(_key(), "a:m", 300)
        resp = await client.chat(feature="f", messages=_messages("q"))
    finally:
        await client.aclose()
    assert resp.target == "b:m"
    won = [a for a in resp.attempts if a.outcome == "ok"]
    assert [(a.target, a.cache_miss_expected) for a in won] == [("b:m", "hedge")]


@needs_redis
def test_two_clients_sharing_a_redis_state_stick_to_the_same_target(make: Any) -> None:
    prefix = f"portal-test-{uuid.uuid4().hex[:12]}"
    url = "redis://127.0.0.1:6379/0"
    one_state = RedisState(url, prefix=prefix, start=False)
    two_state = RedisState(url, prefix=prefix, start=False)
    try:
        one, two = make(_cfg(), state=one_state), make(_cfg(), state=two_state)
        first = one.chat(feature="f", messages=_messages("q0")).target
        one_state.sync()  # the write reaches Redis (the state thread does this every 100 ms)
        served = {two.chat(feature="f", messages=_messages(f"q{i}")).target for i in range(30)}
        assert served == {first}
        # a key read during a cycle is refreshed by the next: a move is seen after it
        other = "b:m" if first == "a:m" else "a:m"
        one_state.remember(_key(), other, 300)
        one_state.sync()
        two_state.sync()
        assert two_state.recall(_key()) == other
        # only keys read since the last cycle are refreshed (the refresh costs what the
        # traffic reads) ...
        two_state.sync()
        assert two_state._recall_read == set()
        one_state.remember(_key(), first, 300)
        one_state.sync()
        two_state.sync()  # nobody read the key in between: not refreshed
        assert two_state.local.recall(_key()) == other
        # ... and a read long after the last fetch goes to Redis at once
        later = time.time() + RECALL_STALE_S + 1
        two_state.clock = lambda: later  # type: ignore[method-assign]
        assert two_state.recall(_key()) == first
    finally:
        for s in (one_state, two_state):
            s.clear()
            s.close()


def test_memory_state_keeps_a_bounded_number_of_remembered_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portal.routing import state as state_mod

    monkeypatch.setattr(state_mod, "MAX_REMEMBERED", 3)
    s = MemoryState()
    for i in range(5):
        s.remember(f"k{i}", i, 60)
    assert [s.recall(f"k{i}") for i in range(5)] == [None, None, 2, 3, 4]
