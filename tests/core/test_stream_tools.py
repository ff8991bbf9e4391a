"""The tool loop while streaming: each model turn streams as it comes, the tools run between
turns (a `tool_result` event each), and one final `done` carries the whole exchange."""

from __future__ import annotations

import anyio
import pytest

import portal
from portal import testing

CONFIG = {
    "providers": {"openai": {"api_key": "sk-test-not-used"}},
    "features": {"support.answer": {"primary": "openai:gpt-5.4-mini"}},
}


@portal.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order by its id."""
    return {"order_id": order_id, "status": "shipped"}


def test_a_stream_runs_the_tool_loop_and_ends_with_one_done() -> None:
    script = testing.Script(
        testing.tool_call("lookup_order", order_id="123"),
        "Order 123 has shipped.",
    )
    with testing.client(CONFIG, {"openai": script}) as client:
        events = list(
            client.stream(
                feature="support.answer",
                messages=[portal.user("Where is order 123?")],
                tools=[lookup_order],
            )
        )
        calls = sum(s.calls for s in client.meter.summary.values())
    kinds = [e.type for e in events if e.type != "usage"]
    assert kinds == ["tool_call", "tool_result", "text", "text", "text", "text", "done"]
    result = next(e for e in events if e.type == "tool_result")
    assert result.tool_call is not None and result.tool_call.name == "lookup_order"
    assert '"status": "shipped"' in result.text
    text = "".join(e.text for e in events if e.type == "text")
    final = events[-1].response
    assert final is not None and final.text == text == "Order 123 has shipped."
    assert [m.role for m in final.messages] == ["user", "assistant", "tool", "assistant"]
    assert len(final.attempts) == 2 and calls == 2  # each turn is metered as its own call
    assert final.usage.input_tokens == sum(
        (e.usage.input_tokens if e.usage else 0) for e in events if e.type == "usage"
    )
    assert script.requests[1].messages[-1]["role"] == "tool"
    script.assert_done()


def test_async_stream_runs_parallel_calls_and_sends_errors_back() -> None:
    script = testing.Script(
        testing.tool_calls(("lookup_order", {"order_id": "1"}), ("lookup_order", {"nope": 2})),
        "Order 1 shipped; I need the other order's id.",
    )

    async def main() -> list[portal.StreamEvent]:
        async with testing.async_client(CONFIG, {"openai": script}) as client:
            return [
                e
                async for e in client.stream(
                    feature="support.answer",
                    messages=[portal.user("orders 1 and 2?")],
                    tools=[lookup_order],
                )
            ]

    events = anyio.run(main)
    results = [e for e in events if e.type == "tool_result"]
    assert [r.tool_call.arguments for r in results if r.tool_call] == [
        {"order_id": "1"},
        {"nope": 2},
    ]
    assert '"shipped"' in results[0].text
    assert results[1].text.startswith("error: invalid arguments")
    sent = script.requests[1].messages[-2:]
    assert [m["role"] for m in sent] == ["tool", "tool"]
    assert events[-1].type == "done"


def test_run_tools_false_streams_the_calls_and_stops() -> None:
    script = testing.Script(testing.tool_call("lookup_order", order_id="9"))
    with testing.client(CONFIG, {"openai": script}) as client:
        events = list(
            client.stream(
                feature="support.answer",
                messages=[portal.user("order 9")],
                tools=[lookup_order],
                run_tools=False,
            )
        )
    assert [e.type for e in events if e.type != "usage"] == ["tool_call", "done"]
    final = events[-1].response
    assert final is not None and final.finish_reason == "tool_calls"
    assert len(script.requests) == 1


def test_a_streamed_loop_stops_at_max_steps() -> None:
    script = testing.Script(respond=lambda seen: testing.tool_call("lookup_order", order_id="1"))
    with testing.client(CONFIG, {"openai": script}) as client:
        seen: list[str] = []
        with pytest.raises(portal.ToolLoopExceeded, match="max_steps=2") as info:
            for event in client.stream(
                feature="support.answer",
                messages=[portal.user("x")],
                tools=[lookup_order],
                max_steps=2,
            ):
                seen.append(event.type)
    roles = [m.role for m in info.value.transcript]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert seen.count("tool_result") == 2 and "done" not in seen
