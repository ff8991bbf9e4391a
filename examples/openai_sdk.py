"""Keep your openai SDK code: route it through portal by changing the constructor only.

Runs offline on the simulated vendor: `python examples/openai_sdk.py`. Point the feature's
`primary` at "openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", ... and the same code is
served by that vendor, with portal's failover, canary and ledger around it.
"""

from __future__ import annotations

import json

import httpx2
import openai

import portal.openai

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {
        "down": {"kind": "sim", "options": {"time_scale": 0, "error_rates": {"server_error": 1}}},
        "sim": {"kind": "sim", "options": {"seed": 3, "time_scale": 0}},
    },
    "features": {
        # the primary always fails: portal fails over to the sim vendor, the app never knows
        "support.answer": {
            "primary": "down:big-model",
            "fallbacks": ["sim:small-model"],
            "retry": {"attempts": 1},
        }
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def app(client: openai.OpenAI | portal.openai.OpenAI) -> None:
    """Code written for the openai SDK, untouched."""
    reply = client.chat.completions.create(
        model="support.answer",  # a portal feature (or a "provider:model" id)
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER],
    )
    call = reply.choices[0].message.tool_calls[0]
    print("tool call:", call.function.name, call.function.arguments)
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        reply.choices[0].message,
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny"})},
    ]
    stream = client.chat.completions.create(model="support.answer", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    print("answer:", text[:70], "...")


def main() -> None:
    # 1. portal's OpenAI-shaped client: the SDK's types, portal's options and metadata
    with portal.openai.OpenAI(CONFIG) as client:
        app(client)
        reply = client.chat.completions.create(
            model="support.answer",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"portal": {"key": "user-42", "tags": {"team": "support"}}},
        )
        print("served by:", reply.portal["target"], "after", reply.portal["attempts"], "attempts")

    # 2. the official client, unchanged, with portal as its HTTP transport
    transport = portal.openai.PortalTransport(CONFIG)
    client = openai.OpenAI(api_key="unused", http_client=httpx2.Client(transport=transport))
    app(client)
    client.close()
    transport.close()


if __name__ == "__main__":
    main()
