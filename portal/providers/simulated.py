"""The simulated provider (kind ``sim``): a vendor that lives in-process.

It speaks the OpenAI Chat Completions wire format through an httpx2 transport that answers
locally, so a sim call runs through exactly the code a real vendor call does: adapter,
router, retries, streaming parser, metering. It is deterministic for a seed, and has
configurable latency (lognormal from p50/p99), time to first token, tokens per second,
errors by kind (429 with Retry-After, 500, 503, timeouts, streams cut mid-way), tool calls
when tools are offered, and structured output that validates against the requested schema.
Token usage is counted with the tokenizer, like a real vendor would.

Options (``[providers.NAME.options]``)::

    seed = 7                 latency_p50_ms = 300     latency_p99_ms = 1500
    ttft_ms = 150            tokens_per_s = 80        output_tokens = 60
    error_rates = { rate_limit = 0.05, server_error = 0.01, overloaded = 0.0,
                    timeout = 0.0, stream_cut = 0.0 }
    retry_after_s = 1        time_scale = 1.0         tool_call_rate = 1.0
    context_window = 128000  chunk_tokens = 4         cut_after_chunks = 2
    prompt_cache = true      prompt_cache_ttl_s = 300 prompt_cache_min_tokens = 1024
    prompt_cache_writes = true

With ``prompt_cache`` it caches prompt prefixes the way the vendors document it: a prompt of
at least ``prompt_cache_min_tokens`` is cached (per simulated vendor) for
``prompt_cache_ttl_s`` after its last use; a later prompt that starts with a cached prefix
(whole tools and messages, in the order they are sent) reads it, in 128-token steps, and
says so in ``usage.prompt_tokens_details.cached_tokens``. With ``prompt_cache_writes`` the
tokens newly cached are reported as ``cache_write_tokens`` (what gateways such as OpenRouter
report for vendors that bill cache writes).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portal.errors import ConfigError
from portal.providers.adapter import Capabilities
from portal.providers.openai import OpenAIAdapter
from portal.providers.settings import ProviderSettings

__all__ = [
    "SimOptions",
    "SimTransport",
    "SimulatedAdapter",
    "TimedAsyncStream",
    "TimedSyncStream",
    "chat_completion",
    "completion_chunks",
    "count_text_tokens",
    "embed_vector",
    "embeddings_reply",
    "error_body",
    "message_text",
    "prompt_text",
    "split_words",
]

ERROR_KINDS = ("rate_limit", "server_error", "overloaded", "timeout", "stream_cut")


class SimOptions(BaseModel):
    """Options of the ``sim`` kind: the vendor's latency, speed, errors and limits."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(
        0, description="Seed of every random draw (deterministic runs).", examples=[7]
    )
    latency_p50_ms: float = Field(
        200.0, ge=0, description="Median latency of a reply, in ms.", examples=[300]
    )
    latency_p99_ms: float = Field(
        800.0,
        ge=0,
        description="99th percentile latency, in ms (lognormal between the two).",
        examples=[1500],
    )
    ttft_ms: float = Field(
        120.0, ge=0, description="Time to the first streamed token, in ms.", examples=[150]
    )
    tokens_per_s: float = Field(
        120.0, gt=0, description="Streaming speed after the first token.", examples=[80]
    )
    output_tokens: int = Field(
        48, ge=1, description="Typical reply length in tokens (lognormal around it).", examples=[60]
    )
    error_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Share of requests failing per kind: `rate_limit` (429 with Retry-After), "
        "`server_error` (500), `overloaded` (503), `timeout`, `stream_cut`.",
        examples=[{"rate_limit": 0.05, "server_error": 0.01}],
    )
    retry_after_s: float = Field(
        1.0, ge=0, description="Retry-After of the simulated 429s, in seconds.", examples=[1]
    )
    time_scale: float = Field(
        1.0,
        ge=0,
        description="Multiplies every simulated wait; 0 answers at once (tests).",
        examples=[1.0],
    )
    tool_call_rate: float = Field(
        1.0,
        ge=0,
        le=1,
        description='Share of `tool_choice = "auto"` requests answered with a tool call.',
        examples=[1.0],
    )
    context_window: int = Field(
        128_000,
        ge=1,
        description="Prompts longer than this (tokens) get the vendor's context-length error.",
        examples=[128000],
    )
    chunk_tokens: int = Field(4, ge=1, description="Tokens per streamed chunk.", examples=[4])
    cut_after_chunks: int | None = Field(
        None,
        ge=0,
        description="With `stream_cut`: drop the connection after this many text chunks "
        "(default: at random).",
        examples=[2],
    )
    prompt_cache: bool = Field(
        False,
        description="Cache prompt prefixes like the vendors do: a prompt that starts with "
        "one seen on this vendor within `prompt_cache_ttl_s` reads it from the cache "
        "(`usage.prompt_tokens_details.cached_tokens`).",
        examples=[True],
    )
    prompt_cache_ttl_s: float = Field(
        300.0,
        gt=0,
        description="How long a cached prefix lives after its last use, in seconds.",
        examples=[300],
    )
    prompt_cache_min_tokens: int = Field(
        1024,
        ge=1,
        description="Shortest prefix that is cached, in tokens (OpenAI: 1,024).",
        examples=[1024],
    )
    prompt_cache_writes: bool = Field(
        False,
        description="Report the tokens a request newly cached as "
        "`usage.prompt_tokens_details.cache_write_tokens` (vendors that bill cache writes).",
        examples=[True],
    )


class SimulatedAdapter(OpenAIAdapter):
    """OpenAI wire format; the transport below plays the vendor."""

    kind: ClassVar[str] = "sim"
    sends_prompt_cache_key: ClassVar[bool] = False
    default_base_url: ClassVar[str | None] = "http://sim.portal.invalid/v1"
    api_key_env: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema", schema_dialect="json-schema", embed=True
    )

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.options = parse_options(settings)

    def auth_headers(self) -> dict[str, str]:
        return {}

    def default_transport(self) -> SimTransport:
        return SimTransport(self.options, self.name)


def parse_options(settings: ProviderSettings) -> SimOptions:
    try:
        opts = SimOptions.model_validate(settings.options)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"providers.{settings.name}.options.{where}: {err['msg']}")
        raise ConfigError("\n".join(lines), lines) from None
    unknown = set(opts.error_rates) - set(ERROR_KINDS)
    if unknown:
        msg = (
            f"providers.{settings.name}.options.error_rates: unknown kind(s) "
            f"{', '.join(sorted(unknown))}; known: {', '.join(ERROR_KINDS)}"
        )
        raise ConfigError(msg)
    return opts


_CANNED = (
    "the order ships from our warehouse within two business days and you can track it "
    "online with the number in your confirmation email our team checked the account and "
    "everything looks correct please reply if anything else needs attention we are happy "
    "to help with returns refunds exchanges and delivery questions at any time"
)
_WORDS = tuple(_CANNED.split())
#: cached prefixes one simulated vendor keeps at most (expired ones are dropped first)
_SIM_CACHE_ENTRIES = 100_000


class _Plan:
    """What the simulated vendor decided for one request, drawn from the seeded RNG."""

    __slots__ = ("error", "latency_s", "n_tokens", "rng")

    def __init__(self, latency_s: float, error: str | None, n_tokens: int, rng: random.Random):
        self.latency_s = latency_s
        self.error = error
        self.n_tokens = n_tokens
        self.rng = rng


class SimTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Answers OpenAI-style requests locally, sync or async, with simulated time."""

    def __init__(self, options: SimOptions, name: str = "sim") -> None:
        self.options = options
        self.name = name
        self._rng = random.Random(options.seed)
        self._lock = threading.Lock()
        self._counter = 0
        p50 = max(options.latency_p50_ms, 0.001) / 1000.0
        p99 = max(options.latency_p99_ms, options.latency_p50_ms, 0.001) / 1000.0
        self._mu = math.log(p50)
        self._sigma = max(0.0, (math.log(p99) - math.log(p50)) / 2.326)
        #: the prompt cache's clock; a benchmark may replace it to move time on
        self.clock: Callable[[], float] = time.monotonic
        #: cached prefix hash -> expiry (least recently used first)
        self._cache: dict[bytes, float] = {}

    # -- decisions --------------------------------------------------------------------------
    def _plan(self) -> _Plan:
        with self._lock:
            self._counter += 1
            seed = self._rng.getrandbits(64)
        rng = random.Random(seed)
        latency_s, error, n = self.draw(rng)
        return _Plan(latency_s * self.options.time_scale, error, n, rng)

    def draw(self, rng: random.Random) -> tuple[float, str | None, int]:
        """One reply's latency (seconds, before ``time_scale``), error kind (or None) and
        output tokens, from ``rng``: the vendor's statistics without a request, for
        calibration runs that need millions of calls."""
        latency = rng.lognormvariate(self._mu, self._sigma) if self._sigma else math.exp(self._mu)
        error = None
        roll = rng.random()
        acc = 0.0
        for kind in ERROR_KINDS:
            acc += self.options.error_rates.get(kind, 0.0)
            if roll < acc:
                error = kind
                break
        n = max(1, int(rng.lognormvariate(math.log(self.options.output_tokens), 0.35)))
        return latency, error, n

    # -- sync -------------------------------------------------------------------------------
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        plan = self._plan()
        body = json.loads(request.read() or b"{}")
        early = self._early_error(plan, body, request)
        if early is not None:
            status, payload, headers, wait = early
            time.sleep(wait)
            if status == 0:
                raise httpx2.ReadTimeout("simulated timeout", request=request)
            return httpx2.Response(status, json=payload, headers=headers)
        if body.get("stream"):
            return httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=TimedSyncStream(self._stream_chunks(plan, body), self.options.time_scale),
            )
        time.sleep(plan.latency_s)
        return httpx2.Response(200, json=self._completion(plan, body), headers=self._headers())

    # -- async ------------------------------------------------------------------------------
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        plan = self._plan()
        body = json.loads(await request.aread() or b"{}")
        early = self._early_error(plan, body, request)
        if early is not None:
            status, payload, headers, wait = early
            await anyio.sleep(wait)
            if status == 0:
                raise httpx2.ReadTimeout("simulated timeout", request=request)
            return httpx2.Response(status, json=payload, headers=headers)
        if body.get("stream"):
            return httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=TimedAsyncStream(self._stream_chunks(plan, body), self.options.time_scale),
            )
        await anyio.sleep(plan.latency_s)
        return httpx2.Response(200, json=self._completion(plan, body), headers=self._headers())

    # -- shared -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_sim_{self.name}_{self._counter}"}

    def _early_error(
        self, plan: _Plan, body: dict[str, Any], request: httpx2.Request
    ) -> tuple[int, Any, dict[str, str], float] | None:
        """(status, error body, headers, seconds before answering); status 0 = timeout."""
        path = request.url.path
        if path.endswith("/embeddings"):
            return None
        prompt_tokens = count_text_tokens(prompt_text(body))
        if prompt_tokens > self.options.context_window:
            return (
                400,
                error_body(
                    f"This model's maximum context length is {self.options.context_window} "
                    f"tokens. However, your messages resulted in {prompt_tokens} tokens.",
                    "invalid_request_error",
                    "context_length_exceeded",
                ),
                self._headers(),
                0.0,
            )
        quick = min(plan.latency_s, 0.02 * self.options.time_scale)
        if plan.error == "rate_limit":
            headers = self._headers() | {"retry-after": f"{self.options.retry_after_s:g}"}
            return (
                429,
                error_body("Rate limit reached (simulated)", "rate_limit_exceeded"),
                headers,
                quick,
            )
        if plan.error == "server_error":
            return (
                500,
                error_body("The server had an error (simulated)", "server_error"),
                self._headers(),
                plan.latency_s,
            )
        if plan.error == "overloaded":
            return (
                503,
                error_body("The engine is currently overloaded (simulated)", "overloaded"),
                self._headers(),
                quick,
            )
        if plan.error == "timeout":
            timeout = (request.extensions.get("timeout") or {}).get("read") or 60.0
            return 0, None, {}, min(float(timeout), 120.0)
        return None

    def _completion(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        if request_is_embedding(body):
            return self._embedding(body)
        message, finish = self._reply(plan, body)
        reply = chat_completion(f"chatcmpl-sim{self._counter}", body, message, finish)
        if self.options.prompt_cache:
            usage = reply["usage"]
            read, written = self._cached(body, usage["prompt_tokens"])
            details = {"cached_tokens": read}
            if self.options.prompt_cache_writes:
                details["cache_write_tokens"] = written
            usage["prompt_tokens_details"] = details
        return reply

    def _cached(self, body: dict[str, Any], prompt_tokens: int) -> tuple[int, int]:
        """(tokens read from the cache, tokens newly written to it) for one prompt: the
        longest cached prefix made of whole tools and messages, rounded down to 128 tokens;
        every prefix of at least the minimum length is then cached (again) for the TTL."""
        opts = self.options
        digest = hashlib.sha256()
        tokens = 0
        prefixes: list[tuple[bytes, int]] = []
        parts = [json.dumps(t, sort_keys=True) for t in body.get("tools") or []]
        parts += [json.dumps(m, sort_keys=True) for m in body.get("messages") or []]
        for part in parts:
            digest.update(part.encode())
            digest.update(b"\0")
            tokens += count_text_tokens(part)
            if tokens >= opts.prompt_cache_min_tokens:
                prefixes.append((digest.copy().digest(), min(tokens, prompt_tokens)))
        if not prefixes:
            return 0, 0
        now = self.clock()
        with self._lock:
            cache = self._cache
            read = next((n for key, n in reversed(prefixes) if cache.get(key, 0.0) > now), 0)
            for key, _ in prefixes:
                cache.pop(key, None)
                cache[key] = now + opts.prompt_cache_ttl_s
            if len(cache) > _SIM_CACHE_ENTRIES:
                for key in [k for k, until in cache.items() if until <= now]:
                    del cache[key]
                while len(cache) > _SIM_CACHE_ENTRIES:
                    cache.pop(next(iter(cache)), None)
        read = read // 128 * 128
        return read, max(0, prefixes[-1][1] - read)

    def _embedding(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input") or []
        dims = int(body.get("dimensions") or 64)
        return embeddings_reply(
            body.get("model", "sim-embed"),
            [inputs] if isinstance(inputs, str) else inputs,
            lambda text: embed_vector(text, dims),
        )

    def _reply(self, plan: _Plan, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        prompt = message_text(last)
        tools = body.get("tools") or []
        choice = body.get("tool_choice", "auto")
        wants_tool = (
            tools
            and choice != "none"
            and last.get("role") != "tool"
            and (choice != "auto" or plan.rng.random() < self.options.tool_call_rate)
        )
        if wants_tool:
            if isinstance(choice, dict):
                name = choice.get("function", {}).get("name")
                chosen = [t for t in tools if t["function"]["name"] == name] or tools[:1]
            else:
                chosen = tools[:1]
            calls = []
            for i, t in enumerate(chosen):
                args = instance_for(t["function"].get("parameters") or {}, prompt, plan.rng)
                calls.append(
                    {
                        "id": f"call_sim{self._counter}_{i}",
                        "type": "function",
                        "function": {
                            "name": t["function"]["name"],
                            "arguments": json.dumps(args, separators=(",", ":")),
                        },
                    }
                )
            return {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            value = instance_for(schema, prompt, plan.rng)
            return {"role": "assistant", "content": json.dumps(value)}, "stop"
        text = self._text(plan, prompt, last)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if max_tokens and count_text_tokens(text) > int(max_tokens):
            text = " ".join(text.split()[: max(1, int(max_tokens) * 3 // 4)])
            finish = "length"
        return {"role": "assistant", "content": text}, finish

    def _text(self, plan: _Plan, prompt: str, last: dict[str, Any]) -> str:
        if last.get("role") == "tool":
            lead = f"Based on the tool result {message_text(last)[:120]}:"
        else:
            lead = f'About "{prompt[:60]}":' if prompt else "Hello:"
        start = plan.rng.randrange(len(_WORDS))
        words = [_WORDS[(start + i) % len(_WORDS)] for i in range(max(1, plan.n_tokens * 3 // 4))]
        return f"{lead} {' '.join(words)}."

    def _stream_chunks(self, plan: _Plan, body: dict[str, Any]) -> Iterator[tuple[float, bytes]]:
        completion = self._completion(plan, body)
        opts = self.options
        pieces = split_words(
            completion["choices"][0]["message"].get("content") or "", opts.chunk_tokens
        )
        cut_at = None
        if plan.error == "stream_cut":
            chosen = opts.cut_after_chunks
            cut_at = plan.rng.randrange(0, len(pieces) + 1) if chosen is None else chosen
        return completion_chunks(
            completion,
            pieces,
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            cut_at=cut_at,
            first_wait=opts.ttft_ms / 1000.0,
            piece_wait=opts.chunk_tokens / opts.tokens_per_s,
        )


def completion_chunks(
    completion: dict[str, Any],
    pieces: list[str],
    *,
    include_usage: bool,
    cut_at: int | None = None,
    first_wait: float = 0.0,
    piece_wait: float = 0.0,
) -> Iterator[tuple[float, bytes]]:
    """A Chat Completions reply as (seconds to wait before, SSE bytes) stream chunks: the role,
    the text in ``pieces``, each tool call as a head and argument fragments, the
    finish_reason, usage when ``include_usage``, then ``[DONE]``. With ``cut_at`` the
    connection drops before piece ``cut_at`` (or after the tool calls if there are fewer
    pieces): no finish_reason, no ``[DONE]``."""
    message = completion["choices"][0]["message"]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    yield first_wait, chunk({"role": "assistant", "content": ""})
    for thought in re.findall(r"\s*\S+\s*", message.get("reasoning_content") or ""):
        yield 0.0, chunk({"reasoning_content": thought})  # DeepSeek-style visible reasoning
    for i, piece in enumerate(pieces):
        if i == cut_at:
            return  # the connection drops: no finish_reason, no [DONE]
        yield piece_wait, chunk({"content": piece})
    for i, call in enumerate(message.get("tool_calls") or []):
        args = call["function"]["arguments"]
        head = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        yield piece_wait, chunk({"tool_calls": [head]})
        for frag in _split_chars(args, 16):
            yield 0.0, chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]})
    if cut_at is not None:
        return
    yield 0.0, chunk({}, completion["choices"][0]["finish_reason"])
    if include_usage:
        usage = base | {"choices": [], "usage": completion["usage"]}
        yield 0.0, b"data: " + json.dumps(usage).encode() + b"\n\n"
    yield 0.0, b"data: [DONE]\n\n"


class TimedSyncStream(httpx2.SyncByteStream):
    def __init__(self, chunks: Iterator[tuple[float, bytes]], scale: float) -> None:
        self.chunks = chunks
        self.scale = scale

    def __iter__(self) -> Iterator[bytes]:
        for wait, data in self.chunks:
            if wait:
                time.sleep(wait * self.scale)
            yield data


class TimedAsyncStream(httpx2.AsyncByteStream):
    def __init__(self, chunks: Iterator[tuple[float, bytes]], scale: float) -> None:
        self.chunks = chunks
        self.scale = scale

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for wait, data in self.chunks:
            if wait:
                await anyio.sleep(wait * self.scale)
            yield data


def chat_completion(
    completion_id: str,
    body: dict[str, Any],
    message: dict[str, Any],
    finish: str,
    usage: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A Chat Completions reply to ``body`` with ``message``; its ``usage`` (prompt, completion
    tokens) counted with the tokenizer, like a vendor would, unless given."""
    if usage is None:
        prompt = count_text_tokens(prompt_text(body))
        completion = count_text_tokens(message.get("content") or "") + sum(
            count_text_tokens(c["function"]["arguments"]) + 3 for c in message.get("tool_calls", [])
        )
    else:
        prompt, completion = usage
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "sim"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def embeddings_reply(
    model: str, inputs: list[str], vector: Callable[[str], list[float]]
) -> dict[str, Any]:
    """An Embeddings API reply: one ``vector(text)`` per input, tokens counted."""
    tokens = sum(count_text_tokens(t) for t in inputs)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector(text)}
            for i, text in enumerate(inputs)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def request_is_embedding(body: dict[str, Any]) -> bool:
    return "input" in body and "messages" not in body


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code or type_}}


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_text(body: dict[str, Any]) -> str:
    parts = [message_text(m) for m in body.get("messages") or []]
    for t in body.get("tools") or []:
        parts.append(json.dumps(t))
    return "\n".join(parts)


def count_text_tokens(text: str) -> int:
    if not text:
        return 0
    from portal.tokens import count_tokens

    return count_tokens(text)[0]


def split_words(text: str, tokens_per_chunk: int) -> list[str]:
    words = re.findall(r"\S+\s*", text)
    step = max(1, tokens_per_chunk * 3 // 4)
    return ["".join(words[i : i + step]) for i in range(0, len(words), step)]


def _split_chars(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def embed_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector from character trigrams: similar texts get close vectors."""
    vec = [0.0] * dims
    lowered = f"  {text.lower()}  "
    for i in range(len(lowered) - 2):
        vec[hash_trigram(lowered[i : i + 3]) % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def hash_trigram(tri: str) -> int:
    h = 2166136261
    for ch in tri.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


# ------------------------------------------------------------ schema-driven instances


def instance_for(schema: Any, prompt: str, rng: random.Random, depth: int = 0) -> Any:
    """A value that validates against ``schema`` (the common subset vendors support), using
    words and numbers from the prompt so answers look related to the question."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance_for(options[0], prompt, rng, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            merged.update(sub)
        return instance_for(merged, prompt, rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        out = {}
        for name, sub in props.items():
            if name in required or rng.random() < 0.5:
                out[name] = _named_value(name, sub, prompt, rng, depth)
        return out
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = int(schema.get("maxItems", max(lo, 3)))
        n = rng.randint(lo, max(lo, min(hi, lo + 2)))
        return [instance_for(schema.get("items") or {}, prompt, rng, depth + 1) for _ in range(n)]
    if kind == "integer":
        lo = int(schema.get("minimum", 0))
        hi = int(schema.get("maximum", lo + 100))
        return rng.randint(lo, hi)
    if kind == "number":
        low = float(schema.get("minimum", 0.0))
        high = float(schema.get("maximum", low + 1.0))
        return round(rng.uniform(low, high), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, prompt, rng)


def _named_value(name: str, schema: Any, prompt: str, rng: random.Random, depth: int) -> Any:
    """Fill well-known property names from the prompt: ids from its numbers, prose fields
    with a sentence, so simulated answers read like answers."""
    if isinstance(schema, dict):
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            non_null = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if non_null:
                schema = non_null[0]
        kind = schema.get("type")
        is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
        if is_string and "enum" not in schema and "format" not in schema:
            lowered = name.lower()
            if "id" in lowered or "number" in lowered:
                digits = re.findall(r"\d+", prompt)
                return digits[0] if digits else None if "null" in str(options) else "unknown"
            if any(w in lowered for w in ("answer", "text", "reply", "summary", "message")):
                start = rng.randrange(len(_WORDS))
                words = [_WORDS[(start + i) % len(_WORDS)] for i in range(12)]
                return " ".join(words).capitalize() + "."
    return instance_for(schema, prompt, rng, depth + 1)


def _string(schema: dict[str, Any], prompt: str, rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2026-11-22"
    if fmt == "date-time":
        return "2026-11-22T12:00:00Z"
    if fmt == "email":
        return "customer@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/help"
    words = re.findall(r"[A-Za-z]+", prompt) or list(_WORDS)
    n = max(1, min(12, int(schema.get("maxLength", 80)) // 8))
    text = " ".join(rng.choice(words) for _ in range(n))
    min_len = int(schema.get("minLength", 0))
    if len(text) < min_len:
        text = text + " x" * ((min_len - len(text)) // 2 + 1)
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text
