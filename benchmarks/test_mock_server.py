"""The mock server speaks the vendors' wire formats and honours its injection options; the
benchmark's numbers are only as good as this. Run: ``pytest benchmarks/test_mock_server.py``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

SERVER = Path(__file__).with_name("mock_server.py")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where is order 1?"}]}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--chunks", "5", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    assert port.isdigit(), f"mock server printed {port!r} instead of its port"
    yield f"http://127.0.0.1:{port}"
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=5) == 0


@pytest.fixture()
def http(base_url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base_url, timeout=5) as client:
        yield client


def _sse(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data))
    return events


def test_openai_chat_json(http: httpx2.Client) -> None:
    r = http.post("/v1/chat/completions", json=dict(CHAT, max_tokens=3))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello there!",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "length"  # max_tokens 3 < 5 chunks
    usage = body["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + 3
    second = http.post("/v1/chat/completions", json=CHAT).json()
    assert second["id"] != body["id"]
    assert second["choices"][0]["finish_reason"] == "stop"


ANSWER_SCHEMA = {
    "type": "object",
    "required": ["answer", "order_id", "needs_human"],
    "properties": {
        "answer": {"type": "string"},
        "order_id": {"type": ["string", "null"]},
        "needs_human": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
    },
}


def test_structured_output_request_gets_json_matching_the_schema(http: httpx2.Client) -> None:
    """portal's benchmarked call has a contract: its reply must be JSON that validates."""
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": ANSWER_SCHEMA}}
    r = http.post("/v1/chat/completions", json=dict(CHAT, response_format=fmt))
    content = json.loads(r.json()["choices"][0]["message"]["content"])
    assert content == {
        "answer": "Hello there! Your order",
        "order_id": "Hello there! Your order",
        "needs_human": False,
        "tags": ["a"],
    }
    s = http.post("/v1/chat/completions", json=dict(CHAT, response_format=fmt, stream=True)).text
    deltas = [
        c["choices"][0]["delta"].get("content") or ""
        for _, data in _sse(s)
        if data != "[DONE]" and (c := json.loads(data))["choices"]
    ]
    assert json.loads("".join(deltas)) == content


def test_openai_chat_stream_with_usage(http: httpx2.Client) -> None:
    payload = dict(CHAT, stream=True, stream_options={"include_usage": True})
    r = http.post("/v1/chat/completions", json=payload)
    assert r.headers["content-type"] == "text/event-stream"
    events = _sse(r.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello there! Your order"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_openai_stream_without_usage_has_no_usage_field(http: httpx2.Client) -> None:
    r = http.post("/v1/chat/completions", json=dict(CHAT, stream=True))
    chunks = [json.loads(d) for _, d in _sse(r.text)[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)


def test_anthropic_messages_json_and_stream(http: httpx2.Client) -> None:
    payload = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": CHAT["messages"]}
    body = http.post("/v1/messages", json=payload).json()
    assert body["type"] == "message" and body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": "Hello there! Your order"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["output_tokens"] == 5
    events = _sse(http.post("/v1/messages", json=dict(payload, stream=True)).text)
    names = [n for n, _ in events]
    assert names == ["message_start", "content_block_start", "ping"] + [
        "content_block_delta"
    ] * 5 + ["content_block_stop", "message_delta", "message_stop"]
    datas = [json.loads(d) for _, d in events]
    assert all(d["type"] == n for (n, _), d in zip(events, datas, strict=True))
    assert "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta") == (
        "Hello there! Your order"
    )
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_requires_max_tokens(http: httpx2.Client) -> None:
    r = http.post("/v1/messages", json={"model": "c", "messages": CHAT["messages"]})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


def test_embeddings_float_and_base64(http: httpx2.Client) -> None:
    import base64
    import struct

    floats = http.post("/v1/embeddings", json={"model": "e", "input": ["a", "bb"]}).json()
    assert [d["index"] for d in floats["data"]] == [0, 1]
    vec = floats["data"][0]["embedding"]
    assert len(vec) == 16
    b64 = http.post(
        "/v1/embeddings", json={"model": "e", "input": "a", "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<16f", base64.b64decode(b64["data"][0]["embedding"]))
    assert decoded == pytest.approx(vec, abs=1e-6)


def test_error_injection_by_header(http: httpx2.Client) -> None:
    before = http.get("/stats").json()
    r = http.post(
        "/v1/messages",
        json={"model": "c", "max_tokens": 5, "messages": CHAT["messages"]},
        headers={"x-mock-error-status": "529", "x-mock-retry-after": "2"},
    )
    assert r.status_code == 529
    assert r.headers["retry-after"] == "2"
    assert r.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "injected error 529"},
    }
    r = http.post("/v1/chat/completions", json=CHAT, headers={"x-mock-error-status": "429"})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_exceeded"
    after = http.get("/stats").json()
    assert after["errors"] - before["errors"] == 2


def test_error_rate_is_a_share_of_calls(http: httpx2.Client) -> None:
    headers = {"x-mock-error-rate": "0.5"}
    codes = [
        http.post("/v1/chat/completions", json=CHAT, headers=headers).status_code
        for _ in range(200)
    ]
    assert 60 < codes.count(500) < 140
    assert set(codes) == {200, 500}


def test_latency_and_chunk_interval(http: httpx2.Client) -> None:
    t = time.perf_counter()
    http.post("/v1/chat/completions", json=CHAT, headers={"x-mock-latency-ms": "80"})
    assert time.perf_counter() - t >= 0.08
    headers = {"x-mock-latency-ms": "0", "x-mock-chunk-interval-ms": "30", "x-mock-chunks": "3"}
    arrivals: list[float] = []
    t = time.perf_counter()
    with http.stream(
        "POST", "/v1/chat/completions", json=dict(CHAT, stream=True), headers=headers
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - t)
    assert len(arrivals) == 6  # role, 3 deltas, finish, [DONE]
    assert arrivals[0] < 0.025  # the first event is not held back
    assert arrivals[-1] >= 0.15  # five 30 ms gaps


def test_bad_latency_header_is_a_400_naming_the_header(http: httpx2.Client) -> None:
    r = http.post("/v1/chat/completions", json=CHAT, headers={"x-mock-latency-ms": "soon"})
    assert r.status_code == 400
    assert "x-mock header" in r.json()["error"]["message"]


def test_keep_alive_and_chunked_request_body(base_url: str) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    body = json.dumps(CHAT).encode()
    half = len(body) // 2
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(2):  # two requests on one connection
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
                + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                % (half, body[:half], len(body) - half, body[half:])
            )
            reply = _read_response(sock)
            assert reply["status"] == 200
            assert reply["json"]["choices"][0]["message"]["content"] == "Hello there! Your order"


def _read_response(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return {"status": int(lines[0].split()[1]), "json": json.loads(rest[:length])}


def test_raw_same_json_rows_post_exactly_what_portal_sends(base_url: str) -> None:
    """Issue 6 compares portal's contract call with raw httpx2 posting *the same JSON*: the
    raw rows' CONTRACT_PAYLOAD must stay byte-for-byte the body portal builds for that call,
    and both must read the same answer from the mock server."""
    sys.path.insert(0, str(SERVER.parent))
    try:
        import clients
    finally:
        sys.path.remove(str(SERVER.parent))
    import portal

    bodies: list[bytes] = []
    upstream = httpx2.HTTPTransport()

    def capture(request: httpx2.Request) -> httpx2.Response:
        bodies.append(request.read())
        return upstream.handle_request(request)

    env = clients.Env(base_url, base_url, 1, 5)
    client = portal.Client(
        clients._portal_config(env),
        ledger=None,
        transports={"bench": httpx2.MockTransport(capture)},
    )
    try:
        answer = clients._answer(
            client.chat(
                feature="bench.answer", input=clients.QUESTION, max_tokens=clients.MAX_TOKENS
            )
        )
    finally:
        client.close()
    assert json.loads(bodies[0]) == clients.CONTRACT_PAYLOAD
    raw = clients.REGISTRY["httpx2-sync-contract"].setup(env)
    try:
        assert raw.call() == answer
    finally:
        raw.close()
