"""A caller that gives up (anyio cancel scopes, breaking out of a stream loop) leaves nothing
behind: no task still running, no connection still open, and the ledger says "cancelled" for
the attempt and the call rather than losing them."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

import portal
from portal.metering.ledger import read_records
from tests.reliability._proc import established_to
from tests.reliability._servers import BadServer, bad_server

#: what these tests assert holds on every transport AsyncClient can send through
pytestmark = pytest.mark.usefixtures("both_transports")

MSG = [portal.user("hi")]


def config(url: str) -> dict[str, Any]:
    return {
        "providers": {
            "v": {"kind": "openai", "base_url": url, "api_key": "sk-test", "timeout_s": 20}
        },
        "features": {"f": {"primary": "v:m", "retry": {"attempts": 1}}},
    }


@pytest.fixture(scope="module")
def server() -> Any:
    with bad_server() as srv:
        yield srv


def outcomes(url: str) -> tuple[list[str], list[str]]:
    recs = read_records(url)
    return (
        [r.outcome for r in recs if r.kind == "attempt"],
        [r.outcome for r in recs if r.kind == "call"],
    )


def _wait_closed(port: int) -> int:
    deadline = time.monotonic() + 2
    while established_to(port) and time.monotonic() < deadline:
        time.sleep(0.02)
    return established_to(port)


@pytest.mark.parametrize("behaviour", ["stall-body", "no-headers"])
def test_cancel_scope_around_chat(server: BadServer, tmp_path: Path, behaviour: str) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    base = server.url("stall-body" if behaviour == "stall-body" else "stall-headers")

    async def main() -> None:
        async with portal.AsyncClient(config(base), ledger=url) as client:
            with anyio.move_on_after(0.4) as scope:
                await client.chat(feature="f", messages=MSG)
            assert scope.cancelled_caught
            assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
            assert _wait_closed(server.port) == 0  # the half-read connection was closed

    anyio.run(main)
    assert outcomes(url) == (["cancelled"], ["cancelled"])


def test_cancel_scope_mid_stream(server: BadServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    got: list[str] = []

    async def main() -> None:
        async with portal.AsyncClient(config(server.url("stall-stream")), ledger=url) as client:
            with anyio.move_on_after(10) as scope:
                async for ev in client.stream(feature="f", messages=MSG):
                    got.append(ev.text)
                    # give up 0.3 s after the first delta, however long it took to arrive
                    scope.deadline = anyio.current_time() + 0.3
            assert scope.cancelled_caught
            assert asyncio.all_tasks() == {asyncio.current_task()}
            assert _wait_closed(server.port) == 0

    anyio.run(main)
    assert got == ["partial "]
    assert outcomes(url) == (["cancelled"], ["cancelled"])


def test_async_break_with_aclosing(server: BadServer, tmp_path: Path) -> None:
    """``async with aclosing(client.stream(...))`` ends the call at the break (an async
    generator left unclosed is only finalized later, by the event loop)."""
    url = f"sqlite:///{tmp_path / 'l.db'}"

    async def main() -> None:
        async with portal.AsyncClient(config(server.url("stall-stream")), ledger=url) as client:
            async with aclosing(client.stream(feature="f", messages=MSG)) as events:
                async for _ in events:
                    break
            assert _wait_closed(server.port) == 0

    anyio.run(main)
    assert outcomes(url) == (["cancelled"], ["cancelled"])


def test_sync_break_out_of_a_stream(server: BadServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with portal.Client(config(server.url("stall-stream")), ledger=url) as client:
        for ev in client.stream(feature="f", messages=MSG):
            assert ev.text == "partial "
            break
        assert _wait_closed(server.port) == 0
    assert outcomes(url) == (["cancelled"], ["cancelled"])


def test_cancel_under_trio(server: BadServer, tmp_path: Path) -> None:
    """The same under trio: cancellation is a backend-neutral anyio cancel scope."""
    url = f"sqlite:///{tmp_path / 'l.db'}"

    async def main() -> None:
        async with portal.AsyncClient(config(server.url("stall-body")), ledger=url) as client:
            with anyio.move_on_after(0.3):
                await client.chat(feature="f", messages=MSG)

    anyio.run(main, backend="trio")
    assert _wait_closed(server.port) == 0
    assert outcomes(url) == (["cancelled"], ["cancelled"])
