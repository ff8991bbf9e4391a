"""Strategies (fastest, cheapest within the SLA), `portal route explain` and `portal canary`."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest

from portal.cli.routing import canary_main, route_main
from portal.routing.state import RedisState

from .conftest import config, sim_provider


def three(strategy: str, **feature: Any) -> dict[str, Any]:
    providers = {
        n: {**sim_provider(), "prices": {"m": {"input": price, "output": price}}}
        for n, price in (("a", 5.0), ("b", 1.0), ("c", 3.0))
    }
    return config(
        providers,
        {"f": {"primary": "a:m", "fallbacks": ["b:m", "c:m"], "strategy": strategy, **feature}},
    )


def test_cheapest_orders_by_price_for_the_request(make: Any) -> None:
    r = make(three("cheapest"))
    resp = r.chat(feature="f")
    assert resp.target == "b:m"
    from portal.routing.flow import Call

    call = Call("chat", r.client.router.route("f", None, None), None)  # type: ignore[arg-type]
    call.estimated_tokens = 100
    assert [t.id for t in r.control.plan(call)] == ["b:m", "c:m", "a:m"]


def test_cheapest_within_sla_skips_targets_whose_p95_misses_it(make: Any) -> None:
    r = make(three("cheapest", sla={"p95_ms": 500}))
    for _ in range(30):
        r.control.stats.observe("b:m", 900.0)  # cheapest, but too slow for the SLA
        r.control.stats.observe("c:m", 200.0)
    from portal.routing.flow import Call

    call = Call("chat", r.client.router.route("f", None, None), None)  # type: ignore[arg-type]
    call.estimated_tokens = 100
    assert [t.id for t in r.control.plan(call)] == ["c:m", "a:m", "b:m"]


def test_cheapest_within_sla_needs_min_samples_before_it_demotes(make: Any) -> None:
    r = make(three("cheapest", sla={"p95_ms": 500}, min_samples=5))
    from portal.routing.flow import Call

    call = Call("chat", r.client.router.route("f", None, None), None)  # type: ignore[arg-type]
    call.estimated_tokens = 100
    r.control.stats.observe("b:m", 900.0)  # one slow sample of the cheapest
    assert r.control.plan(call)[0].id == "b:m"
    for _ in range(4):
        r.control.stats.observe("b:m", 900.0)
    assert r.control.plan(call)[0].id == "c:m"


def test_cheapest_within_sla_keeps_exploring_a_demoted_target(make: Any) -> None:
    """One call in 20 goes by price alone: the demoted target is measured again and, once
    fast, comes back."""
    r = make(three("cheapest", sla={"p95_ms": 500}))
    from portal.routing.flow import Call

    call = Call("chat", r.client.router.route("f", None, None), None)  # type: ignore[arg-type]
    call.estimated_tokens = 100
    for _ in range(30):
        r.control.stats.observe("b:m", 900.0)
    firsts = [r.control.plan(call)[0].id for _ in range(100)]
    assert firsts.count("b:m") == 5 and firsts.count("c:m") == 95
    for _ in range(256):  # the explored calls found it fast again
        r.control.stats.observe("b:m", 100.0)
    assert r.control.plan(call)[0].id == "b:m"


def test_fastest_orders_by_observed_latency(make: Any) -> None:
    r = make(three("fastest"))
    for target, ms in (("a:m", 300.0), ("b:m", 900.0), ("c:m", 100.0)):
        for _ in range(10):
            r.control.stats.observe(target, ms)
    assert r.chat(feature="f").target == "c:m"


def write_config(tmp_path: Path, state: str) -> Path:
    path = tmp_path / "portal.toml"
    path.write_text(f"""
[portal]
ledger = "none"
state = "{state}"

[providers.a]
kind = "sim"
[providers.c]
kind = "sim"
breaker = {{ consecutive_failures = 2 }}

[features.f]
primary = "a:m"
fallbacks = ["c:old"]
[features.f.canary]
target = "c:new"
percent = 5
ramp = [5, 25, 50]
""")
    return path


def test_route_explain_shows_the_arm_bucket_and_targets(tmp_path: Path) -> None:
    path = write_config(tmp_path, "memory")
    from portal.routing.canary import bucket

    key = next(k for k in (f"u{i}" for i in range(1000)) if bucket("f", "c:new", k) < 500)
    out = io.StringIO()
    assert route_main(["explain", "f", "--key", key, "--config", str(path)], out) == 0
    text = out.getvalue()
    assert f"key bucket {bucket('f', 'c:new', key)} vs threshold 500 -> canary" in text
    assert "1. c:new [canary]" in text and "2. a:m [primary]" in text
    assert "3. c:old [fallback]: breaker closed" in text


def test_canary_promote_refuses_with_memory_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "memory")
    assert canary_main(["promote", "f", "--config", str(path)]) == 2
    assert "redis://" in capsys.readouterr().err


def test_canary_cli_moves_the_shared_step(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5).ping()
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"portal-test-{uuid.uuid4().hex[:12]}"
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    path = write_config(tmp_path, url)
    try:
        out = io.StringIO()
        assert canary_main(["promote", "f", "--config", str(path)], out) == 0
        assert "now at 25%" in out.getvalue()
        import portal

        client = portal.Client(path, ledger=None)  # another process would see the same
        try:
            assert client.router.canary.percent("f", 5.0) == 25.0
        finally:
            client.close()
        out = io.StringIO()
        assert canary_main(["rollback", "f", "--config", str(path), "--reason", "drill"], out) == 0
        out = io.StringIO()
        assert canary_main(["status", "f", "--config", str(path)], out) == 0
        text = out.getvalue()
        assert "at 0%" in text and "rollback" in text and "drill" in text
        assert "baseline" in text and "p95" in text
    finally:
        state = RedisState("redis://127.0.0.1:6379/0", prefix=prefix, start=False)
        state.clear()
        state.close()


def test_route_explain_shows_the_deadline_plan_first_token_and_hedge(tmp_path: Path) -> None:
    path = tmp_path / "portal.toml"
    path.write_text(
        """
[providers.a]
kind = "sim"
[providers.b]
kind = "sim"
[features.f]
primary = "a:m"
fallbacks = ["b:m"]
timeout_s = 3
first_token_timeout_s = 1.5
hedge = { after_ms = 300, streams = true }
"""
    )
    out = io.StringIO()
    assert route_main(["explain", "f", "--config", str(path)], out) == 0
    text = out.getvalue()
    assert "deadline 3s for the whole call" in text
    assert "first token due 1.5s into each attempt" in text
    assert "hedge calls and streams after 300 ms" in text
    assert "2. b:m [fallback]" in text and "1000 ms of the deadline kept for it" in text
