"""atheris harness for Bedrock's event-stream decoding (botocore's `EventStreamBuffer`
behind `portal.providers.bedrock.BedrockStreamParser`).

The input is split into frames: some well-formed (valid prelude and CRCs, fuzzed headers and
JSON payloads: so the fuzzer reaches the parser's event handling), some raw fuzzed bytes (so
it reaches the framing checks). Property: every input ends in a `Response` or a
`ProviderError` subclass, fed in fuzzed chunk sizes.

Run: ``python tests/reliability/fuzz/fuzz_eventstream.py -runs=100000``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

with atheris.instrument_imports(include=["portal"]):
    from portal.contracts.responses import Response
    from portal.errors import ProviderError
    from tests.reliability import _vendors as v

    _ADAPTER = v.make_adapter("bedrock")  # imports the bedrock adapter inside the block
    _MODEL = v.model_of("bedrock")
_EVENTS = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "throttlingException",
    "somethingNew",
]
_KEYS = [
    "contentBlockIndex",
    "delta",
    "text",
    "toolUse",
    "input",
    "name",
    "toolUseId",
    "start",
    "stopReason",
    "usage",
    "inputTokens",
    "outputTokens",
    "metrics",
    "message",
]


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    pick = fdp.ConsumeIntInRange(0, 7 if depth < 3 else 4)
    if pick == 0:
        return None
    if pick == 1:
        return fdp.ConsumeInt(4)
    if pick == 2:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 16))
    if pick == 3:
        return fdp.ConsumeRegularFloat()
    if pick == 4:
        return fdp.PickValueInList(["end_turn", "tool_use", "max_tokens", "weird", ""])
    if pick == 5:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {
        fdp.PickValueInList(_KEYS): _value(fdp, depth + 1)
        for _ in range(fdp.ConsumeIntInRange(0, 4))
    }


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    raw = b""
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        how = fdp.ConsumeIntInRange(0, 3)
        if how == 3:
            raw += fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32))
            continue
        name = fdp.PickValueInList(_EVENTS)
        payload = json.dumps(_value(fdp)).encode() if how < 2 else fdp.ConsumeBytes(16)
        kind = "exception" if name.endswith("Exception") else "event"
        raw += v.bedrock_event(name, payload, kind)
    parser = _ADAPTER.stream_parser(v.stream_request(), _MODEL)
    step = fdp.ConsumeIntInRange(1, 64)
    try:
        for i in range(0, len(raw), step):
            parser.feed(raw[i : i + step])
        resp = parser.finish()
    except ProviderError:
        return
    if not isinstance(resp, Response):
        raise AssertionError(f"finish returned {type(resp).__name__}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
