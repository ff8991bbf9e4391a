"""Seed corpora and adapters for fuzzing every wire API: the repo's own provider fixtures
(valid replies and streams), decoded into values the fuzzers mutate and re-encode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from portal.contracts.messages import user
from portal.contracts.request import ChatRequest
from portal.providers.adapter import Adapter
from portal.providers.registry import adapter_class
from portal.providers.settings import ProviderSettings
from portal.providers.sse import SSEDecoder
from portal.secret import Secret
from tests.providers._cases import frame
from tests.providers.test_conformance import MODELS as CONFORMANCE_MODELS
from tests.providers.test_conformance import SETTINGS as CONFORMANCE_SETTINGS

FIXTURES = Path(__file__).resolve().parents[1] / "providers" / "fixtures"

#: every built-in wire API that parses vendor bytes (sim is portal's own offline provider)
KINDS = [
    "anthropic",
    "azure-openai",
    "bedrock",
    "cohere",
    "gemini",
    "mistral",
    "openai",
    "openai-compatible",
    "openai-responses",
    "vertex",
]
# the offline settings and model names of the conformance suite, shared rather than copied
_SETTINGS = CONFORMANCE_SETTINGS
MODELS = CONFORMANCE_MODELS


def make_adapter(kind: str) -> Adapter:
    extra = _SETTINGS.get(kind, {})
    settings = ProviderSettings(
        kind,
        kind,
        api_key=Secret("not-a-real-key"),
        base_url=extra.get("base_url"),
        options=dict(extra.get("options", {})),
    )
    return adapter_class(kind)(settings)


def model_of(kind: str) -> str:
    return MODELS.get(kind, "gpt-4o-mini")


def stream_request() -> ChatRequest:
    return ChatRequest([user("hi")], stream=True)


def replies(kind: str) -> list[Any]:
    """Successful chat reply bodies (parsed JSON) of a kind."""
    out = []
    for path in sorted((FIXTURES / kind).glob("*.json")):
        if path.name.startswith(("error", "embed", "stream")) or path.name == "errors.json":
            continue
        data = json.loads(path.read_bytes())
        if isinstance(data, dict):
            out.append(data)
    return out


def _short_vectors(doc: Any) -> Any:
    """Vectors cut to 16 numbers: the shape is what the fuzzer mutates, not the length."""
    if isinstance(doc, dict):
        return {k: _short_vectors(val) for k, val in doc.items()}
    if isinstance(doc, list):
        if len(doc) > 16 and all(isinstance(x, (int, float)) for x in doc):
            return doc[:16]
        return [_short_vectors(x) for x in doc]
    return doc


def embed_replies(kind: str) -> list[Any]:
    docs = [json.loads(p.read_bytes()) for p in sorted((FIXTURES / kind).glob("embed*.json"))]
    return [_short_vectors(d) for d in docs if isinstance(d, dict)]


def error_bodies(kind: str) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for path in sorted((FIXTURES / kind).glob("error*.json")):
        data = json.loads(path.read_bytes())
        for case in data if isinstance(data, list) else [data]:
            out.append((int(case["status"]), case["body"]))
    return out


def sse_streams(kind: str) -> list[list[tuple[str, str]]]:
    """Each ``.sse`` fixture as its (event, data) pairs."""
    out = []
    for path in sorted((FIXTURES / kind).glob("stream*.sse")):
        dec = SSEDecoder()
        events = dec.feed(path.read_bytes()) + dec.close()
        out.append([(e.event, e.data) for e in events])
    return out


def encode_sse(events: list[tuple[str, str]]) -> bytes:
    parts = []
    for name, data in events:
        head = f"event: {name}\n" if name != "message" else ""
        lines = "".join(f"data: {line}\n" for line in data.split("\n"))
        parts.append(f"{head}{lines}\n")
    return "".join(parts).encode()


def bedrock_streams() -> list[list[tuple[str, Any]]]:
    out = []
    for path in sorted((FIXTURES / "bedrock").glob("stream*.json")):
        out.append([(f["event"], f["payload"]) for f in json.loads(path.read_bytes())])
    return out


def bedrock_event(kind: str, payload: bytes, message_type: str = "event") -> bytes:
    headers = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": message_type,
    }
    if message_type == "exception":
        headers = {":exception-type": kind, ":message-type": "exception"}
    return frame(headers, payload)
