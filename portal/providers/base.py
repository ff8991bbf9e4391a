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

import dataclasses
import email.utils
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from portal.contracts.cache import marked, refuse_ttls
from portal.contracts.messages import ToolCall
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import (
    FINISH_REASONS,
    EmbedResponse,
    Response,
    StreamEvent,
    Usage,
)
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
from portal.providers.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from portal.secret import Secret, redact, register_secret, scrub
from portal.wire import _SECRET_HEADERS, JSONTooDeep, WireReply, WireRequest, loads

__all__ = [
    "COMMON_OPTIONS",
    "DEFAULT_MAX_REPLY_BYTES",
    "INCOMPLETE_TOOL_CALLS",
    "MAX_UNKNOWN_EVENTS",
    "Adapter",
    "Capabilities",
    "ProviderSettings",
    "Secret",
    "StreamParser",
    "ToolCallAssembler",
    "WireReply",
    "WireRequest",
    "byte_limit",
    "error_class_for_status",
    "incomplete_call",
    "ReasoningBlocks",
    "carried",
    "carry",
    "join_reasoning",
    "keep_unknown",
    "replayed_turn",
    "parse_retry_after",
    "unknown_options",
]


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

    def __post_init__(self) -> None:
        # credentials given as options (AWS keys, a service token) or as headers are redacted
        # from errors like the API key (`portal.secret`)
        for name, value in self.options.items():
            if isinstance(value, str) and any(w in name.lower() for w in _SECRET_WORDS):
                register_secret(value)
        for name, value in self.headers.items():
            if name.lower() in _SECRET_HEADERS and isinstance(value, str):
                register_secret(value)
                register_secret(value.partition(" ")[2])  # "Bearer <token>"


#: option names that hold credentials
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def _nested_too_deep(body: bytes) -> bool:
    """Whether ``body`` is JSON nested past the reader's bound (cheap unless it has many
    brackets)."""
    if body.count(b"[") + body.count(b"{") < 256:
        return False
    try:
        loads(body)
    except JSONTooDeep:
        return True
    except (ValueError, UnicodeDecodeError):
        return False
    return False


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


#: a stream keeps at most this many unknown events on its final reply (see
#: `StreamParser.keep_unknown_event`); later ones are only counted, so an endless run of
#: unknown events cannot grow memory without bound
MAX_UNKNOWN_EVENTS = 100


def keep_unknown(details: dict[str, Any], item: Any, key: str = "unknown_content") -> None:
    """Keep a content block / part / output item that portal has no rule for, as the vendor
    sent it, in ``details[key]`` (reply order): a vendor's new content type stays visible in
    ``Response.provider_details`` instead of being dropped, and never enters ``text``."""
    kept = details.get(key)
    if kept is None:
        details[key] = [item]
    else:
        kept.append(item)


def join_reasoning(blocks: Iterable[str]) -> str:
    """``Response.reasoning`` from its blocks: the non-empty ones, joined by a blank line."""
    return "\n\n".join(b for b in blocks if b)


class ReasoningBlocks:
    """A reply's visible reasoning, in blocks, as it is parsed or streamed: pieces extend the
    open block (a stream splits one block into pieces) until the parser closes it (answer
    text, a tool call, another item came between). ``pieces`` keeps every piece in arrival
    order; `joined` is ``Response.reasoning``."""

    __slots__ = ("blocks", "open", "pieces")

    def __init__(self) -> None:
        self.blocks: list[list[str]] = []
        self.pieces: list[str] = []
        self.open = False

    def add(self, piece: str) -> None:
        if not piece:
            return
        if self.open:
            self.blocks[-1].append(piece)
        else:
            self.blocks.append([piece])
            self.open = True
        self.pieces.append(piece)

    def close(self) -> None:
        self.open = False

    def joined(self) -> str:
        return join_reasoning("".join(block) for block in self.blocks)


def carried(call: ToolCall, vendor: str, field: str) -> list[dict[str, Any]]:
    """What ``call`` carries for ``vendor`` to replay (``provider_data[vendor][field]``, e.g.
    the signed reasoning that came before it); empty for a call from elsewhere, so one
    vendor's data never reaches another."""
    data = (call.provider_data or {}).get(vendor)
    blocks = data.get(field) if isinstance(data, Mapping) else None
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def carry(call: ToolCall, vendor: str, field: str, blocks: list[dict[str, Any]]) -> None:
    """Put ``blocks`` (if any) on ``call`` for `carried` to find when the turn is replayed."""
    if blocks:
        call.provider_data = {**(call.provider_data or {}), vendor: {field: blocks}}


def replayed_turn(
    blocks: list[dict[str, Any]],
    calls: Sequence[ToolCall],
    before: Callable[[ToolCall], list[dict[str, Any]]],
    map_call: Callable[[ToolCall], dict[str, Any]],
) -> list[dict[str, Any]]:
    """An assistant turn's content for a request: its ``blocks`` (text, images) and its calls,
    each call's ``before`` blocks (signed reasoning) where they came in the reply: the first
    call's at the very start (the turn begins with its reasoning), a later call's right
    before it."""
    out = list(blocks)
    for n, call in enumerate(calls):
        if n == 0:
            out[:0] = before(call)
        else:
            out.extend(before(call))
        out.append(map_call(call))
    return out


class StreamParser:
    """Incremental parser of one streamed reply. `feed` takes raw bytes as they arrive and
    returns the normalized events they complete; `finish` is called at end of stream and
    returns the final `Response`, or raises `StreamInterrupted` if the vendor never said the
    reply was complete. Vendor errors inside the stream raise `ProviderError` subclasses.

    Events (or delta blocks) of a type the parser has no rule for go to `keep_unknown_event`;
    `unknown_details` puts them on the final reply's ``provider_details``."""

    # class-level defaults: subclasses do not call a base ``__init__``
    _unknown_events: list[Any] | None = None
    _unknown_dropped: int = 0

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name in ("feed", "finish"):
            if name in cls.__dict__:
                setattr(cls, name, _shape_guard(cls.__dict__[name], name))

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        raise NotImplementedError(f"{type(self).__name__}.feed")

    def finish(self) -> Response:
        raise NotImplementedError(f"{type(self).__name__}.finish")

    def keep_unknown_event(self, event: Any) -> None:
        """Keep an event the parser has no rule for, as the vendor sent it: the first
        `MAX_UNKNOWN_EVENTS` are kept, later ones only counted."""
        kept = self._unknown_events
        if kept is None:
            kept = self._unknown_events = []
        if len(kept) < MAX_UNKNOWN_EVENTS:
            kept.append(event)
        else:
            self._unknown_dropped += 1

    def unknown_details(self, details: dict[str, Any]) -> dict[str, Any]:
        """``details`` with the kept unknown events under ``unknown_events`` (and, past the
        cap, their number under ``unknown_events_dropped``); unchanged when there were none."""
        if self._unknown_events:
            details["unknown_events"] = self._unknown_events
            if self._unknown_dropped:
                details["unknown_events_dropped"] = self._unknown_dropped
        return details


class ToolCallAssembler:
    """Assembles streamed tool calls from fragments keyed by the vendor's index or id, with
    several calls interleaved. Arguments are JSON text that is only complete at the end.

    A call's id and name are set once, by the first fragment that carries them: servers that
    repeat the name in every chunk of a call do not make it ``nameName``; only arguments are
    appended."""

    def __init__(self) -> None:
        self._order: list[Any] = []
        self._ids: dict[Any, str] = {}
        self._names: dict[Any, str] = {}
        self._args: dict[Any, list[str]] = {}

    def start(self, key: Any, call_id: str | None = None, name: str | None = None) -> None:
        if key not in self._args:
            self._order.append(key)
            self._args[key] = []
        if call_id and key not in self._ids:
            self._ids[key] = call_id
        if name and key not in self._names:
            self._names[key] = name

    def add_arguments(self, key: Any, fragment: str) -> None:
        if key not in self._args:
            self.start(key)
        self._args[key].append(fragment)

    def __bool__(self) -> bool:
        return bool(self._order)

    def finish(
        self,
        provider: str | None = None,
        model: str | None = None,
        truncated: list[dict[str, Any]] | None = None,
    ) -> list[ToolCall]:
        """The assembled calls. With ``truncated`` (a reply cut by the token limit), a call
        whose arguments are not complete JSON is appended there (`incomplete_call`) instead
        of raising `InvalidResponse`: it is not a call anyone may run."""
        calls = []
        for key in self._order:
            raw = "".join(self._args[key]).strip()
            try:
                args = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                if truncated is not None:
                    truncated.append(
                        incomplete_call(
                            self._ids.get(key, f"call_{key}"), self._names.get(key), raw
                        )
                    )
                    continue
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


#: ``Response.provider_details`` key of the tool calls a token limit cut off (see
#: `incomplete_call`); they are never in ``Response.tool_calls``
INCOMPLETE_TOOL_CALLS = "incomplete_tool_calls"


def incomplete_call(call_id: str, name: str | None, arguments: str) -> dict[str, Any]:
    """A tool call the token limit cut off: its id, its name and the arguments text as far
    as it came. Kept on ``provider_details["incomplete_tool_calls"]`` of a reply whose
    ``finish_reason`` is "length", so nothing runs a call with half its arguments."""
    return {"id": call_id, "name": name or "", "arguments": arguments}


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
                setattr(cls, name, _shape_guard(cls.__dict__[name], name))
        for name in ("parse_error",) if "parse_error" in cls.__dict__ else ():
            setattr(cls, name, _error_guard(cls.__dict__[name]))
        if "build_chat" in cls.__dict__:
            cls.build_chat = _wire_names(cls.__dict__["build_chat"])  # type: ignore[method-assign]
        if "finalize" in cls.__dict__:
            cls.finalize = _caller_names(cls.__dict__["finalize"])  # type: ignore[method-assign]

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


#: provider options every kind reads (size caps, embeddings batch size, context windows)
COMMON_OPTIONS = frozenset(
    {"max_reply_bytes", "max_event_bytes", "embed_batch_size", "context_window", "context_windows"}
)


def unknown_options(cls: type[Adapter], settings: ProviderSettings) -> list[str]:
    """Problems with ``settings.options`` names that ``cls`` does not read, each with the
    closest known name; empty when ``cls`` does not declare `Adapter.option_names`."""
    import difflib

    declared = cls.__dict__.get("option_names")
    if declared is None:
        return []
    known = sorted(declared | COMMON_OPTIONS)
    problems = []
    for name in settings.options:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"providers.{settings.name}.options.{name}: unknown option for kind "
                f"{settings.kind!r}{hint} Known options: {', '.join(known)}"
            )
    return problems


# ----------------------------------------------------------------------- tool names


def _renamed(req: ChatRequest) -> dict[str, str]:
    """Original name -> vendor-legal name of the request's tools that lenient normalization
    renamed (``math.factorial`` -> ``math_factorial``); empty for almost every request."""
    return {t.original_name: t.name for t in req.tools if t.original_name}


def _wire_names(fn: Callable[..., WireRequest]) -> Callable[..., WireRequest]:
    """Wrap ``build_chat``: a conversation speaks of renamed tools by their original names
    (tool calls, tool results, ``tool_choice``); the vendor sees the legal ones. A cache
    lifetime the wire API cannot set is refused here, for every adapter."""
    if getattr(fn, "__portal_names__", False):
        return fn

    @functools.wraps(fn)
    def build(self: Adapter, req: ChatRequest, model: str) -> WireRequest:
        if marked(req):
            refuse_ttls(req, f"provider {self.name!r} ({self.kind})", self.cache_ttls)
        renamed = _renamed(req) if req.tools else None
        if renamed:
            req = _request_with_names(req, renamed)
        return fn(self, req, model)

    build.__portal_names__ = True  # type: ignore[attr-defined]
    return build


def _request_with_names(req: ChatRequest, renamed: Mapping[str, str]) -> ChatRequest:
    messages = []
    for m in req.messages:
        calls = m.tool_calls
        if calls and any(c.name in renamed for c in calls):
            calls = [
                dataclasses.replace(c, name=renamed[c.name]) if c.name in renamed else c
                for c in calls
            ]
        name = renamed.get(m.name, m.name) if m.name else m.name
        if calls is not m.tool_calls or name != m.name:
            m = dataclasses.replace(m, tool_calls=calls, name=name)
        messages.append(m)
    choice = req.tool_choice
    return dataclasses.replace(
        req,
        messages=messages,
        tool_choice=renamed.get(choice, choice) if isinstance(choice, str) else choice,
    )


def _caller_names(fn: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap ``finalize``: tool calls of renamed tools go back to the caller (and the tool
    loop, which runs the tool's function) under the tool's original name."""
    if getattr(fn, "__portal_names__", False):
        return fn

    @functools.wraps(fn)
    def finalize(self: Adapter, req: ChatRequest, response: Response) -> Response:
        response = fn(self, req, response)
        if response.tool_calls and req.tools:
            back = {legal: original for original, legal in _renamed(req).items()}
            if back:
                for call in response.tool_calls:
                    call.name = back.get(call.name, call.name)
        return response

    finalize.__portal_names__ = True  # type: ignore[attr-defined]
    return finalize


# the base class's own finalize serves every adapter that does not override it
Adapter.finalize = _caller_names(Adapter.finalize)  # type: ignore[method-assign]


# ----------------------------------------------------------------------- shape guard

#: what parsing code raises when a reply is not the shape it expects: missing keys, wrong
#: types, bad numbers, nesting too deep for the JSON reader
_SHAPE_ERRORS = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    RecursionError,
)


def _shape_guard(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """Wrap a parse method (``parse_chat``, ``parse_embed``, a stream parser's ``feed`` and
    ``finish``) so that a vendor reply of an unexpected shape raises `InvalidResponse`, never
    a KeyError or TypeError, and a parsed reply whose normalized fields have the wrong types
    is refused rather than handed to the router and the meter. Applied once, here, to every
    adapter (third-party ones included) by ``__init_subclass__``."""
    if getattr(fn, "__portal_guarded__", False):
        return fn

    @functools.wraps(fn)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(self, *args, **kwargs)
        except ProviderError:
            raise
        except _SHAPE_ERRORS as exc:
            provider, model = _who(self, args)
            scrub(exc)  # chained below: its text is printed with the traceback
            detail = str(exc)
            detail = detail if len(detail) <= 160 else detail[:157] + "..."
            raise InvalidResponse(
                f"{what}: the reply does not have the documented shape "
                f"({type(exc).__name__}: {detail})",
                provider=provider,
                model=model,
            ) from exc
        problem = _bad_fields(result)
        if problem is not None:
            provider, model = _who(self, args)
            raise InvalidResponse(
                f"{what}: the reply does not have the documented shape ({problem})",
                provider=provider,
                model=model,
            )
        request_id = getattr(result, "request_id", None)
        if request_id is not None:  # a header the vendor echoes the key in reaches the ledger
            result.request_id = redact(request_id)
        return result

    guarded.__portal_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _error_guard(fn: Callable[..., ProviderError]) -> Callable[..., ProviderError]:
    """``parse_error`` classifies, it never raises: an error body of an unexpected shape is
    classified by its HTTP status alone."""
    if getattr(fn, "__portal_guarded__", False):
        return fn

    @functools.wraps(fn)
    def guarded(self: Adapter, reply: WireReply, model: str) -> ProviderError:
        if _nested_too_deep(reply.body):
            return self.reply_error(
                InvalidResponse,
                f"HTTP {reply.status}: the error body is JSON nested too deeply to read",
                reply,
                model,
            )
        try:
            err = fn(self, reply, model)
        except InvalidResponse as exc:  # a parser that refuses the body as unreadable
            err = exc
            err.status = reply.status if err.status is None else err.status
        except _SHAPE_ERRORS:
            err = self.reply_error(
                error_class_for_status(reply.status, None, ""),
                f"HTTP {reply.status} (error body of an unexpected shape)",
                reply,
                model,
            )
        return err

    guarded.__portal_guarded__ = True  # type: ignore[attr-defined]
    return guarded


# the base class's own `parse_error` (inherited by adapters that only override
# `error_details`) is guarded too; `__init_subclass__` guards the overrides
Adapter.parse_error = _error_guard(Adapter.parse_error)  # type: ignore[method-assign]


def _who(obj: Any, args: tuple[Any, ...]) -> tuple[str | None, str | None]:
    if isinstance(obj, Adapter):
        model = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        return obj.name, model
    adapter = getattr(obj, "adapter", None)
    model = getattr(obj, "model", None)
    return getattr(adapter, "name", None), model if isinstance(model, str) else None


def _usage_ok(u: Any) -> bool:
    return (
        u.__class__ is Usage
        and u.input_tokens.__class__ is int
        and u.output_tokens.__class__ is int
        and u.cached_input_tokens.__class__ is int
        and u.cache_write_tokens.__class__ is int
        and u.reasoning_tokens.__class__ is int
    )


def _bad_usage(usage: Any) -> str | None:
    if not isinstance(usage, Usage):
        return f"usage is {type(usage).__name__}"
    for name in (
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ):
        value = getattr(usage, name)
        if type(value) is not int:
            return f"usage.{name} is {type(value).__name__}, not an integer"
    return None


def _bad_fields(result: Any) -> str | None:
    """What is wrong with a parsed result's normalized fields, or None."""
    if isinstance(result, list):  # stream events
        for event in result:
            if event.usage is not None and (problem := _bad_usage(event.usage)):
                return problem
            if not isinstance(event.text, str):
                return f"stream text is {type(event.text).__name__}"
        return None
    if isinstance(result, EmbedResponse):
        for vector in result.vectors:
            if not isinstance(vector, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector
            ):
                return "an embedding is not a list of numbers"
        return _bad_usage(result.usage)
    if not isinstance(result, Response):
        return None
    if (  # the happy path in one expression: a plain reply with integer usage
        result.__class__ is Response
        and result.text.__class__ is str
        and (result.text or result.raw_finish_reason is not None)
        and result.finish_reason in FINISH_REASONS
        and (result.raw_finish_reason is None or result.raw_finish_reason.__class__ is str)
        and not result.tool_calls
        and _usage_ok(result.usage)
    ):
        return None
    if not isinstance(result.text, str):
        return f"text is {type(result.text).__name__}"
    if (
        not result.text
        and not result.tool_calls
        and result.raw_finish_reason is None
        and isinstance(result.usage, Usage)
        and not result.usage.total_tokens
        and not result.provider_details.get("unknown_content")
    ):
        return "an empty reply: no text, no tool call, no stop reason and no usage"
    if result.finish_reason not in FINISH_REASONS:
        return f"finish reason {result.finish_reason!r}"
    if result.raw_finish_reason is not None and not isinstance(result.raw_finish_reason, str):
        return f"finish reason is {type(result.raw_finish_reason).__name__}, not a string"
    for call in result.tool_calls:
        if not isinstance(call.name, str) or not isinstance(call.id, str):
            return "a tool call's name or id is not a string"
        if not isinstance(call.arguments, dict):
            return f"tool call {call.name!r}: arguments are not a JSON object"
    return _bad_usage(result.usage)


#: a whole reply (body, or all bytes of a stream) larger than this is refused
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024


def byte_limit(options: Mapping[str, Any], name: str, default: int) -> int:
    """A size cap from provider options (``max_reply_bytes``, ``max_event_bytes``); the config
    validates these, this only falls back to the default."""
    value = options.get(name)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


#: built once: json.dumps with any option builds a new encoder on every call
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(body: Any) -> bytes:
    return _ENCODE(body).encode()


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
        return loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return body[:2000].decode("utf-8", "replace")


def forced_tool_text(
    structured: list[str] | None,
    plain: str,
    details: dict[str, Any],
    adapter: Adapter,
    model: str,
) -> str:
    """The reply text of a stream whose structured output came as a forced tool call's
    streamed input (Anthropic, Bedrock): the tool's JSON, with any plain text before it kept
    as ``details["preamble"]``. Without a forced tool, the plain text itself."""
    if structured is None:
        return plain
    try:
        value = json.loads("".join(structured).strip() or "{}")
    except json.JSONDecodeError as exc:
        raise adapter.invalid(
            f"structured output streamed as invalid JSON ({exc.msg})", model
        ) from None
    if plain:
        details["preamble"] = plain
    return json.dumps(value, ensure_ascii=False)


class SSEStreamParser(StreamParser):
    """A `StreamParser` for vendors that stream Server-Sent Events: `feed` decodes the bytes
    with ``self.sse`` (set by the subclass, usually ``adapter.sse_decoder()``) and hands each
    event to `on_event`; `drain` hands over a trailing event at the end of the stream."""

    sse: SSEDecoder

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for sse in self.sse.feed(chunk):
            self.on_event(sse.event, sse.data, events)
        return events

    def drain(self) -> None:
        for sse in self.sse.close():
            self.on_event(sse.event, sse.data, [])

    def on_event(self, sse_event: str, data: str, events: list[StreamEvent]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.on_event")
