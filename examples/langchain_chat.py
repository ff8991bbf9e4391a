"""A LangChain chat model on portal: change the model object, keep the chain.

Runs offline on the simulated vendor: `python examples/langchain_chat.py`.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel

import portal
from portal.langchain import ChatPortal

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {"sim": {"kind": "sim", "options": {"seed": 5, "time_scale": 0}}},
    "features": {"support.chat": {"primary": "sim:small-model"}},
}


@tool
def order_status(order_id: str) -> str:
    """Where an order is."""
    return f"order {order_id} shipped on Monday"


class Ticket(BaseModel):
    summary: str
    priority: int


def main() -> None:
    with portal.Client(CONFIG) as client:
        llm = ChatPortal(client=client, feature="support.chat", key="user-42")

        chain = (
            ChatPromptTemplate.from_messages(
                [("system", "You are a support agent."), ("human", "{question}")]
            )
            | llm
        )
        print("chain:", chain.invoke({"question": "Do you ship abroad?"}).content[:80])

        with_tools = llm.bind_tools([order_status])
        question = HumanMessage("Where is my order 12345?")
        asked = with_tools.invoke([question])
        call = asked.tool_calls[0]
        print("tool call:", call["name"], call["args"])
        result = ToolMessage(order_status.invoke(call["args"]), tool_call_id=call["id"])
        print("answer:", with_tools.invoke([question, asked, result]).content[:80])

        print("structured:", llm.with_structured_output(Ticket).invoke("My parcel is late"))
        streamed = "".join(str(chunk.content) for chunk in llm.stream("Say hello"))
        print("streamed:", streamed[:60], "...")


if __name__ == "__main__":
    main()
