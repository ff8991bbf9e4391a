"""portal.openai against the real openai package: its own types parse what portal returns
(streams included), an app written for the SDK runs unchanged but for the constructor, and
every call goes through portal's routing, canary and ledger. Offline, on the sim vendor."""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

import anyio
import httpx2
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

import portal
import portal.openai as po
from portal.metering.ledger import read_records
from tests.helpers import sim_config

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
HI = [{"role": "user", "content": "hi"}]


def _ledger(tmp_path: Path) -> str:
    return f"jsonl:///{tmp_path}/ledger.jsonl"


def _rows(client: portal.Client | portal.AsyncClient, tmp_path: Path) -> list[Any]:
    ledger = client.meter.ledger
    assert ledger is not None and ledger.flush(timeout=10)
    return [r for r in read_records(_ledger(tmp_path)) if r.kind == "call"]


def app(client: Any) -> dict[str, Any]:
    """An application written for ``openai.OpenAI``: plain text, a tool round trip with the
    returned message appended as-is, a stream with usage, embeddings."""
    first = client.chat.completions.create(model="f", messages=HI, temperature=0.2)
    asked = client.chat.completions.create(
        model="f", messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER]
    )
    call = asked.choices[0].message.tool_calls[0]
    history = [
        {"role": "user", "content": "weather in Paris?"},
        asked.choices[0].message,
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny"})},
    ]
    final = client.chat.completions.create(model="f", messages=history, tools=[WEATHER])
    pieces, usage = [], None
    with client.chat.completions.create(
        model="f", messages=HI, stream=True, stream_options={"include_usage": True}
    ) as stream:
        for chunk in stream:
            assert isinstance(chunk, ChatCompletionChunk)
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
    vectors = client.embeddings.create(model="a:emb", input=["one", "two"])
    return {
        "first": first,
        "asked": asked,
        "final": final,
        "streamed": "".join(pieces),
        "usage": usage,
        "vectors": vectors,
    }


def _check_app(out: dict[str, Any]) -> None:
    assert isinstance(out["first"], ChatCompletion)
    assert out["first"].choices[0].message.content
    assert out["first"].choices[0].finish_reason == "stop"
    assert out["first"].usage.total_tokens > 0
    asked = out["asked"].choices[0]
    assert asked.finish_reason == "tool_calls" and asked.message.content is None
    assert asked.message.tool_calls[0].function.name == "get_weather"
    assert "city" in json.loads(asked.message.tool_calls[0].function.arguments)
    assert "sunny" in out["final"].choices[0].message.content
    assert out["streamed"] and out["usage"].completion_tokens > 0
    assert isinstance(out["vectors"], CreateEmbeddingResponse)
    assert [d.index for d in out["vectors"].data] == [0, 1]
    assert len(out["vectors"].data[0].embedding) > 8


def test_app_runs_on_portal_openai_client(tmp_path: Path) -> None:
    with po.OpenAI(sim_config(), ledger=_ledger(tmp_path)) as client:
        out = app(client)
        _check_app(out)
        rows = _rows(client.portal, tmp_path)
    # every call metered: 4 chats + 1 stream + 1 embedding, all through feature f or a:emb
    assert len(rows) == 5
    assert {r.feature for r in rows if r.operation != "embed"} == {"f"}
    assert out["first"].portal["target"] == "a:m1"


def test_app_runs_unchanged_on_the_official_sdk_with_portals_transport(tmp_path: Path) -> None:
    transport = po.PortalTransport(sim_config(), ledger=_ledger(tmp_path))
    client = openai.OpenAI(api_key="unused", http_client=httpx2.Client(transport=transport))
    out = app(client)
    _check_app(out)
    assert len(_rows(transport.portal, tmp_path)) == 5
    client.close()
    transport.close()


def test_streamed_text_equals_what_portal_streams() -> None:
    with po.OpenAI(sim_config(), ledger=None) as client:
        chunks = list(client.chat.completions.create(model="f", messages=HI, stream=True))
    with portal.Client(sim_config(), ledger=None) as direct:
        events = list(direct.stream(feature="f", messages=HI))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "".join(e.text for e in events if e.type == "text")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1  # one completion id across the stream


def test_streamed_tool_calls_parse_as_sdk_deltas() -> None:
    with po.OpenAI(sim_config(), ledger=None) as client:
        chunks = list(
            client.chat.completions.create(
                model="f", messages=HI, tools=[WEATHER], tool_choice="required", stream=True
            )
        )
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.index for tc in calls] == [0]
    assert calls[0].function.name == "get_weather" and calls[0].id
    assert json.loads(calls[0].function.arguments)["city"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_structured_output_json_schema_and_parse() -> None:
    class Answer(BaseModel):
        answer: str
        score: int

    schema = Answer.model_json_schema()
    with po.OpenAI(sim_config(), ledger=None) as client:
        r = client.chat.completions.create(
            model="f",
            messages=HI,
            response_format={"type": "json_schema", "json_schema": {"name": "A", "schema": schema}},
        )
        Answer.model_validate_json(r.choices[0].message.content)
        parsed = client.chat.completions.parse(model="f", messages=HI, response_format=Answer)
    assert isinstance(parsed.choices[0].message.parsed, Answer)


def test_embeddings_base64_is_little_endian_float32() -> None:
    with po.OpenAI(sim_config(), ledger=None) as client:
        floats = client.embeddings.create(model="a:emb", input="same text")
        packed = client.embeddings.create(
            model="a:emb", input="same text", encoding_format="base64"
        )
    raw = base64.b64decode(packed.data[0].embedding)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_failover_and_canary_apply_to_openai_calls() -> None:
    cfg = sim_config(
        f={"primary": "a:m1", "fallbacks": ["b:m2"], "retry": {"attempts": 1}},
        g={"primary": "b:m2", "canary": {"target": "c:m3", "percent": 50}},
    )
    cfg["providers"]["a"]["options"]["error_rates"] = {"server_error": 1.0}
    cfg["providers"]["c"]["options"]["seed"] = 9
    with po.OpenAI(cfg, ledger=None) as client:
        r = client.chat.completions.create(model="f", messages=HI)
        assert r.portal["target"] == "b:m2" and r.portal["attempts"] == 2
        arms = set()
        for n in range(12):
            user = f"user-{n}"
            expected = client.portal.router.route("g", user, None).arm
            for options in ({"user": user}, {"extra_body": {"portal": {"key": user}}}):
                r = client.chat.completions.create(model="g", messages=HI, **options)
                assert r.portal["arm"] == expected  # sticky per key, as portal decides
                assert r.portal["target"] == ("c:m3" if expected == "canary" else "b:m2")
            arms.add(expected)
    assert arms == {"baseline", "canary"}


def test_portal_options_reach_the_ledger(tmp_path: Path) -> None:
    with po.OpenAI(sim_config(), ledger=_ledger(tmp_path)) as client:
        client.chat.completions.create(
            model="f",
            messages=HI,
            extra_body={"portal": {"key": "user-7", "tenant": "acme", "tags": {"team": "x"}}},
        )
        client.chat.completions.create(model="a:m5", messages=HI, metadata={"run": "2"})
        rows = _rows(client.portal, tmp_path)
    assert rows[0].tenant == "acme" and rows[0].tags == {"team": "x"}
    assert rows[0].key_hash and "user-7" not in json.dumps(dataclasses.asdict(rows[0]), default=str)
    assert rows[1].target == "a:m5" and rows[1].tags == {"run": "2"}


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (
            {"extra_body": {"portal": {"tennant": "x"}}},
            portal.ContractError,
            ["'tennant'", "tenant"],
        ),
        ({"extra_body": {"portal": "x"}}, portal.ContractError, ['extra_body["portal"]']),
        (
            {"frequency_penalty": 0.5},
            portal.ContractError,
            ["frequency_penalty", "provider_options"],
        ),
        ({"extra_body": {"top_k": 3}}, portal.ContractError, ["top_k", "extra_body"]),
        ({"n": 2}, portal.ContractError, ["n=2"]),
        ({"model": "nope"}, portal.ConfigError, ["'nope'", "features: f"]),
        ({"response_format": {"type": "json_object"}}, portal.ContractError, ["json_schema"]),
        ({"extra_headers": {"x-a": "1"}}, portal.ContractError, ["extra_headers"]),
        ({"functions": [{"name": "x"}]}, portal.ContractError, ["tools="]),
        ({"parallel_tool_calls": False}, portal.ContractError, ["parallel_tool_calls"]),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            portal.ContractError,
            ["messages[0].content[0].type", "input_audio"],
        ),
        (
            {"messages": [{"role": "robot", "content": "x"}]},
            portal.ContractError,
            ["messages[0].role"],
        ),
        (
            {"tools": [{"type": "custom", "custom": {"name": "x"}}]},
            portal.ContractError,
            ["tools[0]"],
        ),
        ({"tool_choice": {"type": "allowed_tools"}}, portal.ContractError, ["tool_choice"]),
    ],
)
def test_bad_requests_are_portal_errors_naming_the_field(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with po.OpenAI(sim_config(), ledger=None) as client, pytest.raises(error) as info:
        client.chat.completions.create(**{"model": "f", "messages": HI, **kwargs})
    for word in words:
        assert word in str(info.value)


def test_embedding_options_are_checked() -> None:
    with po.OpenAI(sim_config(), ledger=None) as client:
        with pytest.raises(portal.ContractError, match="'tenant'"):
            client.embeddings.create(model="a:e", input="x", extra_body={"portal": {"tenant": "t"}})
        with pytest.raises(portal.ContractError, match="token arrays"):
            client.embeddings.create(model="a:e", input=[[1, 2, 3]])


def test_sdk_sentinels_count_as_not_given() -> None:
    with po.OpenAI(sim_config(), ledger=None) as client:
        r = client.chat.completions.create(
            model="f", messages=HI, temperature=openai.omit, tools=openai.NOT_GIVEN
        )
    assert r.choices[0].message.content


def test_transport_errors_become_sdk_errors_without_sdk_retries(tmp_path: Path) -> None:
    cfg = sim_config(f={"primary": "a:m1", "retry": {"attempts": 2, "max_wait_s": 0}})
    cfg["providers"]["a"]["options"].update(error_rates={"rate_limit": 1.0}, retry_after_s=0)
    transport = po.PortalTransport(cfg, ledger=_ledger(tmp_path))
    client = openai.OpenAI(
        api_key="sk-never-seen", max_retries=3, http_client=httpx2.Client(transport=transport)
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="f", messages=HI)
    assert info.value.response.headers["x-should-retry"] == "false"
    rows = _rows(transport.portal, tmp_path)
    assert len(rows) == 1 and rows[0].attempt == 2  # portal retried; the SDK did not
    with pytest.raises(openai.BadRequestError, match="'bogus'"):
        client.chat.completions.create(model="f", messages=HI, extra_body={"portal": {"bogus": 1}})
    with pytest.raises(openai.NotFoundError, match="/chat/completions"):
        client.models.list()
    assert "sk-never-seen" not in repr(rows)
    transport.close()


def test_transport_stream_cut_midway_raises_in_the_sdk() -> None:
    cfg = sim_config()
    cfg["providers"]["a"]["options"].update(error_rates={"stream_cut": 1.0}, cut_after_chunks=3)
    cfg["features"]["f"]["fallbacks"] = []
    transport = po.PortalTransport(cfg, ledger=None)
    client = openai.OpenAI(api_key="x", http_client=httpx2.Client(transport=transport))
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="f", messages=HI, stream=True):
            got.append(chunk)
    assert info.value.code == "StreamInterrupted"
    assert got  # what arrived before the cut was delivered
    transport.close()


def test_async_surface_and_async_transport(tmp_path: Path) -> None:
    async def main() -> None:
        async with po.AsyncOpenAI(sim_config(), ledger=_ledger(tmp_path)) as client:
            r = await client.chat.completions.create(model="f", messages=HI)
            assert isinstance(r, ChatCompletion)
            stream = await client.chat.completions.create(
                model="f", messages=HI, stream=True, stream_options={"include_usage": True}
            )
            chunks = [c async for c in stream]
            assert chunks[-1].usage is not None and chunks[-1].choices == []
            e = await client.embeddings.create(model="a:emb", input="x")
            assert isinstance(e, CreateEmbeddingResponse)
            with pytest.raises(portal.ContractError, match="'bogus'"):
                await client.chat.completions.create(
                    model="f", messages=HI, extra_body={"portal": {"bogus": 1}}
                )
            assert len(_rows(client.portal, tmp_path)) == 3

        transport = po.AsyncPortalTransport(sim_config(), ledger=None)
        sdk = openai.AsyncOpenAI(api_key="x", http_client=httpx2.AsyncClient(transport=transport))
        r = await sdk.chat.completions.create(model="f", messages=HI)
        assert r.choices[0].message.content
        stream = await sdk.chat.completions.create(model="f", messages=HI, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text
        await sdk.close()
        await transport.aclose()

    anyio.run(main)


def test_stream_error_before_first_token_raises_from_create() -> None:
    cfg = sim_config()
    cfg["providers"]["a"]["options"]["error_rates"] = {"server_error": 1.0}
    cfg["features"]["f"]["retry"] = {"attempts": 1}
    cfg["features"]["f"]["fallbacks"] = []
    with po.OpenAI(cfg, ledger=None) as client, pytest.raises(portal.PortalError):
        client.chat.completions.create(model="f", messages=HI, stream=True)


def test_transport_refuses_a_body_that_is_not_json_and_fails_streams_before_the_first_token() -> (
    None
):
    cfg = sim_config(f={"primary": "a:m1", "retry": {"attempts": 1}})
    cfg["providers"]["a"]["options"]["error_rates"] = {"server_error": 1.0}
    transport = po.PortalTransport(cfg, ledger=None)
    http = httpx2.Client(transport=transport, base_url="http://portal.invalid/v1")
    bad = http.post("/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    client = openai.OpenAI(api_key="x", max_retries=2, http_client=http)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="f", messages=HI, stream=True)
    assert info.value.status_code == 502 and info.value.code in ("ServerError", "AllTargetsFailed")
    transport.close()
