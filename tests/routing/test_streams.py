"""Streams: a failure before the first text fails over transparently; after text, the call
raises StreamInterrupted with exactly the text delivered (no silent truncation, no
duplicated prefix)."""

from __future__ import annotations

from typing import Any

import pytest

from portal.errors import StreamInterrupted
from portal.stress.faults import Fault

from .conftest import config, faulty, sim_provider

TWO = config(
    {"a": sim_provider(), "b": sim_provider()},
    {"f": {"primary": "a:m", "fallbacks": ["b:m"], "retry": {"attempts": 1}}},
)


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if e.type == "text")


def test_cut_before_first_token_fails_over_transparently(make: Any) -> None:
    a = faulty("a", Fault("cut", when="before_first_token"))
    r = make(TWO, {"a": a})
    events, err = r.stream(feature="f")
    assert err is None
    done = events[-1]
    assert done.type == "done"
    resp = done.response
    assert resp.target == "b:m"
    assert [(x.target, x.outcome) for x in resp.attempts] == [("a:m", "error"), ("b:m", "ok")]
    # what the caller saw is exactly b's reply, once
    assert text_of(events) == resp.text and resp.text


def test_cut_after_first_token_raises_with_the_partial_text(make: Any) -> None:
    a = faulty("a", Fault("cut", when="after_first_token"))
    b = faulty("b")
    r = make(TWO, {"a": a, "b": b})
    events, err = r.stream(feature="f")
    assert isinstance(err, StreamInterrupted)
    seen = text_of(events)
    assert seen  # the caller got some text...
    assert err.partial_text == seen  # ...and the error carries exactly that text
    assert err.target == "a:m"
    assert not any(e.type == "done" for e in events)
    # never a second target after text was shown: b was not called
    assert b.requests == 0
    assert a.injected == 1


def test_cut_after_text_is_recorded_on_the_meter(make: Any) -> None:
    a = faulty("a", Fault("cut", when="after_first_token"))
    r = make(TWO, {"a": a})
    _, err = r.stream(feature="f")
    assert isinstance(err, StreamInterrupted)
    summary = r.client.meter.summary
    row = summary[("f", "a:m", "baseline")]
    assert row.calls == 1 and row.errors == 1


def test_stream_without_faults_is_untouched(make: Any) -> None:
    r = make(TWO)
    events, err = r.stream(feature="f")
    assert err is None
    assert text_of(events) == events[-1].response.text
    assert [x.outcome for x in events[-1].response.attempts] == ["ok"]


@pytest.mark.parametrize("when", ["before_first_token", "after_first_token"])
def test_cut_on_the_only_target(make: Any, when: str) -> None:
    cfg = config({"a": sim_provider()}, {"f": {"primary": "a:m", "retry": {"attempts": 1}}})
    a = faulty("a", Fault("cut", when=when))
    r = make(cfg, {"a": a})
    events, err = r.stream(feature="f")
    assert err is not None
    if when == "before_first_token":
        assert not isinstance(err, StreamInterrupted) or not err.partial_text
        assert text_of(events) == ""
    else:
        assert isinstance(err, StreamInterrupted) and err.partial_text == text_of(events)


def test_a_connection_cut_before_the_first_token_names_its_target(make: Any) -> None:
    """The read that broke belongs to an attempt: its error names that provider and model
    (it used to say provider "stream")."""
    cfg = config({"a": sim_provider()}, {"f": {"primary": "a:m", "retry": {"attempts": 1}}})
    r = make(cfg, {"a": faulty("a", Fault("cut", when="before_first_token"))})
    _events, err = r.stream(feature="f")
    assert err is not None and (err.provider, err.model) == ("a", "m"), repr(err)
    assert str(err).startswith("a:m: ")


def test_two_failed_targets_are_counted_as_two(make: Any) -> None:
    from portal.errors import AllTargetsFailed

    a = faulty("a", Fault("cut", when="before_first_token"))
    b = faulty("b", Fault("cut", when="before_first_token"))
    r = make(TWO, {"a": a, "b": b})
    _events, err = r.stream(feature="f")
    assert isinstance(err, AllTargetsFailed), repr(err)
    assert str(err).startswith("all 2 targets failed for f")
