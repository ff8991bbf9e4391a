"""`strategy = "weighted"`: first tries split by weight, sticky per key, the rest of the chain
still the fallbacks; bad weights are config errors naming the field."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import portal
from portal.errors import ConfigError
from portal.stress.faults import Fault

from .conftest import config, faulty, sim_provider


def weighted(weights: dict[str, float], **feature: Any) -> dict[str, Any]:
    return config(
        {n: sim_provider() for n in ("a", "b", "c")},
        {
            "f": {
                "primary": "a:m",
                "fallbacks": ["b:m", "c:m"],
                "strategy": "weighted",
                "weights": weights,
                **feature,
            }
        },
    )


def _first(r: Any, key: str | None) -> str:
    from portal.routing.flow import Call

    call = Call("chat", r.client.router.route("f", key, None), None, key=key)  # type: ignore[arg-type]
    return str(r.control.plan(call)[0].id)


def test_first_tries_follow_the_weights_and_the_rest_stay_in_order(make: Any) -> None:
    r = make(weighted({"a:m": 1, "b:m": 3}))
    firsts = Counter(_first(r, f"user-{i}") for i in range(4000))
    assert set(firsts) == {"a:m", "b:m"}  # c has no weight: fallback only
    assert 0.70 < firsts["b:m"] / 4000 < 0.80  # 3 of 4
    from portal.routing.flow import Call

    for key in ("user-1", "user-2", "user-3"):
        call = Call("chat", r.client.router.route("f", key, None), None, key=key)  # type: ignore[arg-type]
        order = [t.id for t in r.control.plan(call)]
        assert order[1:] == [t for t in ("a:m", "b:m", "c:m") if t != order[0]]


def test_the_same_key_gets_the_same_first_target_in_every_client(make: Any) -> None:
    one, two = (
        make(weighted({"a:m": 1, "b:m": 1, "c:m": 1})),
        make(weighted({"a:m": 1, "b:m": 1, "c:m": 1})),
    )
    keys = [f"session-{i}" for i in range(200)]
    assert [_first(one, k) for k in keys] == [_first(two, k) for k in keys]
    assert len({_first(one, k) for k in keys}) == 3
    assert {_first(one, None) for _ in range(200)} == {"a:m", "b:m", "c:m"}  # no key: per call


def test_calls_are_served_where_the_weights_send_them_and_fail_over(make: Any) -> None:
    r = make(weighted({"b:m": 1}))
    assert all(r.chat(feature="f", key=f"u{i}").target == "b:m" for i in range(5))
    down = faulty("b", Fault("outage", status=503))
    r = make(weighted({"b:m": 1}, retry={"attempts": 1}), transports={"b": down})
    resp = r.chat(feature="f", key="u1")
    assert resp.target == "a:m"  # b is down: the chain's order takes over
    assert [a.target for a in resp.attempts] == ["b:m", "a:m"]


def test_model_pin_and_canary_still_come_first(make: Any) -> None:
    r = make(weighted({"b:m": 1}))
    assert r.chat(feature="f", model="c:m").target == "c:m"


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"strategy": "weighted"}, 'strategy = "weighted" needs weights'),
        ({"weights": {"a:m": 1}}, 'weights are only used with strategy = "weighted"'),
        (
            {"strategy": "weighted", "weights": {"b:n": 1}},
            "weights: 'b:n' is not the primary or a fallback of this feature; did you mean 'b:m'?",
        ),
        ({"strategy": "weighted", "weights": {"a:m": -1}}, "weights.'a:m': must be a number >= 0"),
        (
            {"strategy": "weighted", "weights": {"a:m": 0}},
            "at least one target needs a weight above 0",
        ),
    ],
)
def test_bad_weights_are_config_errors_naming_the_fix(
    feature: dict[str, Any], message: str
) -> None:
    cfg = config(
        {n: sim_provider() for n in ("a", "b")},
        {"f": {"primary": "a:m", "fallbacks": ["b:m"], **feature}},
    )
    with pytest.raises(ConfigError) as info:
        portal.Client(cfg, ledger=None)
    assert "features.f" in str(info.value) and message in str(info.value)
