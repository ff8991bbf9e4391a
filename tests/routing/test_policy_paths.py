"""The data-path policy (``allowed``) binds every target a call can reach at run time, not
only the names the config check reads: failover, hedge lanes, weighted picks, budget
reorders, the forced pick when every target was skipped, the canary and its shadow copies.

`Client()` refuses a config that names a target outside its feature's policy, so to test the
run-time paths these tests build clients with that check switched off: a violating target
then sits in each position, and its vendor (a counting transport) must see no request."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import portal
from portal.errors import ConfigError, PolicyViolation
from portal.stress.faults import Fault

from .conftest import faulty

MSGS = [portal.user("Where is my order 123?")]


def _providers() -> dict[str, Any]:
    return {
        name: {"kind": "sim", "region": region, "options": {"time_scale": 0, "seed": i}}
        for i, (name, region) in enumerate([("eu", "eu"), ("eu2", "eu"), ("us", "us")], 1)
    }


def _cfg(**feature: Any) -> dict[str, Any]:
    return {
        "portal": {"ledger": "none"},
        "providers": _providers(),
        "features": {"f": {"allowed": {"regions": ["eu"]}, **feature}},
    }


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients built without the config check (the run-time filter must hold alone)."""
    import portal.engine.core as core

    monkeypatch.setattr(core, "check_config", lambda cfg, contract=None: None)


def _transports(**faults: Fault) -> dict[str, Any]:
    return {n: faulty(n, *([faults[n]] if n in faults else [])) for n in ("eu", "eu2", "us")}


def _run(kind: str, cfg: dict[str, Any], transports: dict[str, Any], n: int = 20) -> list[Any]:
    cls = portal.Client if kind == "sync" else portal.AsyncClient
    client: Any = cls(cfg, transports=transports, ledger=None)
    out: list[Any] = []
    if kind == "sync":
        for i in range(n):
            out.append(client.chat(feature="f", key=f"user-{i}", messages=MSGS))
        client._core.shadows.wait()
        client.close()
        return out

    async def go() -> None:
        for i in range(n):
            out.append(await client.chat(feature="f", key=f"user-{i}", messages=MSGS))
        await client._core.shadows.wait()
        await client.aclose()

    anyio.run(go)
    return out


def test_the_config_check_refuses_every_named_target_outside_the_policy() -> None:
    cfg = _cfg(
        primary="eu:m",
        fallbacks=["us:m"],
        canary={"target": "us:new", "percent": 0, "shadow": 5},
    )
    with pytest.raises(ConfigError) as err:
        portal.Client(cfg, ledger=None)
    text = str(err.value)
    assert 'features."f".fallbacks[0]: target us:m is in region' in text
    assert 'features."f".canary.target: target us:new is in region' in text


def test_failover_never_reaches_a_target_outside(kind: str, unchecked: None) -> None:
    t = _transports(eu=Fault("outage", status=500))
    out = _run(kind, _cfg(primary="eu:m", fallbacks=["us:m", "eu2:m"]), t)
    assert t["us"].requests == 0
    assert {r.target for r in out} == {"eu2:m"}


def test_a_primary_outside_is_never_tried(kind: str, unchecked: None) -> None:
    t = _transports()
    out = _run(kind, _cfg(primary="us:m", fallbacks=["eu:m"]), t)
    assert t["us"].requests == 0 and {r.target for r in out} == {"eu:m"}


def test_hedge_lanes_never_start_on_a_target_outside(unchecked: None) -> None:
    t = _transports(eu=Fault("slow", latency_ms=100))
    cfg = _cfg(primary="eu:m", fallbacks=["us:m", "eu2:m"], hedge={"after_ms": 5, "max_extra": 2})
    out = _run("async", cfg, t, n=10)
    assert t["us"].requests == 0
    assert t["eu2"].requests == 10  # the hedge lane started, on the allowed fallback
    assert {r.target for r in out} == {"eu2:m"}


def test_weighted_picks_never_draw_a_target_outside(kind: str, unchecked: None) -> None:
    t = _transports()
    cfg = _cfg(
        primary="us:m",
        fallbacks=["eu:m", "eu2:m"],
        strategy="weighted",
        weights={"us:m": 100, "eu:m": 1, "eu2:m": 1},
    )
    out = _run(kind, cfg, t, n=40)
    assert t["us"].requests == 0
    assert {r.target for r in out} <= {"eu:m", "eu2:m"}


def test_a_budget_reorder_never_puts_a_target_outside_first(kind: str, unchecked: None) -> None:
    t = _transports()
    cfg = _cfg(
        primary="eu:sim-large",
        fallbacks=["us:sim-small", "eu2:sim-small"],
        budget={"usd_per_day": 1e-9, "on_exceed": "fallback-cheapest"},
    )
    out = _run(kind, cfg, t, n=5)
    assert t["us"].requests == 0
    assert {r.target for r in out} == {"eu2:sim-small"}  # the cheapest allowed one


def test_the_forced_pick_after_every_target_was_skipped_stays_inside(
    kind: str, unchecked: None
) -> None:
    t = _transports(eu=Fault("outage", status=500, first=1))
    cfg = _cfg(primary="eu:m", fallbacks=["us:m"], retry={"attempts": 1})
    cfg["providers"]["eu"]["breaker"] = {"consecutive_failures": 1, "cooldown_s": 60}
    cls = portal.Client if kind == "sync" else portal.AsyncClient
    client: Any = cls(cfg, transports=t, ledger=None)

    async def go() -> list[Any]:
        out: list[Any] = []
        for _ in range(3):
            try:
                out.append(await client.chat(feature="f", messages=MSGS))
            except portal.PortalError as exc:
                out.append(exc)
        await client.aclose()
        return out

    if kind == "sync":
        out: list[Any] = []
        for _ in range(3):
            try:
                out.append(client.chat(feature="f", messages=MSGS))
            except portal.PortalError as exc:
                out.append(exc)
        client.close()
    else:
        out = anyio.run(go)
    assert isinstance(out[0], portal.PortalError)  # eu failed once: its breaker opened
    assert t["us"].requests == 0
    # every allowed target resting: the forced pick is the allowed one, never the outsider
    assert [r.target for r in out[1:]] == ["eu:m", "eu:m"]


def test_a_canary_and_its_shadow_outside_are_never_sent_a_request(
    kind: str, unchecked: None
) -> None:
    t = _transports()
    cfg = _cfg(primary="eu:m", canary={"target": "us:new", "percent": 100, "shadow": 100})
    out = _run(kind, cfg, t)
    assert t["us"].requests == 0
    assert {(r.target, r.arm) for r in out} == {("eu:m", "baseline")}
    cfg = _cfg(primary="eu:m", canary={"target": "us:new", "percent": 0, "shadow": 100})
    _run(kind, cfg, t)
    assert t["us"].requests == 0


def test_a_model_pin_outside_is_refused_before_any_request(kind: str) -> None:
    t = _transports()
    cls = portal.Client if kind == "sync" else portal.AsyncClient
    client: Any = cls(_cfg(primary="eu:m"), transports=t, ledger=None)
    with pytest.raises(PolicyViolation, match="outside its data-path policy"):
        if kind == "sync":
            client.chat(feature="f", model="us:m", messages=MSGS)
        else:

            async def go() -> None:
                await client.chat(feature="f", model="us:m", messages=MSGS)

            anyio.run(go)
    assert t["us"].requests == 0
