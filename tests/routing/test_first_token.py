"""First-token SLO: ``first_token_timeout_s`` abandons an attempt that has shown no text by
then and moves on to the next target, for streams and for chat (a chat is then streamed from
the vendor, unseen, to watch for its first token); ledger rows carry the time to first token."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

import portal
from portal.errors import ProviderTimeout
from portal.metering.ledger import read_records
from tests.helpers import openai_stream_chunks

from .conftest import config


def _chunks(name: str) -> list[bytes]:
    return openai_stream_chunks([f"from {name} "] * 3)


class _Vendors:
    """A loopback OpenAI-format server: ``/a/...`` sends its first text after 2 s, ``/b/...``
    at once (status and headers at once for both). It records each request body."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                outer.seen.append(json.loads(self.rfile.read(length)))
                name = self.path.strip("/").split("/")[0]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.flush()
                if name == "a" and outer.stop.wait(2.0):
                    return
                try:
                    for i, chunk in enumerate(_chunks(name)):
                        if name == "gappy" and i and outer.stop.wait(0.5):
                            return  # its first token at once, then half a second per chunk
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}/v1"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vendors() -> Iterator[_Vendors]:
    v = _Vendors()
    yield v
    v.close()


def _config(vendors: _Vendors, ledger: str = "none") -> dict[str, Any]:
    cfg = config(
        {
            name: {"kind": "openai", "api_key": "sk-test", "base_url": vendors.url(name)}
            for name in ("a", "b")
        },
        {"f": {"primary": "a:m", "fallbacks": ["b:m"], "first_token_timeout_s": 0.3}},
    )
    cfg["portal"]["ledger"] = ledger
    return cfg


def _call(kind: str, op: str, cfg: dict[str, Any]) -> Any:
    msg = [portal.user("hi")]
    if kind == "sync":
        with portal.Client(cfg) as client:
            if op == "chat":
                return client.chat(feature="f", messages=msg)
            return [ev for ev in client.stream(feature="f", messages=msg)][-1].response

    async def go() -> Any:
        async with portal.AsyncClient(cfg) as client:
            if op == "chat":
                return await client.chat(feature="f", messages=msg)
            return [ev async for ev in client.stream(feature="f", messages=msg)][-1].response

    return anyio.run(go)


@pytest.mark.parametrize("op", ["chat", "stream"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_target_slow_to_its_first_token_is_left_for_the_next(
    kind: str, op: str, tmp_path: Path, vendors: _Vendors
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    t0 = time.perf_counter()
    resp = _call(kind, op, _config(vendors, url))
    took = time.perf_counter() - t0
    assert resp.text == "from b " * 3 and resp.target == "b:m"
    assert took < 1.5, f"waited {took:.2f}s for a target 2 s from its first token"
    assert [(a.target, a.outcome, a.error) for a in resp.attempts] == [
        ("a:m", "error", "ProviderTimeout"),
        ("b:m", "ok", None),
    ]
    assert all(
        body["stream"] is True for body in vendors.seen
    )  # a chat too: to see its first token
    assert resp.ttft_ms is not None and resp.ttft_ms < 300
    calls = read_records(url, kind="call")
    assert len(calls) == 1 and calls[0].ttft_ms is not None


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_attempts_error_names_the_first_token_limit(kind: str, vendors: _Vendors) -> None:
    cfg = _config(vendors)
    cfg["features"]["f"]["fallbacks"] = []
    t0 = time.perf_counter()
    with pytest.raises(ProviderTimeout, match=r"no text within first_token_timeout_s=0\.3"):
        _call(kind, "stream", cfg)
    assert time.perf_counter() - t0 < 1.5  # not retried on the same slow target


def test_a_first_token_limit_longer_than_the_deadline_is_refused(vendors: _Vendors) -> None:
    cfg = _config(vendors)
    cfg["features"]["f"]["timeout_s"] = 0.2
    with pytest.raises(
        portal.ConfigError, match=r"features\.f.*first_token_timeout_s = 0\.3 is longer"
    ):
        portal.Client(cfg)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_first_token_limit_does_not_bound_the_gaps_after_it(
    kind: str, vendors: _Vendors
) -> None:
    """0.5 s between chunks after a first token that came at once, under a 0.3 s first-token
    limit: the stream is served whole (only the deadline and stall_timeout_s bound it)."""
    cfg = _config(vendors)
    cfg["providers"]["gappy"] = {
        "kind": "openai",
        "api_key": "sk-test",
        "base_url": vendors.url("gappy"),
    }
    cfg["features"]["f"] = {"primary": "gappy:m", "first_token_timeout_s": 0.3, "timeout_s": 5}
    resp = _call(kind, "stream", cfg)
    assert resp.text == "from gappy " * 3
