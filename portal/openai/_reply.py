"""portal's replies -> the JSON shapes of OpenAI's Chat Completions and Embeddings APIs.

Pure: plain dicts shaped as OpenAI documents them (``CreateChatCompletionResponse``,
``CreateChatCompletionStreamResponse``, ``CreateEmbeddingResponse``). The OpenAI-shaped
clients validate them into the openai SDK's own types; the transport sends them as JSON (or
server-sent events) for the SDK to parse itself. Each reply also carries a ``portal`` object
(target, arm, feature, cost, latency, attempts): the SDK's types keep unknown fields, so
``completion.portal`` is there for whoever wants it and invisible to code that does not.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

from portal._call_summary import call_summary
from portal.contracts.messages import ToolCall
from portal.contracts.responses import EmbedResponse, Response, StreamEvent, Usage

__all__ = ["ChunkWriter", "completion", "embeddings"]

#: portal's finish reasons that OpenAI's enum lacks ("error": the vendor gave no reason)
_FINISH = {"error": "stop"}


def _finish(reason: str) -> str:
    return _FINISH.get(reason, reason)


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json()},
    }


def _model(resp: Response | EmbedResponse, asked: str) -> str:
    if resp.model:
        return resp.model
    if resp.target:
        return resp.target.partition(":")[2] or resp.target
    return asked


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(resp: Response, asked: str) -> dict[str, Any]:
    """A ``chat.completion`` object for one reply."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": resp.text if resp.text or not resp.tool_calls else None,
        "refusal": None,
    }
    if resp.tool_calls:
        message["tool_calls"] = [_tool_call(c) for c in resp.tool_calls]
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(resp, asked),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(resp.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": _usage(resp.usage),
        "portal": call_summary(resp),
    }


class ChunkWriter:
    """Turns portal's stream events into ``chat.completion.chunk`` objects, in OpenAI's
    order: a role chunk, content deltas, one delta per tool call (portal assembles each
    call's arguments before emitting it), a last chunk with the finish reason, then (with
    ``stream_options={"include_usage": True}``) a chunk with no choices and the usage."""

    def __init__(self, asked: str, include_usage: bool) -> None:
        self.id = new_id()
        self.created = int(time.time())
        self.model = asked
        self.include_usage = include_usage
        self.started = False
        self.tool_index = 0

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish}])

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.started:
            self.started = True
            out.append(self._delta({"role": "assistant", "content": ""}))
        kind = event.type
        if kind == "text" and event.text:
            out.append(self._delta({"content": event.text}))
        elif kind == "tool_call" and event.tool_call is not None:
            call = _tool_call(event.tool_call)
            call["index"] = self.tool_index
            self.tool_index += 1
            out.append(self._delta({"tool_calls": [call]}))
        elif kind == "done" and event.response is not None:
            resp = event.response
            if resp.model:
                self.model = resp.model
            last = self._delta({}, _finish(resp.finish_reason))
            last["portal"] = call_summary(resp)
            out.append(last)
            if self.include_usage:
                tail = self._chunk([])
                tail["usage"] = _usage(resp.usage)
                out.append(tail)
        return out


def embeddings(resp: EmbedResponse, asked: str, as_base64: bool) -> dict[str, Any]:
    """A ``list`` of ``embedding`` objects; base64 is little-endian float32, as OpenAI sends."""
    data = []
    for i, vector in enumerate(resp.vectors):
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": _model(resp, asked),
        "usage": {
            "prompt_tokens": resp.usage.input_tokens,
            "total_tokens": resp.usage.input_tokens,
        },
        "portal": call_summary(resp),
    }
