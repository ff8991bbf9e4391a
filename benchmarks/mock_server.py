"""A fast mock LLM vendor server for benchmarks and game days.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked request bodies,
chunked SSE responses) on a raw asyncio Protocol, on uvloop when it is installed, so that
the server costs a small fraction of what any client costs per call: a benchmark must
measure the client, not the mock.

Endpoints (shapes written from OpenAI's OpenAPI spec and Anthropic's Messages API docs):
- ``POST /v1/chat/completions``: OpenAI chat, JSON or SSE (``"stream": true``), with a final
  usage chunk when ``stream_options.include_usage`` is set;
- ``POST /v1/embeddings``: OpenAI embeddings, ``float`` or ``base64`` encoding;
- ``POST /v1/messages``: Anthropic Messages, JSON or SSE (``message_start`` ...
  ``message_stop``);
- ``GET /health`` and ``GET /stats`` (request and injected-error counts).

Behaviour is set by CLI flags and can be overridden per request with headers:

==========================  ==============================  ==================================
flag                        header                          meaning
==========================  ==============================  ==================================
``--latency-ms SPEC``       ``x-mock-latency-ms``           delay before the response headers
``--chunk-interval-ms SPEC`` ``x-mock-chunk-interval-ms``   delay between stream events
``--chunks N``              ``x-mock-chunks``               completion tokens / stream deltas
``--error-rate R``          ``x-mock-error-rate``           share of calls answered with error
``--error-status S``        ``x-mock-error-status``         status of injected errors
``--retry-after SECONDS``   ``x-mock-retry-after``          Retry-After header on errors
``--embedding-dims N``      ``x-mock-embedding-dims``       embedding vector length
==========================  ==============================  ==================================

A latency SPEC is milliseconds: ``5`` (fixed), ``uniform:5:20``, ``normal:MEAN:SD``,
``lognormal:MEDIAN:SIGMA`` or ``exp:MEAN``. An ``x-mock-error-status`` header without a
rate fails every call.

Run: ``python benchmarks/mock_server.py --port 0`` prints the bound port on its first line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http
import json
import math
import os
import random
import signal
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

_WORDS = (
    "Hello",
    " there",
    "!",
    " Your",
    " order",
    " 123",
    " shipped",
    " on",
    " Monday",
    " and",
    " should",
    " arrive",
    " within",
    " three",
    " days",
    ".",
)
_MAX_HEADER_BYTES = 65536


@dataclass(frozen=True)
class Delay:
    """A latency distribution in milliseconds; ``sample()`` returns seconds."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Delay:
        """Parse ``5``, ``uniform:A:B``, ``normal:MEAN:SD``, ``lognormal:MEDIAN:SIGMA`` or
        ``exp:MEAN`` (milliseconds)."""
        parts = spec.strip().split(":")
        try:
            if len(parts) == 1:
                return cls("fixed", float(parts[0]))
            kind, nums = parts[0].lower(), [float(p) for p in parts[1:]]
        except ValueError:
            raise ValueError(
                f"latency spec {spec!r} is not a number of milliseconds or KIND:ARGS; "
                "use e.g. '5', 'uniform:5:20', 'normal:50:10', 'lognormal:40:0.5', 'exp:30'"
            ) from None
        arity = {"uniform": 2, "normal": 2, "lognormal": 2, "exp": 1}
        if kind not in arity or len(nums) != arity[kind]:
            raise ValueError(
                f"latency spec {spec!r}: unknown kind or wrong argument count; "
                "use 'uniform:A:B', 'normal:MEAN:SD', 'lognormal:MEDIAN:SIGMA' or 'exp:MEAN'"
            )
        return cls(kind, nums[0], nums[1] if len(nums) > 1 else 0.0)

    @property
    def is_zero(self) -> bool:
        return self.kind == "fixed" and self.a <= 0.0

    def sample(self) -> float:
        if self.kind == "fixed":
            ms = self.a
        elif self.kind == "uniform":
            ms = random.uniform(self.a, self.b)
        elif self.kind == "normal":
            ms = random.gauss(self.a, self.b)
        elif self.kind == "lognormal":
            ms = self.a * math.exp(random.gauss(0.0, self.b))
        else:
            ms = random.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return max(ms, 0.0) / 1000.0


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one request: CLI defaults, overridden by request headers."""

    latency: Delay = Delay()
    chunk_interval: Delay = Delay()
    chunks: int = 8
    error_rate: float = 0.0
    error_status: int = 500
    retry_after: str | None = None
    embedding_dims: int = 16

    def with_headers(self, headers: dict[str, str]) -> Behaviour:
        """Apply ``x-mock-*`` overrides; most requests carry none and pay nothing."""
        if not any(k.startswith("x-mock-") for k in headers):
            return self
        changes: dict[str, Any] = {}
        if "x-mock-latency-ms" in headers:
            changes["latency"] = Delay.parse(headers["x-mock-latency-ms"])
        if "x-mock-chunk-interval-ms" in headers:
            changes["chunk_interval"] = Delay.parse(headers["x-mock-chunk-interval-ms"])
        if "x-mock-chunks" in headers:
            changes["chunks"] = max(1, int(headers["x-mock-chunks"]))
        if "x-mock-error-status" in headers:
            changes["error_status"] = int(headers["x-mock-error-status"])
            changes["error_rate"] = 1.0
        if "x-mock-error-rate" in headers:
            changes["error_rate"] = float(headers["x-mock-error-rate"])
        if "x-mock-retry-after" in headers:
            changes["retry_after"] = headers["x-mock-retry-after"]
        if "x-mock-embedding-dims" in headers:
            changes["embedding_dims"] = max(1, int(headers["x-mock-embedding-dims"]))
        return replace(self, **changes)


class BadRequest(Exception):
    """A request the real vendor would reject with 400; the message says which field."""


@dataclass
class Reply:
    """A response to send: either one body, or a list of SSE events to send in order."""

    status: int
    content_type: str
    body: bytes = b""
    events: list[bytes] | None = None
    extra_headers: str = ""


class Stats:
    requests = 0
    errors = 0


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Overloaded" if status == 529 else "Error"
        line = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
        _STATUS_LINES[status] = line
    return line


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


try:  # orjson parses request bodies about 3x faster than the stdlib; optional.
    from orjson import loads as _loads
except ImportError:
    _loads = json.loads


def _count_tokens(messages: Any, system: Any = None) -> int:
    """A cheap, deterministic prompt-token estimate: about four characters per token."""
    chars = 0
    items = list(messages) if isinstance(messages, list) else []
    if system is not None:
        items.append({"content": system})
    for message in items:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return max(1, chars // 4) + 3 * len(items)


def _max_tokens(payload: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _template(obj: Any) -> str:
    """JSON text with ``@name@`` sentinels turned into %-format fields, so a cached reply
    costs one string format per call instead of a JSON encode."""
    text = json.dumps(obj, separators=(",", ":")).replace("%", "%%")
    for name, spec in (
        ("id", '"%(id)s"'),
        ("created", "%(created)d"),
        ("prompt", "%(prompt)d"),
        ("total", "%(total)d"),
    ):
        text = text.replace(f'"@{name}@"', spec)
    return text


def _instance(schema: Any, text: str) -> Any:
    """A value that matches a (simple) JSON Schema, every string being ``text``: the reply
    to a structured-output request (``response_format`` of type ``json_schema``)."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _instance(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _instance(sub, text) for name, sub in props.items()}
    if kind == "array":
        return [_instance(schema.get("items"), text)] * max(1, int(schema.get("minItems", 1)))
    return {"boolean": False, "integer": 123, "number": 1.5, "null": None}.get(kind, text)


def _structured(payload: dict[str, Any]) -> str | None:
    """The JSON schema a chat request asks the reply to follow, as canonical JSON text (a
    cache key), or None for a plain-text reply."""
    fmt = payload.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return json.dumps(schema, sort_keys=True) if isinstance(schema, dict) else None


def _usage_openai(completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": "@prompt@",
        "completion_tokens": completion,
        "total_tokens": "@total@",
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _usage_anthropic(output: int) -> dict[str, Any]:
    return {
        "input_tokens": "@prompt@",
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
    }


class Vendor:
    """Builds vendor-shaped replies from cached templates keyed by what varies per request
    shape (model, token count, stream options); ids, timestamps and usage fill in per call."""

    def __init__(self) -> None:
        self._seq = 0
        self._vectors: dict[int, tuple[list[float], str]] = {}
        self._templates: dict[tuple[Any, ...], list[str]] = {}

    def _fields(self, prompt: int, completion: int) -> dict[str, Any]:
        self._seq += 1
        return {
            "id": f"{os.getpid():x}{self._seq:010x}",
            "created": int(time.time()),
            "prompt": prompt,
            "total": prompt + completion,
        }

    def _render(
        self, key: tuple[Any, ...], build: Callable[[], list[str]], fields: dict[str, Any]
    ) -> list[bytes]:
        templates = self._templates.get(key)
        if templates is None:
            if len(self._templates) > 4096:
                self._templates.clear()
            templates = self._templates[key] = build()
        return [(t % fields).encode() for t in templates]

    # ---- OpenAI ---------------------------------------------------------------------------
    def openai_chat(self, payload: dict[str, Any], b: Behaviour) -> Reply:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required: a non-empty string")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' is required: a non-empty array")
        limit = _max_tokens(payload, "max_completion_tokens", "max_tokens")
        n = b.chunks if limit is None else min(b.chunks, limit)
        finish = "length" if n < b.chunks else "stop"
        pieces = [_WORDS[i % len(_WORDS)] for i in range(n)]
        schema = _structured(payload)
        if schema is not None:  # structured output: the same words inside matching JSON
            text = json.dumps(_instance(json.loads(schema), "".join(pieces)))
            step = max(1, -(-len(text) // n))
            pieces = [text[i : i + step] for i in range(0, len(text), step)]
        fields = self._fields(_count_tokens(messages), n)
        if not payload.get("stream"):

            def build_json() -> list[str]:
                return [
                    _template(
                        {
                            "id": "@id@",
                            "object": "chat.completion",
                            "created": "@created@",
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {
                                        "role": "assistant",
                                        "content": "".join(pieces),
                                        "refusal": None,
                                        "annotations": [],
                                    },
                                    "logprobs": None,
                                    "finish_reason": finish,
                                }
                            ],
                            "usage": _usage_openai(n),
                            "service_tier": "default",
                            "system_fingerprint": "fp_mock",
                        }
                    ).replace('"%(id)s"', '"chatcmpl-%(id)s"')
                ]

            body = self._render(("oa", model, n, finish, schema), build_json, fields)[0]
            return Reply(200, "application/json", body)
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def build_stream() -> list[str]:
            def chunk(delta: dict[str, Any] | None, reason: str | None) -> str:
                obj: dict[str, Any] = {
                    "id": "@id@",
                    "object": "chat.completion.chunk",
                    "created": "@created@",
                    "model": model,
                    "system_fingerprint": "fp_mock",
                    "choices": []
                    if delta is None
                    else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
                }
                if include_usage:
                    obj["usage"] = _usage_openai(n) if delta is None else None
                text = _template(obj).replace('"%(id)s"', '"chatcmpl-%(id)s"')
                return f"data: {text}\n\n"

            out = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
            out.extend(chunk({"content": p}, None) for p in pieces)
            out.append(chunk({}, finish))
            if include_usage:
                out.append(chunk(None, None))
            out.append("data: [DONE]\n\n")
            return out

        key = ("oas", model, n, finish, include_usage, schema)
        events = self._render(key, build_stream, fields)
        return Reply(200, "text/event-stream", events=events)

    def openai_embeddings(self, payload: dict[str, Any], b: Behaviour) -> Reply:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required: a non-empty string")
        raw = payload.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            inputs: list[Any] = [raw]
        elif isinstance(raw, list) and raw:
            inputs = raw
        else:
            raise BadRequest("'input' is required: a string or a non-empty array")
        dims = payload.get("dimensions") if isinstance(payload.get("dimensions"), int) else None
        vector, encoded = self._vector(dims or b.embedding_dims)
        b64 = payload.get("encoding_format") == "base64"
        tokens = sum(max(1, len(x) // 4) if isinstance(x, str) else len(x) for x in inputs)
        body = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encoded if b64 else vector}
                for i in range(len(inputs))
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Reply(200, "application/json", _dumps(body))

    def _vector(self, dims: int) -> tuple[list[float], str]:
        cached = self._vectors.get(dims)
        if cached is None:
            raw = [math.sin(i + 1.0) for i in range(dims)]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            vector = [round(x / norm, 6) for x in raw]
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            cached = self._vectors[dims] = (vector, encoded)
        return cached

    # ---- Anthropic ------------------------------------------------------------------------
    def anthropic_messages(self, payload: dict[str, Any], b: Behaviour) -> Reply:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model: Field required")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages: Field required (a non-empty array)")
        limit = _max_tokens(payload, "max_tokens")
        if limit is None:
            raise BadRequest("max_tokens: Field required (a positive integer)")
        n = min(b.chunks, limit)
        stop = "max_tokens" if n < b.chunks else "end_turn"
        pieces = [_WORDS[i % len(_WORDS)] for i in range(n)]
        fields = self._fields(_count_tokens(messages, payload.get("system")), n)
        if not payload.get("stream"):

            def build_json() -> list[str]:
                return [
                    _template(
                        {
                            "id": "@id@",
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [{"type": "text", "text": "".join(pieces)}],
                            "stop_reason": stop,
                            "stop_sequence": None,
                            "usage": _usage_anthropic(n),
                        }
                    ).replace('"%(id)s"', '"msg_%(id)s"')
                ]

            body = self._render(("an", model, n, stop), build_json, fields)[0]
            return Reply(200, "application/json", body)

        def build_stream() -> list[str]:
            def event(data: dict[str, Any]) -> str:
                text = _template(data).replace('"%(id)s"', '"msg_%(id)s"')
                return f"event: {data['type']}\ndata: {text}\n\n"

            message: dict[str, Any] = {
                "id": "@id@",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage_anthropic(1),
            }
            out = [
                event({"type": "message_start", "message": message}),
                event(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
                event({"type": "ping"}),
            ]
            out.extend(
                event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": p},
                    }
                )
                for p in pieces
            )
            out.append(event({"type": "content_block_stop", "index": 0}))
            out.append(
                event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": n},
                    }
                )
            )
            out.append(event({"type": "message_stop"}))
            return out

        events = self._render(("ans", model, n, stop), build_stream, fields)
        return Reply(200, "text/event-stream", events=events)


def _openai_error(status: int, message: str) -> bytes:
    kinds = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "not_found_error",
        429: "rate_limit_exceeded",
    }
    kind = kinds.get(status, "server_error")
    return _dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


def _anthropic_error(status: int, message: str) -> bytes:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    kind = kinds.get(status, "api_error")
    return _dumps({"type": "error", "error": {"type": kind, "message": message}})


_Route = tuple[Callable[[dict[str, Any], Behaviour], Reply], Callable[[int, str], bytes]]


class Server:
    """Routing, error injection and stats, shared by all connections."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.vendor = Vendor()
        self.stats = Stats()
        self.routes: dict[str, _Route] = {
            "/v1/chat/completions": (self.vendor.openai_chat, _openai_error),
            "/chat/completions": (self.vendor.openai_chat, _openai_error),
            "/v1/embeddings": (self.vendor.openai_embeddings, _openai_error),
            "/embeddings": (self.vendor.openai_embeddings, _openai_error),
            "/v1/messages": (self.vendor.anthropic_messages, _anthropic_error),
        }

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[Reply, Behaviour]:
        self.stats.requests += 1
        try:
            b = self.behaviour.with_headers(headers)
        except ValueError as exc:
            return Reply(
                400, "application/json", _openai_error(400, f"x-mock header: {exc}")
            ), self.behaviour
        route = self.routes.get(path)
        if route is None:
            if method == "GET" and path == "/health":
                return Reply(200, "application/json", b'{"status":"ok"}'), b
            if method == "GET" and path == "/stats":
                stats = {"requests": self.stats.requests, "errors": self.stats.errors}
                return Reply(200, "application/json", _dumps(stats)), b
            return Reply(404, "application/json", _openai_error(404, f"no route {path}")), b
        build, error_body = route
        if method != "POST":
            return Reply(405, "application/json", error_body(405, f"use POST on {path}")), b
        if b.error_rate > 0.0 and (b.error_rate >= 1.0 or random.random() < b.error_rate):
            self.stats.errors += 1
            extra = f"retry-after: {b.retry_after}\r\n" if b.retry_after is not None else ""
            return Reply(
                b.error_status,
                "application/json",
                error_body(b.error_status, f"injected error {b.error_status}"),
                extra_headers=extra,
            ), b
        try:
            payload = _loads(body)
            if not isinstance(payload, dict):
                raise BadRequest("the request body must be a JSON object")
            return build(payload, b), b
        except (BadRequest, ValueError) as exc:
            return Reply(400, "application/json", error_body(400, str(exc))), b


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered strictly in order."""

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def _process(self) -> None:
        while not self.busy and self.transport is not None:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEADER_BYTES:
                    self._send_simple(431, b'{"error":"headers too large"}', close=True)
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._send_simple(400, b'{"error":"bad request line"}', close=True)
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            start = end + 4
            if "chunked" in headers.get("transfer-encoding", "").lower():
                parsed = _dechunk(buf, start)
                if parsed is None:
                    return
                body, consumed = parsed
            else:
                length = int(headers.get("content-length", "0") or 0)
                if len(buf) < start + length:
                    return
                body, consumed = bytes(buf[start : start + length]), start + length
            del buf[:consumed]
            conn = headers.get("connection", "").lower()
            self.keep_alive = (version == "HTTP/1.1" and conn != "close") or conn == "keep-alive"
            path = target.split("?", 1)[0]
            reply, behaviour = self.server.handle(method, path, headers, body)
            self.busy = True
            if behaviour.latency.is_zero:
                self._respond(reply, behaviour)
            else:
                self.loop.call_later(behaviour.latency.sample(), self._respond, reply, behaviour)

    def _head(self, reply: Reply, streaming: bool) -> bytes:
        framing = (
            "transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
            if streaming
            else f"content-length: {len(reply.body)}\r\n"
        )
        conn = "" if self.keep_alive else "connection: close\r\n"
        return _status_line(reply.status) + (
            f"content-type: {reply.content_type}\r\n{framing}{conn}{reply.extra_headers}"
            f"x-request-id: req_{self.server.stats.requests}\r\n\r\n"
        ).encode("latin-1")

    def _respond(self, reply: Reply, behaviour: Behaviour) -> None:
        if self.transport is None:
            return
        if reply.events is None:
            self.transport.write(self._head(reply, False) + reply.body)
            self._done()
        elif behaviour.chunk_interval.is_zero:
            parts = [self._head(reply, True)]
            parts.extend(b"%x\r\n%s\r\n" % (len(e), e) for e in reply.events)
            parts.append(b"0\r\n\r\n")
            self.transport.write(b"".join(parts))
            self._done()
        else:
            self.transport.write(self._head(reply, True))
            self._stream(iter(reply.events), behaviour.chunk_interval)

    def _stream(self, events: Any, interval: Delay) -> None:
        if self.transport is None:
            return
        event = next(events, None)
        if event is None:
            self.transport.write(b"0\r\n\r\n")
            self._done()
            return
        self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.loop.call_later(interval.sample(), self._stream, events, interval)

    def _send_simple(self, status: int, body: bytes, close: bool) -> None:
        self.keep_alive = not close
        self.busy = True
        self._respond(Reply(status, "application/json", body), self.server.behaviour)

    def _done(self) -> None:
        self.busy = False
        if self.transport is None:
            return
        if not self.keep_alive:
            self.transport.close()
            self.transport = None
            return
        if self.buf:
            self._process()


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked request body; None until the whole body has arrived."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            return (bytes(out), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--latency-ms", default="0", help="delay before headers (SPEC)")
    p.add_argument("--chunk-interval-ms", default="0", help="delay between stream events")
    p.add_argument("--chunks", type=int, default=8, help="completion tokens / stream deltas")
    p.add_argument("--error-rate", type=float, default=0.0, help="0..1 share of injected errors")
    p.add_argument("--error-status", type=int, default=500)
    p.add_argument("--retry-after", default=None, help="Retry-After value on injected errors")
    p.add_argument("--embedding-dims", type=int, default=16)
    p.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    p.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes, so a crashed parent never leaves the server behind",
    )
    args = p.parse_args(argv)
    if not 0.0 <= args.error_rate <= 1.0:
        p.error(f"--error-rate {args.error_rate}: must be between 0 and 1")
    if args.chunks < 1:
        p.error(f"--chunks {args.chunks}: must be at least 1")
    try:
        args.latency = Delay.parse(args.latency_ms)
        args.chunk_interval = Delay.parse(args.chunk_interval_ms)
    except ValueError as exc:
        p.error(str(exc))
    return args


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    behaviour = Behaviour(
        latency=args.latency,
        chunk_interval=args.chunk_interval,
        chunks=args.chunks,
        error_rate=args.error_rate,
        error_status=args.error_status,
        retry_after=args.retry_after,
        embedding_dims=args.embedding_dims,
    )
    server = Server(behaviour)
    srv = await loop.create_server(
        lambda: Connection(server, loop), args.host, args.port, backlog=4096, reuse_address=True
    )
    port = srv.sockets[0].getsockname()[1]
    print(port, flush=True)
    stop: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish)
    if args.exit_on_stdin_eof:
        fd = sys.stdin.fileno()

        def on_stdin() -> None:
            if not os.read(fd, 4096):
                finish()

        loop.add_reader(fd, on_stdin)
    await stop
    srv.close()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(serve(args))
            return
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
