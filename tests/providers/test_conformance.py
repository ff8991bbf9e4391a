"""One conformance suite over every provider kind in portal/providers/registry.py.

FIXTURE CONVENTION (for every kind, under ``tests/providers/fixtures/<kind>/``):

- ``reply_text.json``: a complete, successful vendor reply (raw body, HTTP 200) whose answer
  is exactly `TEXT` ("Your order 123 ships on Tuesday."), finish "stop", usage > 0.
- ``reply_tool_calls.json``: a reply with two parallel tool calls, ``lookup_order``
  ``{"order_id": "123"}`` then ``get_weather`` ``{"city": "Paris"}``.
- ``stream_text.sse`` (or ``.bin`` for binary framings): a streamed reply of `TEXT` with usage.
  Where a kind's own tests already use ``stream_text.*`` for a vendor-specific case (anthropic,
  cohere, gemini stream multi-byte text there), the convention stream is
  ``stream_reply_text.sse`` / ``.bin``, which is looked up first.
  Bedrock's ``stream_text.bin`` is the AWS event-stream framing (prelude, string headers
  ``:event-type`` / ``:content-type`` / ``:message-type``, JSON payload with the ``p`` padding
  field, CRC32s); it was encoded once with `tests.providers.test_bedrock.event` from the
  frames messageStart, contentBlockDelta x2, contentBlockStop, messageStop (end_turn) and
  metadata (usage), following the ConverseStream reference cited in test_bedrock.py.
- ``error_<class>.json``: ``{"status": int, "headers": {...}, "body": <vendor body, JSON or a
  string>}``; ``<class>`` is one of the keys of `ERROR_FILES` (``rate_limited``,
  ``context_too_long``, ``authentication``, ``overloaded``, ``not_found``, ``bad_request``,
  ``content_filtered``, ``server_error``); an optional ``"expected"`` field names the class.
- or ``errors.json``: a list of ``{"case", "status", "headers"?, "body", "expected": "<portal
  error class name>"}``.

A kind whose module does not import yet is skipped with the reason; a kind without a fixture
named above is skipped for that check only, and says which file is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from portal import errors as perr
from portal.contracts.responses import FINISH_REASONS, Response
from portal.providers.adapter import Adapter
from portal.providers.registry import _BUILTIN, adapter_class
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import FIXTURES, PNG_B64, SYSTEM, TEXT, full_request

ERROR_FILES: dict[str, type[perr.ProviderError]] = {
    "rate_limited": perr.RateLimited,
    "context_too_long": perr.ContextTooLong,
    "authentication": perr.AuthenticationError,
    "overloaded": perr.Overloaded,
    "not_found": perr.NotFound,
    "bad_request": perr.BadRequest,
    "content_filtered": perr.ContentFiltered,
    "server_error": perr.ServerError,
}

#: extra settings a kind needs to build requests offline (no secrets are real)
SETTINGS: dict[str, dict[str, Any]] = {
    "azure-openai": {"base_url": "https://acme.openai.azure.com"},
    "openai-compatible": {"options": {"preset": "vllm"}},
    "bedrock": {
        "options": {
            "region_name": "us-east-1",
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        }
    },
    "vertex": {"options": {"project": "acme-prod", "location": "us-central1"}},
}
MODELS: dict[str, str] = {
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "gemini": "gemini-2.5-flash",
    "vertex": "gemini-2.5-flash",
    "cohere": "command-a-03-2025",
    "mistral": "mistral-large-latest",
}
KINDS = sorted(_BUILTIN)


def make(kind: str) -> Adapter:
    try:
        cls = adapter_class(kind)
    except perr.ConfigError as exc:
        pytest.skip(f"{kind}: adapter module not importable yet ({exc})")
    extra = SETTINGS.get(kind, {})
    settings = ProviderSettings(
        kind,
        kind,
        api_key=Secret("test-key-not-real"),
        base_url=extra.get("base_url"),
        options=dict(extra.get("options", {})),
    )
    return cls(settings)


@dataclass
class WireCase:
    """Paths (dotted, ``*`` for every list item) that must exist in the body, and strings that
    must not appear anywhere in it."""

    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


_OPENAI_CHAT = WireCase(
    present=[
        "messages.*.content",
        "messages.*.content.*.image_url",
        "tools.*.function.parameters",
        "response_format.json_schema.schema.properties.confidence",
    ],
)
WIRE: dict[str, WireCase] = {
    "openai": _OPENAI_CHAT,
    "azure-openai": WireCase(present=_OPENAI_CHAT.present, absent=['"model"']),
    "openai-compatible": _OPENAI_CHAT,
    "sim": _OPENAI_CHAT,
    "mistral": WireCase(
        present=[
            "messages.*.content.*.image_url",
            "tools.*.function.parameters",
            "response_format.json_schema.schema.properties.confidence",
            "max_tokens",
        ],
        absent=["max_completion_tokens", "stream_options"],
    ),
    "openai-responses": WireCase(
        present=[
            "instructions",
            "input.*.content.*.image_url",
            "tools.*.parameters",
            "text.format.schema.properties.confidence",
            "max_output_tokens",
        ],
        absent=['"messages"'],
    ),
    "anthropic": WireCase(
        present=["system", "messages.*.content.*.source", "tools.*.input_schema", "tool_choice"],
        absent=['"role":"system"'],
    ),
    "bedrock": WireCase(
        present=[
            "system.*.text",
            "messages.*.content.*.image.source.bytes",
            "toolConfig.tools.*.toolSpec",
        ],
        absent=['"role":"system"'],
    ),
    "gemini": WireCase(
        present=[
            "systemInstruction",
            "contents.*.parts.*.inlineData",
            "tools.*.functionDeclarations",
            "generationConfig",
        ],
    ),
    "vertex": WireCase(
        present=[
            "systemInstruction",
            "contents.*.parts.*.inlineData",
            "tools.*.functionDeclarations",
        ],
    ),
    "cohere": WireCase(
        present=["messages.*.content", "tools.*.function.parameters", "response_format"]
    ),
}


def has_path(data: Any, path: str) -> bool:
    head, _, rest = path.partition(".")
    if head == "*":
        return isinstance(data, list) and any(has_path(x, rest) if rest else True for x in data)
    if not isinstance(data, dict) or head not in data:
        return False
    return has_path(data[head], rest) if rest else True


@pytest.mark.parametrize("kind", KINDS)
def test_same_request_builds_on_every_kind_in_the_vendor_shape(kind: str) -> None:
    adapter = make(kind)
    wire = adapter.build_chat(full_request(), MODELS.get(kind, "test-model"))
    assert wire.method == "POST" and wire.url.startswith(("http://", "https://"))
    assert "test-key-not-real" not in repr(wire)
    raw = wire.body.decode() if wire.body else ""
    body = json.loads(raw)
    # the four things every vendor must carry, whatever the shape
    assert SYSTEM in raw, "system prompt missing"
    assert PNG_B64 in raw, "image missing"
    assert "lookup_order" in raw and "get_weather" in raw, "a tool is missing"
    assert "confidence" in raw, "structured-output schema missing"
    case = WIRE.get(kind)
    if case is None:
        pytest.skip(f"{kind}: no WireCase written for this kind yet")
    missing = [p for p in case.present if not has_path(body, p)]
    assert not missing, f"{kind}: body lacks {missing}"
    compact = json.dumps(body, separators=(",", ":"))
    found = [s for s in case.absent if s in compact]
    assert not found, f"{kind}: body should not contain {found}"


def _reply(kind: str, name: str) -> WireReply:
    path = FIXTURES / kind / name
    if not path.exists():
        pytest.skip(f"{kind}: no {name} following the fixture convention")
    return WireReply(200, {}, path.read_bytes())


def _shape(resp: Response) -> None:
    assert isinstance(resp, Response)
    assert resp.finish_reason in FINISH_REASONS
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.cached_input_tokens <= resp.usage.input_tokens
    assert resp.usage.reasoning_tokens <= resp.usage.output_tokens


@pytest.mark.parametrize("kind", KINDS)
def test_text_reply_normalizes_to_the_same_response(kind: str) -> None:
    adapter = make(kind)
    resp = adapter.parse_chat(_reply(kind, "reply_text.json"), MODELS.get(kind, "m"))
    _shape(resp)
    assert (resp.text, resp.finish_reason, resp.tool_calls) == (TEXT, "stop", [])


@pytest.mark.parametrize("kind", KINDS)
def test_tool_call_reply_normalizes_to_the_same_response(kind: str) -> None:
    adapter = make(kind)
    resp = adapter.parse_chat(_reply(kind, "reply_tool_calls.json"), MODELS.get(kind, "m"))
    _shape(resp)
    assert resp.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order", {"order_id": "123"}),
        ("get_weather", {"city": "Paris"}),
    ]
    assert all(isinstance(c.id, str) and c.id for c in resp.tool_calls)
    assert len({c.id for c in resp.tool_calls}) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_text_normalizes_to_the_same_response(kind: str) -> None:
    adapter = make(kind)
    path = next(
        (
            FIXTURES / kind / n
            for n in (
                "stream_reply_text.sse",
                "stream_reply_text.bin",
                "stream_text.sse",
                "stream_text.bin",
            )
            if (FIXTURES / kind / n).exists()
        ),
        None,
    )
    if path is None:
        pytest.skip(f"{kind}: no stream_reply_text/stream_text .sse/.bin following the convention")
    req = full_request(stream=True)
    req.output = None
    parser = adapter.stream_parser(req, MODELS.get(kind, "m"))
    raw = path.read_bytes()
    events = []
    for i in range(0, len(raw), 11):
        events.extend(parser.feed(raw[i : i + 11]))
    resp = parser.finish()
    _shape(resp)
    assert "".join(e.text for e in events if e.type == "text") == resp.text
    assert resp.text and resp.finish_reason == "stop" and not resp.tool_calls
    if (FIXTURES / kind / "reply_text.json").exists():  # the kind follows the convention
        assert resp.text == TEXT


def _error_cases(kind: str) -> list[tuple[str, WireReply, type[perr.ProviderError]]]:
    folder = FIXTURES / kind
    cases = []
    for path in sorted(folder.glob("error_*.json")):
        data = json.loads(path.read_bytes())
        label = path.stem[len("error_") :]
        expected = data.get("expected")
        cls = getattr(perr, expected) if expected else ERROR_FILES.get(label)
        if cls is None:
            continue
        cases.append((path.name, _wire(data), cls))
    listing = folder / "errors.json"
    if listing.exists():
        for item in json.loads(listing.read_bytes()):
            cases.append(
                (f"errors.json:{item.get('case')}", _wire(item), getattr(perr, item["expected"]))
            )
    return cases


def _wire(data: dict[str, Any]) -> WireReply:
    body = data["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    headers = {k.lower(): str(v) for k, v in (data.get("headers") or {}).items()}
    if "errortype" in data:  # bedrock's fixtures name the x-amzn-errortype header this way
        headers["x-amzn-errortype"] = str(data["errortype"])
    return WireReply(int(data["status"]), headers, raw)


@pytest.mark.parametrize("kind", KINDS)
def test_error_fixtures_classify_to_the_same_classes(kind: str) -> None:
    adapter = make(kind)
    cases = _error_cases(kind)
    if not cases:
        pytest.skip(f"{kind}: no error_<class>.json / errors.json fixtures")
    wrong = []
    for name, wire, cls in cases:
        err = adapter.parse_error(wire, MODELS.get(kind, "m"))
        if type(err) is not cls:
            wrong.append(f"{name}: {type(err).__name__} != {cls.__name__}")
        assert "test-key-not-real" not in str(err)
    assert not wrong, wrong


def test_every_error_class_is_covered_by_several_kinds() -> None:
    """Coverage of the shared classes across kinds (the same class from different vendors)."""
    seen: dict[str, set[str]] = {}
    for kind in KINDS:
        if not (FIXTURES / kind).exists():
            continue
        for _, _, cls in _error_cases(kind):
            seen.setdefault(cls.__name__, set()).add(kind)
    for cls in ("RateLimited", "ContextTooLong", "AuthenticationError", "Overloaded"):
        assert len(seen.get(cls, set())) >= 3, f"{cls} covered only by {sorted(seen.get(cls, []))}"
