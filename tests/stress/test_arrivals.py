"""Arrival schedules and prompt lengths: what the load generator promises to send."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from portal.stress.arrivals import (
    Burst,
    LengthDist,
    PromptSource,
    UsageError,
    arrival_times,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("2m", 120), ("500ms", 0.5), ("1h", 3600), ("7", 7)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_duration_names_the_option() -> None:
    with pytest.raises(UsageError, match="--duration: 'soon' is not a duration"):
        parse_duration("soon", "--duration")


def test_poisson_rate_and_gaps() -> None:
    times = arrival_times(200, 50, rng=random.Random(1))
    # 10,000 expected arrivals, sd 100: within 4 sd
    assert abs(len(times) - 10_000) < 400
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 50
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # exponential gaps: mean 1/rate and coefficient of variation ~1 (a fixed-interval
    # generator would have cv 0 and hide burstiness)
    assert statistics.mean(gaps) == pytest.approx(1 / 200, rel=0.05)
    assert statistics.pstdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.05)


def test_bursts_multiply_the_rate_in_their_window() -> None:
    burst = Burst.parse("5x:10s/60s")
    assert (burst.factor, burst.length_s, burst.every_s) == (5, 10, 60)
    times = arrival_times(20, 120, burst, random.Random(2))
    in_burst = [t for t in times if burst.active(t)]
    calm = [t for t in times if not burst.active(t)]
    # 2 bursts x 10 s at 100/s = 2,000; 100 s at 20/s = 2,000
    assert abs(len(in_burst) - 2000) < 200
    assert abs(len(calm) - 2000) < 200
    assert all(50 <= t % 60 < 60 for t in in_burst)


@pytest.mark.parametrize("bad", ["5:10s/60s", "5x:70s/60s", "0x:1s/2s", "5x:10s"])
def test_bad_burst(bad: str) -> None:
    with pytest.raises(UsageError, match="--burst"):
        Burst.parse(bad)


def test_lognormal_lengths_have_the_requested_mean_and_a_long_tail() -> None:
    dist = LengthDist.parse("lognormal:mean=800,sigma=1.0")
    rng = random.Random(3)
    draws = [dist.sample(rng) for _ in range(40_000)]
    assert statistics.mean(draws) == pytest.approx(800, rel=0.05)
    draws.sort()
    # median = mean / e^(sigma^2/2) = 485; p99 = median * e^(2.326) = 4,970
    assert draws[len(draws) // 2] == pytest.approx(485, rel=0.05)
    assert draws[int(len(draws) * 0.99)] == pytest.approx(4970, rel=0.12)


def test_lengths_are_clipped_and_validated() -> None:
    dist = LengthDist.parse("pareto:min=100,alpha=1.1,max=2000")
    rng = random.Random(4)
    assert all(100 <= dist.sample(rng) <= 2000 for _ in range(2000))
    assert LengthDist.parse("fixed:64").sample(rng) == 64
    with pytest.raises(UsageError, match="lognormal takes mean, sigma"):
        LengthDist.parse("lognormal:mean=800")
    with pytest.raises(UsageError, match="unknown distribution 'zipf'"):
        LengthDist.parse("zipf:a=1")


def test_generated_prompts_have_about_the_drawn_token_count() -> None:
    from portal.tokens import count_tokens

    source = PromptSource(LengthDist.parse("fixed:300"), None, LengthDist.parse("fixed:50"))
    prompt = source.draw(random.Random(5))
    tokens = count_tokens(prompt.messages[0]["content"]).tokens
    assert 290 <= tokens <= 310
    assert prompt.max_tokens == 50


def test_prompts_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    lines: list[dict[str, Any]] = [
        {"prompt": "Where is my order 123?"},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "max_tokens": 20,
        },
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    source = PromptSource.from_file(path)
    drawn = {json.dumps(source.draw(random.Random(i)).messages) for i in range(40)}
    assert drawn == {
        json.dumps([{"role": "user", "content": "Where is my order 123?"}]),
        json.dumps(lines[1]["messages"]),
    }
    path.write_text('{"prompt": "ok"}\n{"text": "no"}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"prompts.jsonl:2: each line needs \"messages\""):
        PromptSource.from_file(path)
