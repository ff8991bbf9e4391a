"""Helpers for routing tests: sim providers that answer instantly, fault transports, a fake
clock, and one way to run a call on the sync or the async client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

import portal
from portal.providers.simulated import SimOptions, SimTransport
from portal.routing.state import MemoryState
from portal.stress.faults import Fault, FaultTransport


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sim_provider(**options: Any) -> dict[str, Any]:
    return {"kind": "sim", "options": {"time_scale": 0, **options}}


def config(
    providers: dict[str, dict[str, Any]], features: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    return {"portal": {"ledger": "none"}, "providers": providers, "features": features}


def faulty(name: str, *faults: Fault, **options: Any) -> FaultTransport:
    """A sim vendor behind a fault transport."""
    return FaultTransport(SimTransport(SimOptions(time_scale=0, **options), name), faults)


class Runner:
    """Runs calls on a sync or an async client with the same test code."""

    def __init__(
        self,
        kind: str,
        cfg: dict[str, Any],
        transports: dict[str, Any] | None = None,
        state: Any = None,
    ) -> None:
        self.kind = kind
        cls = portal.Client if kind == "sync" else portal.AsyncClient
        self.client: Any = cls(cfg, transports=transports or {}, ledger=None)
        if state is not None:
            self.client._core.use_state(state)

    @property
    def control(self) -> Any:
        return self.client._core.control

    def chat(self, **kw: Any) -> Any:
        kw.setdefault("messages", [portal.user("Where is my order 123?")])
        if self.kind == "sync":
            return self.client.chat(**kw)

        async def go() -> Any:
            return await self.client.chat(**kw)

        return anyio.run(go)

    def stream(self, **kw: Any) -> tuple[list[Any], BaseException | None]:
        """(events, error): every event the caller saw, then the error that ended it."""
        kw.setdefault("messages", [portal.user("Where is my order 123?")])
        events: list[Any] = []
        if self.kind == "sync":
            try:
                for ev in self.client.stream(**kw):
                    events.append(ev)
            except Exception as exc:
                return events, exc
            return events, None

        async def go() -> BaseException | None:
            try:
                async for ev in self.client.stream(**kw):
                    events.append(ev)
            except Exception as exc:
                return exc
            return None

        return events, anyio.run(go)

    def embed(self, **kw: Any) -> Any:
        if self.kind == "sync":
            return self.client.embed(**kw)

        async def go() -> Any:
            return await self.client.embed(**kw)

        return anyio.run(go)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(kind: str) -> Callable[..., Runner]:
    made: list[Runner] = []

    def build(
        cfg: dict[str, Any], transports: dict[str, Any] | None = None, state: Any = None
    ) -> Runner:
        r = Runner(kind, cfg, transports, state)
        made.append(r)
        return r

    yield build  # type: ignore[misc]
    for r in made:
        if r.kind == "sync":
            r.client.close()
        else:
            anyio.run(r.client.aclose)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the drivers' back-off sleeps instead of sleeping. Only portal's drivers wait
    differently: ``time.sleep`` and ``anyio.sleep`` stay untouched for everything else."""
    slept: list[float] = []
    from portal.engine import async_driver, sync_driver

    real_sleep = anyio.sleep

    def fake_sleep(seconds: float) -> None:
        if seconds > 0:
            slept.append(seconds)

    async def fake_asleep(seconds: float) -> None:
        if seconds > 0:
            slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(sync_driver, "sleep", fake_sleep)
    monkeypatch.setattr(async_driver, "sleep", fake_asleep)
    return slept


def memory(clock: FakeClock) -> MemoryState:
    return MemoryState(clock)
