"""The game-day faults hang, trickle and slow_first_token, through both clients."""

from __future__ import annotations

import time
from typing import Any

import pytest

from portal.errors import AllTargetsFailed, ProviderTimeout
from portal.stress.faults import Fault

from .conftest import config, faulty, sim_provider

ONE = config(
    {"a": sim_provider()}, {"f": {"primary": "a:m", "timeout_s": 0.4, "retry": {"attempts": 1}}}
)


def test_a_hang_lasts_until_the_read_timeout(make: Any) -> None:
    r = make(ONE, {"a": faulty("a", Fault("hang"))})
    t0 = time.perf_counter()
    with pytest.raises((ProviderTimeout, AllTargetsFailed)):
        r.chat(feature="f")
    assert 0.3 < time.perf_counter() - t0 < 1.5


def test_a_trickled_reply_arrives_whole_and_slowly(make: Any) -> None:
    plain = make(config({"a": sim_provider()}, {"f": {"primary": "a:m"}}))
    expected = plain.chat(feature="f").text
    r = make(
        config({"a": sim_provider()}, {"f": {"primary": "a:m"}}),
        {"a": faulty("a", Fault("trickle", interval_ms=0.5))},
    )
    t0 = time.perf_counter()
    assert r.chat(feature="f").text == expected
    assert time.perf_counter() - t0 > 0.1  # hundreds of bytes, half a millisecond each


def test_slow_first_token_holds_back_the_first_event(make: Any) -> None:
    r = make(
        config({"a": sim_provider()}, {"f": {"primary": "a:m"}}),
        {"a": faulty("a", Fault("slow_first_token", latency_ms=300))},
    )
    t0 = time.perf_counter()
    events, error = r.stream(feature="f")
    assert error is None and events[-1].type == "done"
    assert events[-1].response.ttft_ms >= 290
    assert time.perf_counter() - t0 >= 0.3
