"""The simulated vendor is deterministic, honest about tokens, and fails as configured."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx2
import pytest

from portal.contracts.schema import list_errors
from portal.metering.stats import percentile
from portal.providers.settings import ProviderSettings
from portal.providers.simulated import SimOptions, SimTransport, SimulatedAdapter, instance_for


def post(transport: SimTransport, body: dict[str, Any]) -> httpx2.Response:
    with httpx2.Client(transport=transport, base_url="http://sim.test/v1") as client:
        return client.post("/chat/completions", json=body)


BODY = {"model": "m", "messages": [{"role": "user", "content": "Where is order 12?"}]}


def test_same_seed_same_answers() -> None:
    a = [post(SimTransport(SimOptions(seed=5, time_scale=0)), BODY).json() for _ in range(1)]
    b = [post(SimTransport(SimOptions(seed=5, time_scale=0)), BODY).json() for _ in range(1)]
    strip = [{k: v for k, v in r.items() if k != "created"} for r in a + b]
    assert strip[0] == strip[1]
    other = post(SimTransport(SimOptions(seed=6, time_scale=0)), BODY).json()
    assert other["choices"][0]["message"]["content"] != a[0]["choices"][0]["message"]["content"]


def test_usage_is_counted_with_the_tokenizer() -> None:
    from portal.tokens import count_tokens

    reply = post(SimTransport(SimOptions(time_scale=0)), BODY).json()
    text = reply["choices"][0]["message"]["content"]
    assert reply["usage"]["completion_tokens"] == count_tokens(text)[0]
    assert reply["usage"]["prompt_tokens"] == count_tokens("Where is order 12?")[0]


def test_error_rates_are_honoured() -> None:
    t = SimTransport(
        SimOptions(seed=1, time_scale=0, error_rates={"rate_limit": 0.3, "server_error": 0.1})
    )
    statuses = [post(t, BODY).status_code for _ in range(2000)]
    assert abs(statuses.count(429) / 2000 - 0.3) < 0.04
    assert abs(statuses.count(500) / 2000 - 0.1) < 0.03
    limited = post(
        SimTransport(
            SimOptions(seed=1, time_scale=0, error_rates={"rate_limit": 1.0}, retry_after_s=2)
        ),
        BODY,
    )
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"


def test_latency_distribution_matches_p50_and_p99() -> None:
    t = SimTransport(SimOptions(seed=3, latency_p50_ms=200, latency_p99_ms=1000))
    samples = [t._plan().latency_s * 1000 for _ in range(20000)]
    assert percentile(samples, 50) == pytest.approx(200, rel=0.05)
    assert percentile(samples, 99) == pytest.approx(1000, rel=0.1)


def test_context_window_is_enforced() -> None:
    t = SimTransport(SimOptions(time_scale=0, context_window=5))
    reply = post(t, BODY)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "context_length_exceeded"


def test_structured_output_validates_against_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": 200},
            "order_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "priority": {"enum": ["low", "high"]},
            "items": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 9},
                "minItems": 1,
            },
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["answer", "order_id", "priority", "items", "score"],
        "additionalProperties": False,
    }
    body = BODY | {
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": schema}}
    }
    for seed in range(30):
        reply = post(SimTransport(SimOptions(seed=seed, time_scale=0)), body).json()
        value = json.loads(reply["choices"][0]["message"]["content"])
        assert list_errors(value, schema) == []
        assert value["order_id"] == "12"


def test_instances_follow_nested_schemas() -> None:
    import random

    schema = {
        "type": "object",
        "properties": {
            "a": {
                "type": "object",
                "properties": {"b": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}},
                "required": ["b"],
            }
        },
        "required": ["a"],
    }
    value = instance_for(schema, "", random.Random(1))
    assert list_errors(value, schema) == [] and len(value["a"]["b"]) <= 2


def test_stream_is_openai_chunk_format_with_usage_and_done() -> None:
    t = SimTransport(SimOptions(time_scale=0))
    body = BODY | {"stream": True, "stream_options": {"include_usage": True}}
    raw = post(t, body).text
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_unknown_options_are_config_errors() -> None:
    from portal.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        SimulatedAdapter(ProviderSettings("s", "sim", options={"error_rates": {"meteor": 0.1}}))
    assert str(info.value) == (
        "providers.s.options.error_rates: unknown kind(s) meteor; known: rate_limit, "
        "server_error, overloaded, timeout, stream_cut"
    )


def test_embeddings_are_unit_vectors_and_similar_texts_are_close() -> None:
    t = SimTransport(SimOptions(time_scale=0))
    with httpx2.Client(transport=t, base_url="http://sim.test/v1") as client:
        data = client.post(
            "/embeddings",
            json={
                "model": "e",
                "input": ["refund policy for shoes", "refund policy for boots", "weather in Paris"],
            },
        ).json()["data"]
    vecs = [d["embedding"] for d in data]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vecs)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2])
