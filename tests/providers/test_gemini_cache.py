"""Gemini explicit context caching, against the documented REST API.

References used for the fixtures and assertions (Gemini API reference and caching guide):
- ``cachedContents.create``: ``POST https://generativelanguage.googleapis.com/v1beta/
  cachedContents``; the body is a ``CachedContent``: ``model`` (``models/{model}``),
  ``contents[]``, ``systemInstruction``, ``tools[]``, ``toolConfig``, and ``ttl`` (a duration
  such as ``"300s"``; one hour when not set). The reply is the created ``CachedContent``:
  ``name`` (``cachedContents/{id}``), ``model``, ``createTime``, ``updateTime``,
  ``expireTime``, ``usageMetadata.totalTokenCount``.
- ``models.generateContent`` with ``cachedContent: "cachedContents/{id}"``; a request using a
  cache does not set its own ``systemInstruction``, ``tools`` or ``toolConfig``.
- ``usageMetadata.cachedContentTokenCount``: the tokens of the cached part of the prompt,
  included in ``promptTokenCount``.
- Billing: the tokens used to create the cache are billed at the standard input price.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import portal
from portal.contracts.tools import ToolSpec
from portal.errors import AllTargetsFailed, BadRequest, ContractError

DOC = "Clause 1. The supplier delivers within ten days. " * 200
LOOKUP = ToolSpec(
    "lookup_clause",
    "Find a clause by number.",
    {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
)
MODEL = "gemini-2.5-flash"
#: USD per 1M tokens; cache_storage per 1M tokens per hour (the API's pricing page)
PRICES = {"input": 0.30, "output": 2.50, "cached_input": 0.03, "cache_storage": 1.0}
CACHED_TOKENS = 2_412


class Vendor:
    """A scripted Gemini API: creates caches and answers generateContent, recording what
    it was sent."""

    def __init__(self, create_status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.create_status = create_status
        self.created = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append((request.url.path, body, dict(request.headers)))
        if request.url.path == "/v1beta/cachedContents":
            if self.create_status != 200:
                return httpx2.Response(
                    self.create_status,
                    json={
                        "error": {
                            "code": 400,
                            "message": "Cached content is too small. total_token_count=300, "
                            "min_total_token_count=1024",
                            "status": "INVALID_ARGUMENT",
                        }
                    },
                )
            self.created += 1
            return httpx2.Response(
                200,
                json={
                    "name": f"cachedContents/c{self.created}x7q",
                    "model": f"models/{MODEL}",
                    "createTime": "2026-12-07T10:00:00.000000Z",
                    "updateTime": "2026-12-07T10:00:00.000000Z",
                    "expireTime": "2026-12-07T10:05:00.000000Z",
                    "displayName": "",
                    "usageMetadata": {"totalTokenCount": CACHED_TOKENS},
                },
            )
        cached = CACHED_TOKENS if "cachedContent" in body else 0
        usage = {
            "promptTokenCount": CACHED_TOKENS + 12,
            "candidatesTokenCount": 5,
            "totalTokenCount": CACHED_TOKENS + 17,
        }
        if cached:
            usage["cachedContentTokenCount"] = cached
        reply = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Ten days."}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": MODEL,
            "responseId": "r1",
        }
        if request.url.path.endswith(":streamGenerateContent"):
            data = f"data: {json.dumps(reply)}\r\n\r\n".encode()
            return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, json=reply)

    def paths(self) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p, _, _ in self.requests]


def client(vendor: Vendor, **options: Any) -> portal.Client:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "google": {
                "kind": "gemini",
                "api_key": "g-key",
                "options": options,
                "prices": {MODEL: PRICES},
            }
        },
        "features": {"docs": {"primary": f"google:{MODEL}"}},
    }
    return portal.Client(cfg, transports={"google": httpx2.MockTransport(vendor)}, ledger=None)


def ask(c: portal.Client, question: str, cache: Any = "5m", **kw: Any) -> Any:
    return c.chat(
        feature="docs",
        messages=[
            portal.system("Answer from the contract."),
            portal.user(DOC, cache=cache),
            portal.user(question),
        ],
        tools=[LOOKUP],
        **kw,
    )


def test_the_marked_prefix_is_created_once_then_referred_to() -> None:
    vendor = Vendor()
    with client(vendor) as c:
        first = ask(c, "When is delivery?")
        second = ask(c, "Who pays shipping?")
    generate = f"{MODEL}:generateContent"
    assert vendor.paths() == ["cachedContents", generate, generate]
    (path, create, headers), (_, chat, _), (_, chat2, _) = vendor.requests
    assert path == "/v1beta/cachedContents" and headers["x-goog-api-key"] == "g-key"
    assert create == {
        "model": f"models/{MODEL}",
        "contents": [{"role": "user", "parts": [{"text": DOC}]}],
        "systemInstruction": {"parts": [{"text": "Answer from the contract."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "lookup_clause",
                        "description": "Find a clause by number.",
                        "parameters": {  # Gemini's OpenAPI subset: upper-case types
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
    for sent, question in ((chat, "When is delivery?"), (chat2, "Who pays shipping?")):
        assert sent["cachedContent"] == "cachedContents/c1x7q"
        assert sent["contents"] == [{"role": "user", "parts": [{"text": question}]}]
        assert not {"systemInstruction", "tools", "toolConfig"} & set(sent)
    # creating it is billed as cache writes at the input price; reads at the cached price
    u = first.usage
    assert (u.cache_write_tokens, u.cached_input_tokens) == (CACHED_TOKENS, CACHED_TOKENS)
    assert u.input_tokens == 2 * CACHED_TOKENS + 12
    fresh, read, write, out = 12, CACHED_TOKENS, CACHED_TOKENS, 5
    stored = CACHED_TOKENS * 300 / 3600  # token-hours for the 5-minute TTL
    assert u.cache_storage_token_hours == pytest.approx(stored)
    assert first.cost_usd == pytest.approx(
        (fresh * 0.30 + read * 0.03 + write * 0.30 + out * 2.5 + stored * 1.0) / 1e6
    )
    assert second.usage.cache_write_tokens == 0
    assert second.cost_usd == pytest.approx((12 * 0.30 + CACHED_TOKENS * 0.03 + 5 * 2.5) / 1e6)


def test_the_cache_is_created_again_when_its_ttl_runs_out() -> None:
    from portal.routing.state import MemoryState

    now = [1000.0]
    vendor = Vendor()
    with client(vendor) as c:
        c._core.use_state(MemoryState(clock=lambda: now[0]))  # the names live in the state
        ask(c, "q1")
        now[0] += 269  # 300 s less a margin of 30 s: still used
        ask(c, "q2")
        now[0] += 2
        ask(c, "q3")
    assert vendor.paths().count("cachedContents") == 2
    assert vendor.requests[-1][1]["cachedContent"] == "cachedContents/c2x7q"


def test_an_hour_marker_and_the_explicit_cache_option() -> None:
    vendor = Vendor()
    with client(vendor) as c:
        ask(c, "q", cache="1h")
    assert vendor.requests[0][1]["ttl"] == "3600s"
    implicit = Vendor()
    with client(implicit) as c:
        ask(c, "q", cache=True)  # Gemini caches implicitly: nothing is created
    assert implicit.paths() == [f"{MODEL}:generateContent"]
    assert "cachedContent" not in implicit.requests[0][1]
    explicit = Vendor()
    with client(explicit, explicit_cache=True) as c:
        ask(c, "q", cache=True)
    assert explicit.paths()[0] == "cachedContents"
    assert explicit.requests[0][1]["ttl"] == "3600s"  # the API's default lifetime


def test_a_streamed_call_uses_the_cache_too() -> None:
    vendor = Vendor()
    with client(vendor) as c:
        events = list(
            c.stream(
                feature="docs",
                messages=[portal.user(DOC, cache="5m"), portal.user("When?")],
            )
        )
    assert vendor.paths() == ["cachedContents", f"{MODEL}:streamGenerateContent"]
    assert vendor.requests[1][1]["cachedContent"] == "cachedContents/c1x7q"
    done = events[-1].response
    assert done.usage.cache_write_tokens == CACHED_TOKENS
    assert done.usage.cached_input_tokens == CACHED_TOKENS


def test_a_failed_creation_fails_the_call_with_the_vendors_reason() -> None:
    vendor = Vendor(create_status=400)
    with client(vendor) as c, pytest.raises((BadRequest, AllTargetsFailed)) as info:
        ask(c, "q")
    assert "too small" in str(info.value)
    assert vendor.paths() == ["cachedContents"]  # nothing else was sent


def test_markers_gemini_cannot_cache_are_refused_before_sending() -> None:
    vendor = Vendor()
    with client(vendor) as c, pytest.raises(ContractError, match="nothing follows"):
        c.chat(feature="docs", messages=[portal.user("q"), portal.user(DOC, cache="5m")])
    assert vendor.requests == []


def test_unpriced_cache_storage_is_left_out_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from portal.contracts.responses import Usage
    from portal.metering.prices import Price

    price = Price(0.30, 2.50, cached_input=0.03, model_id="google/gemini-x")
    usage = Usage(1000, 0, cache_write_tokens=1000, cache_storage_token_hours=500.0)
    with caplog.at_level("WARNING", logger="portal"):
        assert price.cost(usage) == pytest.approx(1000 * 0.30 / 1e6)
        price.cost(usage)
    warned = [r for r in caplog.records if "cache_storage" in r.getMessage()]
    assert len(warned) == 1 and 'prices."gemini-x"] cache_storage' in warned[0].getMessage()
    stored = Price(0.30, 2.50, cache_storage=4.5)
    assert stored.cost(usage) == pytest.approx((1000 * 0.30 + 500 * 4.5) / 1e6)


def test_cache_storage_is_a_config_price_field() -> None:
    from portal.price_overrides import check_price_overrides

    assert check_price_overrides({MODEL: PRICES}, "providers.google.prices") == []
    (problem,) = check_price_overrides({MODEL: {"cache_storag": 1}}, "providers.google.prices")
    assert "did you mean 'cache_storage'?" in problem and "per 1M tokens per hour" in problem
    (problem,) = check_price_overrides({MODEL: {"batch": {"cache_storage": 1}}}, "p")
    assert "unknown price field 'cache_storage'" in problem  # not a per-tier rate


def test_one_creation_at_a_time_per_prefix() -> None:
    from portal.contracts.messages import coerce_messages
    from portal.contracts.request import ChatRequest
    from portal.providers.gemini import GeminiAdapter
    from portal.providers.settings import ProviderSettings
    from portal.secret import Secret
    from portal.wire import WireReply

    adapter = GeminiAdapter(ProviderSettings("google", "gemini", api_key=Secret("g-key")))
    req = ChatRequest(coerce_messages([portal.user(DOC, cache="5m"), portal.user("q")]))
    assert adapter.cache_setup(req, MODEL) is not None
    assert adapter.cache_setup(req, MODEL) is None  # a concurrent call: no second creation
    body = json.loads(adapter.build_chat(req, MODEL).body)
    assert "cachedContent" not in body and body["contents"][0]["parts"][0]["text"] == DOC
    made = {"name": "cachedContents/k1", "usageMetadata": {"totalTokenCount": 10}}
    adapter.cache_ready(req, MODEL, WireReply(200, {}, json.dumps(made).encode()))
    assert json.loads(adapter.build_chat(req, MODEL).body)["cachedContent"] == "cachedContents/k1"
    # a failed creation frees the prefix for the next call to try again
    other = ChatRequest(coerce_messages([portal.user("x" + DOC, cache="5m"), portal.user("q")]))
    assert adapter.cache_setup(other, MODEL) is not None
    with pytest.raises(BadRequest):
        adapter.cache_ready(other, MODEL, WireReply(400, {}, b'{"error": {"code": 400}}'))
    assert adapter.cache_setup(other, MODEL) is not None
