"""Daily budgets through the real client: block, fallback-cheapest, warn, per tenant, the UTC
midnight reset, and one budget shared by two clients through Redis."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import portal
from portal.contracts.request import ChatRequest
from portal.errors import BudgetExceeded
from portal.metering.budgets import Budgets, day_window
from portal.metering.prices import PriceTable
from portal.tokens import count_request

# 2025-03-10 23:59:00 UTC: one minute before the window resets
T0 = dt.datetime(2025, 3, 10, 23, 59, tzinfo=dt.UTC).timestamp()
MIDNIGHT = dt.datetime(2025, 3, 11, tzinfo=dt.UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _config(
    budget: dict[str, Any],
    primary: str = "a:sim-small",
    fallbacks: list[str] | None = None,
    state: str = "memory",
) -> dict[str, Any]:
    sims = {
        n: {"kind": "sim", "options": {"seed": i, "time_scale": 0}}
        for i, n in enumerate("abc", start=1)
    }
    return {
        "portal": {"ledger": "none", "state": state},
        "providers": sims,
        "features": {
            "f": {
                "primary": primary,
                "fallbacks": fallbacks or [],
                "max_tokens": 100,
                "budget": budget,
            }
        },
    }


def _client(config: dict[str, Any], now: float = T0) -> tuple[portal.Client, Clock]:
    client = portal.Client(config)
    clock = Clock(now)
    client._core.budgets.clock = clock
    return client, clock


def _ask(client: portal.Client, i: int = 0, **kw: Any) -> portal.Response:
    return client.chat(feature="f", messages=[portal.user(f"where is my order {i}?")], **kw)


def _calls(client: portal.Client) -> int:
    return sum(s.calls for s in client.meter.summary.values())


def _attempts(client: portal.Client) -> int:
    return sum(s.attempts for s in client.meter.summary.values())


def test_block_raises_before_spending_and_resets_at_utc_midnight() -> None:
    client, clock = _client(_config({"usd_per_day": 0.0006, "on_exceed": "block"}))
    budgets = client._core.budgets
    spent = 0.0
    with pytest.raises(BudgetExceeded) as info:
        for i in range(50):
            resp = _ask(client, i)
            spent += resp.cost_usd or 0.0
    assert 0 < spent <= 0.0006
    assert budgets.spent("f") == pytest.approx(spent)
    err = info.value
    assert err.budget == "features.f.budget"
    assert err.spent_usd == pytest.approx(spent)
    assert err.limit_usd == 0.0006
    assert err.resets_at == "2025-03-11T00:00:00Z"
    assert "resets at 2025-03-11T00:00:00Z" in str(err) and "usd_per_day" in str(err)
    made, tried = _calls(client), _attempts(client)
    with pytest.raises(BudgetExceeded):
        _ask(client)
    assert _attempts(client) == tried  # blocked before any attempt: nothing was sent
    assert _calls(client) == made + 1  # but the refused user action is metered

    clock.now = MIDNIGHT + 1  # a new UTC day: a new budget
    resp = _ask(client)
    assert budgets.spent("f") == pytest.approx(resp.cost_usd)
    client.close()


def test_fallback_cheapest_moves_to_the_cheapest_target_instead_of_blocking() -> None:
    cfg = _config(
        {"usd_per_day": 0.002, "on_exceed": "fallback-cheapest"},
        primary="c:sim-large",
        fallbacks=["a:sim-small"],
    )
    client, _ = _client(cfg)
    targets = [_ask(client, i).target for i in range(12)]
    first_cheap = targets.index("a:sim-small")
    assert first_cheap > 0
    assert set(targets[:first_cheap]) == {"c:sim-large"}
    assert set(targets[first_cheap:]) == {"a:sim-small"}  # never blocked, always the cheapest
    # "block" would have refused these: the primary's estimate no longer fits the budget
    budgets = client._core.budgets
    primary = client._core.router.route("f", None, None).targets[0]
    request = ChatRequest(messages=[portal.user("where is my order 11?")], max_tokens=100)
    assert budgets.spent("f") + budgets.estimate(primary, request) > 0.002
    client.close()


def test_warn_logs_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    client, clock = _client(_config({"usd_per_day": 0.0002, "on_exceed": "warn"}))
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        for i in range(6):
            _ask(client, i)  # never raises
        day1 = [r for r in caplog.records if "budget" in r.getMessage()]
        clock.now = MIDNIGHT + 5
        for i in range(6):
            _ask(client, i)
    warnings = [r for r in caplog.records if "budget" in r.getMessage()]
    assert len(day1) == 1
    assert len(warnings) == 2
    assert "features.f.budget" in warnings[0].getMessage()
    client.close()


def test_per_tenant_budgets_are_separate() -> None:
    client, _ = _client(_config({"usd_per_day": 0.0004, "per_tenant": True}))
    with pytest.raises(BudgetExceeded) as info:
        for i in range(50):
            _ask(client, i, tenant="acme")
    assert info.value.budget == "features.f.budget (tenant 'acme')"
    _ask(client, tenant="globex")  # another tenant still has its whole budget
    budgets = client._core.budgets
    assert budgets.spent("f", "globex") < budgets.spent("f", "acme")
    client.close()


def test_estimate_is_input_tokens_and_max_tokens_at_the_primary_price() -> None:
    client, _ = _client(_config({"usd_per_day": 1.0}))
    core = client._core
    route = core.router.route("f", None, None)
    request = ChatRequest(messages=[portal.user("hello there")], max_tokens=200)
    price = PriceTable.load().lookup("a", "sim-small", kind="sim")
    assert price is not None
    tokens = count_request(request, model="sim-small").tokens
    want = (tokens * price.input + 200 * price.output) / 1e6
    assert core.budgets.estimate(route.targets[0], request) == pytest.approx(want)
    client.close()


def test_day_window_ends_at_utc_midnight() -> None:
    assert day_window(T0) == ("2025-03-10", MIDNIGHT)
    assert day_window(MIDNIGHT) == ("2025-03-11", MIDNIGHT + 86400)


@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable: {exc}")
    prefix = f"test-budget-{uuid.uuid4().hex[:8]}"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in r.scan_iter(match=prefix + "*"):
        r.delete(key)


def test_two_clients_share_one_budget_through_redis(redis_url: str) -> None:
    cfg = _config({"usd_per_day": 0.0004}, state=redis_url)
    one, _ = _client(cfg)
    two, _ = _client(cfg)
    try:
        with pytest.raises(BudgetExceeded):
            for i in range(50):
                _ask(one, i)
        one._core.state.sync()  # type: ignore[attr-defined]  # what the background thread does
        two._core.budgets.spent("f")  # the first read starts watching the day's counter
        two._core.state.sync()  # type: ignore[attr-defined]
        assert two._core.budgets.spent("f") == pytest.approx(one._core.budgets.spent("f"))
        with pytest.raises(BudgetExceeded):
            _ask(two)  # the other replica's spend counts against this one too
    finally:
        one.close()
        two.close()


def test_no_budget_configured_changes_nothing() -> None:
    cfg = _config({"usd_per_day": 1.0})
    del cfg["features"]["f"]["budget"]
    client, _ = _client(cfg)
    budgets: Budgets = client._core.budgets
    assert not budgets.active
    route = client._core.router.route("f", None, None)
    request = ChatRequest(messages=[portal.user("x")])
    assert budgets.decide("f", route.targets, request, None) is None
    client.close()


def test_a_new_day_forgets_the_last_days_counters() -> None:
    """A process that runs for months keeps one budget counter, not one per day."""
    client, clock = _client(_config({"usd_per_day": 10.0, "on_exceed": "warn"}))
    state = client._core.state
    _ask(client)
    assert "budget:f:2025-03-10" in state._counters  # type: ignore[attr-defined]
    clock.now = MIDNIGHT + 1
    _ask(client)
    assert [k for k in state._counters if k.startswith("budget:")] == [  # type: ignore[attr-defined]
        "budget:f:2025-03-11"
    ]
    clock.now = MIDNIGHT + 3 * 86400  # days without calls, then one
    _ask(client)
    assert [k for k in state._counters if k.startswith("budget:")] == [  # type: ignore[attr-defined]
        "budget:f:2025-03-14"
    ]
    client.close()


def test_warnings_of_past_days_are_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    client, clock = _client(_config({"usd_per_day": 1e-9, "on_exceed": "warn"}))
    budgets = client._core.budgets
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        _ask(client)
        clock.now = MIDNIGHT + 1
        _ask(client)
    assert len([r for r in caplog.records if "per day spent" in r.getMessage()]) == 2
    assert {w[2] for w in budgets._warned} == {"2025-03-11"}
    client.close()


def test_redis_keeps_past_days_in_redis(redis_url: str) -> None:
    client, clock = _client(_config({"usd_per_day": 10.0}, state=redis_url))
    state = client._core.state
    try:
        _ask(client)
        clock.now = MIDNIGHT + 1
        _ask(client)
        shared = state._redis.hgetall(state._k("budget:f:2025-03-10"))  # type: ignore[attr-defined]
        assert float(shared["spent|_"]) > 0  # still in Redis, for other replicas and its expiry
        assert float(shared["held|_"]) == pytest.approx(0.0, abs=1e-12)  # nothing left held
        assert state._redis.ttl(state._k("budget:f:2025-03-10")) > 31 * 86400  # type: ignore[attr-defined]
    finally:
        client.close()
