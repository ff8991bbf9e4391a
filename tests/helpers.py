"""One interface over `Client` and `AsyncClient`, so behaviour tests run against both."""

from __future__ import annotations

from typing import Any

import anyio

import portal


class BothClients:
    """``mode`` is "sync" or "async"; methods return plain results in both modes."""

    def __init__(self, mode: str, config: Any, **kw: Any) -> None:
        self.mode = mode
        kw.setdefault("ledger", None)
        self.client: Any = (portal.Client if mode == "sync" else portal.AsyncClient)(config, **kw)

    @property
    def meter(self) -> Any:
        return self.client.meter

    def chat(self, **kw: Any) -> portal.Response:
        if self.mode == "sync":
            return self.client.chat(**kw)  # type: ignore[no-any-return]
        return anyio.run(lambda: self.client.chat(**kw))  # type: ignore[no-any-return]

    def embed(self, **kw: Any) -> Any:
        if self.mode == "sync":
            return self.client.embed(**kw)
        return anyio.run(lambda: self.client.embed(**kw))

    def stream(self, **kw: Any) -> list[portal.StreamEvent]:
        """All events; an exception raised mid-stream is raised with ``.events_before`` set."""
        events: list[portal.StreamEvent] = []
        try:
            if self.mode == "sync":
                for ev in self.client.stream(**kw):
                    events.append(ev)
            else:

                async def run() -> None:
                    async for ev in self.client.stream(**kw):
                        events.append(ev)

                anyio.run(run)
        except Exception as exc:
            exc.events_before = events  # type: ignore[attr-defined]
            raise
        return events

    def close(self) -> None:
        if self.mode == "sync":
            self.client.close()
        else:
            anyio.run(self.client.aclose)


def sim_config(**features: Any) -> dict[str, Any]:
    """A config with instant sim vendors ``a`` (primary), ``b`` and ``c``; feature ``f``."""
    providers = {
        name: {"kind": "sim", "options": {"seed": i, "time_scale": 0}}
        for i, name in enumerate(("a", "b", "c"), start=1)
    }
    feats = features or {"f": {"primary": "a:m1", "fallbacks": ["b:m2"]}}
    return {"portal": {"ledger": "none"}, "providers": providers, "features": feats}


def openai_stream_chunks(texts: list[str], prompt_tokens: int = 5) -> list[bytes]:
    """An OpenAI Chat Completions stream: one SSE event per text delta, then the final chunk
    (``finish_reason`` and ``usage``, as with ``stream_options.include_usage``) and
    ``[DONE]``."""
    import json

    def event(delta: dict[str, Any], finish: str | None = None, **top: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **top,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(texts),
        "total_tokens": prompt_tokens + len(texts),
    }
    last = event({}, "stop", usage=usage) + b"data: [DONE]\n\n"
    return [*(event({"content": text}) for text in texts), last]
