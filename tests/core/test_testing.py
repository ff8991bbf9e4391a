"""portal.testing: scripted vendors for users' own tests. The client around the script is the
real one: tools run, retries and failover happen, contracts validate, costs are priced."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

import portal
from portal import errors, testing
from portal.layers.safety import GuardBlocked
from portal.metering.prices import PriceTable


def _config(**feature: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"api_key": "sk-test-not-used"},
            "anthropic": {"api_key": "sk-ant-not-used"},
        },
        "features": {
            "support.answer": {
                "primary": "openai:gpt-5.4-mini",
                "fallbacks": ["anthropic:claude-haiku-4-5"],
                "retry": {"attempts": 2, "max_wait_s": 0.01},
                **feature,
            }
        },
    }


@portal.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order by its id."""
    return {"order_id": order_id, "status": "shipped"}


def test_the_tool_loop_runs_against_a_script() -> None:
    script = testing.Script(
        testing.tool_call("lookup_order", order_id="123"),
        testing.text("Order 123 has shipped."),
    )
    with testing.client(_config(), {"openai": script}) as client:
        resp = client.chat(
            feature="support.answer",
            messages=[portal.system("Answer order questions."), portal.user("Where is 123?")],
            tools=[lookup_order],
        )
    assert resp.text == "Order 123 has shipped."
    assert resp.target == "openai:gpt-5.4-mini"
    first, second = script.requests
    assert first.tools == ["lookup_order"] and first.system == "Answer order questions."
    assert first.last_user_text == "Where is 123?"
    tool_reply = second.messages[-1]
    assert tool_reply["role"] == "tool" and '"status": "shipped"' in tool_reply["content"]
    script.assert_done()


def test_errors_are_classified_retried_and_failed_over() -> None:
    openai = testing.Script(testing.error(503), testing.error(503))
    anthropic = testing.Script("From the fallback.")
    with testing.client(_config(), {"openai": openai, "anthropic": anthropic}) as client:
        resp = client.chat(feature="support.answer", messages=[portal.user("hi")])
    assert resp.text == "From the fallback."
    assert resp.target == "anthropic:claude-haiku-4-5"
    assert [(a.target, a.error) for a in resp.attempts] == [
        ("openai:gpt-5.4-mini", "Overloaded"),
        ("openai:gpt-5.4-mini", "Overloaded"),
        ("anthropic:claude-haiku-4-5", None),
    ]
    openai.assert_done()
    anthropic.assert_done()


def test_a_429_carries_retry_after_and_a_timeout_is_a_provider_timeout() -> None:
    script = testing.Script(testing.error(429, retry_after_s=0.01), testing.timeout())
    fallback = testing.Script(testing.disconnect(), testing.disconnect())
    client = testing.client(_config(), {"openai": script, "anthropic": fallback})
    with client, pytest.raises(errors.AllTargetsFailed) as info:
        client.chat(feature="support.answer", messages=[portal.user("hi")])
    kinds = [type(e).__name__ for e in info.value.exceptions]
    assert kinds == ["ProviderTimeout", "ProviderConnectionError"]  # each target's last error
    assert script.remaining == fallback.remaining == 0  # the 429 was retried, then failover


def test_a_reply_slower_than_the_providers_timeout_times_out() -> None:
    config = _config()
    config["providers"]["openai"]["timeout_s"] = 0.05
    script = testing.Script(testing.text("late", delay_s=5.0), "in time")
    with testing.client(config, {"openai": script}) as client:
        resp = client.chat(feature="support.answer", messages=[portal.user("hi")])
    assert resp.text == "in time"
    assert [a.error for a in resp.attempts] == ["ProviderTimeout", None]
    assert resp.latency_ms < 2000  # waited for the timeout, not for the scripted delay


class Answer(BaseModel):
    answer: str
    order_id: str | None


def test_structured_output_is_validated_and_repaired_once() -> None:
    script = testing.Script(
        testing.output({"answer": "shipped"}),  # order_id missing: fails the contract
        testing.output(Answer(answer="shipped", order_id="123")),
    )
    with testing.client(_config(), {"openai": script}) as client:
        resp = client.chat(feature="support.answer", messages=[portal.user("123?")], output=Answer)
    assert resp.output == Answer(answer="shipped", order_id="123")
    assert script.requests[0].body["response_format"]["type"] == "json_schema"
    assert "Reply again with only JSON" in script.requests[1].messages[-1]["content"]


def test_streams_send_the_text_word_by_word_and_can_be_cut() -> None:
    script = testing.Script(
        "Your order shipped on Monday.",
        testing.text("It will arrive soon, we think.", cut_after=3),
    )
    with testing.client(_config(fallbacks=[]), {"openai": script}) as client:
        deltas = [
            e.text
            for e in client.stream(feature="support.answer", messages=[portal.user("hi")])
            if e.type == "text"
        ]
        assert "".join(deltas) == "Your order shipped on Monday."
        assert len(deltas) == 5
        with pytest.raises(errors.StreamInterrupted) as info:
            for _ in client.stream(feature="support.answer", messages=[portal.user("hi")]):
                pass
    assert info.value.partial_text == "It will arrive "
    assert script.requests[0].operation == "stream"


def test_an_unscripted_or_used_up_provider_fails_the_test() -> None:
    with testing.client(_config(), {"openai": ["one answer"]}) as client:
        assert (
            client.chat(feature="support.answer", messages=[portal.user("a")]).text == "one answer"
        )
        with pytest.raises(testing.ScriptExhausted, match="has no turn left"):
            client.chat(feature="support.answer", messages=[portal.user("b")])
        with pytest.raises(testing.ScriptExhausted, match="'gemini' has no script"):
            client.chat(model="gemini:gemini-2.5-flash", messages=[portal.user("c")])
        leftover = testing.Script("x", "y")
        leftover.name = "openai"
        with pytest.raises(AssertionError, match="2 turn"):
            leftover.assert_done()


def test_respond_answers_from_a_function() -> None:
    script = testing.Script(respond=lambda seen: f"echo: {seen.last_user_text}")
    with testing.client(_config(), {"openai": script}) as client:
        for word in ("a", "b", "c"):
            resp = client.chat(feature="support.answer", messages=[portal.user(word)])
            assert resp.text == f"echo: {word}"
    assert len(script.requests) == 3


def test_costs_follow_the_real_kinds_price() -> None:
    script = testing.Script(testing.text("ok", usage=(1_000_000, 1_000_000)))
    with testing.client(_config(), {"openai": script}) as client:
        resp = client.chat(feature="support.answer", messages=[portal.user("hi")])
    price = PriceTable.load().lookup("openai", "gpt-5.4-mini", kind="openai")
    assert price is not None
    assert resp.cost_usd == pytest.approx(price.input + price.output)


def test_embeddings_are_deterministic_and_recorded() -> None:
    script = testing.Script()
    with testing.client(_config(), {"openai": script}) as client:
        one = client.embed(model="openai:text-embedding-3-small", inputs=["refund policy"])
        two = client.embed(model="openai:text-embedding-3-small", inputs=["refund policy", "x"])
    assert one.vectors[0] == two.vectors[0] and len(one.vectors[0]) == 16
    assert [r.inputs for r in script.requests] == [["refund policy"], ["refund policy", "x"]]
    custom = testing.Script(embed=lambda text: [float(len(text)), 1.0])
    with testing.client(_config(), {"openai": custom}) as client:
        resp = client.embed(model="openai:text-embedding-3-small", inputs=["abc"])
    assert resp.vectors == [[3.0, 1.0]]


def test_the_async_client_plays_the_same_script() -> None:
    async def main() -> portal.Response:
        script = testing.Script(testing.error(500), "async answer")
        async with testing.async_client(_config(), {"openai": script}) as client:
            return await client.chat(feature="support.answer", messages=[portal.user("hi")])

    resp = anyio.run(main)
    assert resp.text == "async answer"
    assert [a.error for a in resp.attempts] == ["ServerError", None]


def test_the_callers_config_is_left_as_it_was(tmp_path: Any) -> None:
    cfg = portal.load_config(_config())
    with testing.client(cfg, {"openai": ["x"]}):
        pass
    assert cfg.providers["openai"].kind is None
    assert "gemini" not in cfg.providers


def test_a_production_config_loads_without_its_keys(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PORTAL_TEST_UNSET_KEY", raising=False)
    path = tmp_path / "portal.toml"
    path.write_text(
        '[providers.openai]\napi_key = "${PORTAL_TEST_UNSET_KEY}"\n'
        '[features.f]\nprimary = "openai:gpt-5.4-mini"\n'
    )
    with pytest.raises(portal.ConfigError, match="PORTAL_TEST_UNSET_KEY is not set"):
        portal.load_config(path)  # outside portal.testing the missing key is still an error
    with testing.client(path, {"openai": ["hello"]}) as client:
        assert client.chat(feature="f", messages=[portal.user("hi")]).text == "hello"


def test_scripted_reasoning_arrives_apart_from_the_answer() -> None:
    script = testing.Script(
        testing.text("Shipped.", reasoning="Order 123 is in the tool result."),
        testing.text("Shipped again.", reasoning="Same order, asked twice."),
    )
    with testing.client(_config(), {"openai": script}) as client:
        resp = client.chat(feature="support.answer", messages=[portal.user("123?")])
        assert (resp.text, resp.reasoning) == ("Shipped.", "Order 123 is in the tool result.")
        events = list(client.stream(feature="support.answer", messages=[portal.user("123?")]))
    thoughts = "".join(e.text for e in events if e.type == "reasoning")
    assert thoughts == "Same order, asked twice."
    assert "".join(e.text for e in events if e.type == "text") == "Shipped again."
    final = events[-1].response
    assert final is not None and final.reasoning == thoughts


def test_output_guards_screen_the_reasoning_too() -> None:
    """A denylisted term in the model's visible reasoning blocks the reply, as in its text."""
    config = _config(safety=[{"name": "denylist", "terms": ["Project Falcon"]}])
    script = testing.Script(testing.text("It ships in May.", reasoning="Project Falcon is due."))
    client = testing.client(config, {"openai": script})
    with client, pytest.raises(GuardBlocked) as info:
        client.chat(feature="support.answer", messages=[portal.user("What ships?")])
    assert info.value.stage == "output"
