"""The simulated vendor's prompt cache: a prefix of at least the minimum length seen on this
vendor within the TTL is read from the cache (in 128-token steps), the first time it is a
write; each vendor has its own cache; the OpenAI adapter reads both counts."""

from __future__ import annotations

from typing import Any

import httpx2

import portal
from portal.providers.openai import OpenAIAdapter
from portal.providers.simulated import SimOptions, SimTransport

SYSTEM = "Answer questions about the attached contract. " * 400  # about 3,000 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def body(question: str, system: str = SYSTEM) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
    }


def usage(transport: SimTransport, payload: dict[str, Any]) -> dict[str, Any]:
    with httpx2.Client(transport=transport, base_url="http://sim.test/v1") as client:
        reply = client.post("/chat/completions", json=payload).json()
    return reply["usage"]  # type: ignore[no-any-return]


def cached_sim(**options: Any) -> tuple[SimTransport, Clock]:
    t = SimTransport(
        SimOptions(time_scale=0, prompt_cache=True, prompt_cache_writes=True, **options)
    )
    clock = Clock()
    t.clock = clock
    return t, clock


def test_the_first_prompt_writes_and_the_next_one_reads_the_shared_prefix() -> None:
    t, _ = cached_sim()
    first = usage(t, body("Who signs it?"))
    details = first["prompt_tokens_details"]
    assert details["cached_tokens"] == 0
    assert details["cache_write_tokens"] == first["prompt_tokens"]
    second = usage(t, body("When does it end?"))
    read = second["prompt_tokens_details"]["cached_tokens"]
    assert read % 128 == 0 and 1024 <= read <= second["prompt_tokens"]
    assert second["prompt_tokens"] - read < 200  # everything but the new question
    assert second["prompt_tokens_details"]["cache_write_tokens"] == second["prompt_tokens"] - read
    # the same prompt again reads all of it but the last partial 128 tokens
    again = usage(t, body("When does it end?"))
    assert again["prompt_tokens"] - again["prompt_tokens_details"]["cached_tokens"] < 128


def test_a_prefix_expires_after_its_ttl_since_the_last_use() -> None:
    t, clock = cached_sim(prompt_cache_ttl_s=300)
    usage(t, body("q1"))
    clock.now += 299
    assert usage(t, body("q2"))["prompt_tokens_details"]["cached_tokens"] > 0
    clock.now += 299  # the read renewed it
    assert usage(t, body("q3"))["prompt_tokens_details"]["cached_tokens"] > 0
    clock.now += 301
    assert usage(t, body("q4"))["prompt_tokens_details"]["cached_tokens"] == 0


def test_short_prompts_and_other_prefixes_are_not_read_from_the_cache() -> None:
    t, _ = cached_sim()
    short = body("q", system="Be brief.")
    usage(t, short)
    assert usage(t, short)["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    usage(t, body("q1"))
    other = usage(t, body("q1", system="Another contract entirely. " * 400))
    assert other["prompt_tokens_details"]["cached_tokens"] == 0


def test_each_vendor_has_its_own_cache_and_caching_is_off_by_default() -> None:
    one, _ = cached_sim()
    two, _ = cached_sim()
    usage(one, body("q1"))
    assert usage(two, body("q2"))["prompt_tokens_details"]["cached_tokens"] == 0
    plain = SimTransport(SimOptions(time_scale=0))
    usage(plain, body("q1"))
    assert "prompt_tokens_details" not in usage(plain, body("q2"))


def test_the_openai_adapter_reads_cache_reads_and_writes() -> None:
    u = OpenAIAdapter.parse_usage(
        {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "total_tokens": 196,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100},
        }
    )
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens) == (194, 0, 100)


def test_a_client_call_reports_the_cache_in_usage_and_cost() -> None:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "a": {
                "kind": "sim",
                "options": {"time_scale": 0, "prompt_cache": True, "prompt_cache_writes": True},
                "prices": {
                    "m": {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
                },
            }
        },
        "features": {"f": {"primary": "a:m"}},
    }
    with portal.Client(cfg, ledger=None) as client:
        msgs = [portal.system(SYSTEM, cache=True), portal.user("Who signs it?")]
        first = client.chat(feature="f", messages=msgs)
        second = client.chat(feature="f", messages=[msgs[0], portal.user("When?")])
    assert first.usage.cached_input_tokens == 0 and first.usage.cache_write_tokens > 1000
    assert second.usage.cached_input_tokens >= 1024
    assert second.cost_usd is not None and first.cost_usd is not None
    assert second.cost_usd < first.cost_usd / 3
