"""Scripted vendors for your own tests: say what the model answers, then assert what your code
did with it and what portal sent. Nothing leaves the process; everything but the vendor is
real (contracts, tools, routing, retries, failover, canary, budgets, metering).

    from portal import testing

    script = testing.Script(
        testing.tool_call("lookup_order", order_id="123"),
        testing.text("Order 123 shipped on Monday."),
    )
    with testing.client("portal.toml", {"openai": script}) as client:
        resp = client.chat(feature="support.answer", messages=[...], tools=[lookup_order])
    assert resp.text == "Order 123 shipped on Monday."
    assert script.requests[1].messages[-1]["role"] == "tool"  # the tool's result went back
    script.assert_done()

`client` / `async_client` load the config as usual (a ``${VAR}`` that is not set reads as
a placeholder, so the production portal.toml loads without its keys) and put every provider
(those it declares, those its features name, and every built-in kind a ``model=`` call
could name) behind a `Script`. A provider without a script, or whose script is used up,
raises `ScriptExhausted` at its first request, so a test never reaches a real vendor. Each
scripted provider speaks the OpenAI Chat Completions wire format whatever its kind, so
`SeenRequest.messages` are OpenAI-shaped; prices still follow the provider's real kind and
model, so costs and budgets behave as in production.

A turn is one vendor reply: `text`, `output` (structured JSON), `tool_call` / `tool_calls`,
`error` (any status, with Retry-After), `timeout` or `disconnect`; a plain string is
`text`. Turns are served in order; ``Script(respond=fn)`` answers from a function once the
listed turns are used up (or alone). Streams send a text turn word by word; ``cut_after=N``
drops the connection after N words. Embeddings get deterministic vectors (similar texts,
close vectors) unless ``Script(embed=fn)`` says otherwise.

Importing this module registers the provider kind ``scripted``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import anyio
import httpx2

from portal.client import AsyncClient, Client
from portal.config import PortalConfig, ProviderConfig, load_config
from portal.providers.adapter import Capabilities
from portal.providers.openai import OpenAIAdapter
from portal.providers.registry import known_kinds, register
from portal.providers.simulated import (
    TimedAsyncStream,
    TimedSyncStream,
    chat_completion,
    completion_chunks,
    embed_vector,
    embeddings_reply,
    error_body,
    message_text,
    request_is_embedding,
)

__all__ = [
    "Script",
    "ScriptExhausted",
    "ScriptedAsyncClient",
    "ScriptedClient",
    "SeenRequest",
    "Turn",
    "async_client",
    "client",
    "disconnect",
    "error",
    "output",
    "text",
    "timeout",
    "tool_call",
    "tool_calls",
]

KIND = "scripted"


class ScriptExhausted(AssertionError):
    """A request reached a provider whose script has no turn left, or that has no script."""


# ================================================================================== turns


@dataclass(frozen=True, slots=True)
class Turn:
    """One vendor reply. Build it with `text`, `output`, `tool_call`, `error`, `timeout` or
    `disconnect` rather than by hand."""

    text: str = ""
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    #: the vendor's finish_reason; None: "tool_calls" with tool calls, else "stop"
    finish_reason: str | None = None
    #: an HTTP error reply instead of a completion (see `error`)
    status: int = 200
    error_message: str = ""
    error_code: str | None = None
    retry_after_s: float | None = None
    #: no reply at all: the read times out, or the connection is refused
    failure: Literal["timeout", "disconnect"] | None = None
    #: seconds before the reply (a delay past the call's timeout is a timeout)
    delay_s: float = 0.0
    #: a stream drops its connection after this many words (no finish_reason, no [DONE])
    cut_after: int | None = None
    #: (input, output) tokens to report; None: counted with the tokenizer, like a vendor
    usage: tuple[int, int] | None = None
    #: the model's visible reasoning, sent as DeepSeek-style ``reasoning_content`` (streamed
    #: word by word before the answer); it arrives as ``Response.reasoning``
    reasoning: str = ""


def text(
    content: str,
    *,
    reasoning: str = "",
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
    delay_s: float = 0.0,
    cut_after: int | None = None,
) -> Turn:
    """The model answers ``content`` (after ``reasoning``, its visible thinking, if given)."""
    return Turn(
        text=content,
        reasoning=reasoning,
        finish_reason=finish_reason,
        usage=usage,
        delay_s=delay_s,
        cut_after=cut_after,
    )


def output(value: Any, *, usage: tuple[int, int] | None = None, delay_s: float = 0.0) -> Turn:
    """The model answers with structured output: ``value`` (a dict, list or pydantic model)
    as JSON text, which the call's output contract then validates, as it would a vendor's."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return Turn(text=json.dumps(value), usage=usage, delay_s=delay_s)


def tool_call(tool: str, /, **arguments: Any) -> Turn:
    """The model calls ``tool`` with ``arguments``."""
    return Turn(tool_calls=((tool, arguments),))


def tool_calls(*calls: tuple[str, Mapping[str, Any]], text: str = "") -> Turn:
    """The model calls several tools in one reply (parallel tool calls), optionally with text."""
    return Turn(text=text, tool_calls=tuple((name, dict(args)) for name, args in calls))


def error(
    status: int = 500,
    message: str | None = None,
    *,
    code: str | None = None,
    retry_after_s: float | None = None,
    delay_s: float = 0.0,
) -> Turn:
    """The vendor answers with an HTTP error in OpenAI's error shape. portal classifies it as
    it would a real one: 429 `RateLimited` (``retry_after_s`` sent as Retry-After), 503
    `Overloaded`, 5xx `ServerError`, 401/403 `AuthenticationError`, 404 `NotFound`, 400
    `BadRequest` (``code="context_length_exceeded"``: `ContextTooLong`)."""
    if not 400 <= status <= 599:
        raise ValueError(f"error status must be 400-599, got {status}")
    return Turn(
        status=status,
        error_message=message or f"scripted error {status}",
        error_code=code,
        retry_after_s=retry_after_s,
        delay_s=delay_s,
    )


def timeout() -> Turn:
    """The vendor never answers: the read times out (`ProviderTimeout`) at once, as if the
    call's timeout had passed. For a reply that is merely slow, use ``delay_s``."""
    return Turn(failure="timeout")


def disconnect() -> Turn:
    """The vendor cannot be reached (`ProviderConnectionError`)."""
    return Turn(failure="disconnect")


# ================================================================================ requests


@dataclass(slots=True)
class SeenRequest:
    """One request a scripted provider received, as portal sent it (OpenAI wire format)."""

    provider: str
    model: str
    operation: Literal["chat", "stream", "embed"]
    body: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)  # the tool names offered
    inputs: list[str] = field(default_factory=list)  # embed inputs

    @classmethod
    def of(cls, provider: str, body: dict[str, Any]) -> SeenRequest:
        if request_is_embedding(body):
            raw = body.get("input") or []
            return cls(provider, str(body.get("model", "")), "embed", body, inputs=_texts(raw))
        return cls(
            provider,
            str(body.get("model", "")),
            "stream" if body.get("stream") else "chat",
            body,
            messages=list(body.get("messages") or []),
            tools=[t["function"]["name"] for t in body.get("tools") or []],
        )

    @property
    def system(self) -> str:
        """The system prompt's text ("" without one)."""
        return "\n".join(message_text(m) for m in self.messages if m.get("role") == "system")

    @property
    def last_user_text(self) -> str:
        """The text of the last user message ("" without one)."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return message_text(users[-1]) if users else ""


def _texts(raw: Any) -> list[str]:
    return [raw] if isinstance(raw, str) else [str(x) for x in raw]


# ================================================================================= scripts

Respond = Callable[[SeenRequest], "Turn | str"]


class Script:
    """The replies of one scripted provider, in order, and the requests it received."""

    _scripted = True  # False for the empty scripts `client` puts on unscripted providers

    def __init__(
        self,
        *turns: Turn | str,
        respond: Respond | None = None,
        embed: Callable[[str], list[float]] | None = None,
    ) -> None:
        self._turns: list[Turn] = [_turn(t) for t in turns]
        self.respond = respond
        self.embed = embed
        self.requests: list[SeenRequest] = []
        self.name = "?"  # the provider's name, set by `client`
        self._lock = threading.Lock()

    def add(self, *turns: Turn | str) -> Script:
        """Queue more turns (after those not yet served)."""
        with self._lock:
            self._turns.extend(_turn(t) for t in turns)
        return self

    @property
    def remaining(self) -> int:
        """Listed turns not served yet."""
        return len(self._turns)

    def assert_done(self) -> None:
        """Fail unless every listed turn was served (a test that expected N calls made fewer)."""
        if self._turns:
            raise AssertionError(
                f"script of provider {self.name!r}: {len(self._turns)} turn(s) never served "
                f"(after {len(self.requests)} request(s)); next: {self._turns[0]!r}"
            )

    def _record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests.append(seen)

    def _next(self, seen: SeenRequest) -> Turn:
        with self._lock:
            self.requests.append(seen)
            if self._turns:
                return self._turns.pop(0)
        if self.respond is not None:
            return _turn(self.respond(seen))
        if not self._scripted:
            raise ScriptExhausted(
                f"provider {self.name!r} has no script but got a {seen.operation} request for "
                f"{seen.model!r}; pass scripts={{{self.name!r}: testing.Script(...)}}"
            )
        raise ScriptExhausted(
            f"provider {self.name!r} got request {len(self.requests)} ({seen.operation} "
            f"{seen.model!r}, last user message {seen.last_user_text[:80]!r}) but its script "
            "has no turn left; add turns (script.add(...)) or pass respond= to answer from a "
            "function"
        )

    def _vector(self, text: str, dims: int) -> list[float]:
        if self.embed is not None:
            return [float(x) for x in self.embed(text)]
        return embed_vector(text, dims)


def _turn(t: Turn | str) -> Turn:
    if isinstance(t, Turn):
        return t
    if isinstance(t, str):
        return text(t)
    raise TypeError(f"a script turn is a Turn (testing.text(...), ...) or a str, not {t!r}")


# =============================================================================== transport


class ScriptTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Plays a `Script` as an OpenAI-format vendor, sync or async."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._count = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        seen = SeenRequest.of(self.script.name, json.loads(request.read() or b"{}"))
        if seen.operation == "embed":
            return self._embeddings(seen)
        turn = self.script._next(seen)
        wait, late = _wait(turn, request)
        if wait:
            time.sleep(wait)
        return self._reply(turn, seen, request, late, TimedSyncStream)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        seen = SeenRequest.of(self.script.name, json.loads(await request.aread() or b"{}"))
        if seen.operation == "embed":
            return self._embeddings(seen)
        turn = self.script._next(seen)
        wait, late = _wait(turn, request)
        if wait:
            await anyio.sleep(wait)
        return self._reply(turn, seen, request, late, TimedAsyncStream)

    def _reply(
        self, turn: Turn, seen: SeenRequest, request: httpx2.Request, late: bool, stream: Any
    ) -> httpx2.Response:
        if late:
            raise httpx2.ReadTimeout("scripted timeout", request=request)
        if turn.failure == "disconnect":
            raise httpx2.ConnectError("scripted disconnect", request=request)
        self._count += 1
        headers = {"x-request-id": f"req_scripted_{self.script.name}_{self._count}"}
        if turn.status >= 400:
            if turn.retry_after_s is not None:
                headers["retry-after"] = f"{turn.retry_after_s:g}"
            kind = "rate_limit_exceeded" if turn.status == 429 else "scripted_error"
            body = error_body(turn.error_message, kind, turn.error_code)
            return httpx2.Response(turn.status, json=body, headers=headers)
        completion = self._completion(turn, seen)
        if seen.operation == "stream":
            headers["content-type"] = "text/event-stream"
            words = re.findall(r"\s*\S+\s*", turn.text) or ([turn.text] if turn.text else [])
            include_usage = bool((seen.body.get("stream_options") or {}).get("include_usage"))
            chunks = completion_chunks(
                completion, words, include_usage=include_usage, cut_at=turn.cut_after
            )
            return httpx2.Response(200, headers=headers, stream=stream(chunks, 1.0))
        return httpx2.Response(200, json=completion, headers=headers)

    def _completion(self, turn: Turn, seen: SeenRequest) -> dict[str, Any]:
        calls: list[dict[str, Any]] = [
            {
                "id": f"call_scripted_{self._count}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(dict(args))},
            }
            for i, (name, args) in enumerate(turn.tool_calls)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
        if calls:
            message["tool_calls"] = calls
        if turn.reasoning:
            message["reasoning_content"] = turn.reasoning
        finish = turn.finish_reason or ("tool_calls" if calls else "stop")
        return chat_completion(
            f"chatcmpl-scripted-{self._count}", seen.body, message, finish, turn.usage
        )

    def _embeddings(self, seen: SeenRequest) -> httpx2.Response:
        self.script._record(seen)
        dims = int(seen.body.get("dimensions") or 16)
        body = embeddings_reply(seen.model, seen.inputs, lambda t: self.script._vector(t, dims))
        return httpx2.Response(200, json=body)


def _wait(turn: Turn, request: httpx2.Request) -> tuple[float, bool]:
    """Seconds to wait before replying, and whether the call's read timeout ends it first."""
    if turn.failure == "timeout":
        return 0.0, True  # as if the timeout had passed: a test does not wait for it
    if not turn.delay_s:
        return 0.0, False
    limit = (request.extensions.get("timeout") or {}).get("read")
    if limit is not None and turn.delay_s >= float(limit):
        return float(limit), True
    return turn.delay_s, False


# ================================================================================= adapter


class ScriptedAdapter(OpenAIAdapter):
    """OpenAI's wire format; a `ScriptTransport` plays the vendor."""

    kind: ClassVar[str] = KIND
    default_base_url: ClassVar[str | None] = "http://scripted.portal.invalid/v1"
    api_key_env: ClassVar[str | None] = None
    max_tokens_field: ClassVar[str] = "max_tokens"
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema", schema_dialect="json-schema", embed=True
    )

    def auth_headers(self) -> dict[str, str]:
        return {}


register(KIND, ScriptedAdapter)


# ================================================================================= clients


class ScriptedClient(Client):
    """A `portal.Client` whose providers are scripts (see `client`)."""

    scripts: dict[str, Script]


class ScriptedAsyncClient(AsyncClient):
    """A `portal.AsyncClient` whose providers are scripts (see `async_client`)."""

    scripts: dict[str, Script]


Scripts = Mapping[str, "Script | Sequence[Turn | str]"]


def client(
    config: str | PortalConfig | Mapping[str, Any] | None,
    scripts: Scripts | None = None,
    *,
    ledger: Any = None,
) -> ScriptedClient:
    """A sync client on ``config`` with every provider scripted (``scripts`` by provider name;
    a list of turns is made a `Script`). No ledger unless ``ledger=`` names one; routing
    state in memory."""
    return _build(ScriptedClient, config, scripts, ledger)


def async_client(
    config: str | PortalConfig | Mapping[str, Any] | None,
    scripts: Scripts | None = None,
    *,
    ledger: Any = None,
) -> ScriptedAsyncClient:
    """The `AsyncClient` twin of `client`."""
    return _build(ScriptedAsyncClient, config, scripts, ledger)


def _build(cls: Any, config: Any, scripts: Scripts | None, ledger: Any) -> Any:
    cfg, transports, kinds, made = _scripted(config, scripts)
    c = cls(cfg, ledger=ledger, transports=transports)
    c.meter.kinds.update(kinds)  # prices follow the providers' real kinds
    c.scripts = made
    return c


def _scripted(
    config: str | PortalConfig | Mapping[str, Any] | None, scripts: Scripts | None
) -> tuple[PortalConfig, dict[str, ScriptTransport], dict[str, str], dict[str, Script]]:
    """The config with every provider a script: (config, transports, real kinds, scripts)."""
    if config is None:
        base = PortalConfig()
    elif isinstance(config, PortalConfig):
        base = config
    else:
        base = load_config(config, env=_TestEnv())
    cfg = base.model_copy(deep=True)
    cfg.portal.state = "memory"  # a test must not touch a fleet's breakers or budgets
    names = set(cfg.providers) | set(scripts or {})
    for feat in cfg.features.values():
        refs = [feat.primary, *feat.fallbacks] + ([feat.canary.target] if feat.canary else [])
        names |= {cfg.resolve_target(r)[0] for r in refs}
    names |= {k for k in known_kinds() if k != KIND}  # what a model= call could name
    kinds = {n: (p.kind or n) for n, p in base.providers.items()}
    made: dict[str, Script] = {}
    transports: dict[str, ScriptTransport] = {}
    for name in sorted(names):
        kinds.setdefault(name, name)
        old = cfg.providers.get(name) or ProviderConfig()
        # routing settings (timeout, region, tags, prices, SLA, throughput, breaker) stay;
        # how to reach the vendor goes, but for the size caps
        kept = {k: v for k, v in old.options.items() if k.startswith("max_")}
        cfg.providers[name] = old.model_copy(
            update={
                "kind": KIND,
                "base_url": f"http://{_host(name)}.scripted.portal.invalid/v1",
                "api_key": None,
                "headers": {},
                "options": kept,
                "verify_tls": True,
            }
        )
        given = (scripts or {}).get(name)
        if given is None:
            script = Script()
            script._scripted = False
        else:
            script = given if isinstance(given, Script) else Script(*given)
        script.name = name
        made[name] = script
        transports[name] = ScriptTransport(script)
    return cfg, transports, kinds, made


class _TestEnv(Mapping[str, str]):
    """The environment, with a placeholder for a variable that is not set: a test runs on
    the production portal.toml without its vendors' keys (no request leaves the process)."""

    def __getitem__(self, var: str) -> str:
        return os.environ.get(var, f"unset-{var}")

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def _host(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower()) or "provider"
