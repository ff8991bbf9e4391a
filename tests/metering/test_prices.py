"""Cost from each vendor's usage shape, price lookup rules, overrides."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portal.contracts.responses import Usage
from portal.errors import ConfigError
from portal.metering.prices import PriceTable

M = 1e-6
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_openai_chat_usage_with_cached_and_reasoning_tokens(table: PriceTable) -> None:
    # chat.completions: prompt_tokens includes prompt_tokens_details.cached_tokens;
    # completion_tokens includes completion_tokens_details.reasoning_tokens
    wire = {
        "prompt_tokens": 2000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 1500},
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    usage = Usage(
        input_tokens=wire["prompt_tokens"],
        output_tokens=wire["completion_tokens"],
        cached_input_tokens=wire["prompt_tokens_details"]["cached_tokens"],
        reasoning_tokens=wire["completion_tokens_details"]["reasoning_tokens"],
    )
    cost = table.cost("openai", "gpt-4.1-mini-2025-04-14", usage)
    assert cost == pytest.approx((500 * 0.40 + 1500 * 0.10 + 500 * 1.60) * M)
    # reasoning tokens are inside output_tokens: they must not be billed twice
    usage.reasoning_tokens = 0
    assert table.cost("openai", "gpt-4.1-mini", usage) == pytest.approx(cost)


def test_anthropic_usage_with_cache_reads_and_writes(table: PriceTable) -> None:
    # Messages API: input_tokens excludes cache_read_input_tokens / cache_creation_input_tokens
    wire = {
        "input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 500,
        "output_tokens": 300,
    }
    usage = Usage(
        input_tokens=wire["input_tokens"]
        + wire["cache_read_input_tokens"]
        + wire["cache_creation_input_tokens"],
        output_tokens=wire["output_tokens"],
        cached_input_tokens=wire["cache_read_input_tokens"],
        cache_write_tokens=wire["cache_creation_input_tokens"],
    )
    cost = table.cost("anthropic", "claude-haiku-4-5-20251001", usage)
    assert cost == pytest.approx((100 * 1.0 + 2000 * 0.10 + 500 * 1.25 + 300 * 5.0) * M)


def test_gemini_usage_thoughts_billed_as_output_and_long_context_tier(table: PriceTable) -> None:
    # usageMetadata: promptTokenCount includes cachedContentTokenCount; thoughtsTokenCount is
    # not in candidatesTokenCount but is billed as output
    wire = {
        "promptTokenCount": 10_000,
        "cachedContentTokenCount": 8_000,
        "candidatesTokenCount": 200,
        "thoughtsTokenCount": 800,
    }
    usage = Usage(
        input_tokens=wire["promptTokenCount"],
        output_tokens=wire["candidatesTokenCount"] + wire["thoughtsTokenCount"],
        cached_input_tokens=wire["cachedContentTokenCount"],
        reasoning_tokens=wire["thoughtsTokenCount"],
    )
    assert table.cost("gemini", "models/gemini-2.5-flash", usage) == pytest.approx(
        (2000 * 0.30 + 8000 * 0.03 + 1000 * 2.50) * M
    )
    long = Usage(input_tokens=300_000, output_tokens=1000, cached_input_tokens=100_000)
    assert table.cost("gemini", "gemini-2.5-pro", long) == pytest.approx(
        (200_000 * 2.50 + 100_000 * 0.25 + 1000 * 15.0) * M
    )
    short = Usage(input_tokens=200_000, output_tokens=1000)
    assert table.cost("gemini", "gemini-2.5-pro", short) == pytest.approx(
        (200_000 * 1.25 + 1000 * 10.0) * M
    )


def test_bedrock_converse_usage_regional_vs_global_profiles(table: PriceTable) -> None:
    # Converse: inputTokens excludes cacheReadInputTokens / cacheWriteInputTokens
    wire = {
        "inputTokens": 50,
        "cacheReadInputTokens": 1000,
        "cacheWriteInputTokens": 200,
        "outputTokens": 100,
    }
    usage = Usage(
        input_tokens=wire["inputTokens"]
        + wire["cacheReadInputTokens"]
        + wire["cacheWriteInputTokens"],
        output_tokens=wire["outputTokens"],
        cached_input_tokens=wire["cacheReadInputTokens"],
        cache_write_tokens=wire["cacheWriteInputTokens"],
    )
    glob = table.cost("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", usage)
    assert glob == pytest.approx((50 * 3.0 + 1000 * 0.30 + 200 * 3.75 + 100 * 15.0) * M)
    for regional in (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ):
        assert table.cost("bedrock", regional, usage) == pytest.approx(glob * 1.1), regional


def test_vendor_without_cache_prices_bills_cached_tokens_at_input(table: PriceTable) -> None:
    t = table.with_overrides({"local": {"m": {"input": 0.4, "output": 2.0}}})
    usage = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=400)
    assert t.cost("local", "m", usage) == pytest.approx((1000 * 0.40 + 100 * 2.0) * M)


def test_azure_deployment_named_provider_falls_back_to_kind(table: PriceTable) -> None:
    price = table.lookup("my-azure", "gpt-4o-mini-2024-07-18", kind="azure-openai")
    assert price is not None and price.input == 0.15
    assert table.lookup("my-azure", "gpt-4o-mini") is None


@pytest.mark.parametrize(
    ("provider", "model", "kind"),
    [
        ("openai", "unknown-model", None),
        ("local", "meta-llama/Llama-3.3-70B-Instruct", "openai-compatible"),  # self-hosted
        ("ollama", "llama3:8b", "openai-compatible"),
    ],
)
def test_unknown_models_have_no_price(
    table: PriceTable, provider: str, model: str, kind: str | None
) -> None:
    assert table.lookup(provider, model, kind) is None
    assert table.cost(provider, model, Usage(10, 10), kind) is None


def test_longest_family_wins(table: PriceTable) -> None:
    mini = table.lookup("openai", "gpt-4.1-mini")
    assert table.lookup("openai", "gpt-4.1-mini-2025-04-14") == mini
    assert table.lookup("openai", "gpt-4.1-2025-04-14") == table.lookup("openai", "gpt-4.1")
    assert table.lookup("gemini", "gemini-2.5-flash-lite").input == 0.10  # type: ignore[union-attr]
    assert table.lookup("anthropic", "claude-opus-4-1-20250805").input == 15.0  # type: ignore[union-attr]
    assert table.lookup("anthropic", "claude-opus-4-5-20251101").input == 5.0  # type: ignore[union-attr]
    assert table.lookup("anthropic", "claude-sonnet-4-5@20250929") is not None  # Vertex form


def test_unknown_model_warns_once_and_is_never_zero(
    table: PriceTable, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = PriceTable.from_dict({"providers": {"openai": {"models": {}}}})
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        assert fresh.cost("openai", "gpt-x", Usage(1, 1)) is None
        assert fresh.cost("openai", "gpt-x", Usage(5, 5)) is None
        assert fresh.cost("openai", "gpt-y", Usage(5, 5)) is None
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("openai:gpt-x" in m for m in msgs) == 1
    assert sum("openai:gpt-y" in m for m in msgs) == 1
    assert 'prices."gpt-x"' in msgs[0]  # says how to fix it


def test_overrides_partial_and_new_models(table: PriceTable) -> None:
    t = table.with_overrides(
        {
            "openai": {"gpt-4.1-mini": {"input": 0.30}},
            "together": {"meta-llama/Llama-3.3-70B-Instruct-Turbo": {"input": 0.8, "output": 0.9}},
        }
    )
    p = t.lookup("openai", "gpt-4.1-mini-2025-04-14")
    assert p is not None and (p.input, p.output, p.cached_input) == (0.30, 1.6, 0.1)
    assert p.source.startswith("config + genai-prices ")
    q = t.lookup("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo")
    assert q is not None and q.cost(Usage(1_000_000, 1_000_000)) == pytest.approx(1.7)
    assert table.lookup("openai", "gpt-4.1-mini").input == 0.40  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"openai": {"gpt-4.1": {"inptu": 1.0}}},
            r"unknown price field or service tier 'inptu'; did you mean 'input'",
        ),
        ({"openai": {"gpt-4.1": {"input": -1}}}, r'"gpt-4.1"\.input: prices cannot be negative'),
        ({"openai": {"gpt-4.1": {"input": "cheap"}}}, r"expected a number"),
        ({"openai": {"gpt-4.1": {"input": float("nan")}}}, r"expected a finite number"),
        ({"openai": {"gpt-4.1": 3}}, r"expected a table like"),
        (
            {"openai": {"gpt-4.1": {"premium": {"input": 1}}}},
            r"unknown price field or service tier 'premium'",
        ),
        (
            {"openai": {"gpt-4.1": {"flex": {"input": -2}}}},
            r'"gpt-4.1"\.flex\.input: prices cannot be negative',
        ),
        ({"openai": {"gpt-4.1": {"flex": {"speed": 2}}}}, r"flex: unknown price field 'speed'"),
    ],
)
def test_bad_overrides_name_the_field(table: PriceTable, override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        table.with_overrides(override)


def test_shipped_table_keeps_only_what_genai_prices_lacks(table: PriceTable) -> None:
    """prices.json holds the simulated provider's made-up prices and nothing a maintained
    source already has."""
    assert table.providers() == ["sim"]
    for model, price in table.models("sim").items():
        assert price.checked and re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.checked), model
        assert price.simulated and price.source == "prices.json"
    assert table.lookup("sim", "anything-at-all") is not None


def test_bad_price_file_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "p.json"
    bad.write_text('{"providers": {"openai": {"models": {"m": {"input": 1}}}}}')
    with pytest.raises(ConfigError, match=r"models\.'m': missing 'output'"):
        PriceTable.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"p\.json:1:2: not valid JSON"):
        PriceTable.load(bad)  # a failed load is not cached


def test_importing_metering_loads_nothing_heavy() -> None:
    code = (
        "import sys, portal.metering, portal.metering.prices, portal.tokens;"
        "heavy = [m for m in ('tiktoken', 'psycopg', 'sqlite3', 'genai_prices') if m in sys.modules];"
        "from portal.metering import prices;"
        "assert not prices._loaded, 'price table parsed at import';"
        "print(heavy)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"
