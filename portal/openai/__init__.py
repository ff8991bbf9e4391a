"""The openai SDK's call shape over portal (extra ``portal-sdk[openai]``).

- `OpenAI` / `AsyncOpenAI`: ``client.chat.completions.create(...)`` (and ``parse``) and
  ``client.embeddings.create(...)`` with the official SDK's arguments and return types, run
  through portal's routing, canary, budgets, guards and ledger.
- `PortalTransport` / `AsyncPortalTransport`: an httpx2 transport to hand the official
  ``openai.OpenAI(http_client=...)``, for code that must keep its client as it is.

``model`` is a feature of the config or a ``provider:model`` id; portal's per-call options
go in ``extra_body={"portal": {"key": ..., "tenant": ..., "tags": {...}}}``.
"""

from __future__ import annotations

from portal.openai._client import AsyncChatStream, AsyncOpenAI, ChatStream, OpenAI
from portal.openai._transport import AsyncPortalTransport, PortalTransport

__all__ = [
    "AsyncChatStream",
    "AsyncOpenAI",
    "AsyncPortalTransport",
    "ChatStream",
    "OpenAI",
    "PortalTransport",
]
