"""Mistral chat (``POST /v1/chat/completions``) and embeddings (``POST /v1/embeddings``).

OpenAI-shaped with its own differences (Mistral API reference "Chat Completion" and
"Embeddings", docs.mistral.ai; field names checked against mistralai/client-python models
``ChatCompletionRequest``, ``ToolChoiceEnum``, ``ResponseFormat``, ``JSONSchema``, ``UsageInfo``):

- ``tool_choice`` is ``auto`` / ``none`` / ``any`` / ``required`` or ``{"type": "function",
  "function": {"name": ...}}``; portal's "required" is sent as ``any``;
- tool-call ids must be 9 characters of ``[a-zA-Z0-9]``: a foreign id (``call_...``,
  ``toolu_...``) is mapped to one deterministically, so an assistant call and its tool result
  stay paired when a conversation started elsewhere continues on Mistral;
- ``max_tokens`` (not ``max_completion_tokens``), ``random_seed`` (not ``seed``);
- ``image_url`` content parts take the URL string directly;
- ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``;
  Mistral accepts full JSON Schema here, so the caller's schema is sent unchanged;
- streams always end with a usage chunk; ``stream_options`` is not part of the API;
- finish reasons add ``model_length`` (→ length) and ``error`` (→ error);
- errors are ``{"object": "error", "message", "type", "param", "code"}`` at the top level, or
  ``{"detail": [...]}`` for request validation (422).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from portal.contracts.messages import ImagePart, TextPart
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.providers.adapter import Capabilities
from portal.providers.openai import FINISH_REASON_MAP, OpenAIAdapter
from portal.wire import WireReply

__all__ = ["MistralAdapter", "mistral_tool_call_id"]

_MISTRAL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

MISTRAL_FINISH_REASON_MAP: dict[str, str] = {
    **FINISH_REASON_MAP,
    "model_length": "length",
    "error": "error",
}


def mistral_tool_call_id(call_id: str) -> str:
    """A 9-character alphanumeric id; Mistral's own ids pass through, others are hashed, so the
    same foreign id always maps to the same Mistral id (calls and results stay paired)."""
    if _MISTRAL_ID.match(call_id):
        return call_id
    n = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return "".join(chars)


class MistralAdapter(OpenAIAdapter):
    """Documented limits used: tool-call ids ``[a-zA-Z0-9]{9}``; tool names ``[a-zA-Z0-9_-]``,
    up to 64 characters."""

    kind: ClassVar[str] = "mistral"
    sends_prompt_cache_key: ClassVar[bool] = False
    option_names: ClassVar[frozenset[str] | None] = frozenset()
    default_base_url: ClassVar[str | None] = "https://api.mistral.ai/v1"
    api_key_env: ClassVar[str | None] = "MISTRAL_API_KEY"
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema",
        schema_dialect="json-schema",
        embed=True,
        notes=("tool-call ids mapped to 9-character alphanumeric ids",),
    )
    max_tokens_field: ClassVar[str] = "max_tokens"
    stream_usage: ClassVar[bool] = False
    seed_field: ClassVar[str | None] = "random_seed"

    def map_tool_call_id(self, call_id: str) -> str:
        return mistral_tool_call_id(call_id)

    def map_part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        return {"type": "image_url", "image_url": part.data_url}

    def map_tool_choice(self, choice: str) -> Any:
        if choice == "required":
            return "any"
        return super().map_tool_choice(choice)

    def map_tool(self, tool: Any) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description:
            fn["description"] = tool.description
        if tool.strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}

    def map_output(self, req: ChatRequest) -> dict[str, Any]:
        assert req.output is not None
        return {
            "type": "json_schema",
            "json_schema": {"name": req.output.name, "schema": req.output.schema, "strict": True},
        }

    def finish_reason_map(self) -> Mapping[str, str]:
        return MISTRAL_FINISH_REASON_MAP

    def finalize(self, req: ChatRequest, response: Any) -> Any:
        return response  # the schema was sent unchanged: nothing to undo

    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            return super().error_details(reply)
        if isinstance(data, dict) and isinstance(data.get("detail"), list):
            msgs = [
                f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}"
                for d in data["detail"]
                if isinstance(d, dict)
            ]
            return "; ".join(msgs) or "invalid request", "validation_error"
        if isinstance(data, dict) and data.get("object") == "error":
            code = data.get("code") or data.get("type")
            return str(data.get("message") or ""), (str(code) if code is not None else None)
        return super().error_details(reply)

    def embed_body(self, req: EmbedRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "input": req.inputs}
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        body.update(req.options_for(self.kind))
        return body
