"""A raw local HTTP server on 127.0.0.1 whose replies misbehave on purpose: stalls after the
headers, endless streams, replies larger than any cap, redirects. The behaviour is the first
path segment of the request (``base_url = http://127.0.0.1:PORT/<behaviour>/v1``)."""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Handler = Callable[[socket.socket, dict[str, str], "Stop"], None]


class Stop(threading.Event):
    """Set when the server shuts down: stalled handlers wait on it, then return."""


def _chat_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    ).encode()


def _head(status: int = 200, ctype: str = "application/json", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n{extra}"
        "transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    ).encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


SSE_TEXT = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{"content":"partial "},"finish_reason":null}]}\n\n'
)


def ok(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    body = _chat_body()
    sock.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def stall_body(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """Headers, half a body, then silence."""
    sock.sendall(_head() + _chunk(_chat_body()[:20]))
    stop.wait(30)


def stall_headers(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """Nothing at all: not even the status line."""
    stop.wait(30)


def stall_stream(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """One text event, then silence: no terminator, no close."""
    sock.sendall(_head(ctype="text/event-stream") + _chunk(SSE_TEXT))
    stop.wait(30)


def endless(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """Text events forever, never a finish reason or [DONE]."""
    sock.sendall(_head(ctype="text/event-stream"))
    try:
        while not stop.is_set():
            sock.sendall(_chunk(SSE_TEXT * 64))
    except OSError:
        return  # the client hung up: what the test wants


def drip(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """A keep-alive comment every 50 ms forever: each read is fast, the stream never ends."""
    sock.sendall(_head(ctype="text/event-stream") + _chunk(SSE_TEXT))
    try:
        while not stop.wait(0.05):
            sock.sendall(_chunk(b": keep-alive\n\n"))
    except OSError:
        return


def huge(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """A 4 MB JSON body with a truthful content-length."""
    body = b'{"pad": "' + b"x" * 4_000_000 + b'"}'
    try:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
    except OSError:
        return


def huge_chunked(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """The same without a content-length: the cap must hold while reading."""
    try:
        sock.sendall(_head())
        for _ in range(64):
            sock.sendall(_chunk(b"x" * 65536))
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        return


def gzip_bomb(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """8 MB of zeros that compress to a few KB."""
    body = gzip.compress(b"0" * 8_000_000)
    sock.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        + f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def gzip_ok(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """A normal reply, gzip-compressed (as a vendor may send it)."""
    body = gzip.compress(_chat_body())
    sock.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        + f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def cookie(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """A normal reply that sets a cookie for the host (which portal never sends back)."""
    body = _chat_body()
    sock.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + b"set-cookie: vendor_session=abc123; Path=/\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def echo_key(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """A 401 whose body echoes every credential header and the URL, as a careless vendor (or
    proxy) might; portal must not pass the key on. (Not in a response header: httpcore's own
    DEBUG trace logs response headers verbatim, see SECURITY.md.)"""
    seen = " ".join(
        req.get(h, "") for h in ("authorization", "x-api-key", "api-key", "x-goog-api-key")
    )
    body = json.dumps(
        {
            "error": {
                "message": f"Incorrect API key provided: {seen} at {req['_path']}",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "echo": {"headers": {k: v for k, v in req.items() if not k.startswith("_")}},
            }
        }
    ).encode()
    sock.sendall(
        b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + b"www-authenticate: Bearer\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def redirect(sock: socket.socket, req: dict[str, str], stop: Stop) -> None:
    """307 to another host (the credentials must not follow)."""
    port = req["_port"]
    sock.sendall(
        b"HTTP/1.1 307 Temporary Redirect\r\n"
        + f"location: http://localhost:{port}/ok/v1/chat/completions\r\n".encode()
        + b"content-length: 0\r\nconnection: close\r\n\r\n"
    )


BEHAVIOURS: dict[str, Handler] = {
    "ok": ok,
    "stall-body": stall_body,
    "stall-headers": stall_headers,
    "stall-stream": stall_stream,
    "endless": endless,
    "drip": drip,
    "huge": huge,
    "huge-chunked": huge_chunked,
    "gzip-bomb": gzip_bomb,
    "gzip-ok": gzip_ok,
    "cookie": cookie,
    "redirect": redirect,
    "echo-key": echo_key,
}


class BadServer:
    """Records every request it saw (path and headers; ``_head``: the header lines as sent)
    in ``seen``."""

    def __init__(self) -> None:
        self.stop = Stop()
        self.seen: list[dict[str, str]] = []
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                req = _read_request(sock)
                if req is None:
                    return
                req["_port"] = str(outer.port)
                outer.seen.append(req)
                name = req["_path"].strip("/").split("/")[0]
                BEHAVIOURS.get(name, ok)(sock, req, outer.stop)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}/v1"

    def __enter__(self) -> BadServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _read_request(sock: socket.socket) -> dict[str, str] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            return None
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        part = sock.recv(65536)
        if not part:
            break
        body += part
    return {**headers, "_method": method, "_path": path, "_head": "\n".join(lines[1:])}


@contextmanager
def bad_server() -> Iterator[BadServer]:
    with BadServer() as server:
        yield server
