"""Hostile replies through the whole stack: every wire API x reply mode x client x chat/stream.

Each case configures one provider of a kind with a canary key, answers every request with one
hostile reply (an error that echoes the key in its body and in request-id headers, an in-stream
error that echoes it, JSON nested 100,000 deep in an error or a reply, a gzip body that is not
gzip, a body cut before its end, HTML, invalid UTF-8, ``null``) and checks that the caller sees
only a documented portal error (the class the mode calls for) and that the key appears nowhere:
not in the message, the repr, the attributes, the causes or the printed traceback.

``PORTAL_HOSTILE_ROUNDS`` repeats every case (default 1); docs/reliability.md has the counts.
"""

from __future__ import annotations

import gzip
import json
import os
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

import portal
from portal.errors import (
    AuthenticationError,
    InvalidResponse,
    PortalError,
    ProviderError,
    ServerError,
)
from tests.reliability._vendors import FIXTURES, KINDS, bedrock_event, model_of
from tests.reliability.test_security import texts_of

KEY = "sk-hostile-0123456789abcdefABCDEF"
ROUNDS = int(os.environ.get("PORTAL_HOSTILE_ROUNDS", "1"))
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"error":' * 50_000 + b"1" + b"}" * 50_000

_SETTINGS: dict[str, dict[str, Any]] = {
    "azure-openai": {"base_url": "https://acme.openai.azure.com"},
    "openai-compatible": {"base_url": "http://127.0.0.1:8000/v1", "options": {"preset": "vllm"}},
    "bedrock": {"options": {"region_name": "us-east-1"}},
    "vertex": {"options": {"project": "acme-prod", "location": "us-central1"}},
}


def config(kind: str) -> dict[str, Any]:
    extra = _SETTINGS.get(kind, {})
    provider: dict[str, Any] = {"kind": kind, "api_key": KEY, **extra}
    return {
        "portal": {"ledger": "none"},
        "providers": {"p": provider},
        "features": {"f": {"primary": f"p:{model_of(kind)}", "retry": {"attempts": 1}}},
    }


# ------------------------------------------------------------------------- reply modes


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        content=json.dumps(body).encode(),
    )


_ECHO_HEADERS = {
    "x-request-id": KEY,
    "request-id": KEY,
    "x-amzn-requestid": KEY,
    "x-debug-trace-id": KEY,
    "apim-request-id": KEY,
    "x-echo": f"Bearer {KEY}",
}


def _echo_body(status: int) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Incorrect API key provided: {KEY}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "status": "UNAUTHENTICATED",
            "echo": {"authorization": f"Bearer {KEY}", "nested": [[{"k": KEY}]]},
        },
        "message": f"invalid api token {KEY}",
        "id": KEY,
        "type": "error",
    }


def echo_401(kind: str, stream: bool) -> httpx2.Response:
    return _json(401, _echo_body(401), _ECHO_HEADERS)


def echo_500(kind: str, stream: bool) -> httpx2.Response:
    body = {"error": {"message": f"internal error serving key {KEY}", "type": "server_error"}}
    return _json(500, body, _ECHO_HEADERS)


def _stream_error_bytes(kind: str) -> tuple[bytes, str]:
    """A vendor's documented in-stream error, with the key in its message."""
    if kind == "bedrock":
        payload = json.dumps({"message": f"The security token {KEY} is invalid"}).encode()
        start = bedrock_event("messageStart", b'{"role":"assistant"}')
        return start + bedrock_event(
            "modelStreamErrorException", payload, "exception"
        ), "application/vnd.amazon.eventstream"
    source = {"azure-openai": "openai", "openai-compatible": "openai", "mistral": "openai"}
    source["vertex"] = "gemini"
    path = FIXTURES / source.get(kind, kind) / "stream_error.sse"
    text = path.read_text(encoding="utf-8")
    for marker in ('"message": "', '"message":"', '"error":"'):
        if marker in text:
            text = text.replace(marker, f"{marker}{KEY} ", 1)
            break
    else:  # pragma: no cover - every fixture has a message
        raise AssertionError(f"{path}: no message to put the key in")
    return text.encode(), "text/event-stream"


def in_stream_error(kind: str, stream: bool) -> httpx2.Response:
    if not stream:
        return _json(400, _echo_body(400), {"x-request-id": KEY})
    body, ctype = _stream_error_bytes(kind)
    return httpx2.Response(200, headers={"content-type": ctype, "x-request-id": KEY}, content=body)


def _deep(status: int, body: bytes = DEEP) -> Callable[[str, bool], httpx2.Response]:
    def reply(kind: str, stream: bool) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": "application/json"}, content=body)

    return reply


def deep_reply(kind: str, stream: bool) -> httpx2.Response:
    if stream and kind != "bedrock":
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"data: " + DEEP + b"\n\n"
        )
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=DEEP)


def bad_gzip(kind: str, stream: bool) -> httpx2.Response:
    return httpx2.Response(
        200,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        content=b"this is not gzip" * 8,
    )


class _Cut(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Half a body, then the connection closes before the declared length."""

    def __init__(self, body: bytes) -> None:
        self.part = body[: len(body) // 2]

    def __iter__(self) -> Iterator[bytes]:
        yield self.part
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> Any:
        yield self.part
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete body")


def truncated(kind: str, stream: bool) -> httpx2.Response:
    body = json.dumps({"id": "x", "choices": [], "content": [], "candidates": []}).encode()
    return httpx2.Response(
        200,
        headers={"content-type": "application/json", "content-length": str(len(body))},
        stream=_Cut(body),
    )


def html_502(kind: str, stream: bool) -> httpx2.Response:
    return httpx2.Response(
        502, headers={"content-type": "text/html"}, content=b"<html><h1>502 Bad Gateway</h1>"
    )


def bad_utf8(kind: str, stream: bool) -> httpx2.Response:
    return httpx2.Response(
        200, headers={"content-type": "application/json"}, content=b'{"x": "\xff\xfe\xc3"}'
    )


def null_reply(kind: str, stream: bool) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=b"null")


def gzip_error(kind: str, stream: bool) -> httpx2.Response:
    """A well-formed gzip error body echoing the key: decoded, classified, redacted."""
    return httpx2.Response(
        403,
        headers={"content-type": "application/json", "content-encoding": "gzip", **_ECHO_HEADERS},
        content=gzip.compress(json.dumps(_echo_body(403)).encode()),
    )


_ALL_NULL: dict[str, Any] = {
    "anthropic": {"type": "message", "content": [], "stop_reason": None, "usage": None},
    "bedrock": {"output": {"message": {"content": []}}, "stopReason": None, "usage": None},
    "cohere": {"message": {"content": None}, "finish_reason": None, "usage": None},
    "gemini": {"candidates": [{"content": {"parts": []}, "finishReason": None}]},
    "vertex": {"candidates": [{"content": {"parts": []}, "finishReason": None}]},
    "openai-responses": {"status": None, "output": [], "usage": None},
}
_OPENAI_NULL = {"choices": [{"message": {"content": None}, "finish_reason": None}], "usage": None}


def all_null(kind: str, stream: bool) -> httpx2.Response:
    """Every field of the documented reply present and null: not an empty answer at $0."""
    return _json(200, _ALL_NULL.get(kind, _OPENAI_NULL))


#: mode -> (reply, the error class a non-streamed call must raise, same for a stream)
MODES: dict[
    str, tuple[Callable[[str, bool], httpx2.Response], type[Exception], type[Exception]]
] = {
    "echo-key-401": (echo_401, AuthenticationError, AuthenticationError),
    "echo-key-500": (echo_500, ServerError, ServerError),
    "echo-key-gzip-403": (gzip_error, AuthenticationError, AuthenticationError),
    "in-stream-error-echo": (in_stream_error, ProviderError, ProviderError),
    "deep-json-error-400": (_deep(400), InvalidResponse, InvalidResponse),
    "deep-json-error-429": (_deep(429), InvalidResponse, InvalidResponse),
    "deep-json-error-500": (_deep(500), InvalidResponse, InvalidResponse),
    "deep-object-error-503": (_deep(503, DEEP_OBJECT), InvalidResponse, InvalidResponse),
    "deep-json-reply": (deep_reply, InvalidResponse, ProviderError),
    "bad-gzip": (bad_gzip, InvalidResponse, InvalidResponse),
    "truncated-body": (truncated, InvalidResponse, ProviderError),
    "html-502": (html_502, ServerError, ServerError),
    "invalid-utf8": (bad_utf8, InvalidResponse, ProviderError),
    "null-reply": (null_reply, InvalidResponse, ProviderError),
    "all-null-reply": (all_null, InvalidResponse, ProviderError),
}


# ------------------------------------------------------------------------- running a case


def _transport(kind: str, mode: str, stream: bool) -> httpx2.MockTransport:
    reply = MODES[mode][0]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return reply(kind, stream)

    return httpx2.MockTransport(handler)


def _run_sync(kind: str, mode: str, stream: bool) -> BaseException | None:
    client = portal.Client(config(kind), transports={"p": _transport(kind, mode, stream)})
    try:
        if stream:
            for _ in client.stream(feature="f", messages=[portal.user("hi")]):
                pass
        else:
            client.chat(feature="f", messages=[portal.user("hi")])
    except BaseException as exc:
        return exc
    finally:
        client.close()
    return None


def _run_async(kind: str, mode: str, stream: bool) -> BaseException | None:
    async def main() -> BaseException | None:
        client = portal.AsyncClient(config(kind), transports={"p": _transport(kind, mode, stream)})
        try:
            if stream:
                async for _ in client.stream(feature="f", messages=[portal.user("hi")]):
                    pass
            else:
                await client.chat(feature="f", messages=[portal.user("hi")])
        except BaseException as exc:
            return exc
        finally:
            await client.aclose()
        return None

    return anyio.run(main)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, portal.AllTargetsFailed) and exc.exceptions:
        exc = exc.exceptions[-1]
    return exc


CASES = [
    (kind, mode, client, op)
    for kind in KINDS
    for mode in MODES
    for client in ("sync", "async")
    for op in ("chat", "stream")
]


@pytest.mark.parametrize(("kind", "mode", "client", "op"), CASES)
def test_hostile_reply_ends_in_a_documented_error_without_the_key(
    kind: str, mode: str, client: str, op: str
) -> None:
    stream = op == "stream"
    expected = MODES[mode][2 if stream else 1]
    run = _run_sync if client == "sync" else _run_async
    for _ in range(ROUNDS):
        exc = run(kind, mode, stream)
        assert exc is not None, f"{kind} {mode} {client} {op}: a hostile reply came back as success"
        assert isinstance(exc, PortalError), (
            f"{kind} {mode} {client} {op}: undocumented {type(exc).__name__}: {exc}"
        )
        leaf = _leaf(exc)
        assert isinstance(leaf, expected), (
            f"{kind} {mode} {client} {op}: {type(leaf).__name__} ({leaf}), expected "
            f"{expected.__name__}"
        )
        shown = "\n".join([*texts_of(exc), *traceback.format_exception(exc)])
        assert KEY not in shown, f"{kind} {mode} {client} {op}: the key leaked:\n{shown[:3000]}"


def test_a_bedrock_null_text_is_not_the_answer_none() -> None:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": None}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
    }
    client = portal.Client(
        config("bedrock"), transports={"p": httpx2.MockTransport(lambda r: _json(200, body))}
    )
    with client, pytest.raises((portal.AllTargetsFailed, InvalidResponse)) as info:
        client.chat(feature="f", messages=[portal.user("hi")])
    assert "text is not a string" in str(info.value)


def test_every_mode_has_a_name_in_the_docs() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    missing = [mode for mode in MODES if f"`{mode}`" not in doc]
    assert not missing, f"docs/reliability.md does not list: {missing}"
