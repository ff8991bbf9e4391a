"""Budgets that fail closed: reservations (memory and Redis: atomic, settled, released by
TTL), day/week/month windows, unpriced targets under a block budget, config errors."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

import portal
from portal.errors import BudgetExceeded, ConfigError
from portal.metering.budgets import window_of
from portal.routing.state import MemoryState, RedisState, State

T0 = dt.datetime(2025, 3, 12, 15, 0, tzinfo=dt.UTC).timestamp()  # a Wednesday


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_state() -> Iterator[RedisState]:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable: {exc}")
    state = RedisState(
        "redis://127.0.0.1:6379/0", prefix=f"test-res-{uuid.uuid4().hex[:8]}", start=False
    )
    yield state
    state.clear()
    state.close()


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return MemoryState()
    return request.getfixturevalue("redis_state")  # type: ignore[no-any-return]


# ------------------------------------------------------------------------- the store


def test_reserve_is_atomic_under_concurrency(state: State) -> None:
    """200 threads race to hold $0.01 each of $1: exactly 100 win, never 101."""
    wins: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(10):
            ok, _, _ = state.reserve("budget:f:w", "_", 0.01, 1.0, 60.0, f"{i}-{j}")
            with lock:
                wins.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(wins) == 100
    spent, held = state.spend("budget:f:w", "_")
    assert spent == 0.0 and held == pytest.approx(1.0)


def test_settle_moves_the_hold_to_spent_and_frees_the_rest(state: State) -> None:
    ok, _, _ = state.reserve("budget:f:w", "acme", 0.5, 1.0, 60.0, "r1")
    assert ok
    assert not state.reserve("budget:f:w", "acme", 0.6, 1.0, 60.0, "r2")[0]
    state.settle("budget:f:w", "acme", "r1", 0.2, final=True)
    assert state.spend("budget:f:w", "acme") == pytest.approx((0.2, 0.0))
    assert state.reserve("budget:f:w", "acme", 0.6, 1.0, 60.0, "r3")[0]  # 0.2 + 0.6 fits
    assert state.spend("budget:f:w", "globex") == (0.0, 0.0)  # tenants are separate fields


def test_tool_loop_steps_settle_without_releasing_the_rest(state: State) -> None:
    assert state.reserve("budget:f:w", "_", 0.9, 1.0, 60.0, "loop")[0]
    state.settle("budget:f:w", "_", "loop", 0.3, final=False)
    assert state.spend("budget:f:w", "_") == pytest.approx((0.3, 0.6))
    state.settle("budget:f:w", "_", "loop", 0.0, final=True)
    assert state.spend("budget:f:w", "_") == pytest.approx((0.3, 0.0))


def test_a_dead_process_hold_is_released_by_its_ttl(state: State) -> None:
    clock = Clock(1_000.0)
    state.clock = clock  # RedisState and MemoryState read time through .clock
    if isinstance(state, RedisState):
        state.local.clock = clock
    assert state.reserve("budget:f:w", "_", 0.8, 1.0, 30.0, "dies")[0]
    assert not state.reserve("budget:f:w", "_", 0.5, 1.0, 30.0, "waits")[0]
    clock.now += 31  # the first process never settled: its hold expires
    assert state.reserve("budget:f:w", "_", 0.5, 1.0, 30.0, "waits")[0]
    assert state.spend("budget:f:w", "_") == pytest.approx((0.0, 0.5))


def test_redis_unreachable_refuses_the_hold() -> None:
    pytest.importorskip("redis")
    from portal.routing.state import StateUnavailable

    state = RedisState("redis://127.0.0.1:9/0", socket_timeout_s=0.05, start=False)
    with pytest.raises(StateUnavailable):
        state.reserve("budget:f:w", "_", 0.1, 1.0, 10.0, "x")


# ------------------------------------------------------------------------- windows


def test_windows_are_utc_day_iso_week_and_month() -> None:
    assert window_of("day", T0) == (
        "2025-03-12",
        dt.datetime(2025, 3, 13, tzinfo=dt.UTC).timestamp(),
    )
    assert window_of("week", T0) == (
        "2025-W11",
        dt.datetime(2025, 3, 17, tzinfo=dt.UTC).timestamp(),
    )
    assert window_of("month", T0) == ("2025-03", dt.datetime(2025, 4, 1, tzinfo=dt.UTC).timestamp())
    dec = dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.UTC).timestamp()
    assert window_of("month", dec) == (
        "2025-12",
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp(),
    )
    assert window_of("week", dec)[0] == "2026-W01"  # ISO weeks cross the year


def _config(budget: dict[str, Any], **feature: Any) -> dict[str, Any]:
    return {
        "portal": {"ledger": "none"},
        "providers": {
            "a": {"kind": "sim", "options": {"seed": 1, "time_scale": 0}},
            "local": {
                "kind": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "k-test",
            },
        },
        "features": {
            "f": {"primary": "a:sim-small", "max_tokens": 100, "budget": budget, **feature}
        },
    }


def _client(cfg: dict[str, Any], now: float = T0, **kw: Any) -> tuple[portal.Client, Clock]:
    client = portal.Client(cfg, **kw)
    clock = Clock(now)
    client._core.budgets.clock = clock
    return client, clock


def _ask(client: portal.Client, **kw: Any) -> portal.Response:
    return client.chat(feature="f", messages=[portal.user("where is my order?")], **kw)


def test_a_monthly_budget_spans_days_and_resets_on_the_first() -> None:
    client, clock = _client(_config({"usd": 0.0004, "window": "month"}))
    with pytest.raises(BudgetExceeded) as info:
        for _ in range(50):
            _ask(client)
            clock.now += 86400 / 2  # spend across days of March
    assert info.value.resets_at == "2025-04-01T00:00:00Z"
    assert "per month" in str(info.value) and "raise usd " in str(info.value)
    clock.now = dt.datetime(2025, 4, 1, 0, 0, 1, tzinfo=dt.UTC).timestamp()
    _ask(client)  # April: a new budget
    client.close()


def test_a_weekly_per_tenant_budget() -> None:
    client, clock = _client(_config({"usd": 0.0003, "window": "week", "per_tenant": True}))
    with pytest.raises(BudgetExceeded) as info:
        for _ in range(50):
            _ask(client, tenant="acme")
    assert info.value.budget == "features.f.budget (tenant 'acme')"
    assert info.value.resets_at == "2025-03-17T00:00:00Z"  # the next Monday
    _ask(client, tenant="globex")
    clock.now = dt.datetime(2025, 3, 17, 0, 0, 1, tzinfo=dt.UTC).timestamp()
    _ask(client, tenant="acme")
    client.close()


def test_reservation_is_the_worst_case_and_is_settled_after_the_call() -> None:
    client, _ = _client(_config({"usd": 1.0}))
    budgets = client._core.budgets
    holds: list[float] = []
    real_reserve = client._core.state.reserve

    def spy(key: str, field: str, amount: float, *rest: Any) -> Any:
        holds.append(amount)
        return real_reserve(key, field, amount, *rest)

    client._core.state.reserve = spy  # type: ignore[method-assign]
    resp = _ask(client)
    # sim-small: $0.4 in / $1.6 out per 1M; max_tokens = 100 bounds the output
    tokens_in = resp.usage.input_tokens
    assert holds == [pytest.approx((tokens_in * 0.4 + 100 * 1.6) / 1e6, rel=0.2)]
    assert holds[0] >= resp.cost_usd  # type: ignore[operator]
    assert budgets.levels("f") == pytest.approx((resp.cost_usd, 0.0))  # held → spent
    client.close()


def test_a_tool_loop_reserves_every_step_and_releases_at_the_end() -> None:
    client, _ = _client(_config({"usd": 1.0}))
    holds: list[float] = []
    real_reserve = client._core.state.reserve

    def spy(key: str, field: str, amount: float, *rest: Any) -> Any:
        holds.append(amount)
        return real_reserve(key, field, amount, *rest)

    client._core.state.reserve = spy  # type: ignore[method-assign]

    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return "shipped"

    one = _ask(client)
    client.chat(
        feature="f",
        messages=[portal.user("where is my order?")],
        tools=[lookup_order],
        max_steps=4,
    )
    assert holds[1] == pytest.approx(holds[0] * 4, rel=0.25)  # four steps' worth
    spent, held = client._core.budgets.levels("f")
    assert held == pytest.approx(0.0, abs=1e-12) and spent > (one.cost_usd or 0)
    client.close()


# ------------------------------------------------------------------------- unpriced targets


def _never(request: httpx2.Request) -> httpx2.Response:
    raise AssertionError("an unpriced target was called under a block budget")


def test_unpriced_primary_under_block_budget_is_refused_before_sending() -> None:
    cfg = _config({"usd_per_day": 5.0})
    cfg["features"]["f"]["primary"] = "local:my-finetune"
    client, _ = _client(cfg, transports={"local": httpx2.MockTransport(_never)})
    with pytest.raises(BudgetExceeded) as info:
        _ask(client)
    msg = str(info.value)
    assert "local:my-finetune has no price" in msg
    assert '[providers.local.prices."my-finetune"] input = ..., output = ...' in msg
    client.close()


def test_unpriced_fallback_under_block_budget_is_left_out() -> None:
    cfg = _config({"usd_per_day": 5.0}, fallbacks=["local:my-finetune"])
    client, _ = _client(cfg, transports={"local": httpx2.MockTransport(_never)})
    call_targets: list[list[str]] = []
    real = client._core.budget

    def spy(call: Any, steps: int = 1) -> None:
        real(call, steps)
        call_targets.append([t.id for t in call.route.targets])

    client._core.budget = spy  # type: ignore[method-assign]
    _ask(client)
    assert call_targets == [["a:sim-small"]]
    client.close()


@pytest.mark.parametrize("policy", ["allow", "warn"])
def test_on_unknown_price_allow_and_warn_let_the_call_through(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _config({"usd_per_day": 5.0, "on_unknown_price": policy})
    cfg["features"]["f"]["primary"] = "local:my-finetune"
    body = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "my-finetune",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
    transport = httpx2.MockTransport(lambda r: httpx2.Response(200, json=body))
    client, _ = _client(cfg, transports={"local": transport})
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        resp = _ask(client)
        _ask(client)
    assert resp.cost_usd is None  # unpriced: unknown, never $0
    budget_warnings = [r for r in caplog.records if "not bounded by the budget" in r.getMessage()]
    assert len(budget_warnings) == (1 if policy == "warn" else 0)
    assert (
        len([r for r in caplog.records if "no price for local:my-finetune" in r.getMessage()]) == 1
    )
    client.close()


# ------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            {"usd": 5, "window": "year"},
            r"features\.f\.budget\.window: must be one of 'day', 'week' or 'month', got 'year'",
        ),
        ({"usd": -5}, r"features\.f\.budget\.usd: must be > 0"),
        ({"usd_per_day": 5, "usd": 6}, r"features\.f\.budget: give either usd"),
        ({"window": "week"}, r"features\.f\.budget: needs a limit"),
        (
            {"usd": 5, "on_unknown_price": "ignore"},
            r"on_unknown_price: must be one of 'block', 'warn' or 'allow'",
        ),
    ],
)
def test_bad_budget_config_names_the_key(budget: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        portal.Client(_config(budget))


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        (
            {"m": {"input": -1, "output": 1}},
            r'providers\.local\.prices\."m"\.input: prices cannot be negative',
        ),
        (
            {"m": {"input": "cheap", "output": 1}},
            r'providers\.local\.prices\."m"\.input: expected a number',
        ),
        (
            {"m": {"input": 1, "output": 1, "turbo": {"input": 2}}},
            r"unknown price field or service tier 'turbo'",
        ),
    ],
)
def test_bad_prices_config_names_the_key(
    prices: dict[str, Any], message: str, tmp_path: Any
) -> None:
    cfg = _config({"usd": 5})
    cfg["providers"]["local"]["prices"] = prices
    with pytest.raises(ConfigError, match=message):
        portal.Client(cfg)
    # `portal config check` reads the same file and reports the same problem
    import tomllib  # noqa: F401  (the TOML below is what a user writes)

    toml = tmp_path / "portal.toml"
    model, fields = next(iter(prices.items()))
    inline = ", ".join(f"{k} = {_toml(v)}" for k, v in fields.items())
    toml.write_text(
        '[providers.local]\nkind = "openai-compatible"\nbase_url = "http://127.0.0.1:9/v1"\n'
        f'[providers.local.prices]\n"{model}" = {{ {inline} }}\n'
    )
    from portal.cli import main

    assert main(["config", "check", "--config", str(toml)]) == 1


def _toml(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


@pytest.mark.parametrize("on_exceed", ["block", "warn"])
def test_shared_state_down_block_fails_closed_warn_serves(on_exceed: str) -> None:
    pytest.importorskip("redis")
    cfg = _config({"usd": 5.0, "on_exceed": on_exceed})
    cfg["portal"]["state"] = "redis://127.0.0.1:9/0?refresh_ms=50"
    client, _ = _client(cfg)
    try:
        if on_exceed == "block":
            with pytest.raises(BudgetExceeded, match=r"unreachable.*\(fail closed\)"):
                _ask(client)
        else:
            assert _ask(client).cost_usd is not None
    finally:
        client.close()
