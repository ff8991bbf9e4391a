"""Quick start, offline: one feature on two simulated vendors, sync and async.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

import portal

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {
        # a flaky primary and a steady secondary, both simulated in-process
        "primary": {
            "kind": "sim",
            "options": {"seed": 1, "latency_p50_ms": 80, "error_rates": {"server_error": 0.3}},
        },
        "secondary": {"kind": "sim", "options": {"seed": 2, "latency_p50_ms": 120}},
    },
    "features": {
        "support.answer": {
            "primary": "primary:sim-small",
            "fallbacks": ["secondary:sim-large"],
            "retry": {"attempts": 1},
        }
    },
}


class Answer(BaseModel):
    answer: str
    order_id: str | None


@portal.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order by its id.

    Args:
        order_id: the order number the customer gave
    """
    return {"order_id": order_id, "status": "shipped"}


def sync_part() -> None:
    with portal.Client(CONFIG) as client:
        for i in range(5):
            resp = client.chat(
                feature="support.answer",
                messages=[portal.user(f"Where is my order {1000 + i}?")],
                output=Answer,
                key=f"user-{i}",
            )
            tried = " -> ".join(f"{a.target}:{a.outcome}" for a in resp.attempts)
            print(f"{resp.output!r:70.70}  served by {resp.target}  ({tried})")

        resp = client.chat(
            feature="support.answer",
            messages=[portal.user("Where is my order 42?")],
            tools=[lookup_order],
        )
        print("after the tool loop:", resp.text[:80])


async def async_part() -> None:
    async with portal.AsyncClient(CONFIG) as client:
        async for event in client.stream(
            feature="support.answer", messages=[portal.user("Summarize my last order")]
        ):
            if event.type == "done" and event.response is not None:
                r = event.response
                print(f"streamed {r.usage.output_tokens} tokens, first after {r.ttft_ms:.0f} ms")


if __name__ == "__main__":
    sync_part()
    anyio.run(async_part)
