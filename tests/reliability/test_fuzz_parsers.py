"""Fuzzed vendor replies: every response parser, stream parser and error parser of every
wire API, fed mutated versions of valid replies (missing fields, wrong types, huge fields,
unknown event types, truncation, invalid UTF-8 split across chunks, no terminator).

The property a caller relies on: each case ends in a normalized `Response` (or
`EmbedResponse`) or raises a `ProviderError` subclass, never another exception type.
Example counts scale with ``PORTAL_FUZZ_EXAMPLES`` (default 25 per test and kind).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.contracts.responses import FINISH_REASONS, EmbedResponse, Response, StreamEvent, Usage
from portal.errors import ProviderError
from portal.wire import WireReply
from tests.reliability import _vendors as v

EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

HUGE = "x" * 100_000
MAX_DOC = 1_000_000
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and +-Infinity too: Python's json reads them
    st.text(max_size=12),
    st.sampled_from(["", "stop", "length", "tool_use", "end_turn", "STOP", "MAX_TOKENS", "[DONE]"]),
    st.just(HUGE),
)
JSON = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(doc: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if isinstance(doc, dict):
        for k, val in doc.items():
            out.append((doc, k))
            _paths(val, out)
    elif isinstance(doc, list):
        for i, val in enumerate(doc[:50]):  # embedding vectors: the first items suffice
            out.append((doc, i))
            _paths(val, out)
    return out


def mutate(data: st.DataObject, doc: Any, max_ops: int = 4) -> Any:
    """A copy of ``doc`` with 1..max_ops structural mutations."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, max_ops), label="ops")):
        paths = _paths(doc, [])
        if not paths:
            return data.draw(JSON, label="whole")
        container, key = data.draw(st.sampled_from(paths), label="where")
        op = data.draw(
            st.sampled_from(["delete", "replace", "splice", "wrap", "huge_list"]), label="op"
        )
        if op == "delete":
            del container[key]
        elif op == "replace":
            container[key] = data.draw(JSON, label="value")
        elif op == "splice":  # a value from elsewhere in the reply: right names, wrong places
            _, other_key = data.draw(st.sampled_from(paths), label="from")
            other = data.draw(st.sampled_from(paths))
            container[key] = copy.deepcopy(other[0][other[1]]) if other_key is not None else None
        elif op == "wrap":
            container[key] = [container[key]]
        else:  # many items: bounded, a huge string times 2000 would test the fuzzer, not portal
            item = container[key]
            container[key] = [item if len(json.dumps(item)) < 200 else 0] * 2000
        if len(json.dumps(doc)) > MAX_DOC:  # keep each case under ~1 MB: fast to run
            container[key] = None
    return doc


def to_bytes(data: st.DataObject, doc: Any) -> bytes:
    raw = json.dumps(doc).encode()
    how = data.draw(st.sampled_from(["as_is", "as_is", "truncate", "bad_utf8"]), label="bytes")
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, max(0, len(raw) - 1)), label="cut")]
    elif how == "bad_utf8":
        at = data.draw(st.integers(0, len(raw)), label="at")
        raw = (
            raw[:at]
            + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]))
            + raw[at:]
        )
    return raw


def split(data: st.DataObject, raw: bytes) -> list[bytes]:
    """Chunks cut at arbitrary byte positions (inside UTF-8 sequences, CRLFs, frames)."""
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8), label="cuts")))
    edges = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(edges) if b > a]


def check_usage(usage: Usage) -> None:
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
        value = getattr(usage, name)
        assert type(value) is int, f"usage.{name} is {type(value).__name__}: {value!r}"


def check_response(resp: Any) -> None:
    """What the router, the meter and the caller read off a reply must have its types."""
    assert isinstance(resp, Response), type(resp)
    assert isinstance(resp.text, str)
    assert resp.finish_reason in FINISH_REASONS, resp.finish_reason
    assert resp.raw_finish_reason is None or isinstance(resp.raw_finish_reason, str)
    check_usage(resp.usage)
    for call in resp.tool_calls:
        assert isinstance(call.name, str) and isinstance(call.id, str)
        assert isinstance(call.arguments, dict)


def outcome(fn: Any) -> Any:
    """The result, or None when a ProviderError was raised; anything else fails the test."""
    try:
        return fn()
    except ProviderError as exc:
        str(exc), repr(exc)  # rendering the error must not fail either
        return None


@pytest.mark.parametrize("kind", v.KINDS)
@FUZZ
@given(data=st.data())
def test_chat_reply_parser(kind: str, data: st.DataObject) -> None:
    seeds = v.replies(kind)
    adapter, model = v.make_adapter(kind), v.model_of(kind)
    doc = mutate(data, data.draw(st.sampled_from(seeds), label="seed"))
    status = data.draw(st.sampled_from([200, 200, 200, 201, 204, 299]))
    reply = WireReply(status, {"x-request-id": "r"}, to_bytes(data, doc))
    resp = outcome(lambda: adapter.parse_chat(reply, model))
    if resp is not None:
        check_response(resp)


@pytest.mark.parametrize("kind", [k for k in v.KINDS if v.embed_replies(k)])
@FUZZ
@given(data=st.data())
def test_embed_reply_parser(kind: str, data: st.DataObject) -> None:
    adapter, model = v.make_adapter(kind), v.model_of(kind)
    if kind == "bedrock":
        model = data.draw(
            st.sampled_from(["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"])
        )
    doc = mutate(data, data.draw(st.sampled_from(v.embed_replies(kind))))
    reply = WireReply(200, {}, to_bytes(data, doc))
    resp = outcome(lambda: adapter.parse_embed(reply, model))
    if resp is not None:
        assert isinstance(resp, EmbedResponse)
        for vec in resp.vectors:
            assert isinstance(vec, list)
            assert all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vec)
        check_usage(resp.usage)


@pytest.mark.parametrize("kind", v.KINDS)
@FUZZ
@given(data=st.data())
def test_error_parser_always_classifies(kind: str, data: st.DataObject) -> None:
    """An error reply of any shape is classified; parse_error never raises."""
    adapter, model = v.make_adapter(kind), v.model_of(kind)
    seeds = v.error_bodies(kind) or [(500, {"error": {"message": "x"}})]
    status, body = data.draw(st.sampled_from(seeds))
    if data.draw(st.booleans()):
        status = data.draw(st.integers(400, 599))
    headers = data.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "retry-after",
                    "retry-after-ms",
                    "x-request-id",
                    "request-id",
                    "x-amzn-errortype",
                    "x-amzn-requestid",
                    "content-type",
                ]
            ),
            st.text(max_size=30)
            | st.sampled_from(["1", "-5", "1e309", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"]),
            max_size=3,
        )
    )
    raw = to_bytes(data, mutate(data, body) if isinstance(body, (dict, list)) else body)
    err = adapter.parse_error(WireReply(status, headers, raw), model)
    assert isinstance(err, ProviderError)
    assert err.retry_after is None or (err.retry_after >= 0 and not math.isnan(err.retry_after))
    str(err), repr(err)


def _feed(parser: Any, chunks: list[bytes]) -> Any:
    def run() -> Any:
        for chunk in chunks:
            events = parser.feed(chunk)
            assert all(isinstance(e, StreamEvent) for e in events)
        return parser.finish()

    return outcome(run)


SSE_KINDS = [k for k in v.KINDS if v.sse_streams(k)]


@pytest.mark.parametrize("kind", SSE_KINDS)
@FUZZ
@given(data=st.data())
def test_sse_stream_parser(kind: str, data: st.DataObject) -> None:
    adapter, model = v.make_adapter(kind), v.model_of(kind)
    events = list(data.draw(st.sampled_from(v.sse_streams(kind)), label="seed"))
    names = sorted({name for name, _ in events})
    for _ in range(data.draw(st.integers(1, 4), label="ops")):
        op = data.draw(
            st.sampled_from(["mutate", "mutate", "drop", "dup", "unknown", "rename", "cut_end"])
        )
        if not events:
            break
        i = data.draw(st.integers(0, len(events) - 1))
        name, payload = events[i]
        if op == "mutate":
            try:
                doc = json.loads(payload)
            except ValueError:
                continue
            events[i] = (name, json.dumps(mutate(data, doc, 2)))
        elif op == "drop":
            del events[i]
        elif op == "dup":
            events.insert(i, events[i])
        elif op == "unknown":
            events.insert(
                i,
                (
                    data.draw(st.text("abcdefgh._", min_size=1, max_size=12)),
                    json.dumps(data.draw(JSON)),
                ),
            )
        elif op == "rename":
            events[i] = (data.draw(st.sampled_from(names)), payload)
        else:  # no terminator: the stream just stops
            events = events[: data.draw(st.integers(0, len(events)))]
    raw = v.encode_sse(events)
    if data.draw(st.booleans()):
        raw = raw.replace(b"\n", b"\r\n")
    if data.draw(st.integers(0, 3)) == 0:
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\xf0\x9f" + raw[at:]  # a broken 4-byte sequence, split by chunking
    resp = _feed(adapter.stream_parser(v.stream_request(), model), split(data, raw))
    if resp is not None:
        check_response(resp)


@FUZZ
@given(data=st.data())
def test_bedrock_event_stream_parser(data: st.DataObject) -> None:
    adapter, model = v.make_adapter("bedrock"), v.model_of("bedrock")
    frames = list(data.draw(st.sampled_from(v.bedrock_streams()), label="seed"))
    names = [*sorted({n for n, _ in frames}), "exception", "unknownEvent"]
    parts: list[bytes] = []
    for name, payload in frames:
        op = data.draw(
            st.sampled_from(
                ["keep", "keep", "keep", "mutate", "rename", "drop", "raw", "exception"]
            )
        )
        body = json.dumps(payload).encode()
        if op == "mutate":
            body = json.dumps(mutate(data, payload, 2)).encode()
        elif op == "rename":
            name = data.draw(st.sampled_from(names))
        elif op == "drop":
            continue
        elif op == "raw":
            body = data.draw(st.binary(max_size=40))
        if op == "exception":
            parts.append(
                v.bedrock_event(
                    data.draw(
                        st.sampled_from(
                            [
                                "throttlingException",
                                "validationException",
                                "modelStreamErrorException",
                                "weird",
                            ]
                        )
                    ),
                    to_bytes(data, data.draw(JSON)),
                    "exception",
                )
            )
        else:
            parts.append(v.bedrock_event(name, body))
    raw = b"".join(parts)
    how = data.draw(st.sampled_from(["as_is", "as_is", "truncate", "flip", "garbage"]))
    if how == "truncate" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip" and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif how == "garbage":
        raw = raw + data.draw(st.binary(min_size=1, max_size=64))
    resp = _feed(adapter.stream_parser(v.stream_request(), model), split(data, raw))
    if resp is not None:
        check_response(resp)
