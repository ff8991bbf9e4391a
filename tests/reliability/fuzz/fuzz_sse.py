"""atheris harness for portal's SSE decoder (`portal.providers.sse.SSEDecoder`).

Properties checked on every input:
- only `InvalidResponse` (an oversized event) may be raised;
- the outcome does not depend on where the byte stream was split: feeding the input in fuzzed
  chunks yields exactly the events (or the same refusal) as feeding it whole (UTF-8
  sequences, CR/LF pairs and fields cut anywhere);
- the decoder never holds more than ``max_event_bytes`` (plus the chunk being fed) of one
  event, so a vendor cannot make it buffer without bound.

Run: ``python tests/reliability/fuzz/fuzz_sse.py -runs=200000`` (libFuzzer flags apply).
"""

from __future__ import annotations

import itertools
import sys

import atheris

with atheris.instrument_imports():
    from portal.errors import InvalidResponse
    from portal.providers.sse import SSEDecoder


def _decode(
    chunks: list[bytes], limit: int
) -> list[tuple[str, str, str | None, int | None]] | None:
    dec = SSEDecoder(max_event_bytes=limit)
    out = []
    try:
        for chunk in chunks:
            out.extend(dec.feed(chunk))
            held = len(dec._buf) + sum(len(d) for d in dec._data) + len(dec._event)
            if held > limit + len(chunk):
                raise AssertionError(f"decoder holds {held} chars, over the {limit} cap")
        out.extend(dec.close())
    except InvalidResponse:
        return None
    return [(e.event, e.data, e.id, e.retry) for e in out]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limit = fdp.ConsumeIntInRange(8, 2048)
    cuts = sorted({fdp.ConsumeIntInRange(0, 512) for _ in range(fdp.ConsumeIntInRange(0, 12))})
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    edges = [0, *[c for c in cuts if c < len(body)], len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(edges)]
    whole = _decode([body], limit)
    split = _decode(chunks, limit)
    if whole != split:
        raise AssertionError(f"chunking changed the outcome: {whole!r} != {split!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
