"""A small MCP server (written with the mcp SDK) that examples/mcp_tools.py starts over stdio."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("orders")
ORDERS = {"12345": "shipped on Monday with ACME Post", "777": "waiting for payment"}


@server.tool()
def lookup_order(order_id: str) -> str:
    """Find an order by its id and say where it is."""
    return ORDERS.get(order_id, f"no order {order_id}")


@server.tool()
def cancel_order(order_id: str) -> str:
    """Cancel an order (support agents may not; the contract leaves this tool out)."""
    return f"order {order_id} cancelled"


if __name__ == "__main__":
    server.run()
