"""The adapter contract every wire API implements, and the vocabulary shared by all of them.

An adapter is a pure translator between portal's contracts and one vendor wire format:

- `build_chat` / `build_embed` turn a request into a `WireRequest` (method, URL, headers, body);
- `parse_chat` / `parse_embed` turn a `WireReply` into a `Response` / `EmbedResponse`;
- `stream_parser` returns a `StreamParser` that is fed raw bytes and yields `StreamEvent`s;
- `parse_error` classifies an error reply into the `ProviderError` tree.

Adapters do no I/O, no retries, no metering: the router drives them, the client does I/O.
That is what lets one adapter serve the sync and the async client, and lets tests assert the
exact wire body without a network.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from portal.contracts.messages import ToolCall
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import EmbedResponse, Response, StreamEvent, Usage
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InvalidResponse,
    NotFound,
    Overloaded,
    ProviderError,
    RateLimited,
    ServerError,
    StreamInterrupted,
)

__all__ = [
    "Adapter",
    "Capabilities",
    "ProviderSettings",
    "Secret",
    "StreamParser",
    "ToolCallAssembler",
    "WireReply",
    "WireRequest",
    "error_class_for_status",
    "parse_retry_after",
]


class Secret:
    """A secret string that never shows itself in a repr, str, log line or error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(slots=True)
class ProviderSettings:
    """One configured provider: a name (the part before ``:`` in model ids), a wire kind, and
    how to reach it. ``options`` holds kind-specific settings (``api_version``, ``project``,
    ``location``, ``deployments``, ``region_name``, quirks of an OpenAI-compatible server...)."""

    name: str
    kind: str
    base_url: str | None = None
    api_key: Secret | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    region: str | None = None
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


_SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie", "x-amz-security-token"}
)


@dataclass(slots=True)
class WireRequest:
    """An HTTP request, built by an adapter, sent by the client. Its repr hides credentials."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        safe = {
            k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
            for k, v in self.headers.items()
        }
        return f"WireRequest({self.method} {self.url}, headers={safe})"


@dataclass(slots=True)
class WireReply:
    """A complete HTTP reply: status, lower-cased headers, body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True, frozen=True)
class Capabilities:
    """What a wire API can do; used by contract checks and to refuse early what cannot work.

    ``structured_output``: "json_schema" (native schema), "tool" (forced tool call),
    "response_schema" (Gemini), "json_object" (JSON mode only, portal validates), or None.
    ``schema_dialect``: "json-schema" (full), "openai-strict", "openapi-3.0-subset".
    """

    chat: bool = True
    stream: bool = True
    tools: bool = True
    parallel_tool_calls: bool = True
    tool_choice: tuple[str, ...] = ("auto", "none", "required", "named")
    images: bool = True
    structured_output: str | None = "json_schema"
    schema_dialect: str = "json-schema"
    embed: bool = False
    max_tools: int | None = None
    notes: tuple[str, ...] = ()


class StreamParser:
    """Incremental parser of one streamed reply. `feed` takes raw bytes as they arrive and
    returns the normalized events they complete; `finish` is called at end of stream and
    returns the final `Response`, or raises `StreamInterrupted` if the vendor never said the
    reply was complete. Vendor errors inside the stream raise `ProviderError` subclasses."""

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        raise NotImplementedError(f"{type(self).__name__}.feed")

    def finish(self) -> Response:
        raise NotImplementedError(f"{type(self).__name__}.finish")


class ToolCallAssembler:
    """Assembles streamed tool calls from fragments keyed by the vendor's index or id, with
    several calls interleaved. Arguments are JSON text that is only complete at the end."""

    def __init__(self) -> None:
        self._order: list[Any] = []
        self._ids: dict[Any, str] = {}
        self._names: dict[Any, str] = {}
        self._args: dict[Any, list[str]] = {}

    def start(self, key: Any, call_id: str | None = None, name: str | None = None) -> None:
        if key not in self._args:
            self._order.append(key)
            self._args[key] = []
        if call_id:
            self._ids[key] = call_id
        if name:
            self._names[key] = self._names.get(key, "") + name if key in self._names else name

    def add_arguments(self, key: Any, fragment: str) -> None:
        if key not in self._args:
            self.start(key)
        self._args[key].append(fragment)

    def __bool__(self) -> bool:
        return bool(self._order)

    def finish(self, provider: str | None = None, model: str | None = None) -> list[ToolCall]:
        calls = []
        for key in self._order:
            raw = "".join(self._args[key]).strip()
            try:
                args = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                raise InvalidResponse(
                    f"tool call {self._names.get(key)!r}: streamed arguments are not valid JSON "
                    f"({exc.msg})",
                    provider=provider,
                    model=model,
                ) from None
            if not isinstance(args, dict):
                raise InvalidResponse(
                    f"tool call {self._names.get(key)!r}: arguments must be a JSON object",
                    provider=provider,
                    model=model,
                )
            calls.append(
                ToolCall(self._ids.get(key, f"call_{key}"), self._names.get(key, ""), args)
            )
        return calls


class Adapter:
    """Base of every wire API. Subclasses set the class attributes and implement the methods
    their API supports; the ones they do not support raise an error naming the kind."""

    kind: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    #: environment variable read when a provider of this kind is used without configuration
    api_key_env: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name
        base = settings.base_url or self.default_base_url
        self.base_url = base.rstrip("/") if base else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def caps(self) -> Capabilities:
        """What this configured provider can do: the kind's `capabilities`, unless its settings
        change them (an OpenAI-compatible preset); contract checks read this when they can."""
        return self.capabilities

    # -- chat ----------------------------------------------------------------------------
    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        raise NotImplementedError(f"provider kind {self.kind!r} does not support chat")

    def parse_chat(self, reply: WireReply, model: str) -> Response:
        raise NotImplementedError(f"provider kind {self.kind!r} does not support chat")

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        raise NotImplementedError(f"provider kind {self.kind!r} does not support streaming")

    def finalize(self, req: ChatRequest, response: Response) -> Response:
        """Undo request-side rewrites on a parsed reply, knowing the request (the router calls
        it after `parse_chat` and after a stream's `finish`; idempotent). The default keeps the
        reply as it is; e.g. OpenAI strict mode drops the nulls it had to add."""
        return response

    # -- embeddings ----------------------------------------------------------------------
    def build_embed(self, req: EmbedRequest, model: str) -> WireRequest:
        raise NotImplementedError(f"provider kind {self.kind!r} does not support embeddings")

    def parse_embed(self, reply: WireReply, model: str) -> EmbedResponse:
        raise NotImplementedError(f"provider kind {self.kind!r} does not support embeddings")

    # -- errors --------------------------------------------------------------------------
    def parse_error(self, reply: WireReply, model: str) -> ProviderError:
        """Classify an HTTP error reply. Subclasses override `error_details` to read their
        vendor's error body, and `classify` to map vendor codes onto the tree."""
        message, code = self.error_details(reply)
        cls = self.classify(reply.status, code, message)
        return cls(
            message or f"HTTP {reply.status}",
            provider=self.name,
            model=model,
            status=reply.status,
            headers=dict(reply.headers),
            request_id=self.request_id(reply.headers),
            retry_after=parse_retry_after(reply.headers),
            body=_safe_body(reply.body),
            code=code,
        )

    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        """(message, vendor error code) from an error body; generic JSON shapes understood."""
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            text = reply.body[:500].decode("utf-8", "replace").strip()
            return text, None
        return _generic_error_fields(data)

    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        return error_class_for_status(status, code, message)

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-request-id") or headers.get("request-id")

    # -- helpers for subclasses -------------------------------------------------------------
    def json_request(
        self, path_or_url: str, body: Any, headers: dict[str, str] | None = None
    ) -> WireRequest:
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        hdrs = {"content-type": "application/json", "accept": "application/json"}
        if headers:
            hdrs.update(headers)
        if self.settings.headers:
            hdrs.update(self.settings.headers)
        return WireRequest("POST", url, hdrs, dumps(body))

    def api_key(self) -> str:
        key = self.settings.api_key
        if key is None or not key:
            from portal.errors import AuthenticationError as _Auth

            env = f" (set {self.api_key_env} or api_key in the config)" if self.api_key_env else ""
            raise _Auth(
                f"no API key configured for provider {self.name!r}{env}", provider=self.name
            )
        return key.get()

    def invalid(self, message: str, model: str | None = None) -> InvalidResponse:
        return InvalidResponse(message, provider=self.name, model=model)

    def interrupted(
        self, message: str, model: str, text: str, usage: Usage | None
    ) -> StreamInterrupted:
        return StreamInterrupted(
            message, partial_text=text, usage=usage, provider=self.name, model=model
        )


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# ----------------------------------------------------------------------- status mapping

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceeds the maximum number of tokens",
    "input length",
    "token limit",
)
_FILTER_MARKERS = ("content_filter", "content_policy", "responsibleaipolicyviolation", "safety")


def error_class_for_status(status: int, code: str | None, message: str) -> type[ProviderError]:
    """The one generic table from HTTP status (and a few universal codes) to error class."""
    text = f"{code or ''} {message}".lower()
    if status in (400, 413, 422):
        if any(m in text for m in _CONTEXT_MARKERS) or status == 413:
            return ContextTooLong
        if any(m in text for m in _FILTER_MARKERS):
            return ContentFiltered
        return BadRequest
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFound
    if status == 408:
        from portal.errors import ProviderTimeout

        return ProviderTimeout
    if status == 429:
        return RateLimited
    if status in (503, 529):
        return Overloaded
    if status >= 500:
        return ServerError
    return BadRequest if 400 <= status < 500 else ServerError


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``retry-after``
    (seconds or an HTTP date). None when absent or unreadable; never negative."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) / 1000.0)
            except ValueError:
                pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def _generic_error_fields(data: Any) -> tuple[str, str | None]:
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return str(data)[:500], None
    err = data.get("error", data)
    if isinstance(err, str):
        return err, data.get("code") if isinstance(data.get("code"), str) else None
    if not isinstance(err, dict):
        return str(err)[:500], None
    message = err.get("message") or data.get("message") or ""
    code = err.get("code") or err.get("type") or err.get("status")
    return str(message), (str(code) if code is not None else None)


def _safe_body(body: bytes) -> Any:
    """Error body kept on the exception for debugging, bounded in size."""
    try:
        return json.loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return body[:2000].decode("utf-8", "replace")
