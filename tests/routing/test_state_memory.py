"""MemoryState keeps flat memory in a long-running process: windowed counters hold only the
slots a reader can still ask for (the soak found an hour of one-second slots per breaker)."""

from __future__ import annotations

from portal.config import BreakerConfig
from portal.routing.breaker import Breakers
from portal.routing.state import MAX_WINDOW_S, MemoryState

from .conftest import FakeClock


def test_window_slots_are_bounded_by_the_longest_window_read(clock: FakeClock) -> None:
    st = MemoryState(clock)
    st.window("k", 30)
    for _ in range(2_000):  # 2,000 seconds of traffic, one hit a second
        st.hit("k", {"calls": 1.0})
        clock.advance(1)
    assert len(st._windows["k"]) <= 31
    st.hit("k", {"calls": 1.0})
    assert st.window("k", 30) == {"calls": 30.0}  # the window still counts every second


def test_unread_window_keeps_at_most_max_window(clock: FakeClock) -> None:
    st = MemoryState(clock)
    for _ in range(int(MAX_WINDOW_S) + 500):
        st.hit("k", {"calls": 1.0})
        clock.advance(1)
    assert len(st._windows["k"]) <= MAX_WINDOW_S + 1
    assert st.window("k", MAX_WINDOW_S) == {"calls": MAX_WINDOW_S - 1}


def test_breaker_window_memory_is_flat_and_still_counts(clock: FakeClock) -> None:
    st = MemoryState(clock)
    b = Breakers(st)
    b._configs["t"] = BreakerConfig(
        consecutive_failures=1_000, failure_rate=0.5, window_s=10, min_calls=4, cooldown_s=5
    )
    for i in range(600):  # ten minutes of a call a second, every third one failing
        (b.failure if i % 3 == 0 else b.success)("t")
        clock.advance(1)
    w_key = b._keys("t")[2]
    assert len(st._windows[w_key]) <= 11
    assert b.status("t") == "closed"
    for _ in range(6):  # 6 failures in the last 10 s of 10 calls: 60% opens it
        b.failure("t")
    assert b.status("t") == "open"
