"""Tools: a typed Python function becomes a tool; portal runs the model <-> tool loop.

Runs offline on the simulated vendor: `python examples/tools_loop.py`. Swap `primary` for
"openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash", ... and the
same tool runs unchanged.
"""

from __future__ import annotations

import portal

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {"sim": {"kind": "sim", "options": {"seed": 3, "time_scale": 0}}},
    "features": {"orders": {"primary": "sim:sim-small"}},
}


@portal.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order by its id.

    Args:
        order_id: the order number the customer gave
    """
    return {"order_id": order_id, "status": "shipped", "carrier": "ACME Post"}


def main() -> None:
    with portal.Client(CONFIG) as client:
        resp = client.chat(
            feature="orders",
            messages=[portal.user("Where is my order 12345?")],
            tools=[lookup_order],
        )
        for m in resp.messages:
            detail = m.text or ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls or [])
            print(f"{m.role:>9}: {detail[:100]}")
        print(f"model calls: {len(resp.attempts)}, tokens: {resp.usage.total_tokens}")

        # run_tools=False: you get the calls and continue the conversation yourself
        calls = client.chat(
            feature="orders",
            messages=[portal.user("Where is my order 777?")],
            tools=[lookup_order],
            run_tools=False,
        ).tool_calls
        print("asked for:", [(c.name, c.arguments) for c in calls])


if __name__ == "__main__":
    main()
