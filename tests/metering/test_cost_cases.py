"""What calls cost, end to end: a vendor's documented reply (usage and tier fields) through the
real client and the default price source, priced to the cent at the vendor's published rates.

Rates used (USD per 1M tokens, the vendors' pricing pages):
- Anthropic Claude Sonnet 4.5: input 3, output 15, cache read 0.30, 5-minute cache write 3.75
  (1.25x input), 1-hour cache write 6 (2x input); Message Batches: half of each.
- OpenAI GPT-5: input 1.25, cached input 0.125, output 10; priority 2.50 / 0.25 / 20;
  flex 0.625 / 0.0625 / 5. Reasoning tokens are part of completion_tokens.
- Gemini 2.5 Flash: input 0.30, cached (context caching) 0.03, output (thinking included) 2.50.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import version
from typing import Any

import httpx2
import pytest

import portal
from portal.metering.ledger import read_records

CENT = 0.01
GENAI = f"genai-prices {version('genai-prices')}"


def _client(kind: str, body: dict[str, Any], tmp_path: Any, **provider: Any) -> portal.Client:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=body)

    cfg = {
        "portal": {"ledger": f"jsonl:///{tmp_path / 'ledger.jsonl'}"},
        "providers": {"v": {"kind": kind, "api_key": "k-test", **provider}},
    }
    client = portal.Client(cfg, transports={"v": httpx2.MockTransport(handler)})
    client.seen = seen  # type: ignore[attr-defined]
    return client


def _ask(client: portal.Client, model: str) -> portal.Response:
    return client.chat(model=f"v:{model}", messages=[portal.user("hi")], max_tokens=500)


def _rows(client: portal.Client, tmp_path: Any) -> list[Any]:
    client.close()
    return read_records(f"jsonl:///{tmp_path / 'ledger.jsonl'}")


def _anthropic_reply(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 30_000,
    "cache_read_input_tokens": 100_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 20_000},
    "output_tokens": 4_000,
    "service_tier": "standard",
}
#: 50 x 3 + 100,000 x 0.30 + 10,000 x 3.75 + 20,000 x 6 + 4,000 x 15, per million
ANTHROPIC_COST = (150 + 30_000 + 37_500 + 120_000 + 60_000) / 1e6  # $0.24765


def test_anthropic_5_minute_and_1_hour_cache_writes_priced_apart(tmp_path: Any) -> None:
    client = _client("anthropic", _anthropic_reply(ANTHROPIC_USAGE), tmp_path)
    resp = _ask(client, "claude-sonnet-4-5")
    assert resp.usage.cache_write_tokens == 30_000 and resp.usage.cache_write_1h_tokens == 20_000
    assert resp.cost_usd == pytest.approx(ANTHROPIC_COST, abs=1e-9)
    assert round(resp.cost_usd / CENT) == 25  # 24.765 cents; at the 5-minute rate: 20.2
    call = next(r for r in _rows(client, tmp_path) if r.kind == "call")
    assert call.cache_write_1h_tokens == 20_000
    assert (call.cost_source, call.price_source) == ("computed", GENAI)


def test_anthropic_batch_tier_is_half_price(tmp_path: Any) -> None:
    usage = {**ANTHROPIC_USAGE, "service_tier": "batch"}
    client = _client("anthropic", _anthropic_reply(usage), tmp_path)
    resp = _ask(client, "claude-sonnet-4-5")
    assert resp.usage.service_tier == "batch"
    assert resp.cost_usd == pytest.approx(ANTHROPIC_COST / 2, abs=1e-9)
    assert [r.service_tier for r in _rows(client, tmp_path)] == ["batch", "batch"]


def _openai_reply(tier: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-5-2025-08-07",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 100_000,
            "completion_tokens": 20_000,
            "total_tokens": 120_000,
            "prompt_tokens_details": {"cached_tokens": 80_000, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 15_000, "audio_tokens": 0},
        },
    }
    if tier is not None:
        body["service_tier"] = tier
    return body


@pytest.mark.parametrize(
    ("tier", "rates"),
    [
        ("default", (1.25, 0.125, 10.0)),
        (None, (1.25, 0.125, 10.0)),
        ("priority", (2.5, 0.25, 20.0)),
        ("flex", (0.625, 0.0625, 5.0)),
    ],
)
def test_openai_cached_input_reasoning_and_service_tier(
    tmp_path: Any, tier: str | None, rates: tuple[float, float, float]
) -> None:
    client = _client("openai", _openai_reply(tier), tmp_path)
    resp = _ask(client, "gpt-5")
    inp, cached, out = rates
    # 20,000 fresh + 80,000 cached input; 20,000 output with the 15,000 reasoning inside it
    want = (20_000 * inp + 80_000 * cached + 20_000 * out) / 1e6
    assert resp.cost_usd == pytest.approx(want, abs=1e-9)
    assert resp.usage.reasoning_tokens == 15_000
    client.close()


def test_openai_priority_costs_twice_standard_to_the_cent(tmp_path: Any) -> None:
    standard = _ask(_client("openai", _openai_reply("default"), tmp_path), "gpt-5").cost_usd
    priority = _ask(_client("openai", _openai_reply("priority"), tmp_path), "gpt-5").cost_usd
    assert (round(standard / CENT), round(priority / CENT)) == (23, 47)  # $0.235, $0.47


def test_gemini_cached_content_and_thinking(tmp_path: Any) -> None:
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "hello"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 100_000,
            "cachedContentTokenCount": 80_000,
            "candidatesTokenCount": 2_000,
            "thoughtsTokenCount": 8_000,
            "totalTokenCount": 110_000,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }
    client = _client("gemini", body, tmp_path)
    resp = _ask(client, "gemini-2.5-flash")
    want = (20_000 * 0.30 + 80_000 * 0.03 + 10_000 * 2.50) / 1e6  # $0.0334
    assert resp.cost_usd == pytest.approx(want, abs=1e-9)
    client.close()


def test_a_cost_the_gateway_reports_wins_and_says_so(tmp_path: Any) -> None:
    body = _openai_reply(None)
    body["usage"]["cost"] = 0.0421  # OpenRouter's usage accounting: USD charged
    client = _client("openai-compatible", body, tmp_path, base_url="https://openrouter.ai/api/v1")
    resp = _ask(client, "openai/gpt-5")
    assert resp.cost_usd == pytest.approx(0.0421)
    assert {(r.kind, r.cost_source) for r in _rows(client, tmp_path)} == {
        ("attempt", "vendor"),
        ("call", "vendor"),
    }


def test_gateway_models_are_priced_by_base_url(tmp_path: Any) -> None:
    """An OpenAI-compatible provider is found in the price source by its base URL."""
    body = _openai_reply(None)
    body["usage"] = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    client = _client("openai-compatible", body, tmp_path, base_url="https://api.groq.com/openai/v1")
    resp = _ask(client, "llama-3.3-70b-versatile")
    assert resp.cost_usd == pytest.approx(0.59 + 0.79)  # Groq's list prices
    client.close()


def test_config_price_overrides_the_source_and_is_recorded(tmp_path: Any) -> None:
    client = _client(
        "openai",
        _openai_reply("priority"),
        tmp_path,
        prices={"gpt-5": {"input": 1.0, "output": 8.0, "priority": {"input": 2.0}}},
    )
    resp = _ask(client, "gpt-5")
    # priority: input from config (2.0); cached input and output keep the list priority rates
    assert resp.cost_usd == pytest.approx((20_000 * 2.0 + 80_000 * 0.25 + 20_000 * 20) / 1e6)
    call = next(r for r in _rows(client, tmp_path) if r.kind == "call")
    assert call.price_source == "config"


def test_unknown_tier_bills_standard_and_warns_once(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client("openai", _openai_reply("scale"), tmp_path)
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        first = _ask(client, "gpt-5")
        _ask(client, "gpt-5")
    assert first.cost_usd == pytest.approx((20_000 * 1.25 + 80_000 * 0.125 + 20_000 * 10) / 1e6)
    tier_warnings = [r for r in caplog.records if "'scale'" in r.getMessage()]
    assert len(tier_warnings) == 1
    client.close()


def test_unknown_model_warns_once_per_model_and_is_never_zero(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(
        "openai-compatible", _openai_reply(None), tmp_path, base_url="http://127.0.0.1:9/v1"
    )
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        for _ in range(3):
            assert _ask(client, "my-finetune").cost_usd is None
    msgs = [r.getMessage() for r in caplog.records if "no price for" in r.getMessage()]
    assert len(msgs) == 1
    assert 'Fix: add [providers.v.prices."my-finetune"]' in msgs[0]
    rows = _rows(client, tmp_path)
    assert all(r.cost_usd is None and r.cost_source is None for r in rows)


def test_reply_json_is_the_documented_shape() -> None:
    """The fixtures above carry the fields the vendors document (a guard against typos)."""
    assert set(ANTHROPIC_USAGE["cache_creation"]) == {  # type: ignore[arg-type]
        "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens",
    }
    assert json.loads(json.dumps(_openai_reply("flex")))["service_tier"] == "flex"


def test_a_load_test_of_unpriced_targets_says_unpriced_not_zero() -> None:
    from portal.stress.engine import Sample
    from portal.stress.results import priced_cost

    def sample(cost: float | None) -> Sample:
        s = Sample(intended_s=0.0)
        s.cost_usd = cost
        return s

    assert priced_cost([sample(None), sample(None)]) == (None, 2)
    assert priced_cost([sample(0.5), sample(None)]) == (0.5, 1)
    assert priced_cost([]) == (0, 0)


def test_openai_stream_reports_the_tier_in_its_chunks(tmp_path: Any) -> None:
    """Streamed Chat Completions carry service_tier on every chunk; the usage chunk (sent
    with stream_options.include_usage) is priced at that tier."""

    def chunk(**kw: Any) -> str:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-5-2025-08-07",
            "service_tier": "flex",
            **kw,
        }
        return f"data: {json.dumps(body)}\n\n"

    sse = (
        chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "hel"}}])
        + chunk(choices=[{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}])
        + chunk(choices=[], usage=_openai_reply(None)["usage"])
        + "data: [DONE]\n\n"
    )

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )

    cfg = {"portal": {"ledger": "none"}, "providers": {"v": {"kind": "openai", "api_key": "k"}}}
    client = portal.Client(cfg, transports={"v": httpx2.MockTransport(handler)})
    events = list(client.stream(model="v:gpt-5", messages=[portal.user("hi")], max_tokens=500))
    final = events[-1].response
    assert final is not None and final.usage.service_tier == "flex"
    assert final.cost_usd == pytest.approx((20_000 * 0.625 + 80_000 * 0.0625 + 20_000 * 5) / 1e6)
    client.close()
