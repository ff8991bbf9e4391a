"""Vendors that stop sending, never stop sending, or send too much, through the real clients
and a real socket: every case ends in a `ProviderError` within the configured time, and no
reply is buffered past ``max_reply_bytes`` (body, stream, or a decompressed gzip body)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import portal
from portal import errors
from tests.reliability._servers import BadServer, bad_server

#: what these tests assert holds on every transport AsyncClient can send through
pytestmark = pytest.mark.usefixtures("both_transports")


def config(
    url: str, *, timeout_s: float = 0.5, feature_timeout: float | None = None, **options: Any
) -> dict[str, Any]:
    feature: dict[str, Any] = {"primary": "v:m", "retry": {"attempts": 1}}
    if feature_timeout is not None:
        feature["timeout_s"] = feature_timeout
    return {
        "portal": {"ledger": "none"},
        "providers": {
            "v": {
                "kind": "openai",
                "base_url": url,
                "api_key": "sk-test",
                "timeout_s": timeout_s,
                "options": options,
            }
        },
        "features": {"f": feature},
    }


MSG = [portal.user("hi")]


async def _stream(client: portal.AsyncClient) -> list[Any]:
    return [ev async for ev in client.stream(feature="f", messages=MSG)]


def _run_async(cfg: dict[str, Any], op: str) -> BaseException:
    async def main() -> BaseException:
        async with portal.AsyncClient(cfg, ledger=None) as client:
            with anyio.fail_after(10):  # a hang fails the test instead of stalling the suite
                try:
                    if op == "chat":
                        await client.chat(feature="f", messages=MSG)
                    else:
                        await _stream(client)
                except portal.PortalError as exc:
                    return exc
        raise AssertionError("the call succeeded")

    return anyio.run(main)


def _run_sync(cfg: dict[str, Any], op: str) -> BaseException:
    with portal.Client(cfg, ledger=None) as client:
        try:
            if op == "chat":
                client.chat(feature="f", messages=MSG)
            else:
                list(client.stream(feature="f", messages=MSG))
        except portal.PortalError as exc:
            return exc
    raise AssertionError("the call succeeded")


RUN = {"async": _run_async, "sync": _run_sync}


@pytest.fixture(scope="module")
def server() -> Any:
    with bad_server() as srv:
        yield srv


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_body_that_stops_arriving_hits_the_read_timeout(server: BadServer, mode: str) -> None:
    t0 = time.perf_counter()
    err = RUN[mode](config(server.url("stall-body")), "chat")
    assert isinstance(err, errors.ProviderTimeout), repr(err)
    # the provider's timeout_s (0.5 s) bounds each read and the whole attempt alike
    assert str(err) in (
        "v: timed out (ReadTimeout)",
        "v: timed out: the attempt's time ran out before the reply was complete",
    )
    assert time.perf_counter() - t0 < 3


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_stream_that_stops_sending_hits_the_read_timeout(server: BadServer, mode: str) -> None:
    t0 = time.perf_counter()
    err = RUN[mode](config(server.url("stall-stream")), "stream")
    assert isinstance(err, errors.StreamInterrupted), repr(err)
    assert err.partial_text == "partial "
    assert str(err) == "v:m: stream failed after delivering text: timed out (ReadTimeout)"
    assert time.perf_counter() - t0 < 3


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_an_endless_stream_is_cut_at_max_reply_bytes(server: BadServer, mode: str) -> None:
    err = RUN[mode](config(server.url("endless"), max_reply_bytes=200_000), "stream")
    assert isinstance(err, errors.StreamInterrupted), repr(err)
    assert "stream larger than max_reply_bytes=200000; refusing to read on" in str(err)


def test_a_dripping_stream_is_cut_at_the_call_deadline(server: BadServer) -> None:
    """Each read is fast (a keep-alive every 50 ms) so no read timeout fires; the feature's
    timeout_s bounds the whole stream."""
    t0 = time.perf_counter()
    err = _run_async(config(server.url("drip"), timeout_s=5, feature_timeout=0.6), "stream")
    assert isinstance(err, errors.StreamInterrupted), repr(err)
    assert "the call's deadline passed while the stream was still sending" in str(
        err
    ) or "the attempt's time ran out before the reply was complete" in str(err)
    assert time.perf_counter() - t0 < 3


@pytest.mark.parametrize("behaviour", ["huge", "huge-chunked", "gzip-bomb"])
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_reply_over_max_reply_bytes_is_refused(
    server: BadServer, mode: str, behaviour: str
) -> None:
    err = RUN[mode](config(server.url(behaviour), max_reply_bytes=1_000_000), "chat")
    assert isinstance(err, errors.InvalidResponse), repr(err)
    assert str(err) == (
        "v: reply larger than max_reply_bytes=1000000; refusing to read it (raise the provider "
        "option max_reply_bytes if the vendor really sends replies this large)"
    )
    assert err.provider == "v"


def test_the_default_cap_admits_a_normal_reply(server: BadServer) -> None:
    with portal.Client(config(server.url("ok")), ledger=None) as client:
        assert client.chat(feature="f", messages=MSG).text == "ok"


def test_one_sse_event_over_max_event_bytes_is_refused() -> None:
    from tests.reliability._vendors import make_adapter

    adapter = make_adapter("openai")
    adapter.settings.options["max_event_bytes"] = 1000
    parser = adapter.stream_parser(portal.ChatRequest([portal.user("hi")], stream=True), "m")
    parser.feed(b"data: " + b"x" * 500)
    with pytest.raises(errors.InvalidResponse) as info:
        parser.feed(b"y" * 600)
    assert str(info.value) == (
        "stream event larger than 1000 bytes; refusing to buffer it (raise the provider option "
        "max_event_bytes if the vendor really sends such events)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "big",
            "config: providers.v.options: max_reply_bytes must be a positive integer (bytes), got 'big'",
        ),
        (
            0,
            "config: providers.v.options: max_reply_bytes must be a positive integer (bytes), got 0",
        ),
        (
            True,
            "config: providers.v.options: max_reply_bytes must be a positive integer (bytes), got True",
        ),
    ],
)
def test_size_caps_are_validated_in_config(value: Any, message: str) -> None:
    with pytest.raises(portal.ConfigError) as info:
        portal.Client(config("http://127.0.0.1:1/v1", max_reply_bytes=value), ledger=None)
    assert str(info.value) == message


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_stall_timeout_cuts_a_stream_that_stops_sooner_than_the_attempt_limit(
    server: BadServer, mode: str
) -> None:
    """first_byte_timeout_s 5 s (the socket's read timeout), stall_timeout_s 0.3 s: a stream
    that stops after its first text is cut after 0.3 s of silence."""
    cfg = config(server.url("stall-stream"), timeout_s=5)
    cfg["providers"]["v"]["stall_timeout_s"] = 0.3
    t0 = time.perf_counter()
    err = RUN[mode](cfg, "stream")
    assert isinstance(err, errors.StreamInterrupted), repr(err)
    assert err.partial_text == "partial "
    assert time.perf_counter() - t0 < 2.0
