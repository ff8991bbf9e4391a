"""The clients the benchmark compares, one setup function each, in a registry.

Each entry makes a *session* for one worker process: ``call()`` does one non-streaming chat
call and returns the completion text, ``stream()`` yields the text deltas of one streaming
call, ``close()`` releases the connection pool. Async clients return coroutines / async
iterators; sync clients return plain values / iterators. Every library is imported inside
its setup function, so a worker imports only the client it measures.

To add a client (portal's runners plug in here): write ``def setup(env) -> Session``,
decorate it with ``@register(...)`` naming its row, mode, scenarios and baseline.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Where is my order 123?"}]
MAX_TOKENS = 64
API_KEY = "sk-bench-not-a-secret"
TIMEOUT_S = 30.0
# The JSON body every raw client posts; the SDKs build the same one from their arguments.
PAYLOAD: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
STREAM_PAYLOAD: dict[str, Any] = dict(PAYLOAD, stream=True, stream_options={"include_usage": True})
# The JSON portal posts for ``chat(feature="bench.answer", input=QUESTION)``: the contract's
# prompts rendered and its output schema as response_format. The raw "same JSON" rows post it,
# so portal's contract rows are compared with a client sending byte-for-byte the same request
# (issue 6, target 2); `test_mock_server.py` asserts portal still sends exactly this.
CONTRACT_PAYLOAD: dict[str, Any] = {
    "model": MODEL,
    "messages": [
        {
            "role": "system",
            "content": "You are the support agent of an online shop. Answer briefly.",
        },
        {"role": "user", "content": "Customer question: Where is my order 123?"},
    ],
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "bench_answer",
            "schema": {
                "type": "object",
                "required": ["answer", "order_id", "needs_human"],
                "additionalProperties": False,
                "properties": {
                    "answer": {"type": "string"},
                    "order_id": {"type": ["string", "null"]},
                    "needs_human": {"type": "boolean"},
                },
            },
        },
    },
    "max_tokens": MAX_TOKENS,
}


@dataclass(frozen=True)
class Env:
    """Where the mock servers are and how hard the worker will push."""

    base_url: str  # healthy mock server, e.g. http://127.0.0.1:PORT
    failing_url: str  # a mock server that answers every call with 500
    concurrency: int  # most calls in flight in this worker
    chunks: int  # stream deltas the server sends per call


Setup = Callable[[Env], Any]


@dataclass(frozen=True)
class ClientSpec:
    key: str
    label: str
    mode: str  # "async" or "sync"
    scenarios: tuple[str, ...]  # subset of ("seq", "c200", "stream")
    #: key of the row this one is compared with, or one per scenario
    baseline: str | dict[str, str]
    requires: tuple[str, ...]  # modules that must import for the row to run
    group: str  # "chat" or "failover": which table the row goes in
    setup: Setup
    available: Callable[[], bool] | None = None  # extra readiness check beyond imports

    def baseline_for(self, scenario: str) -> str:
        return self.baseline if isinstance(self.baseline, str) else self.baseline[scenario]


REGISTRY: dict[str, ClientSpec] = {}


def register(
    key: str,
    label: str,
    *,
    mode: str = "async",
    scenarios: tuple[str, ...] = ("seq", "c200", "stream"),
    baseline: str | dict[str, str] = "httpx2-async",
    requires: tuple[str, ...] = (),
    group: str = "chat",
    available: Callable[[], bool] | None = None,
) -> Callable[[Setup], Setup]:
    def deco(fn: Setup) -> Setup:
        REGISTRY[key] = ClientSpec(
            key, label, mode, scenarios, baseline, requires, group, fn, available
        )
        return fn

    return deco


def _openai_deltas_from_lines(lines: Iterator[str]) -> Iterator[str]:
    """Text deltas from OpenAI SSE lines, the way a careful hand-written client reads them."""
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            return
        choices = json.loads(data)["choices"]
        if choices:
            content = choices[0]["delta"].get("content")
            if content:
                yield content


# ---- raw HTTP clients -------------------------------------------------------------------


def _raw_answer(reply: dict[str, Any], payload: dict[str, Any]) -> str:
    """The completion text; for a structured-output request, its ``answer`` field (parsed and
    checked the way an app using raw httpx2 would, as portal's contract does)."""
    content = str(reply["choices"][0]["message"]["content"])
    if "response_format" not in payload:
        return content
    output = json.loads(content)
    if not isinstance(output, dict) or not isinstance(output.get("answer"), str):
        raise ValueError(f"structured reply without a string answer: {content[:80]!r}")
    return output["answer"]


class _HttpxAsync:
    """Raw httpx / httpx2 AsyncClient posting the JSON body and reading the JSON reply."""

    def __init__(
        self, mod: Any, env: Env, transport: Any = None, payload: dict[str, Any] = PAYLOAD
    ) -> None:
        self.payload = payload
        limits = mod.Limits(
            max_connections=env.concurrency, max_keepalive_connections=env.concurrency
        )
        kwargs: dict[str, Any] = {"timeout": TIMEOUT_S}
        if transport is not None:
            kwargs["transport"] = transport
        else:
            kwargs["limits"] = limits
        self.client = mod.AsyncClient(**kwargs)
        self.url = env.base_url + "/v1/chat/completions"
        self.headers = {"authorization": f"Bearer {API_KEY}"}

    async def call(self) -> str:
        r = await self.client.post(self.url, json=self.payload, headers=self.headers)
        r.raise_for_status()
        return _raw_answer(r.json(), self.payload)

    async def stream(self) -> AsyncIterator[str]:
        async with self.client.stream(
            "POST", self.url, json=STREAM_PAYLOAD, headers=self.headers
        ) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                choices = json.loads(data)["choices"]
                if choices:
                    content = choices[0]["delta"].get("content")
                    if content:
                        yield content

    async def close(self) -> None:
        await self.client.aclose()


class _HttpxSync:
    def __init__(self, mod: Any, env: Env, payload: dict[str, Any] = PAYLOAD) -> None:
        self.payload = payload
        self.client = mod.Client(timeout=TIMEOUT_S)
        self.url = env.base_url + "/v1/chat/completions"
        self.headers = {"authorization": f"Bearer {API_KEY}"}

    def call(self) -> str:
        r = self.client.post(self.url, json=self.payload, headers=self.headers)
        r.raise_for_status()
        return _raw_answer(r.json(), self.payload)

    def stream(self) -> Iterator[str]:
        with self.client.stream("POST", self.url, json=STREAM_PAYLOAD, headers=self.headers) as r:
            r.raise_for_status()
            yield from _openai_deltas_from_lines(r.iter_lines())

    def close(self) -> None:
        self.client.close()


@register("httpx2-async", "raw httpx2 AsyncClient", requires=("httpx2",))
def _httpx2_async(env: Env) -> Any:
    import httpx2

    return _HttpxAsync(httpx2, env)


@register(
    "httpx2-async-contract",
    "raw httpx2 AsyncClient, same JSON as portal's contract call",
    scenarios=("seq", "c200"),
    baseline="httpx2-async-contract",
    requires=("httpx2",),
)
def _httpx2_async_contract(env: Env) -> Any:
    import httpx2

    return _HttpxAsync(httpx2, env, payload=CONTRACT_PAYLOAD)


@register(
    "httpx2-sync-contract",
    "raw httpx2 Client (sync), same JSON as portal's contract call",
    mode="sync",
    scenarios=("seq",),
    baseline="httpx2-sync-contract",
    requires=("httpx2",),
)
def _httpx2_sync_contract(env: Env) -> Any:
    import httpx2

    return _HttpxSync(httpx2, env, payload=CONTRACT_PAYLOAD)


@register(
    "httpx2-sync",
    "raw httpx2 Client (sync)",
    mode="sync",
    scenarios=("seq", "stream"),
    baseline="httpx2-sync",
    requires=("httpx2",),
)
def _httpx2_sync(env: Env) -> Any:
    import httpx2

    return _HttpxSync(httpx2, env)


@register("httpx-async", "raw httpx 0.28 AsyncClient", requires=("httpx",))
def _httpx_async(env: Env) -> Any:
    import httpx

    return _HttpxAsync(httpx, env)


@register(
    "httpx2-aiohttp",
    "raw httpx2 + httpx-aiohttp transport",
    requires=("httpx2", "httpx_aiohttp.httpx2", "aiohttp"),
)
def _httpx2_aiohttp(env: Env) -> Any:
    import httpx2
    from httpx_aiohttp.httpx2 import AiohttpTransport

    limits = httpx2.Limits(
        max_connections=env.concurrency, max_keepalive_connections=env.concurrency
    )
    return _HttpxAsync(httpx2, env, transport=AiohttpTransport(limits=limits))


class _Aiohttp:
    def __init__(self, env: Env) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.url = env.base_url + "/v1/chat/completions"
        self.headers = {"authorization": f"Bearer {API_KEY}"}
        self.limit = env.concurrency
        self.session: Any = None
        self.timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)

    def _session(self) -> Any:
        # aiohttp binds its session to the running loop, so it is made on first use.
        if self.session is None:
            connector = self.aiohttp.TCPConnector(limit=self.limit)
            self.session = self.aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self.session

    async def call(self) -> str:
        async with self._session().post(self.url, json=PAYLOAD, headers=self.headers) as r:
            r.raise_for_status()
            return str((await r.json())["choices"][0]["message"]["content"])

    async def stream(self) -> AsyncIterator[str]:
        async with self._session().post(self.url, json=STREAM_PAYLOAD, headers=self.headers) as r:
            r.raise_for_status()
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                choices = json.loads(data)["choices"]
                if choices:
                    content = choices[0]["delta"].get("content")
                    if content:
                        yield content

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


@register("aiohttp", "raw aiohttp ClientSession", requires=("aiohttp",))
def _aiohttp(env: Env) -> Any:
    return _Aiohttp(env)


class _Httpx2Failover:
    """The floor for failover: try the primary, on a 5xx or connection error the secondary."""

    def __init__(self, env: Env) -> None:
        import httpx2

        self.httpx2 = httpx2
        limits = httpx2.Limits(
            max_connections=env.concurrency, max_keepalive_connections=env.concurrency
        )
        self.client = httpx2.AsyncClient(timeout=TIMEOUT_S, limits=limits)
        self.urls = (
            env.failing_url + "/v1/chat/completions",
            env.base_url + "/v1/chat/completions",
        )
        self.headers = {"authorization": f"Bearer {API_KEY}"}

    async def call(self) -> str:
        last: Exception | None = None
        for url in self.urls:
            try:
                r = await self.client.post(url, json=PAYLOAD, headers=self.headers)
            except self.httpx2.TransportError as exc:
                last = exc
                continue
            if r.status_code >= 500 or r.status_code == 429:
                last = RuntimeError(f"{url} answered {r.status_code}")
                continue
            r.raise_for_status()
            return str(r.json()["choices"][0]["message"]["content"])
        raise RuntimeError("every target failed") from last

    async def close(self) -> None:
        await self.client.aclose()


@register(
    "httpx2-failover",
    "raw httpx2 loop: primary, then secondary",
    scenarios=("seq", "c200"),
    baseline="httpx2-failover",
    requires=("httpx2",),
    group="failover",
)
def _httpx2_failover(env: Env) -> Any:
    return _Httpx2Failover(env)


# ---- vendor SDKs and LiteLLM ------------------------------------------------------------


class _OpenAISDK:
    def __init__(self, env: Env) -> None:
        import openai

        self.client = openai.AsyncOpenAI(
            base_url=env.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
        )

    async def call(self) -> str:
        r = await self.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
        )
        return str(r.choices[0].message.content)

    async def stream(self) -> AsyncIterator[str]:
        s = await self.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    async def close(self) -> None:
        await self.client.close()


@register("openai", "openai SDK AsyncOpenAI", requires=("openai",))
def _openai(env: Env) -> Any:
    return _OpenAISDK(env)


class _AnthropicSDK:
    def __init__(self, env: Env) -> None:
        import anthropic

        self.client = anthropic.AsyncAnthropic(
            base_url=env.base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
        )

    async def call(self) -> str:
        r = await self.client.messages.create(
            model=ANTHROPIC_MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
        )
        return "".join(b.text for b in r.content if b.type == "text")

    async def stream(self) -> AsyncIterator[str]:
        s = await self.client.messages.create(
            model=ANTHROPIC_MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
            stream=True,
        )
        async for event in s:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    async def close(self) -> None:
        await self.client.close()


@register("anthropic", "anthropic SDK AsyncAnthropic (/v1/messages)", requires=("anthropic",))
def _anthropic(env: Env) -> Any:
    return _AnthropicSDK(env)


class _PydanticAIDirect:
    """Pydantic AI's direct model requests (`pydantic_ai.direct`): its OpenAI chat model
    over the openai SDK, without an agent, the thinnest way Pydantic AI calls a model."""

    def __init__(self, env: Env) -> None:
        from openai import AsyncOpenAI
        from pydantic_ai.messages import ModelRequest
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        self.sdk = AsyncOpenAI(
            base_url=env.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
        )
        self.model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=self.sdk))
        self.messages = [ModelRequest.user_text_prompt(MESSAGES[0]["content"])]
        self.settings: Any = {"max_tokens": MAX_TOKENS}

    async def call(self) -> str:
        from pydantic_ai.direct import model_request

        r = await model_request(self.model, self.messages, model_settings=self.settings)
        return "".join(p.content for p in r.parts if p.part_kind == "text")

    async def stream(self) -> AsyncIterator[str]:
        from pydantic_ai.direct import model_request_stream
        from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta

        async with model_request_stream(
            self.model, self.messages, model_settings=self.settings
        ) as s:
            async for event in s:
                text = ""
                if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                    text = event.part.content
                elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                    text = event.delta.content_delta
                if text:
                    yield text

    async def close(self) -> None:
        await self.sdk.close()


@register(
    "pydantic-ai",
    "Pydantic AI direct model_request (OpenAIChatModel)",
    requires=("pydantic_ai", "openai"),
)
def _pydantic_ai(env: Env) -> Any:
    return _PydanticAIDirect(env)


class _AnyLLM:
    """mozilla-ai's any-llm: one ``acompletion`` for every provider (openai here)."""

    def __init__(self, env: Env) -> None:
        from any_llm import AnyLLM

        self.llm = AnyLLM.create("openai", api_key=API_KEY, api_base=env.base_url + "/v1")

    async def call(self) -> str:
        r = await self.llm.acompletion(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)
        return str(r.choices[0].message.content)  # type: ignore[union-attr]

    async def stream(self) -> AsyncIterator[str]:
        s = await self.llm.acompletion(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
        )
        async for chunk in s:  # type: ignore[union-attr]
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    async def close(self) -> None:
        client = getattr(self.llm, "client", None)
        if client is not None:
            await client.close()


@register("any-llm", "any-llm acompletion (openai provider)", requires=("any_llm",))
def _any_llm(env: Env) -> Any:
    return _AnyLLM(env)


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class _LiteLLM:
    def __init__(self, env: Env) -> None:
        self.litellm = _import_litellm()
        self.kwargs: dict[str, Any] = {
            "model": "openai/" + MODEL,
            "api_base": env.base_url + "/v1",
            "api_key": API_KEY,
            "messages": MESSAGES,
            "max_tokens": MAX_TOKENS,
            "timeout": TIMEOUT_S,
        }

    async def call(self) -> str:
        r = await self.litellm.acompletion(**self.kwargs)
        return str(r.choices[0].message.content)

    async def stream(self) -> AsyncIterator[str]:
        s = await self.litellm.acompletion(
            **self.kwargs, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    async def close(self) -> None:
        return None


@register("litellm", "LiteLLM acompletion", requires=("litellm",))
def _litellm(env: Env) -> Any:
    return _LiteLLM(env)


class _LiteLLMRouter:
    """LiteLLM Router, primary on the failing server, fallback to the healthy one;
    default cooldowns, no retries (the raw loop does not retry either)."""

    def __init__(self, env: Env) -> None:
        litellm = _import_litellm()

        def deployment(name: str, base: str) -> dict[str, Any]:
            return {
                "model_name": name,
                "litellm_params": {
                    "model": "openai/" + MODEL,
                    "api_base": base + "/v1",
                    "api_key": API_KEY,
                    "timeout": TIMEOUT_S,
                },
            }

        self.router = litellm.Router(
            model_list=[
                deployment("primary", env.failing_url),
                deployment("secondary", env.base_url),
            ],
            fallbacks=[{"primary": ["secondary"]}],
            num_retries=0,
        )

    async def call(self) -> str:
        r = await self.router.acompletion(model="primary", messages=MESSAGES, max_tokens=MAX_TOKENS)
        return str(r.choices[0].message.content)

    async def close(self) -> None:
        return None


@register(
    "litellm-router",
    "LiteLLM Router with fallbacks",
    scenarios=("seq", "c200"),
    baseline="httpx2-failover",
    requires=("litellm",),
    group="failover",
)
def _litellm_router(env: Env) -> Any:
    return _LiteLLMRouter(env)


# ---- portal -----------------------------------------------------------------------------
# The target rows (issue 6, target 2) call a feature with routing, metering to a SQLite
# ledger and a contract: input validated against its schema and rendered through its prompt
# templates, the reply asked for as structured output and validated against the output
# schema. The mock server answers such a request with JSON whose strings are the usual words,
# so ``output["answer"]`` is checked like every other row's completion text. Streams use the
# same feature without a contract (target 4 compares reading the same SSE stream).

CONTRACT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "contracts", "bench_answer.toml"
)
QUESTION = {"question": MESSAGES[0]["content"]}


def _portal_ready() -> bool:
    try:
        import portal

        return hasattr(portal, "AsyncClient") and hasattr(portal, "Client")
    except ImportError:
        return False


def _portal_config(env: Env) -> dict[str, Any]:
    """Two openai-compatible providers on the mock servers and three features: one with the
    contract, one plain, one that fails over from the always-500 server to the healthy one."""
    return {
        "providers": {
            "bench": {
                "kind": "openai-compatible",
                "base_url": env.base_url + "/v1",
                "api_key": API_KEY,
            },
            "down": {
                "kind": "openai-compatible",
                "base_url": env.failing_url + "/v1",
                "api_key": API_KEY,
            },
        },
        "features": {
            "bench.answer": {
                "primary": f"bench:{MODEL}",
                "max_tokens": MAX_TOKENS,
                "contract": CONTRACT,
            },
            "bench.chat": {"primary": f"bench:{MODEL}", "max_tokens": MAX_TOKENS},
            "bench.failover": {
                "primary": f"down:{MODEL}",
                "fallbacks": [f"bench:{MODEL}"],
                "max_tokens": MAX_TOKENS,
                "retry": {"attempts": 1},
            },
        },
    }


def _portal_ledger() -> str:
    """A fresh SQLite ledger per worker, so metering cost is part of every portal row."""
    import tempfile

    return f"sqlite:///{tempfile.mkdtemp(prefix='portal-bench-')}/ledger.db"


def _answer(r: Any) -> str:
    """The completion text of a portal response: the contract's ``answer`` field when the
    call had a contract, else the reply text."""
    return str(r.output["answer"]) if r.output is not None else str(r.text)


class _PortalAsync:
    def __init__(
        self,
        env: Env,
        *,
        feature: str | None = "bench.answer",
        http_client: Any = None,
        transport: str | None = None,
    ) -> None:
        import portal

        self.http_client = http_client  # passed in, so ours to close; portal leaves it open
        config = _portal_config(env)
        if transport is not None:
            config["portal"] = {"transport": transport}
        self.client = portal.AsyncClient(config, ledger=_portal_ledger(), http_client=http_client)
        self.target: dict[str, Any] = (
            {"feature": feature} if feature else {"model": f"bench:{MODEL}"}
        )
        if feature == "bench.answer":
            self.target["input"] = QUESTION
        else:
            self.target["messages"] = MESSAGES

    async def call(self) -> str:
        return _answer(await self.client.chat(**self.target, max_tokens=MAX_TOKENS))

    async def stream(self) -> AsyncIterator[str]:
        async for event in self.client.stream(
            feature="bench.chat", messages=MESSAGES, max_tokens=MAX_TOKENS
        ):
            if event.type == "text" and event.text:
                yield event.text

    def settle(self) -> None:
        _flush_ledger(self.client)

    async def close(self) -> None:
        await self.client.aclose()
        if self.http_client is not None:
            await self.http_client.aclose()


class _PortalSync:
    def __init__(self, env: Env) -> None:
        import portal

        self.client = portal.Client(_portal_config(env), ledger=_portal_ledger())

    def call(self) -> str:
        r = self.client.chat(feature="bench.answer", input=QUESTION, max_tokens=MAX_TOKENS)
        return _answer(r)

    def stream(self) -> Iterator[str]:
        for event in self.client.stream(
            feature="bench.chat", messages=MESSAGES, max_tokens=MAX_TOKENS
        ):
            if event.type == "text" and event.text:
                yield event.text

    def settle(self) -> None:
        _flush_ledger(self.client)

    def close(self) -> None:
        self.client.close()


def _flush_ledger(client: Any) -> None:
    """Every ledger row of the calls so far durably written (see run.py `_settle`)."""
    ledger = client.meter.ledger
    if ledger is not None and not ledger.flush(timeout=60):
        raise RuntimeError("portal's ledger did not flush within 60 s")


#: portal's contract calls are compared with raw httpx2 posting the same JSON; its streams
#: (feature without a contract) with raw httpx2 streaming the same plain request
_CONTRACT_BASELINE = {
    "seq": "httpx2-async-contract",
    "c200": "httpx2-async-contract",
    "stream": "httpx2-async",
}


@register(
    "portal-async",
    "portal AsyncClient.chat (feature + contract, SQLite ledger; default transport)",
    baseline=_CONTRACT_BASELINE,
    requires=("portal",),
    available=_portal_ready,
)
def _portal_async(env: Env) -> Any:
    return _PortalAsync(env)


@register(
    "portal-model",
    "portal AsyncClient.chat (model=, no contract, SQLite ledger)",
    scenarios=("seq", "c200"),
    requires=("portal",),
    available=_portal_ready,
)
def _portal_model(env: Env) -> Any:
    return _PortalAsync(env, feature=None)


@register(
    "portal-sync",
    "portal Client.chat (feature + contract, SQLite ledger)",
    mode="sync",
    scenarios=("seq", "stream"),
    baseline={"seq": "httpx2-sync-contract", "stream": "httpx2-sync"},
    requires=("portal",),
    available=_portal_ready,
)
def _portal_sync(env: Env) -> Any:
    return _PortalSync(env)


@register(
    "portal-httpx2",
    'portal AsyncClient.chat on httpx2\'s own pools (transport = "httpx2"; feature + contract)',
    scenarios=("seq", "c200", "stream"),
    baseline=_CONTRACT_BASELINE,
    requires=("portal",),
    available=_portal_ready,
)
def _portal_httpx2(env: Env) -> Any:
    return _PortalAsync(env, transport="httpx2")


@register(
    "portal-failover",
    "portal feature: primary down, fallback serves",
    scenarios=("seq", "c200"),
    baseline="httpx2-failover",
    requires=("portal",),
    group="failover",
    available=_portal_ready,
)
def _portal_failover(env: Env) -> Any:
    return _PortalAsync(env, feature="bench.failover")


class _PortalOpenAI:
    """portal's OpenAI-shaped client: the openai SDK's call and types over portal's router
    (``model=`` a provider:model id, as the portal-model row; SQLite ledger)."""

    def __init__(self, env: Env) -> None:
        import portal.openai

        self.client = portal.openai.AsyncOpenAI(_portal_config(env), ledger=_portal_ledger())

    async def call(self) -> str:
        r = await self.client.chat.completions.create(
            model=f"bench:{MODEL}", messages=MESSAGES, max_tokens=MAX_TOKENS
        )
        return str(r.choices[0].message.content)

    async def stream(self) -> AsyncIterator[str]:
        s = await self.client.chat.completions.create(
            model=f"bench:{MODEL}",
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    def settle(self) -> None:
        _flush_ledger(self.client.portal)

    async def close(self) -> None:
        await self.client.close()


@register(
    "portal-openai",
    "portal.openai.AsyncOpenAI chat.completions.create (model=, SQLite ledger)",
    requires=("portal", "openai"),
    available=_portal_ready,
)
def _portal_openai(env: Env) -> Any:
    return _PortalOpenAI(env)
