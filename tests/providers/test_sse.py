"""The shared SSE decoder (portal/providers/sse.py) against the WHATWG "Server-sent events"
parsing rules (html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
fields, multi-line data, comments, LF/CR/CRLF, and byte streams split at any point."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.providers.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    d = SSEDecoder()
    out: list[ServerSentEvent] = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.close())
    return out


def test_fields_and_default_event_name() -> None:
    events = decode(b'event: delta\nid: 7\nretry: 1500\ndata: {"a":1}\n\ndata: plain\n\n')
    assert events == [
        ServerSentEvent("delta", '{"a":1}', "7", 1500),
        ServerSentEvent("message", "plain", "7", None),  # the last event id persists
    ]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert decode(b"data: first\ndata: second\ndata:third\n\n")[0].data == "first\nsecond\nthird"


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = decode(b": keep-alive\n\n:another\nfoo: bar\ndata: x\n\n")
    assert [e.data for e in events] == ["x"]


def test_only_one_space_after_the_colon_is_stripped() -> None:
    assert decode(b"data:  two spaces\n\n")[0].data == " two spaces"


def test_crlf_cr_and_lf_line_ends_are_equivalent() -> None:
    lf = decode(b"event: a\ndata: 1\n\ndata: 2\n\n")
    assert decode(b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n") == lf
    assert decode(b"event: a\rdata: 1\r\rdata: 2\r\r") == lf


def test_cr_and_lf_split_across_chunks_is_one_line_end() -> None:
    assert decode(b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n") == decode(b"data: 1\n\ndata: 2\n\n")


def test_utf8_split_inside_a_character() -> None:
    raw = "data: café ☕ 日本\n\n".encode()
    cut = raw.index("☕".encode()) + 1
    assert decode(raw[:cut], raw[cut:])[0].data == "café ☕ 日本"


def test_trailing_event_without_blank_line_is_dispatched_on_close() -> None:
    assert decode(b"data: [DONE]")[0].data == "[DONE]"


def test_done_sentinel_is_plain_data() -> None:
    assert [e.data for e in decode(b"data: {}\n\ndata: [DONE]\n\n")] == ["{}", "[DONE]"]


def test_oversized_event_is_refused() -> None:
    import pytest

    from portal.errors import InvalidResponse

    d = SSEDecoder(max_event_bytes=64)
    with pytest.raises(InvalidResponse, match="larger than 64 bytes"):
        d.feed(b"data: " + b"x" * 200)


_field = st.sampled_from(["data", "event", "id", "retry", ": comment", "data"])
_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
    max_size=12,
)
_eol = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        for _ in range(draw(st.integers(1, 4))):
            f = draw(_field)
            lines.append(f if f.startswith(":") else f"{f}: {draw(_value)}")
            lines.append(draw(_eol))
        lines.append(draw(_eol))  # blank line: dispatch
    return "".join(lines).encode()


@settings(max_examples=300, deadline=None)
@given(stream=streams(), data=st.data())
def test_any_split_of_the_byte_stream_yields_the_same_events(
    stream: bytes, data: st.DataObject
) -> None:
    whole = decode(stream)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode(*pieces) == whole
    # byte-by-byte is the extreme split
    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == whole
