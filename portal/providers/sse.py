"""One incremental Server-Sent Events decoder for every SSE-speaking vendor.

Follows the WHATWG event-stream rules: fields ``event``, ``data`` (multi-line, joined with
``\\n``), ``id``, ``retry``; ``:`` comments; LF, CR or CRLF line ends; a blank line dispatches.
Bytes may be split anywhere, including inside a UTF-8 sequence or between CR and LF.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from portal.errors import InvalidResponse

__all__ = ["SSEDecoder", "ServerSentEvent"]

#: a single event larger than this is refused rather than buffered without bound
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes, get complete events. Call `close` at end of stream for a trailing event."""

    __slots__ = (
        "_buf",
        "_data",
        "_event",
        "_id",
        "_pending_cr",
        "_retry",
        "_size",
        "_utf8",
        "max_event_bytes",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._pending_cr = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        text = self._utf8.decode(chunk)
        if not text:
            return []
        if self._pending_cr:
            self._pending_cr = False
            text = text.removeprefix("\n")
        buf = self._buf + text if self._buf else text
        if "\r" not in buf:  # LF line ends only (every vendor's): split once
            return self._lf_lines(buf)
        events: list[ServerSentEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find("\n", start)
            cr = buf.find("\r", start)
            if lf == -1 and cr == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == "\n" else cr + 1
                else:
                    nxt = cr + 1
                    self._pending_cr = True
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._buf = buf[start:]
        if self._size + len(self._buf) > self.max_event_bytes:  # a line still arriving
            self._too_large()
        return events

    def _lf_lines(self, buf: str) -> list[ServerSentEvent]:
        """`feed` for text without CR: the same lines, found by one split; ``data:`` lines
        (nearly all of them) handled inline."""
        lines = buf.split("\n")
        rest = lines.pop()  # after the last LF: a line still arriving
        events: list[ServerSentEvent] = []
        cap = self.max_event_bytes
        for line in lines:
            if line.startswith("data: "):
                self._size += len(line)
                if self._size > cap:
                    self._too_large()
                self._data.append(line[6:])
                continue
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buf = rest
        if self._size + len(rest) > cap:  # a line still arriving
            self._too_large()
        return events

    def _too_large(self) -> None:
        raise InvalidResponse(
            f"stream event larger than {self.max_event_bytes} bytes; refusing to buffer it "
            "(raise the provider option max_event_bytes if the vendor really sends such events)"
        )

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a final line without its newline still counts; an event not
        terminated by a blank line is dispatched too (many servers omit it)."""
        tail = self._utf8.decode(b"", final=True)
        rest = self._buf + tail
        self._buf = ""
        events = []
        if rest:
            ev = self._line(rest)
            if ev is not None:
                events.append(ev)
        ev = self._dispatch()
        if ev is not None:
            events.append(ev)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        # every line up to the blank one counts once towards the event's size, comments too,
        # so the cap does not depend on how the bytes were split into chunks
        self._size += len(line)
        if self._size > self.max_event_bytes:
            self._too_large()
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self._size = 0
        if not self._data and not self._event:
            return None
        ev = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id, self._retry)
        self._event = ""
        self._data = []
        self._retry = None
        return ev
