"""Pydantic AI and LangChain models backed by portal, with the real packages, offline on the
sim vendor and portal.testing's scripted vendors: text, tool calls, structured output and
streaming pass through, and each model request is a routed, metered portal call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool as lc_tool
from pydantic import BaseModel
from pydantic_ai import Agent, ToolOutput
from pydantic_ai.exceptions import UserError

import portal
from portal import testing
from portal.langchain import ChatPortal
from portal.metering.ledger import read_records
from portal.pydantic_ai import PortalModel
from tests.helpers import sim_config


class City(BaseModel):
    name: str
    population: int


def _ledger(tmp_path: Path) -> str:
    return f"jsonl:///{tmp_path}/ledger.jsonl"


def _calls(client: Any, tmp_path: Path) -> list[Any]:
    assert client.meter.ledger.flush(timeout=10)
    return [r for r in read_records(_ledger(tmp_path)) if r.kind == "call"]


# ------------------------------------------------------------------------------ Pydantic AI


def test_pydantic_ai_agent_text_tools_output_and_stream(tmp_path: Path) -> None:
    seen: list[str] = []

    async def main() -> dict[str, Any]:
        async with portal.AsyncClient(sim_config(), ledger=_ledger(tmp_path)) as client:
            model = PortalModel(client, feature="f", tenant="acme")
            agent = Agent(model, instructions="Answer briefly.")
            text = await agent.run("hello")

            @agent.tool_plain
            def get_weather(city: str) -> str:
                """Current weather in a city."""
                seen.append(city)
                return "sunny and 21C"

            tooled = await agent.run("weather in Paris?")
            typed = await Agent(model, output_type=City).run("the biggest city")
            async with agent.run_stream("and tomorrow?") as stream:
                pieces = [d async for d in stream.stream_text(delta=True)]
            return {
                "text": text,
                "tooled": tooled,
                "typed": typed,
                "streamed": "".join(pieces),
                "rows": _calls(client, tmp_path),
            }

    out = anyio.run(main)
    assert out["text"].output.startswith('About "')
    assert seen and "sunny and 21C" in out["tooled"].output  # the tool ran; its result went back
    assert isinstance(out["typed"].output, City)
    assert out["streamed"]
    rows = out["rows"]
    # 1 + 2 (tool call, then answer) + 1 + 2 (streamed: tool call, then answer)
    assert (
        len(rows) == 6
        and {r.feature for r in rows} == {"f"}
        and {r.tenant for r in rows} == {"acme"}
    )
    response = out["text"].all_messages()[-1]
    assert response.provider_details["target"] == "a:m1"
    assert response.usage.output_tokens > 0


def test_pydantic_ai_request_carries_instructions_tools_and_native_output() -> None:
    script = testing.Script(testing.output({"name": "Lagos", "population": 15000000}))
    cfg = {
        "providers": {"openai": {"api_key": "x"}},
        "features": {"geo": {"primary": "openai:gpt-4.1-mini"}},
    }

    async def main() -> Any:
        async with testing.async_client(cfg, {"openai": script}) as client:
            agent = Agent(
                PortalModel(client, feature="geo"), output_type=City, instructions="Be exact."
            )

            @agent.tool_plain
            def lookup(city: str) -> int:
                """Population of a city."""
                return 1

            return await agent.run("largest city in Africa?", model_settings={"temperature": 0.1})

    result = anyio.run(main)
    assert result.output == City(name="Lagos", population=15000000)
    sent = script.requests[0]
    assert sent.messages[0] == {"role": "system", "content": "Be exact."}
    assert sent.body["temperature"] == 0.1
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["lookup"]
    assert sent.body["response_format"]["type"] == "json_schema"


def test_pydantic_ai_tool_output_forces_a_tool_call() -> None:
    script = testing.Script(testing.tool_call("final_result", name="Oslo", population=700000))
    cfg = {
        "providers": {"openai": {"api_key": "x"}},
        "features": {"geo": {"primary": "openai:gpt-4.1-mini"}},
    }

    async def main() -> Any:
        async with testing.async_client(cfg, {"openai": script}) as client:
            return await Agent(
                PortalModel(client, feature="geo"), output_type=ToolOutput(City)
            ).run("x")

    assert anyio.run(main).output == City(name="Oslo", population=700000)
    assert script.requests[0].body["tool_choice"] == "required"


def test_pydantic_ai_model_needs_an_async_client_and_a_route() -> None:
    with (
        portal.Client(sim_config(), ledger=None) as sync_client,
        pytest.raises(UserError, match="AsyncClient"),
    ):
        PortalModel(sync_client, feature="f")  # type: ignore[arg-type]

    async def main() -> None:
        async with portal.AsyncClient(sim_config(), ledger=None) as client:
            with pytest.raises(UserError, match="feature="):
                PortalModel(client)
            with pytest.raises(portal.ConfigError, match="nope"):
                await Agent(PortalModel(client, feature="nope")).run("x")

    anyio.run(main)


# ------------------------------------------------------------------------------ LangChain


@lc_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "sunny and 21C"


def test_langchain_invoke_tools_structured_and_stream(tmp_path: Path) -> None:
    with portal.Client(sim_config(), ledger=_ledger(tmp_path)) as client:
        llm = ChatPortal(client=client, feature="f", portal_tags={"team": "x"})
        reply = llm.invoke([SystemMessage("be brief"), HumanMessage("hello")])
        assert isinstance(reply, AIMessage) and reply.content
        assert reply.response_metadata["portal"]["target"] == "a:m1"
        assert reply.usage_metadata["total_tokens"] > 0

        with_tools = llm.bind_tools([get_weather])
        asked = with_tools.invoke("weather in Paris?")
        call = asked.tool_calls[0]
        assert call["name"] == "get_weather" and "city" in call["args"]
        history = [
            HumanMessage("weather in Paris?"),
            asked,
            ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]),
        ]
        assert "sunny and 21C" in with_tools.invoke(history).content

        city = llm.with_structured_output(City).invoke("biggest city")
        assert isinstance(city, City)
        raw = llm.with_structured_output(City.model_json_schema(), include_raw=True).invoke("x")
        assert raw["parsing_error"] is None and set(raw["parsed"]) == {"name", "population"}
        forced = llm.with_structured_output(City, method="function_calling").invoke("x")
        assert isinstance(forced, City)

        merged = None
        for chunk in with_tools.stream("weather?"):
            merged = chunk if merged is None else merged + chunk
        assert merged.tool_calls[0]["name"] == "get_weather"
        assert merged.usage_metadata["output_tokens"] > 0
        rows = _calls(client, tmp_path)
    assert len(rows) == 7 and all(r.tags == {"team": "x"} for r in rows)


def test_langchain_sends_what_the_vendor_documents() -> None:
    script = testing.Script(testing.tool_call("get_weather", city="Oslo"), testing.text("Cold."))
    cfg = {
        "providers": {"openai": {"api_key": "x"}},
        "features": {"w": {"primary": "openai:gpt-4.1-mini"}},
    }
    with testing.client(cfg, {"openai": script}) as client:
        llm = ChatPortal(client=client, feature="w", temperature=0.3).bind_tools(
            [get_weather], tool_choice="any"
        )
        asked = llm.invoke("weather?")
        final = llm.invoke(
            [
                HumanMessage("weather?"),
                asked,
                ToolMessage("-5C", tool_call_id=asked.tool_calls[0]["id"]),
            ]
        )
    assert final.content == "Cold."
    first, second = script.requests
    assert first.body["tool_choice"] == "required" and first.body["temperature"] == 0.3
    assert second.messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second.messages[2] == {
        "role": "tool",
        "tool_call_id": asked.tool_calls[0]["id"],
        "content": "-5C",
    }


def test_langchain_async_and_bad_input() -> None:
    async def main() -> tuple[str, str]:
        async with portal.AsyncClient(sim_config(), ledger=None) as client:
            llm = ChatPortal(async_client=client, feature="f")
            reply = await llm.ainvoke("hi")
            streamed = "".join([c.content async for c in llm.astream("hi")])
            with pytest.raises(portal.ConfigError, match=r"client=portal\.Client"):
                llm.invoke("sync needs a sync client")
            return str(reply.content), streamed

    text, streamed = anyio.run(main)
    assert text and streamed
    with pytest.raises(portal.ConfigError, match="client="):
        ChatPortal(feature="f")
    with portal.Client(sim_config(), ledger=None) as client:
        llm = ChatPortal(client=client, feature="f")
        with pytest.raises(portal.ContractError, match=r"messages\[0\].content\[0\]: 'audio'"):
            llm.invoke([HumanMessage(content=[{"type": "audio", "base64": "AA=="}])])
        with pytest.raises(portal.ContractError, match="tool_choice"):
            llm.bind_tools([get_weather], tool_choice=3).invoke("x")  # type: ignore[arg-type]
        with pytest.raises(portal.ContractError, match="unknown argument"):
            llm.invoke("x", logprobs=True)
