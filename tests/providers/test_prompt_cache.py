"""The neutral prompt-cache hint (``cache=`` on messages and tools, a feature's
``cache = "auto"``) as each vendor's documented wire format.

References used for the request assertions:
- Anthropic prompt caching: ``cache_control`` ``{"type": "ephemeral"}`` with optional
  ``"ttl": "5m" | "1h"`` on a system block, a content block or a tool; at most 4 breakpoints;
  1-hour breakpoints before 5-minute ones (prefix order tools, system, messages).
- Bedrock Converse ``CachePointBlock``: ``{"cachePoint": {"type": "default"}}``, optional
  ``ttl`` ``5m | 1h``, in ``system``, a message's ``content`` and ``toolConfig.tools``.
- OpenAI ``CreateChatCompletionRequest`` / ``CreateResponse``: ``prompt_cache_key`` (a
  string, at most 64 characters); Azure OpenAI prompt caching documents the same field.
- Gemini caches implicitly; an explicit lifetime needs cached content, not a per-request field
  (created with ``cachedContents.create``: tests/providers/test_gemini_cache.py). Vertex AI
  keeps implicit caching only.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import portal
from portal.contracts.messages import coerce_messages, tool_result
from portal.contracts.request import ChatRequest
from portal.contracts.tools import ToolSpec, coerce_tools
from portal.errors import ContractError
from portal.providers.adapter import Adapter
from portal.providers.anthropic import AnthropicAdapter
from portal.providers.azure_openai import AzureOpenAIAdapter
from portal.providers.bedrock import BedrockAdapter
from portal.providers.gemini import GeminiAdapter
from portal.providers.openai import OpenAIAdapter
from portal.providers.openai_compatible import OpenAICompatibleAdapter
from portal.providers.openai_responses import OpenAIResponsesAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from tests.providers._openai_spec import errors as spec_errors

LONG = "You are the support agent of ACME. " * 40
LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order by id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
WEATHER = ToolSpec(
    "get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}}
)
EPHEMERAL = {"type": "ephemeral"}


def anthropic() -> AnthropicAdapter:
    return AnthropicAdapter(ProviderSettings("claude", "anthropic", api_key=Secret("sk-ant-x")))


def bedrock() -> BedrockAdapter:
    options = {"region_name": "us-east-1", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "s"}
    return BedrockAdapter(ProviderSettings(name="aws", kind="bedrock", options=options))


def openai() -> OpenAIAdapter:
    return OpenAIAdapter(ProviderSettings("openai", "openai", api_key=Secret("sk-test")))


def responses() -> OpenAIResponsesAdapter:
    return OpenAIResponsesAdapter(
        ProviderSettings("openai", "openai-responses", api_key=Secret("sk-r"))
    )


def azure() -> AzureOpenAIAdapter:
    return AzureOpenAIAdapter(
        ProviderSettings(
            "azure",
            "azure-openai",
            base_url="https://acme-eu.openai.azure.com/",
            api_key=Secret("azure-key-1"),
            options={"deployments": {"gpt-4o": "prod-gpt4o"}},
        )
    )


def gemini() -> GeminiAdapter:
    return GeminiAdapter(ProviderSettings(name="google", kind="gemini", api_key=Secret("g-key")))


def compatible() -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(
        ProviderSettings(
            "together",
            "openai-compatible",
            base_url="https://api.together.xyz/v1",
            api_key=Secret("t"),
        )
    )


def body(adapter: Adapter, req: ChatRequest, model: str = "m") -> dict[str, Any]:
    if isinstance(adapter, BedrockAdapter):
        return adapter.chat_body(req)
    wire = adapter.build_chat(req, model)
    return json.loads(wire.body)


def marked_request(**kw: Any) -> ChatRequest:
    return ChatRequest(
        [
            portal.system(LONG, cache=True),
            portal.user("Order 123?"),
            portal.assistant("It shipped."),
            portal.user("And 456?"),
        ],
        tools=[LOOKUP, ToolSpec("get_weather", "", WEATHER.parameters, cache=True)],
        **kw,
    )


def plain_request() -> ChatRequest:
    return ChatRequest(
        [
            portal.system(LONG),
            portal.user("Order 123?"),
            portal.assistant("It shipped."),
            portal.user("And 456?"),
        ],
        tools=[LOOKUP, WEATHER],
    )


# ------------------------------------------------------------------------- contracts


def test_marker_on_helpers_dicts_and_tools() -> None:
    assert portal.system("s", cache=True).cache is True
    assert portal.user("u", cache="1h").cache == "1h"
    assert tool_result("c1", {"ok": 1}, cache="5m").cache == "5m"
    assert portal.system("s").cache is None
    (m,) = coerce_messages([{"role": "system", "content": "s", "cache": "1h"}])
    assert m.cache == "1h"
    assert m.to_dict() == {"role": "system", "content": "s", "cache": "1h"}
    (t,) = coerce_tools([{"name": "t", "parameters": {"type": "object"}, "cache": True}])
    assert t.cache is True


@pytest.mark.parametrize("bad", ["2h", 5, "yes", [True]])
def test_bad_marker_names_the_allowed_values(bad: Any) -> None:
    with pytest.raises(ContractError, match=r"cache: expected True, False, '5m' or '1h'"):
        portal.system("s", cache=bad)
    with pytest.raises(ContractError, match=r"messages\[0\]\.cache"):
        coerce_messages([{"role": "user", "content": "u", "cache": bad}])
    with pytest.raises(ContractError, match=r"cache"):
        ToolSpec("t", cache=bad)


# ------------------------------------------------------------------------- no cost unused


@pytest.mark.parametrize("make", [anthropic, bedrock, openai, responses, azure, gemini, compatible])
def test_unmarked_call_sends_what_it_sent_before(make: Any) -> None:
    """Markers set to False (or none) change nothing on the wire."""
    plain = body(make(), plain_request(), "gpt-4o")
    off = ChatRequest(
        [portal.system(LONG, cache=False), *plain_request().messages[1:]],
        tools=[LOOKUP, WEATHER],
    )
    assert body(make(), off, "gpt-4o") == plain
    text = json.dumps(plain)
    assert "cache_control" not in text and "cachePoint" not in text
    assert "prompt_cache_key" not in text


def test_anthropic_unmarked_body_is_the_plain_messages_body() -> None:
    assert body(anthropic(), ChatRequest([portal.system("Be brief."), portal.user("hi")])) == {
        "model": "m",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }


# ------------------------------------------------------------------------- Anthropic


def test_anthropic_breakpoints_on_system_tool_and_message() -> None:
    req = marked_request()
    req.messages[2] = portal.assistant("It shipped.", cache="5m")
    b = body(anthropic(), req)
    assert b["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert "cache_control" not in b["tools"][0]
    assert b["tools"][1]["cache_control"] == EPHEMERAL
    assert b["messages"][0] == {"role": "user", "content": "Order 123?"}
    assert b["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "text",
                "text": "It shipped.",
                "cache_control": {"type": "ephemeral", "ttl": "5m"},
            }
        ],
    }
    assert b["messages"][2] == {"role": "user", "content": "And 456?"}


def test_anthropic_one_hour_ttl_and_tool_result_breakpoint() -> None:
    req = ChatRequest(
        [
            portal.system(LONG, cache="1h"),
            portal.user("Order 123?"),
            portal.assistant(
                None, [portal.ToolCall("toolu_1", "lookup_order", {"order_id": "123"})]
            ),
            tool_result("toolu_1", {"status": "shipped"}, cache=True),
        ],
        tools=[LOOKUP],
    )
    b = body(anthropic(), req)
    assert b["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    last = b["messages"][-1]["content"][-1]
    assert last["type"] == "tool_result" and last["cache_control"] == EPHEMERAL


def test_anthropic_more_than_four_breakpoints_is_refused_before_sending() -> None:
    msgs = [portal.system(LONG, cache=True)]
    for i in range(4):
        msgs += [portal.user(f"q{i}", cache=True), portal.assistant(f"a{i}")]
    with pytest.raises(ContractError, match=r"5 cache breakpoints.*at most 4.*keep cache="):
        anthropic().build_chat(ChatRequest(msgs), "m")


def test_anthropic_markers_and_provider_options_count_together() -> None:
    req = marked_request(provider_options={"anthropic": {"cache_control": EPHEMERAL}})
    req.messages[1] = portal.user("Order 123?", cache=True)
    req.messages[2] = portal.assistant("It shipped.", cache=True)
    with pytest.raises(ContractError, match="5 cache breakpoints"):
        anthropic().build_chat(req, "m")


def test_anthropic_one_hour_after_five_minutes_is_refused() -> None:
    req = ChatRequest([portal.system(LONG, cache=True), portal.user("u", cache="1h")])
    with pytest.raises(ContractError, match=r"'1h' breakpoint comes after a 5-minute one"):
        anthropic().build_chat(req, "m")


def test_anthropic_provider_options_cache_control_still_places_breakpoints() -> None:
    req = ChatRequest(
        [portal.system("Be brief."), portal.user("hi")],
        tools=[LOOKUP],
        provider_options={"anthropic": {"cache_control": EPHEMERAL}},
    )
    b = body(anthropic(), req)
    assert b["system"] == [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    assert b["messages"][-1]["content"][-1]["cache_control"] == EPHEMERAL
    assert b["tools"][-1]["cache_control"] == EPHEMERAL
    assert "cache_control" not in b


def test_marker_on_an_empty_message_is_refused() -> None:
    req = ChatRequest([portal.system("", cache=True), portal.user("hi")])
    for make in (anthropic, bedrock):
        with pytest.raises(
            ContractError, match=r"messages\[0\]\.cache: the message has no content"
        ):
            body(make(), req)


# ------------------------------------------------------------------------- Bedrock


def test_bedrock_cache_points_after_system_message_and_tool() -> None:
    req = marked_request()
    req.messages[3] = portal.user("And 456?", cache="1h")
    req.messages[0] = portal.system(LONG, cache="1h")
    req.tools[1] = ToolSpec("get_weather", "", WEATHER.parameters, cache="1h")
    b = bedrock().chat_body(req)
    assert b["system"] == [{"text": LONG}, {"cachePoint": {"type": "default", "ttl": "1h"}}]
    assert b["messages"][-1] == {
        "role": "user",
        "content": [{"text": "And 456?"}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
    }
    tools = b["toolConfig"]["tools"]
    assert [next(iter(t)) for t in tools] == ["toolSpec", "toolSpec", "cachePoint"]
    assert tools[2] == {"cachePoint": {"type": "default", "ttl": "1h"}}


def test_bedrock_default_cache_point_has_no_ttl() -> None:
    b = bedrock().chat_body(marked_request())
    assert b["system"][1] == {"cachePoint": {"type": "default"}}
    assert b["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}


def test_bedrock_more_than_four_cache_points_is_refused() -> None:
    msgs = [portal.system(LONG, cache=True)]
    for i in range(4):
        msgs += [portal.user(f"q{i}", cache=True), portal.assistant(f"a{i}")]
    with pytest.raises(ContractError, match=r"\(Bedrock\): 5 cache breakpoints.*at most 4"):
        bedrock().build_chat(ChatRequest(msgs), "anthropic.claude-3-5-sonnet-20240620-v1:0")


# ------------------------------------------------------------------------- OpenAI family


@pytest.mark.parametrize("make", [openai, responses, azure])
def test_prompt_cache_key_follows_the_marked_prefix(make: Any) -> None:
    first = body(make(), marked_request(), "gpt-4o")
    key = first["prompt_cache_key"]
    assert key.startswith("portal-") and len(key) <= 64
    later = marked_request()
    later.messages.append(portal.user("And 789?"))
    assert body(make(), later, "gpt-4o")["prompt_cache_key"] == key
    other = marked_request()
    other.messages[0] = portal.system("Another prompt. " * 40, cache=True)
    assert body(make(), other, "gpt-4o")["prompt_cache_key"] != key
    assert LONG not in key


def test_prompt_cache_key_is_a_documented_field() -> None:
    b = body(openai(), marked_request(), "gpt-4o")
    assert spec_errors(b, "CreateChatCompletionRequest") == []
    r = body(responses(), marked_request(), "gpt-4o")
    assert spec_errors(r, "CreateResponse") == []


def vertex() -> GeminiAdapter:
    from portal.providers.gemini import VertexAdapter

    options = {"project": "acme", "location": "us-central1"}
    return VertexAdapter(
        ProviderSettings(name="gcp", kind="vertex", api_key=Secret("ya29.x"), options=options)
    )


@pytest.mark.parametrize("make", [openai, responses, azure, compatible])
@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_a_lifetime_the_vendor_cannot_set_is_refused(make: Any, ttl: str) -> None:
    req = ChatRequest([portal.system(LONG, cache=ttl), portal.user("hi")])
    with pytest.raises(ContractError, match=rf"messages\[0\]\.cache='{ttl}'.*use cache=True"):
        make().build_chat(req, "gpt-4o")


@pytest.mark.parametrize(("ttl", "wire"), [("5m", "300s"), ("1h", "3600s")])
def test_vertex_takes_a_lifetime_as_an_explicit_cache(ttl: str, wire: str) -> None:
    req = ChatRequest([portal.system(LONG, cache=ttl), portal.user("hi")])
    setup = vertex().cache_setup(req, "gemini-2.5-flash")
    assert setup is not None and json.loads(setup.body)["ttl"] == wire


def test_implicit_cachers_send_nothing_for_cache_true() -> None:
    for make in (gemini, compatible):
        assert body(make(), marked_request(), "gpt-4o") == body(make(), plain_request(), "gpt-4o")


# ------------------------------------------------------------------------- feature config


def _anthropic_client(seen: list[dict[str, Any]], cache: str | None) -> portal.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "Shipped."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 10, "output_tokens": 2},
            },
        )

    feature: dict[str, Any] = {"primary": "claude:claude-sonnet-4-5", "retry": {"attempts": 1}}
    if cache is not None:
        feature["cache"] = cache
    config = {
        "portal": {"ledger": "none"},
        "providers": {"claude": {"kind": "anthropic", "api_key": "sk-ant-x"}},
        "features": {"support": feature},
    }
    return portal.Client(config, ledger=None, transports={"claude": httpx2.MockTransport(handler)})


def test_feature_cache_auto_marks_system_prompt_and_tools_end_to_end() -> None:
    seen: list[dict[str, Any]] = []
    with _anthropic_client(seen, "auto") as client:
        resp = client.chat(
            feature="support",
            messages=[portal.system(LONG), portal.user("Order 123?")],
            tools=[LOOKUP, WEATHER],
            run_tools=False,
        )
    assert resp.text == "Shipped."
    (sent,) = seen
    assert sent["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert [t.get("cache_control") for t in sent["tools"]] == [None, EPHEMERAL]
    assert sent["messages"] == [{"role": "user", "content": "Order 123?"}]


def test_feature_without_cache_sends_no_breakpoint() -> None:
    seen: list[dict[str, Any]] = []
    with _anthropic_client(seen, None) as client:
        client.chat(feature="support", messages=[portal.system(LONG), portal.user("hi")])
    assert seen[0]["system"] == LONG


def test_feature_cache_auto_keeps_the_callers_opt_out() -> None:
    seen: list[dict[str, Any]] = []
    with _anthropic_client(seen, "auto") as client:
        client.chat(
            feature="support", messages=[portal.system(LONG, cache=False), portal.user("hi")]
        )
    assert seen[0]["system"] == LONG


def test_feature_cache_rejects_unknown_values() -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(portal.ConfigError, match="cache"):
        _anthropic_client(seen, "always")
