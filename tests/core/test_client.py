"""Behaviour of both clients on the simulated provider and on scripted transports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

import portal
from tests.helpers import BothClients, sim_config


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(mode: str) -> Iterator[Any]:
    made: list[BothClients] = []

    def factory(config: Any = None, **kw: Any) -> BothClients:
        c = BothClients(mode, config if config is not None else sim_config(), **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


class Answer(BaseModel):
    answer: str
    order_id: str


def _completion(
    content: str | None, tool_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def scripted(replies: list[tuple[int, Any]], seen: list[dict[str, Any]]) -> httpx2.MockTransport:
    """A vendor that answers each request with the next (status, JSON body) and records the
    requests' JSON bodies."""
    queue = list(replies)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        status, body = queue.pop(0)
        return httpx2.Response(status, json=body, headers={"x-request-id": f"req-{len(seen)}"})

    return httpx2.MockTransport(handler)


OPENAI_LIKE = {
    "portal": {"ledger": "none"},
    "providers": {
        "p": {"kind": "openai", "api_key": "sk-test-primary", "base_url": "http://p.test/v1"},
        "q": {"kind": "openai", "api_key": "sk-test-secondary", "base_url": "http://q.test/v1"},
    },
    "features": {"f": {"primary": "p:gpt-x", "fallbacks": ["q:gpt-y"], "retry": {"attempts": 1}}},
}


def test_chat_by_model_returns_normalized_response(make: Any) -> None:
    client = make()
    resp = client.chat(model="a:m1", messages=[portal.user("Where is my order 123?")])
    assert resp.text.startswith('About "Where is my order 123?"')
    assert resp.target == "a:m1"
    assert resp.arm == "baseline"
    assert resp.finish_reason == "stop"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert [a.outcome for a in resp.attempts] == ["ok"]
    assert resp.latency_ms >= 0


def test_plain_dict_messages_are_accepted(make: Any) -> None:
    resp = make().chat(model="a:m1", messages=[{"role": "user", "content": "hi"}])
    assert resp.text


def test_failover_to_secondary_when_primary_fails(make: Any) -> None:
    cfg = sim_config(f={"primary": "a:m1", "fallbacks": ["b:m2"], "retry": {"attempts": 2}})
    cfg["providers"]["a"]["options"]["error_rates"] = {"server_error": 1.0}
    resp = make(cfg).chat(feature="f", messages=[portal.user("hi")])
    assert resp.target == "b:m2"
    assert [(a.target, a.outcome, a.error) for a in resp.attempts] == [
        ("a:m1", "error", "ServerError"),
        ("a:m1", "error", "ServerError"),
        ("b:m2", "ok", None),
    ]


def test_all_targets_failed_lists_each_error(make: Any) -> None:
    cfg = sim_config(f={"primary": "a:m1", "fallbacks": ["b:m2"], "retry": {"attempts": 1}})
    cfg["providers"]["a"]["options"]["error_rates"] = {"server_error": 1.0}
    cfg["providers"]["b"]["options"]["error_rates"] = {"overloaded": 1.0}
    with pytest.raises(portal.AllTargetsFailed) as info:
        make(cfg).chat(feature="f", messages=[portal.user("hi")])
    kinds = [type(e) for e in info.value.exceptions]
    assert kinds == [portal.ServerError, portal.Overloaded]
    assert isinstance(info.value, ExceptionGroup)
    assert "a:m1" in str(info.value) and "b:m2" in str(info.value)


def test_bad_request_is_raised_without_failover(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    err = {"error": {"message": "bad param 'x'", "type": "invalid_request_error", "code": None}}
    transport = scripted([(400, err)], seen)
    client = make(OPENAI_LIKE, transports={"p": transport, "q": transport})
    with pytest.raises(portal.BadRequest) as info:
        client.chat(feature="f", messages=[portal.user("hi")])
    assert len(seen) == 1
    assert info.value.status == 400 and info.value.request_id == "req-1"
    assert "sk-test" not in str(info.value)


def test_structured_output_is_parsed_into_the_model(make: Any) -> None:
    resp = make().chat(model="a:m1", messages=[portal.user("Where is order 55?")], output=Answer)
    assert isinstance(resp.output, Answer)
    assert resp.output.order_id == "55"
    assert Answer.model_validate_json(resp.text) == resp.output


def test_invalid_structured_output_is_repaired_once(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    replies = [
        (200, _completion('{"answer": "hi"}')),
        (200, _completion('{"answer": "hi", "order_id": "7"}')),
    ]
    client = make(OPENAI_LIKE, transports={"p": scripted(replies, seen)})
    resp = client.chat(feature="f", messages=[portal.user("order 7?")], output=Answer)
    assert resp.output == Answer(answer="hi", order_id="7")
    assert [a.outcome for a in resp.attempts] == ["invalid_output", "ok"]
    feedback = seen[1]["messages"][-1]["content"]
    assert "did not match the required JSON schema" in feedback and "order_id" in feedback
    assert seen[0]["response_format"]["type"] == "json_schema"


def test_output_invalid_twice_raises_contract_error_with_details(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    replies = [(200, _completion('{"answer": 1}')), (200, _completion("not json"))]
    client = make(OPENAI_LIKE, transports={"p": scripted(replies, seen)})
    with pytest.raises(portal.ContractError) as info:
        client.chat(feature="f", messages=[portal.user("x")], output=Answer)
    assert str(info.value).startswith("p:gpt-x: reply failed the output contract twice:")
    assert "not valid JSON" in str(info.value)


def test_tool_loop_runs_the_function_and_returns_final_answer(make: Any) -> None:
    ran: list[str] = []

    def lookup_order(order_id: str) -> dict[str, str]:
        """Find an order.

        Args:
            order_id: the order number
        """
        ran.append(order_id)
        return {"status": "shipped"}

    resp = make().chat(
        model="a:m1", messages=[portal.user("Where is order 42?")], tools=[lookup_order]
    )
    assert ran == ["42"]
    roles = [m.role for m in resp.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert "shipped" in resp.text
    assert len(resp.attempts) == 2


def test_tool_errors_go_back_to_the_model(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    call = {"id": "call_1", "type": "function", "function": {"name": "boom", "arguments": "{}"}}
    replies = [(200, _completion(None, [call])), (200, _completion("sorry, it failed"))]

    def boom() -> str:
        raise ValueError("database down")

    client = make(OPENAI_LIKE, transports={"p": scripted(replies, seen)})
    resp = client.chat(feature="f", messages=[portal.user("x")], tools=[boom])
    tool_msg = seen[1]["messages"][-1]
    assert tool_msg == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "error: ValueError: database down",
    }
    assert resp.text == "sorry, it failed"


def test_invalid_tool_arguments_are_returned_as_correctable_errors(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    bad = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": "x"}'}}
    good = {"id": "c2", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    replies = [
        (200, _completion(None, [bad])),
        (200, _completion(None, [good])),
        (200, _completion("3")),
    ]

    def add(a: int) -> int:
        return a + 1

    client = make(OPENAI_LIKE, transports={"p": scripted(replies, seen)})
    resp = client.chat(feature="f", messages=[portal.user("x")], tools=[add])
    assert "invalid arguments" in seen[1]["messages"][-1]["content"]
    assert seen[2]["messages"][-1]["content"] == "3"
    assert resp.text == "3"


def test_tool_loop_stops_at_max_steps(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    call = {"id": "c", "type": "function", "function": {"name": "ping", "arguments": "{}"}}
    client = make(
        OPENAI_LIKE, transports={"p": scripted([(200, _completion(None, [call]))] * 2, seen)}
    )

    def ping() -> str:
        return "pong"

    with pytest.raises(portal.ToolLoopExceeded) as info:
        client.chat(feature="f", messages=[portal.user("x")], tools=[ping], max_steps=2)
    assert "max_steps=2" in str(info.value)
    roles = [m.role for m in info.value.transcript]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert len(seen) == 2


def test_run_tools_false_returns_tool_calls(make: Any) -> None:
    def lookup_order(order_id: str) -> str:
        raise AssertionError("must not run")

    resp = make().chat(
        model="a:m1", messages=[portal.user("order 9")], tools=[lookup_order], run_tools=False
    )
    assert resp.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [("lookup_order", {"order_id": "9"})]


def test_stream_yields_text_then_done_with_the_same_response(make: Any) -> None:
    events = make().stream(model="a:m1", messages=[portal.user("hello there")])
    types = [e.type for e in events]
    assert types[-1] == "done"
    assert "usage" in types
    text = "".join(e.text for e in events if e.type == "text")
    final = events[-1].response
    assert final is not None and final.text == text
    assert final.ttft_ms is not None and final.target == "a:m1"
    assert final.usage.output_tokens > 0


def test_stream_emits_complete_tool_calls(make: Any) -> None:
    def lookup_order(order_id: str) -> str:
        return "x"

    events = make().stream(model="a:m1", messages=[portal.user("order 31")], tools=[lookup_order])
    calls = [e.tool_call for e in events if e.type == "tool_call"]
    assert [(c.name, c.arguments) for c in calls if c] == [("lookup_order", {"order_id": "31"})]


def test_stream_cut_before_text_fails_over_transparently(make: Any) -> None:
    cfg = sim_config(f={"primary": "a:m1", "fallbacks": ["b:m2"], "retry": {"attempts": 1}})
    cfg["providers"]["a"]["options"].update(error_rates={"stream_cut": 1.0}, cut_after_chunks=0)
    events = make(cfg).stream(feature="f", messages=[portal.user("hi")])
    final = events[-1].response
    assert final is not None and final.target == "b:m2"
    assert [a.error for a in final.attempts] == ["StreamInterrupted", None]


def test_stream_cut_after_text_raises_with_partial_text(make: Any) -> None:
    cfg = sim_config(f={"primary": "a:m1", "fallbacks": ["b:m2"]})
    cfg["providers"]["a"]["options"].update(error_rates={"stream_cut": 1.0}, cut_after_chunks=3)
    with pytest.raises(portal.StreamInterrupted) as info:
        make(cfg).stream(feature="f", messages=[portal.user("hi")])
    delivered = "".join(e.text for e in info.value.events_before if e.type == "text")  # type: ignore[attr-defined]
    assert delivered and info.value.partial_text == delivered


def test_embed_returns_one_vector_per_input(make: Any) -> None:
    resp = make().embed(model="a:emb", inputs=["refund policy", "shipping times"])
    assert len(resp.vectors) == 2 and len(resp.vectors[0]) == 64
    assert resp.usage.input_tokens > 0 and resp.target == "a:emb"


def test_canary_arm_is_sticky_per_key(make: Any) -> None:
    cfg = sim_config(f={"primary": "a:m1", "canary": {"target": "c:m3", "percent": 50}})
    client = make(cfg)
    first = {
        k: client.chat(feature="f", messages=[portal.user("x")], key=k)
        for k in ("u1", "u2", "u3", "u4", "u5", "u6")
    }
    again = {k: client.chat(feature="f", messages=[portal.user("x")], key=k) for k in first}
    assert {k: r.arm for k, r in first.items()} == {k: r.arm for k, r in again.items()}
    for r in first.values():
        assert r.target == ("c:m3" if r.arm == "canary" else "a:m1")
    assert {r.arm for r in first.values()} == {"baseline", "canary"}


def test_unknown_feature_names_a_close_match(make: Any) -> None:
    with pytest.raises(portal.ConfigError) as info:
        make().chat(feature="g", messages=[portal.user("x")])
    assert str(info.value) == "unknown feature 'g' (features: f)"


def test_cost_is_summed_over_attempts_and_none_for_unknown_prices(make: Any) -> None:
    cfg = sim_config(f={"primary": "a:sim-small"})
    resp = make(cfg).chat(feature="f", messages=[portal.user("x")])
    assert resp.cost_usd is not None and resp.cost_usd > 0
    assert resp.cost_usd == pytest.approx(sum(a.cost_usd or 0 for a in resp.attempts))


def test_api_key_never_appears_in_errors_or_reprs(make: Any) -> None:
    seen: list[dict[str, Any]] = []
    err = {
        "error": {
            "message": "Incorrect API key provided",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    client = make(OPENAI_LIKE, transports={"p": scripted([(401, err)], seen)})
    with pytest.raises(portal.AuthenticationError) as info:
        client.chat(feature="f", messages=[portal.user("x")])
    text = repr(info.value) + str(info.value) + repr(client.client.config)
    assert "sk-test" not in text


def test_public_routing_view_shows_breakers_canary_and_explanation() -> None:
    cfg = sim_config(
        f={
            "primary": "a:m1",
            "fallbacks": ["b:m2"],
            "retry": {"attempts": 1},
            "canary": {"target": "c:m3", "percent": 10},
        }
    )
    cfg["providers"]["a"]["options"]["error_rates"] = {"server_error": 1.0}
    cfg["providers"]["a"]["breaker"] = {"consecutive_failures": 2, "cooldown_s": 60}
    with portal.Client(cfg, ledger=None) as client:
        assert client.breaker_state("a:m1") == "closed"
        for i in range(3):
            client.chat(feature="f", messages=[portal.user("x")], key=f"baseline-{i}")
        assert client.breaker_state("a:m1") == "open"
        status = client.canary_status("f")
        assert status["target"] == "c:m3" and status["percent"] == 10
        text = client.explain("f", key="u1")
        assert "a:m1" in text and "b:m2" in text
        with pytest.raises(portal.ConfigError):
            client.canary_status("nope")


def test_tls_off_for_one_provider_never_turns_it_off_for_another() -> None:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "safe": {"kind": "openai", "api_key": "k1", "base_url": "https://safe.test/v1"},
            "lab": {
                "kind": "openai",
                "api_key": "k2",
                "base_url": "https://lab.test/v1",
                "verify_tls": False,
            },
            "other": {"kind": "openai", "api_key": "k3", "base_url": "https://other.test/v1"},
        },
    }
    with pytest.warns(UserWarning, match="lab"):
        client = portal.Client(cfg)
    with client, pytest.warns(UserWarning):
        lab = client._http("lab")
    assert client._http("safe") is client._http("other")
    assert client._http("safe") is not lab


def test_gzip_compressed_streams_are_decoded(make: Any) -> None:
    import gzip

    chunks = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "hello "}, "finish_reason": None}],
        },
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "world"}, "finish_reason": "stop"}],
        },
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=gzip.compress(body.encode()),
            headers={"content-type": "text/event-stream", "content-encoding": "gzip"},
        )

    client = make(OPENAI_LIKE, transports={"p": httpx2.MockTransport(handler)})
    events = client.stream(feature="f", messages=[portal.user("x")])
    assert "".join(e.text for e in events if e.type == "text") == "hello world"
