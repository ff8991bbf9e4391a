"""Testing your own app with portal.testing: script what the model answers, then check what
your code did and what portal sent. The same file works as a pytest module.

Runs offline: `python examples/testing_your_app.py` (or `pytest examples/testing_your_app.py`).
The app below is the code under test; the config is the one you ship (keys need not be set).
"""

from __future__ import annotations

import portal
from portal import testing

CONFIG = {
    "providers": {
        "openai": {"api_key": "${OPENAI_API_KEY}"},
        "anthropic": {"api_key": "${ANTHROPIC_API_KEY}"},
    },
    "features": {
        "support.answer": {
            "primary": "openai:gpt-4.1-mini",
            "fallbacks": ["anthropic:claude-haiku-4-5"],
            "retry": {"attempts": 1},
        }
    },
}


@portal.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order by its id."""
    return {"order_id": order_id, "status": "shipped"}


def answer(client: portal.Client, question: str) -> str:
    """The app: answer a support question, with the order tool, in one line."""
    resp = client.chat(
        feature="support.answer",
        messages=[portal.system("Answer in one line."), portal.user(question)],
        tools=[lookup_order],
    )
    return resp.text.strip()


def test_the_app_looks_the_order_up_and_answers() -> None:
    script = testing.Script(
        testing.tool_call("lookup_order", order_id="123"),
        "Order 123 has shipped.",
    )
    with testing.client(CONFIG, {"openai": script}) as client:
        assert answer(client, "Where is order 123?") == "Order 123 has shipped."
    tool_turn = script.requests[1].messages[-1]
    assert tool_turn["role"] == "tool" and '"shipped"' in tool_turn["content"]
    script.assert_done()


def test_the_app_survives_its_primary_vendor_going_down() -> None:
    openai = testing.Script(testing.error(503))
    anthropic = testing.Script("Order 7 is on its way.")
    with testing.client(CONFIG, {"openai": openai, "anthropic": anthropic}) as client:
        assert answer(client, "Order 7?") == "Order 7 is on its way."


if __name__ == "__main__":
    test_the_app_looks_the_order_up_and_answers()
    test_the_app_survives_its_primary_vendor_going_down()
    print("2 app tests passed against scripted vendors (no network, no keys)")
