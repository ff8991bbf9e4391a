"""One tool conversation, five wire formats: the model asks for ``lookup_order``, portal runs
it, the model answers. Each vendor is a `httpx2.MockTransport` that replies in its own
documented wire format; the assertions check the tool ran once with the right arguments and
that the follow-up request carries the tool's result the way that vendor expects it."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx2
import pytest

import portal
from tests.helpers import BothClients

ORDER = {"order_id": "123", "status": "shipped", "carrier": "ACME Post"}


# ----------------------------------------------------------------------------- vendor replies
# (shapes written from each vendor's API reference)


def _openai(calls: list[tuple[str, str, dict[str, Any]]] | None, text: str | None) -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for cid, n, a in calls
        ]
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "created": 1750000000,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
    }


def _anthropic(calls: list[tuple[str, str, dict[str, Any]]] | None, text: str | None) -> Any:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": cid, "name": n, "input": a} for cid, n, a in calls or []]
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 12},
    }


def _gemini(calls: list[tuple[str, str, dict[str, Any]]] | None, text: str | None) -> Any:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [{"functionCall": {"name": n, "args": a}} for _cid, n, a in calls or []]
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": 50,
            "candidatesTokenCount": 12,
            "totalTokenCount": 62,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }


def _bedrock(calls: list[tuple[str, str, dict[str, Any]]] | None, text: str | None) -> Any:
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    content += [{"toolUse": {"toolUseId": cid, "name": n, "input": a}} for cid, n, a in calls or []]
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if calls else "end_turn",
        "usage": {"inputTokens": 50, "outputTokens": 12, "totalTokens": 62},
        "metrics": {"latencyMs": 120},
    }


def _cohere(calls: list[tuple[str, str, dict[str, Any]]] | None, text: str | None) -> Any:
    message: dict[str, Any] = {"role": "assistant"}
    if calls:
        message["tool_plan"] = "I will look the order up."
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for cid, n, a in calls
        ]
    else:
        message["content"] = [{"type": "text", "text": text}]
    return {
        "id": "c0ffee00-0000-4000-8000-000000000001",
        "message": message,
        "finish_reason": "TOOL_CALL" if calls else "COMPLETE",
        "usage": {
            "billed_units": {"input_tokens": 50, "output_tokens": 12},
            "tokens": {"input_tokens": 60, "output_tokens": 12},
        },
    }


# ----------------------------------------------------------------------------- tool results
# what the follow-up request must carry, per vendor: (call id, result dict, is_error)


def _result_openai(body: dict[str, Any]) -> tuple[str, Any, bool]:
    last = body["messages"][-1]
    assert last["role"] == "tool"
    assert body["messages"][-2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    return last["tool_call_id"], last["content"], False


def _result_anthropic(body: dict[str, Any]) -> tuple[str, Any, bool]:
    last = body["messages"][-1]
    assert last["role"] == "user"
    block = last["content"][0]
    assert block["type"] == "tool_result"
    assistant = body["messages"][-2]["content"]
    assert any(b["type"] == "tool_use" and b["id"] == block["tool_use_id"] for b in assistant)
    return block["tool_use_id"], block["content"], bool(block.get("is_error"))


def _result_gemini(body: dict[str, Any]) -> tuple[str, Any, bool]:
    last = body["contents"][-1]
    assert last["role"] in ("user", "function")
    fr = last["parts"][0]["functionResponse"]
    assert body["contents"][-2]["parts"][-1]["functionCall"]["name"] == "lookup_order"
    is_error = "error" in fr["response"] and len(fr["response"]) == 1
    return fr["name"], fr["response"], is_error


def _result_bedrock(body: dict[str, Any]) -> tuple[str, Any, bool]:
    last = body["messages"][-1]
    assert last["role"] == "user"
    res = last["content"][0]["toolResult"]
    block = res["content"][0]
    value = block["json"] if "json" in block else block["text"]
    return res["toolUseId"], value, res.get("status") == "error"


def _result_cohere(body: dict[str, Any]) -> tuple[str, Any, bool]:
    last = body["messages"][-1]
    assert last["role"] == "tool"
    item = last["content"][0]
    value = item["document"]["data"] if item["type"] == "document" else item["text"]
    return last["tool_call_id"], value, False


def _as_obj(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


VENDORS: dict[str, dict[str, Any]] = {
    "openai": {
        "provider": {"kind": "openai", "api_key": "sk-test", "base_url": "http://v.test/v1"},
        "model": "gpt-4.1-mini",
        "reply": _openai,
        "call_id": "call_Qx1",
        "result": _result_openai,
    },
    "anthropic": {
        "provider": {"kind": "anthropic", "api_key": "sk-ant-test", "base_url": "http://v.test"},
        "model": "claude-haiku-4-5",
        "reply": _anthropic,
        "call_id": "toolu_01Qx1",
        "result": _result_anthropic,
    },
    "gemini": {
        "provider": {"kind": "gemini", "api_key": "g-test", "base_url": "http://v.test"},
        "model": "gemini-2.5-flash",
        "reply": _gemini,
        "call_id": "lookup_order",  # Gemini ties results to calls by function name
        "result": _result_gemini,
    },
    "bedrock": {
        "provider": {
            "kind": "bedrock",
            "base_url": "https://bedrock-runtime.us-east-1.amazonaws.com",
            "options": {
                "region_name": "us-east-1",
                "access_key_id": "AKIDEXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            },
        },
        "model": "anthropic.claude-3-5-haiku-20241022-v1:0",
        "reply": _bedrock,
        "call_id": "tooluse_Qx1",
        "result": _result_bedrock,
    },
    "cohere": {
        "provider": {"kind": "cohere", "api_key": "co-test", "base_url": "http://v.test"},
        "model": "command-a-03-2025",
        "reply": _cohere,
        "call_id": "lookup_order_q1",
        "result": _result_cohere,
    },
}


def _config(kind: str) -> dict[str, Any]:
    v = VENDORS[kind]
    return {
        "portal": {"ledger": "none"},
        "providers": {"v": v["provider"]},
        "features": {"orders": {"primary": f"v:{v['model']}", "retry": {"attempts": 1}}},
    }


def _transport(replies: list[Any], seen: list[dict[str, Any]]) -> httpx2.MockTransport:
    queue = list(replies)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json=queue.pop(0))

    return httpx2.MockTransport(handler)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clients(mode: str) -> Iterator[Callable[..., BothClients]]:
    made: list[BothClients] = []

    def factory(config: Any, **kw: Any) -> BothClients:
        c = BothClients(mode, config, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


# ----------------------------------------------------------------------------- the same loop


@pytest.mark.parametrize("kind", sorted(VENDORS))
def test_same_tool_conversation_on_every_vendor(kind: str, clients: Any) -> None:
    v = VENDORS[kind]
    ran: list[dict[str, Any]] = []

    def lookup_order(order_id: str) -> dict[str, str]:
        """Find an order by its id.

        Args:
            order_id: the order number the customer gave
        """
        ran.append({"order_id": order_id})
        return ORDER

    seen: list[dict[str, Any]] = []
    replies = [
        v["reply"]([(v["call_id"], "lookup_order", {"order_id": "123"})], None),
        v["reply"](None, "Order 123 has shipped with ACME Post."),
    ]
    client = clients(_config(kind), transports={"v": _transport(replies, seen)})
    resp = client.chat(
        feature="orders",
        messages=[portal.user("Where is my order 123?")],
        tools=[lookup_order],
    )
    assert ran == [{"order_id": "123"}]
    assert resp.text == "Order 123 has shipped with ACME Post."
    assert len(seen) == 2 and len(resp.attempts) == 2
    call_ref, result, is_error = v["result"](seen[1])
    assert call_ref == v["call_id"]
    assert _as_obj(result) == ORDER
    assert not is_error
    # the transcript is vendor-neutral: user, assistant(tool call), tool, assistant
    assert [m.role for m in resp.messages] == ["user", "assistant", "tool", "assistant"]
    assert resp.usage.input_tokens >= 100  # both steps metered


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_a_tool_that_raises_goes_back_to_the_model_as_an_error(kind: str, clients: Any) -> None:
    v = VENDORS[kind]

    def lookup_order(order_id: str) -> dict[str, str]:
        raise LookupError(f"no order {order_id}")

    seen: list[dict[str, Any]] = []
    replies = [
        v["reply"]([(v["call_id"], "lookup_order", {"order_id": "999"})], None),
        v["reply"](None, "I could not find order 999."),
    ]
    client = clients(_config(kind), transports={"v": _transport(replies, seen)})
    resp = client.chat(
        feature="orders", messages=[portal.user("Where is 999?")], tools=[lookup_order]
    )
    assert resp.text == "I could not find order 999."
    _ref, result, is_error = v["result"](seen[1])
    assert "LookupError" in json.dumps(result) and "no order 999" in json.dumps(result)
    if kind != "openai":  # OpenAI's chat wire format has no error flag on tool messages
        assert is_error


def test_run_tools_false_returns_the_calls_without_running_them(clients: Any) -> None:
    v = VENDORS["anthropic"]
    ran: list[str] = []

    def lookup_order(order_id: str) -> str:
        ran.append(order_id)
        return "shipped"

    seen: list[dict[str, Any]] = []
    replies = [v["reply"]([(v["call_id"], "lookup_order", {"order_id": "123"})], None)]
    client = clients(_config("anthropic"), transports={"v": _transport(replies, seen)})
    resp = client.chat(
        feature="orders",
        messages=[portal.user("Where is 123?")],
        tools=[lookup_order],
        run_tools=False,
    )
    assert ran == [] and len(seen) == 1
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order", {"order_id": "123"})
    ]
    assert resp.finish_reason == "tool_calls"
    # the caller continues the conversation itself, with a vendor-neutral tool result
    follow = [portal.user("Where is 123?"), resp.to_message()] + [
        portal.tool_result(c.id, "shipped", name=c.name) for c in resp.tool_calls
    ]
    seen2: list[dict[str, Any]] = []
    client2 = clients(
        _config("anthropic"), transports={"v": _transport([v["reply"](None, "Shipped.")], seen2)}
    )
    assert client2.chat(feature="orders", messages=follow).text == "Shipped."
    assert seen2[0]["messages"][-1]["content"][0]["tool_use_id"] == v["call_id"]


# ----------------------------------------------------------------------------- concurrency


def _async_config() -> tuple[dict[str, Any], list[dict[str, Any]], httpx2.MockTransport]:
    seen: list[dict[str, Any]] = []
    calls = [
        ("call_a", "slow_lookup", {"order_id": "1"}),
        ("call_b", "slow_lookup", {"order_id": "2"}),
    ]
    replies = [_openai(calls, None), _openai(None, "Both shipped.")]
    return _config("openai"), seen, _transport(replies, seen)


@pytest.mark.anyio
async def test_parallel_tool_calls_run_concurrently_on_async_client() -> None:
    events: list[tuple[str, str, float]] = []

    async def slow_lookup(order_id: str) -> str:
        """Slow order lookup.

        Args:
            order_id: the order
        """
        events.append(("start", order_id, time.perf_counter()))
        await anyio.sleep(0.2)
        events.append(("end", order_id, time.perf_counter()))
        return f"order {order_id} shipped"

    config, seen, transport = _async_config()
    async with portal.AsyncClient(config, transports={"v": transport}, ledger=None) as client:
        t0 = time.perf_counter()
        with anyio.fail_after(5):
            resp = await client.chat(
                feature="orders", messages=[portal.user("Where are 1 and 2?")], tools=[slow_lookup]
            )
        elapsed = time.perf_counter() - t0
    assert resp.text == "Both shipped."
    starts = [t for kind, _o, t in events if kind == "start"]
    ends = [t for kind, _o, t in events if kind == "end"]
    assert len(starts) == 2 and max(starts) < min(ends)  # both started before either ended
    assert elapsed < 0.38, f"two 0.2s tools took {elapsed:.2f}s: not concurrent"
    results = {m["tool_call_id"]: m["content"] for m in seen[1]["messages"] if m["role"] == "tool"}
    assert results == {"call_a": "order 1 shipped", "call_b": "order 2 shipped"}


@pytest.mark.anyio
async def test_a_tool_that_times_out_goes_back_as_an_error() -> None:
    async def slow_lookup(order_id: str) -> str:
        if order_id == "1":
            await anyio.sleep(5)
        return f"order {order_id} shipped"

    config, seen, transport = _async_config()
    async with portal.AsyncClient(config, transports={"v": transport}, ledger=None) as client:
        t0 = time.perf_counter()
        with anyio.fail_after(3):
            resp = await client.chat(
                feature="orders",
                messages=[portal.user("Where are 1 and 2?")],
                tools=[slow_lookup],
                tool_timeout_s=0.1,
            )
        assert time.perf_counter() - t0 < 1.0
    assert resp.text == "Both shipped."
    results = {m["tool_call_id"]: m["content"] for m in seen[1]["messages"] if m["role"] == "tool"}
    assert "took longer than 0.1s" in results["call_a"] and results["call_a"].startswith("error")
    assert results["call_b"] == "order 2 shipped"


# ----------------------------------------------------------------------------- repeated ids


def _paired_results(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """call id -> (arguments, result) pairs of the follow-up request, per vendor shape."""
    msgs = body["messages"]
    if kind == "openai":
        calls = {c["id"]: json.loads(c["function"]["arguments"]) for c in msgs[-3]["tool_calls"]}
        results = {m["tool_call_id"]: m["content"] for m in msgs[-2:]}
    elif kind == "anthropic":
        calls = {b["id"]: b["input"] for b in msgs[-2]["content"] if b["type"] == "tool_use"}
        results = {b["tool_use_id"]: b["content"] for b in msgs[-1]["content"]}
    else:  # bedrock
        calls = {
            b["toolUse"]["toolUseId"]: b["toolUse"]["input"]
            for b in msgs[-2]["content"]
            if "toolUse" in b
        }
        results = {
            b["toolResult"]["toolUseId"]: b["toolResult"]["content"][0]["text"]
            for b in msgs[-1]["content"]
        }
    assert len(calls) == 2 and set(calls) == set(results)
    return {cid: (calls[cid], results[cid]) for cid in calls}


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_two_calls_under_one_id_each_get_their_own_result(kind: str, clients: Any) -> None:
    v = VENDORS[kind]
    cid = v["call_id"]

    def lookup_order(order_id: str) -> str:
        return f"order {order_id} shipped"

    seen: list[dict[str, Any]] = []
    replies = [
        v["reply"](
            [(cid, "lookup_order", {"order_id": "1"}), (cid, "lookup_order", {"order_id": "2"})],
            None,
        ),
        v["reply"](None, "Both shipped."),
    ]
    client = clients(_config(kind), transports={"v": _transport(replies, seen)})
    resp = client.chat(
        feature="orders", messages=[portal.user("Where are 1 and 2?")], tools=[lookup_order]
    )
    assert resp.text == "Both shipped."
    pairs = _paired_results(kind, seen[1])
    assert sorted(pairs) == sorted([cid, f"{cid}_2"])  # the repeat got an id of its own
    for args, result in pairs.values():
        assert result == f"order {args['order_id']} shipped"  # each call, its own result
    assert {p[1] for p in pairs.values()} == {"order 1 shipped", "order 2 shipped"}


def test_distinct_call_ids_never_reuses_an_id_of_the_turn() -> None:
    from portal.contracts.messages import ToolCall, distinct_call_ids

    calls = [ToolCall("a", "t"), ToolCall("a", "t"), ToolCall("a_2", "t"), ToolCall("", "t")]
    calls.append(ToolCall("", "t"))
    ids = [c.id for c in distinct_call_ids(calls)]
    assert ids == ["a", "a_3", "a_2", "", "call_2"]
    unique = [ToolCall("x", "t"), ToolCall("y", "t")]
    assert distinct_call_ids(unique) is unique  # nothing to do: the same list


def _hanging_sync_tool(release: threading.Event) -> Any:
    def slow_lookup(order_id: str) -> str:
        """Order lookup that hangs for order 1.

        Args:
            order_id: the order
        """
        if order_id == "1":
            release.wait(10)
        return f"order {order_id} shipped"

    return slow_lookup


def test_a_hanging_sync_tool_is_bounded_by_tool_timeout_on_the_sync_client() -> None:
    release = threading.Event()
    config, seen, transport = _async_config()
    try:
        with portal.Client(config, transports={"v": transport}, ledger=None) as client:
            t0 = time.perf_counter()
            resp = client.chat(
                feature="orders",
                messages=[portal.user("Where are 1 and 2?")],
                tools=[_hanging_sync_tool(release)],
                tool_timeout_s=0.2,
            )
            elapsed = time.perf_counter() - t0
    finally:
        release.set()
    assert elapsed < 1.5, f"a hanging tool held the call for {elapsed:.2f}s"
    assert resp.text == "Both shipped."
    results = {m["tool_call_id"]: m["content"] for m in seen[1]["messages"] if m["role"] == "tool"}
    assert "took longer than 0.2s" in results["call_a"] and results["call_a"].startswith("error")
    assert results["call_b"] == "order 2 shipped"


@pytest.mark.anyio
async def test_a_hanging_sync_tool_never_blocks_the_event_loop_or_the_callers_timeout() -> None:
    release = threading.Event()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await anyio.sleep(0.02)

    config, _seen, transport = _async_config()
    try:
        async with portal.AsyncClient(config, transports={"v": transport}, ledger=None) as client:
            t0 = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                with anyio.move_on_after(0.3):  # the caller gives up first
                    await client.chat(
                        feature="orders",
                        messages=[portal.user("Where are 1 and 2?")],
                        tools=[_hanging_sync_tool(release)],
                        tool_timeout_s=30,
                    )
                tg.cancel_scope.cancel()
            elapsed = time.perf_counter() - t0
    finally:
        release.set()
    assert elapsed < 1.5, f"the caller's timeout got control back after {elapsed:.2f}s"
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert gaps and max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.2f}s"


def test_an_async_tool_on_the_sync_client_is_the_callers_error() -> None:
    async def slow_lookup(order_id: str) -> str:
        """Order lookup.

        Args:
            order_id: the order
        """
        return order_id

    config, seen, transport = _async_config()
    with (
        portal.Client(config, transports={"v": transport}, ledger=None) as client,
        pytest.raises(portal.ConfigError, match=r"tool 'slow_lookup' is async.*AsyncClient"),
    ):
        client.chat(
            feature="orders",
            messages=[portal.user("Where are 1 and 2?")],
            tools=[slow_lookup],
        )
    assert len(seen) == 1  # the model was never told about the app's mistake
