"""MCP tools in portal's tool loop: a server's tools, filtered by the feature's contract.

Runs offline on the simulated vendor: `python examples/mcp_tools.py`. It starts
examples/mcp/order_server.py over stdio; point `portal.mcp.http(...)` at a streamable-HTTP
server instead and nothing else changes. Any vendor can call the tools: swap `primary` for
"anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash", ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import portal
import portal.mcp

HERE = Path(__file__).resolve().parent
SERVER = [sys.executable, str(HERE / "mcp" / "order_server.py")]
CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {"sim": {"kind": "sim", "options": {"seed": 3, "time_scale": 0}}},
    "features": {
        "orders": {
            "primary": "sim:sim-small",
            "contract": str(HERE / "mcp" / "contracts" / "orders.toml"),
        }
    },
}


def with_sync_client() -> None:
    # `with`: the MCP session runs on a background loop; its tools are plain functions
    with portal.mcp.stdio(SERVER, name="orders") as orders, portal.Client(CONFIG) as client:
        print("server tools:", orders.names())
        tools = orders.tools(client=client, feature="orders")  # the contract allows lookup_order
        print("offered to the model:", [t.name for t in tools])
        resp = client.chat(
            feature="orders", messages=[portal.user("Where is order 12345?")], tools=tools
        )
        for m in resp.messages:
            detail = m.text or ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls or [])
            print(f"{m.role:>9}: {detail[:90]}")


async def with_async_client() -> None:
    # `async with`: the tools are coroutine functions, run concurrently by AsyncClient
    async with (
        portal.mcp.stdio(SERVER, name="orders") as orders,
        portal.AsyncClient(CONFIG) as client,
    ):
        tools = orders.tools(client=client, feature="orders")
        async for event in client.stream(
            feature="orders", messages=[portal.user("Where is order 777?")], tools=tools
        ):
            if event.type == "tool_result":
                print("tool result:", event.text)


if __name__ == "__main__":
    with_sync_client()
    anyio.run(with_async_client)
