"""Vertex AI explicit context caching, and cache names shared through the routing state.

References used for the fixtures and assertions (Vertex AI REST reference and the context
caching guides):
- ``projects.locations.cachedContents.create``: ``POST https://{location}-aiplatform.
  googleapis.com/v1/projects/{project}/locations/{location}/cachedContents``; the body is a
  ``CachedContent``: ``model`` in the form ``projects/{project}/locations/{location}/
  publishers/google/models/{model}``, ``contents[]``, ``systemInstruction``, ``tools[]``,
  ``toolConfig``, ``ttl`` (a duration such as ``"300s"``; 60 minutes when not set; at least
  one minute). The reply is the created resource: ``name`` (``projects/{project number}/
  locations/{location}/cachedContents/{id}``), ``model``, ``createTime``, ``updateTime``,
  ``expireTime``, ``usageMetadata.totalTokenCount``.
- ``generateContent`` with ``cachedContent`` set to that full resource name; the request
  does not set its own system instruction, tools or tool config.
- ``usageMetadata.cachedContentTokenCount``: the cached part of the prompt.
- Caches hold at least 2,048 tokens; creation is billed at the standard input price, plus
  storage for as long as the cache lives.
- Errors are ``google.rpc.Status`` envelopes (``{"error": {"code", "message", "status"}}``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx2
import pytest

import portal
from portal.contracts.tools import ToolSpec
from portal.errors import AllTargetsFailed, BadRequest, ContractError, InvalidResponse, NotFound
from portal.routing.state import MemoryState, RedisState


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5).ping())
    except Exception:
        return False


needs_redis = pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")

DOC = "Clause 1. The supplier delivers within ten days. " * 200
LOOKUP = ToolSpec(
    "lookup_clause",
    "Find a clause by number.",
    {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
)
MODEL = "gemini-2.5-flash"
PROJECT, LOCATION = "acme-prod", "europe-west4"
HOST = f"https://{LOCATION}-aiplatform.googleapis.com"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
#: USD per 1M tokens; cache_storage per 1M tokens per hour
PRICES = {"input": 0.30, "output": 2.50, "cached_input": 0.03, "cache_storage": 1.0}
CACHED_TOKENS = 2_412


def rpc_error(code: int, status: str, message: str) -> httpx2.Response:
    return httpx2.Response(
        code, json={"error": {"code": code, "message": message, "status": status}}
    )


class Vertex:
    """A scripted Vertex AI: creates caches and answers generateContent, recording what it
    was sent. ``expire_after`` generateContent calls naming a cache, the cache is gone."""

    def __init__(self, create: httpx2.Response | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.create = create
        self.created = 0
        self.gone: set[str] = set()
        self.lost_reply: tuple[int, str, str] = (404, "NOT_FOUND", "cached content not found")

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        url = str(request.url)
        self.requests.append((url, body, dict(request.headers)))
        if request.url.path == f"/v1/{PARENT}/cachedContents":
            if self.create is not None:
                return self.create
            self.created += 1
            return httpx2.Response(
                200,
                json={
                    "name": f"projects/123456789012/locations/{LOCATION}/cachedContents/"
                    f"{self.created}9876",
                    "model": f"{PARENT}/publishers/google/models/{MODEL}",
                    "createTime": "2026-12-07T10:00:00.000000Z",
                    "updateTime": "2026-12-07T10:00:00.000000Z",
                    "expireTime": "2026-12-07T10:05:00.000000Z",
                    "usageMetadata": {"totalTokenCount": CACHED_TOKENS, "textCount": 9800},
                },
            )
        name = body.get("cachedContent")
        if name in self.gone:
            code, status, message = self.lost_reply
            return rpc_error(code, status, message)
        usage = {
            "promptTokenCount": CACHED_TOKENS + 12,
            "candidatesTokenCount": 5,
            "totalTokenCount": CACHED_TOKENS + 17,
        }
        if name:
            usage["cachedContentTokenCount"] = CACHED_TOKENS
        reply = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Ten days."}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": usage,
            "modelVersion": MODEL,
            "responseId": "v1",
        }
        if request.url.path.endswith(":streamGenerateContent"):
            data = f"data: {json.dumps(reply)}\r\n\r\n".encode()
            return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, json=reply)

    def kinds(self) -> list[str]:
        return [
            "create" if u.endswith("/cachedContents") else u.rsplit(":", 1)[-1] for u in self.urls()
        ]

    def urls(self) -> list[str]:
        return [u.split("?")[0] for u, _, _ in self.requests]


def client(vendor: Any, kind: str = "vertex", **options: Any) -> portal.Client:
    provider: dict[str, Any] = {
        "kind": kind,
        "api_key": "ya29.token" if kind == "vertex" else "g-key",
        "options": {"project": PROJECT, "location": LOCATION, **options}
        if kind == "vertex"
        else options,
        "prices": {MODEL: PRICES},
    }
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {"google": provider},
        "features": {"docs": {"primary": f"google:{MODEL}"}},
    }
    return portal.Client(cfg, transports={"google": httpx2.MockTransport(vendor)}, ledger=None)


def ask(c: portal.Client, question: str, cache: Any = "5m") -> Any:
    return c.chat(
        feature="docs",
        messages=[
            portal.system("Answer from the contract."),
            portal.user(DOC, cache=cache),
            portal.user(question),
        ],
        tools=[LOOKUP],
    )


def test_vertex_creates_the_prefix_once_in_the_calls_location_then_refers_to_it() -> None:
    vendor = Vertex()
    with client(vendor) as c:
        first = ask(c, "When is delivery?")
        second = ask(c, "Who pays shipping?")
    generate = f"{HOST}/v1/{PARENT}/publishers/google/models/{MODEL}:generateContent"
    assert vendor.urls() == [f"{HOST}/v1/{PARENT}/cachedContents", generate, generate]
    (_, create, headers), (_, chat, _), (_, chat2, _) = vendor.requests
    assert headers["authorization"] == "Bearer ya29.token"
    assert create == {
        "model": f"{PARENT}/publishers/google/models/{MODEL}",
        "contents": [{"role": "user", "parts": [{"text": DOC}]}],
        "systemInstruction": {"parts": [{"text": "Answer from the contract."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "lookup_clause",
                        "description": "Find a clause by number.",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"n": {"type": "INTEGER"}},
                            "required": ["n"],
                        },
                    }
                ]
            }
        ],
        "ttl": "300s",
    }
    name = f"projects/123456789012/locations/{LOCATION}/cachedContents/19876"
    for sent, question in ((chat, "When is delivery?"), (chat2, "Who pays shipping?")):
        assert sent["cachedContent"] == name
        assert sent["contents"] == [{"role": "user", "parts": [{"text": question}]}]
        assert not {"systemInstruction", "tools", "toolConfig"} & set(sent)
    u = first.usage
    assert (u.cache_write_tokens, u.cached_input_tokens) == (CACHED_TOKENS, CACHED_TOKENS)
    stored = CACHED_TOKENS * 300 / 3600
    assert u.cache_storage_token_hours == pytest.approx(stored)
    assert first.cost_usd == pytest.approx(
        (12 * 0.30 + CACHED_TOKENS * 0.03 + CACHED_TOKENS * 0.30 + 5 * 2.5 + stored) / 1e6
    )
    assert second.usage.cache_write_tokens == 0
    assert second.cost_usd == pytest.approx((12 * 0.30 + CACHED_TOKENS * 0.03 + 5 * 2.5) / 1e6)


def test_vertex_lifetimes_and_the_explicit_cache_option() -> None:
    vendor = Vertex()
    with client(vendor) as c:
        ask(c, "q", cache="1h")
    assert vendor.requests[0][1]["ttl"] == "3600s"
    implicit = Vertex()
    with client(implicit) as c:
        ask(c, "q", cache=True)  # implicit caching: nothing is created
    assert implicit.kinds() == ["generateContent"]
    explicit = Vertex()
    with client(explicit, explicit_cache=True) as c:
        ask(c, "q", cache=True)
    assert explicit.kinds() == ["create", "generateContent"]
    assert explicit.requests[0][1]["ttl"] == "3600s"  # the API's default lifetime


def test_vertex_global_location_and_a_streamed_call() -> None:
    vendor = Vertex()
    with client(vendor) as c:
        list(c.stream(feature="docs", messages=[portal.user(DOC, cache="5m"), portal.user("?")]))
    assert vendor.kinds() == ["create", "streamGenerateContent"]
    assert vendor.requests[1][1]["cachedContent"].endswith("/cachedContents/19876")
    from portal.contracts.messages import coerce_messages
    from portal.contracts.request import ChatRequest
    from portal.providers.gemini import VertexAdapter
    from portal.providers.settings import ProviderSettings
    from portal.secret import Secret

    adapter = VertexAdapter(
        ProviderSettings(
            "g", "vertex", api_key=Secret("t"), options={"project": "p1", "location": "global"}
        )
    )
    req = ChatRequest(coerce_messages([portal.user(DOC, cache="1h"), portal.user("q")]))
    setup = adapter.cache_setup(req, MODEL)
    assert setup is not None
    assert (
        setup.url
        == "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/cachedContents"
    )
    model = json.loads(setup.body)["model"]
    assert model == f"projects/p1/locations/global/publishers/google/models/{MODEL}"


def test_vertex_refusals_reach_the_caller_with_the_vendors_reason() -> None:
    small = Vertex(
        create=rpc_error(
            400,
            "INVALID_ARGUMENT",
            "The cached content is of 300 tokens. The minimum token count to start caching "
            "is 2048.",
        )
    )
    with client(small) as c, pytest.raises((BadRequest, AllTargetsFailed)) as info:
        ask(c, "q")
    assert "minimum token count" in str(info.value)
    assert small.kinds() == ["create"]  # nothing else was sent
    nameless = Vertex(create=httpx2.Response(200, json={"model": "m"}))
    with client(nameless) as c, pytest.raises((InvalidResponse, AllTargetsFailed)) as info:
        ask(c, "q")
    assert "names no cachedContents resource" in str(info.value)
    untouched = Vertex()
    with client(untouched) as c, pytest.raises(ContractError, match="nothing follows"):
        c.chat(feature="docs", messages=[portal.user("q"), portal.user(DOC, cache="5m")])
    assert untouched.requests == []


@pytest.mark.parametrize(
    ("kind", "lost"),
    [
        ("vertex", (404, "NOT_FOUND", "Not found: the requested resource was not found.")),
        ("gemini", (403, "PERMISSION_DENIED", "CachedContent not found (or permission denied)")),
    ],
)
def test_a_cache_gone_before_its_time_is_created_again_once(
    kind: str, lost: tuple[int, str, str]
) -> None:
    vendor = Vertex() if kind == "vertex" else GeminiApi()
    vendor.lost_reply = lost
    with client(vendor, kind=kind) as c:
        ask(c, "q1")
        vendor.gone.add(vendor.requests[-1][1]["cachedContent"])  # deleted early
        second = ask(c, "q2")
        third = ask(c, "q3")
    again = ["generateContent", "create", "generateContent"]  # refused, recreated, resent
    assert vendor.kinds() == ["create", "generateContent", *again, "generateContent"]
    fresh = vendor.requests[4][1]["cachedContent"]
    assert fresh not in vendor.gone and vendor.requests[5][1]["cachedContent"] == fresh
    assert second.usage.cache_write_tokens == CACHED_TOKENS  # the new cache is billed
    assert third.usage.cache_write_tokens == 0


def test_a_streamed_call_whose_cache_is_gone_creates_it_again() -> None:
    vendor = Vertex()
    messages = [portal.user(DOC, cache="5m"), portal.user("When?")]
    with client(vendor) as c:
        c.chat(feature="docs", messages=messages)
        vendor.gone.add(vendor.requests[-1][1]["cachedContent"])
        events = list(c.stream(feature="docs", messages=messages))
    again = ["streamGenerateContent", "create", "streamGenerateContent"]
    assert vendor.kinds() == ["create", "generateContent", *again]
    done = events[-1].response
    assert done.text == "Ten days." and done.usage.cache_write_tokens == CACHED_TOKENS


def test_a_cache_lost_again_right_after_its_creation_fails_the_call() -> None:
    vendor = Vertex()
    with client(vendor) as c:
        ask(c, "q1")
        vendor.gone.add(vendor.requests[-1][1]["cachedContent"])
        vendor.gone.add(f"projects/123456789012/locations/{LOCATION}/cachedContents/29876")
        with pytest.raises((NotFound, AllTargetsFailed)):
            ask(c, "q2")
    assert vendor.kinds().count("create") == 2  # recreated once, not in a loop


class GeminiApi(Vertex):
    """The same script on the Gemini API's paths and names."""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/v1beta/cachedContents":
            body = json.loads(request.content)
            self.requests.append((str(request.url), body, dict(request.headers)))
            self.created += 1
            return httpx2.Response(
                200,
                json={
                    "name": f"cachedContents/g{self.created}",
                    "usageMetadata": {"totalTokenCount": CACHED_TOKENS},
                },
            )
        return super().__call__(request)


def test_two_clients_sharing_a_memory_state_create_one_cache() -> None:
    vendor = Vertex()
    state = MemoryState()
    with client(vendor) as one, client(vendor) as two:
        one._core.use_state(state)
        two._core.use_state(state)
        ask(one, "q1")
        ask(two, "q2")
        ask(two, "q3")
        ask(one, "q4")
    assert vendor.kinds().count("create") == 1
    names = {b["cachedContent"] for _, b, _ in vendor.requests[1:]}
    assert names == {f"projects/123456789012/locations/{LOCATION}/cachedContents/19876"}


def test_a_creation_in_flight_elsewhere_is_not_repeated() -> None:
    from portal.contracts.messages import coerce_messages
    from portal.contracts.request import ChatRequest
    from portal.routing.router import StateCacheNames

    state = MemoryState()
    with client(Vertex()) as one, client(Vertex()) as two:
        for c in (one, two):
            c._core.use_state(state)
        a = one._core.adapters.get("google")
        b = two._core.adapters.get("google")
    assert isinstance(a.cache_names, StateCacheNames) and a is not b
    req = ChatRequest(coerce_messages([portal.user(DOC, cache="5m"), portal.user("q")]))
    assert a.cache_setup(req, MODEL) is not None
    assert b.cache_setup(req, MODEL) is None  # the other replica is creating it: uncached
    assert "cachedContent" not in json.loads(b.build_chat(req, MODEL).body)
    from portal.wire import WireReply

    made = {"name": "projects/1/locations/x/cachedContents/7", "usageMetadata": {}}
    a.cache_ready(req, MODEL, WireReply(200, {}, json.dumps(made).encode()))
    assert json.loads(b.build_chat(req, MODEL).body)["cachedContent"] == made["name"]


@needs_redis
def test_two_clients_on_redis_create_one_cache() -> None:
    url = "redis://127.0.0.1:6379/0"
    prefix = f"portal-test-{uuid.uuid4().hex[:8]}"
    vendor = Vertex()
    one_state = RedisState(url, prefix=prefix, start=False)
    two_state = RedisState(url, prefix=prefix, start=False)
    try:
        with client(vendor) as one, client(vendor) as two:
            one._core.use_state(one_state)
            two._core.use_state(two_state)
            ask(one, "q1")
            one_state.sync()  # the state's cycle flushes the name to Redis
            ask(two, "q2")
            ask(one, "q3")
            ask(two, "q4")
        assert vendor.kinds().count("create") == 1
        names = {b["cachedContent"] for _, b, _ in vendor.requests[1:]}
        assert len(names) == 1
    finally:
        one_state.clear()
        one_state.close()
        two_state.close()


def test_the_cache_name_expires_a_little_before_the_cache() -> None:
    now = [5000.0]
    vendor = Vertex()
    with client(vendor) as c:
        c._core.use_state(MemoryState(clock=lambda: now[0]))
        ask(c, "q1", cache="1h")
        now[0] += 3600 - 61  # an hour less a minute's margin: still used
        ask(c, "q2", cache="1h")
        now[0] += 2
        ask(c, "q3", cache="1h")
    assert vendor.kinds().count("create") == 2


def test_a_block_budget_reserves_the_creation_and_the_storage(tmp_path: Any) -> None:
    from portal.contracts.messages import coerce_messages
    from portal.contracts.request import ChatRequest
    from portal.metering.ledger import read_records

    ledger = tmp_path / "ledger.jsonl"
    cfg = {
        "portal": {"ledger": f"jsonl:///{ledger}"},
        "providers": {
            "google": {
                "kind": "vertex",
                "api_key": "ya29.token",
                "options": {"project": PROJECT, "location": LOCATION},
                "prices": {MODEL: PRICES},
            }
        },
        "features": {
            "docs": {"primary": f"google:{MODEL}", "budget": {"usd": 50, "on_exceed": "block"}}
        },
    }
    vendor = Vertex()
    messages = [portal.user(DOC, cache="1h"), portal.user("q")]
    req = ChatRequest(coerce_messages(messages), max_tokens=100)
    with portal.Client(cfg, transports={"google": httpx2.MockTransport(vendor)}) as c:
        core = c._core
        target = core.adapters.target(f"google:{MODEL}")
        price = core.meter.price("google", MODEL)
        tokens = core.budgets._tokens(target, req)[0]
        call = price.worst_case(tokens, 100)
        decision = core.budgets.decide("docs", [target], req, None)
        # the call, plus the cache it creates first: its input again, stored for an hour
        creation = tokens * 0.30e-6 + tokens * 1.0 * 1.0e-6
        assert decision.reservation.amount == pytest.approx(call + creation)
        c.chat(feature="docs", messages=messages, max_tokens=100)
        # the cache lives now: the next call creates nothing, and reserves only itself
        decision = core.budgets.decide("docs", [target], req, None)
        assert decision.reservation.amount == pytest.approx(call)
    rows = [r for r in read_records(f"jsonl:///{ledger}") if r.kind == "attempt"]
    assert rows[0].cache_storage_token_hours == pytest.approx(CACHED_TOKENS * 1.0)


def test_a_replica_not_yet_caught_up_goes_uncached_rather_than_create_a_second_cache() -> None:
    """A name just created reaches other replicas with the state's next cycle; until then
    the creator's claim (kept after the creation, until it expires) keeps them from
    creating the same cache again."""
    from portal.contracts.messages import coerce_messages
    from portal.contracts.request import ChatRequest
    from portal.routing.router import StateCacheNames
    from portal.wire import WireReply

    class Lagging(StateCacheNames):
        """A replica whose copy of the state has not seen the new name yet."""

        def get(self, key: str) -> str | None:
            return None

    now = [100.0]
    state = MemoryState(clock=lambda: now[0])
    with client(Vertex()) as one, client(Vertex()) as two:
        a = one._core.adapters.get("google")
        b = two._core.adapters.get("google")
    a.cache_names, b.cache_names = StateCacheNames(state), Lagging(state)
    req = ChatRequest(coerce_messages([portal.user(DOC, cache="5m"), portal.user("q")]))
    assert a.cache_setup(req, MODEL) is not None
    made = {"name": "projects/1/locations/x/cachedContents/7", "usageMetadata": {}}
    a.cache_ready(req, MODEL, WireReply(200, {}, json.dumps(made).encode()))
    assert b.cache_setup(req, MODEL) is None  # uncached, not a second creation
    now[0] += 31  # the claim expired: by now every replica has the name
    assert b.cache_setup(req, MODEL) is not None  # (this one never will: it lags forever)
