"""A Pydantic AI agent on portal: change the model object, keep the agent.

Runs offline on the simulated vendor: `python examples/pydantic_ai_agent.py`. The feature's
primary fails on purpose: portal fails over, the agent never notices, and every model
request lands in portal's ledger.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel
from pydantic_ai import Agent

import portal
from portal.pydantic_ai import PortalModel

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {
        "down": {"kind": "sim", "options": {"time_scale": 0, "error_rates": {"server_error": 1}}},
        "sim": {"kind": "sim", "options": {"seed": 5, "time_scale": 0}},
    },
    "features": {
        "support.agent": {
            "primary": "down:big-model",
            "fallbacks": ["sim:small-model"],
            "retry": {"attempts": 1},
        }
    },
}


class Ticket(BaseModel):
    summary: str
    priority: int


async def main() -> None:
    async with portal.AsyncClient(CONFIG) as client:
        model = PortalModel(client, feature="support.agent", key="user-42")
        agent = Agent(model, instructions="You are a support agent. Be brief.")

        @agent.tool_plain
        def order_status(order_id: str) -> str:
            """Where an order is."""
            return f"order {order_id} shipped on Monday"

        result = await agent.run("Where is my order 12345?")
        for message in result.all_messages():
            for part in message.parts:
                print(f"{part.part_kind:>12}: {str(getattr(part, 'content', '') or part)[:80]}")
        details = result.all_messages()[-1].provider_details or {}
        print("served by:", details["target"], "after", details["attempts"], "attempts")

        ticket = await Agent(model, output_type=Ticket).run("My parcel is late, please help")
        print("structured output:", ticket.output)


if __name__ == "__main__":
    anyio.run(main)
