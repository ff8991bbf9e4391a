"""The adapter contract every wire API implements.

An adapter is a pure translator between portal's contracts and one vendor wire format:

- `build_chat` / `build_embed` turn a request into a `WireRequest` (method, URL, headers, body);
- `parse_chat` / `parse_embed` turn a `WireReply` into a `Response` / `EmbedResponse`;
- `stream_parser` returns a `StreamParser` that is fed raw bytes and yields `StreamEvent`s;
- `parse_error` classifies an error reply into the `ProviderError` tree.

Adapters do no I/O, no retries, no metering: the flow drives them, a driver does I/O.
That is what lets one adapter serve the sync and the async client, and lets tests assert the
exact wire body without a network. `Capabilities` says what a wire API can do. Subclassing
`Adapter` installs the guards every adapter gets (`shape_guard`, `error_replies`,
`tool_names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import EmbedResponse, Response, Usage
from portal.errors import AuthenticationError, InvalidResponse, ProviderError, StreamInterrupted
from portal.providers.bodies import byte_limit, dumps
from portal.providers.cache_names import CacheNames, LocalCacheNames
from portal.providers.error_replies import (
    error_body,
    error_class_for_status,
    error_fields,
    guard_parse_error,
    parse_retry_after,
)
from portal.providers.settings import ProviderSettings
from portal.providers.shape_guard import guard_shape
from portal.providers.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from portal.providers.streaming import StreamParser
from portal.providers.tool_names import caller_names, wire_names
from portal.wire import WireReply, WireRequest

__all__ = ["Adapter", "Capabilities"]


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
    #: whether a tool's ``strict: true`` is sent (the vendor enforces the schema); where it
    #: is False a strict tool is refused, never sent as if it were strict
    strict_tools: bool = True
    notes: tuple[str, ...] = ()


class Adapter:
    """Base of every wire API. Subclasses set the class attributes and implement the methods
    their API supports; the ones they do not support raise an error naming the kind."""

    kind: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    #: environment variable read when a provider of this kind is used without configuration
    api_key_env: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the provider ``options`` this class reads besides `COMMON_OPTIONS`; an option outside
    #: both is reported as a typo. Only a class's own declaration counts (a subclass that does
    #: not declare its options is not checked), so third-party adapters are never refused.
    option_names: ClassVar[frozenset[str] | None] = None
    #: prompt-cache lifetimes (``cache="5m"`` / ``"1h"``) a request can set on this wire
    #: API; a marker asking for another one is refused before sending, never dropped
    cache_ttls: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name in ("parse_chat", "parse_embed"):
            if name in cls.__dict__:
                setattr(cls, name, guard_shape(cls.__dict__[name], name))
        for name in ("parse_error",) if "parse_error" in cls.__dict__ else ():
            setattr(cls, name, guard_parse_error(cls.__dict__[name]))
        if "build_chat" in cls.__dict__:
            cls.build_chat = wire_names(cls.__dict__["build_chat"])  # type: ignore[method-assign]
        if "finalize" in cls.__dict__:
            cls.finalize = caller_names(cls.__dict__["finalize"])  # type: ignore[method-assign]

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name
        base = settings.base_url or self.default_base_url
        self.base_url = base.rstrip("/") if base else ""
        #: the names of the prompt caches this provider created (`cache_setup`): this
        #: process's own until a client hands it one shared through the routing state
        self.cache_names: CacheNames = LocalCacheNames()

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

    def cache_setup(self, req: ChatRequest, model: str) -> WireRequest | None:
        """A request to send before this chat, or None (almost always). Vendors whose
        prompt cache is a resource the caller creates (Gemini's ``cachedContents``) return
        its creation here when the request's marked prefix has no live one; `cache_ready`
        reads the reply and `build_chat` then refers to the cache."""
        return None

    def cache_ready(self, req: ChatRequest, model: str, reply: WireReply) -> Usage:
        """Read `cache_setup`'s reply (raise its `ProviderError` if it failed) and return
        what creating the cache bills, to add to the attempt's usage."""
        raise NotImplementedError(f"provider kind {self.kind!r} creates no prompt caches")

    def cache_lost(self, req: ChatRequest, model: str, reply: WireReply) -> bool:
        """Whether an error ``reply`` says the cache this chat referred to is gone (it
        expired or was deleted early). The adapter forgets the name; the flow then creates
        the cache again and sends the chat once more."""
        return False

    def cache_creation_ttl(self, req: ChatRequest, model: str) -> float | None:
        """The lifetime (seconds) of the cache sending this chat would create first, or
        None: budgets reserve its storage for that long."""
        return None

    def finalize(self, req: ChatRequest, response: Response) -> Response:
        """Undo request-side rewrites on a parsed reply, knowing the request (the router calls
        it after `parse_chat` and after a stream's `finish`; idempotent). The default keeps the
        reply as it is; e.g. OpenAI strict mode drops the nulls it had to add."""
        return response

    # -- embeddings ----------------------------------------------------------------------
    def embed_batch_size(self, model: str) -> int | None:
        """Inputs per embeddings request: the vendor's documented limit (`embed_batch_limit`),
        lowered by the provider option ``embed_batch_size`` where set (a server with a smaller
        limit, a per-request token cap). None: no limit. The flow splits a larger ``embed``
        into several requests of one attempt."""
        documented = self.embed_batch_limit(model)
        chosen = self.settings.options.get("embed_batch_size")
        if chosen is None:
            return documented
        return chosen if documented is None else min(chosen, documented)

    def embed_batch_limit(self, model: str) -> int | None:
        """Most inputs ``model`` takes in one embeddings request, from the vendor's docs (None:
        no limit portal knows)."""
        return None

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
        return self.reply_error(cls, message or f"HTTP {reply.status}", reply, model, code)

    def reply_error(
        self,
        cls: type[ProviderError],
        message: str,
        reply: WireReply,
        model: str,
        code: str | None = None,
    ) -> ProviderError:
        """``cls`` for an HTTP error reply, with what every error carries: status, headers,
        request id, Retry-After and the (size-capped) body."""
        return cls(
            message,
            provider=self.name,
            model=model,
            status=reply.status,
            headers=dict(reply.headers),
            request_id=self.request_id(reply.headers),
            retry_after=parse_retry_after(reply.headers),
            body=error_body(reply.body),
            code=code,
        )

    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        """(message, vendor error code) from an error body; generic JSON shapes understood."""
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            text = reply.body[:500].decode("utf-8", "replace").strip()
            return text, None
        return error_fields(data)

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
            env = f" (set {self.api_key_env} or api_key in the config)" if self.api_key_env else ""
            raise AuthenticationError(
                f"no API key configured for provider {self.name!r}{env}", provider=self.name
            )
        return key.get()

    def sse_decoder(self) -> Any:
        """The SSE decoder for one streamed reply, capped at the provider option
        ``max_event_bytes`` (default 8 MiB) for a single event."""

        return SSEDecoder(
            byte_limit(self.settings.options, "max_event_bytes", DEFAULT_MAX_EVENT_BYTES)
        )

    def invalid(self, message: str, model: str | None = None) -> InvalidResponse:
        return InvalidResponse(message, provider=self.name, model=model)

    def interrupted(
        self, message: str, model: str, text: str, usage: Usage | None
    ) -> StreamInterrupted:
        return StreamInterrupted(
            message, partial_text=text, usage=usage, provider=self.name, model=model
        )


# the base class's own finalize serves every adapter that does not override it
Adapter.finalize = caller_names(Adapter.finalize)  # type: ignore[method-assign]
# the base class's own `parse_error` (inherited by adapters that only override
# `error_details`) is guarded too; `__init_subclass__` guards the overrides
Adapter.parse_error = guard_parse_error(Adapter.parse_error)  # type: ignore[method-assign]
