"""Shadow copies of a canary (``[features.X.canary] percent = 0, shadow = N``): the share of
calls copied, the caller always served by the primary, a failing or hanging copy never felt
by the caller, the copies' ledger rows and budget spend, and the guard judging them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import portal
from portal.cli import main as cli_main
from portal.config import load_config
from portal.errors import ConfigError
from portal.metering.ledger import read_records
from portal.routing.router import AdapterPool, Router
from portal.routing.state import MemoryState
from portal.stress.faults import Fault

from .conftest import config, faulty, sim_provider

KEYS = [f"user-{i}" for i in range(20_000)]


def shadow_cfg(shadow: float = 5, percent: float = 0, **feature: Any) -> dict[str, Any]:
    canary = {"target": "c:new", "percent": percent, "shadow": shadow}
    canary.update(feature.pop("canary", {}))
    return config(
        {"a": sim_provider(), "c": sim_provider()},
        {"f": {"primary": "a:m", "canary": canary, **feature}},
    )


def run_calls(
    kind: str,
    cfg: dict[str, Any],
    keys: list[str | None],
    transports: dict[str, Any] | None = None,
    ledger: Any = None,
    stream: bool = False,
    check: Callable[[Any], None] | None = None,
) -> tuple[Any, list[Any]]:
    """Make one call per key on a fresh client of ``kind``, wait for the shadow copies, close
    the client; return (client, responses)."""
    cls = portal.Client if kind == "sync" else portal.AsyncClient
    client: Any = cls(cfg, transports=transports or {}, ledger=ledger)
    msgs = [portal.user("Where is my order 123?")]
    out: list[Any] = []
    if kind == "sync":
        for key in keys:
            if stream:
                events = list(client.stream(feature="f", key=key, messages=msgs))
                out.append(events[-1].response)
            else:
                out.append(client.chat(feature="f", key=key, messages=msgs))
            if check is not None:
                check(out[-1])
        client._core.shadows.wait()
        client.close()
        return client, out

    async def go() -> None:
        for key in keys:
            if stream:
                events = [ev async for ev in client.stream(feature="f", key=key, messages=msgs)]
                out.append(events[-1].response)
            else:
                out.append(await client.chat(feature="f", key=key, messages=msgs))
            if check is not None:
                check(out[-1])
        await client._core.shadows.wait()
        await client.aclose()

    anyio.run(go)
    return client, out


def test_the_share_of_shadowed_calls_is_the_configured_one_and_sticky() -> None:
    cfg = load_config(shadow_cfg(shadow=5))
    router = Router(cfg, AdapterPool(cfg), MemoryState())
    copied = [k for k in KEYS if router.route("f", k, None).shadow is not None]
    assert abs(len(copied) / len(KEYS) - 0.05) <= 0.005
    assert all(router.route("f", k, None).shadow is not None for k in copied[:200])  # sticky
    routes = [router.route("f", k, None) for k in KEYS[:500]]
    assert all(r.arm == "baseline" and [t.id for t in r.targets] == ["a:m"] for r in routes)
    # without a key, drawn per call
    drawn = sum(router.route("f", None, None).shadow is not None for _ in range(20_000))
    assert abs(drawn / 20_000 - 0.05) <= 0.01
    # an explicit model= gets no copy
    assert all(router.route("f", k, "a:m").shadow is None for k in copied[:50])


def test_live_canary_calls_get_no_copy_and_copies_are_drawn_from_the_baseline() -> None:
    cfg = load_config(shadow_cfg(shadow=50, percent=50))
    router = Router(cfg, AdapterPool(cfg), MemoryState())
    routes = [router.route("f", k, None) for k in KEYS[:4000]]
    assert not any(r.shadow is not None for r in routes if r.arm == "canary")
    base = [r for r in routes if r.arm == "baseline"]
    assert abs(sum(r.shadow is not None for r in base) / len(base) - 0.5) <= 0.05


def test_a_copy_of_the_share_goes_to_the_canary_and_the_caller_gets_the_primary(
    kind: str,
) -> None:
    a, c = faulty("a"), faulty("c")
    keys: list[str | None] = list(KEYS[:400])
    _, responses = run_calls(kind, shadow_cfg(shadow=25), keys, {"a": a, "c": c})
    cfg = load_config(shadow_cfg(shadow=25))
    router = Router(cfg, AdapterPool(cfg), MemoryState())
    expected = sum(router.route("f", k, None).shadow is not None for k in keys)
    assert 60 <= expected <= 140
    assert c.requests == expected  # exactly the shadowed calls, one attempt each
    assert a.requests == len(keys)
    for r in responses:
        assert r.target == "a:m" and r.arm == "baseline"
        assert [x.target for x in r.attempts] == ["a:m"]


def test_a_failing_copy_never_reaches_the_caller(kind: str) -> None:
    c = faulty("c", Fault("outage", status=500))
    _, responses = run_calls(kind, shadow_cfg(shadow=100), KEYS[:30], {"c": c})
    # one attempt per copy (no retry, no failover) until the canary target's breaker opens
    # after 5 failures in a row; while it rests, no copy is sent
    assert c.requests == 5
    assert all(r.target == "a:m" and r.text for r in responses)


def test_a_hanging_copy_does_not_delay_the_caller(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    c = faulty("c", Fault("hang"))
    took: list[float] = []
    started = [time.perf_counter()]

    def check(resp: Any) -> None:
        took.append(time.perf_counter() - started[0])
        started[0] = time.perf_counter()

    cfg = shadow_cfg(shadow=100, timeout_s=1.0)
    run_calls(kind, cfg, KEYS[:3], {"c": c}, ledger=url, check=check)
    assert max(took) < 0.5, took  # the copy hangs until the 1 s deadline; the caller does not
    rows = [r for r in read_records(url, kind="call") if r.arm == "shadow"]
    assert len(rows) == 3
    assert all(r.outcome == "error" for r in rows)
    assert all(r.latency_ms < 1500 for r in rows)  # each copy ended by the call's deadline


def test_copies_have_their_own_ledger_rows(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _, responses = run_calls(kind, shadow_cfg(shadow=100), KEYS[:5], ledger=url)
    rows = read_records(url)
    calls = [r for r in rows if r.kind == "call"]
    user = [r for r in calls if r.arm == "baseline"]
    copies = [r for r in calls if r.arm == "shadow"]
    assert {r.call_id for r in user} == {r.call_id for r in responses}
    assert len(copies) == 5
    assert {r.tags["shadow_of"] for r in copies} == {r.call_id for r in responses}
    assert all(r.action_id == r.tags["shadow_of"] for r in copies)  # the action it copied
    assert not {r.call_id for r in copies} & {r.call_id for r in responses}
    assert all(r.target == "c:new" and r.feature == "f" and r.tenant is None for r in copies)
    attempts = [r for r in rows if r.kind == "attempt" and r.arm == "shadow"]
    assert sorted(r.call_id for r in attempts) == sorted(r.call_id for r in copies)


def test_a_stream_is_copied_as_a_stream_read_and_dropped(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    c = faulty("c")
    _, responses = run_calls(kind, shadow_cfg(shadow=100), KEYS[:4], {"c": c}, url, stream=True)
    assert all(r.target == "a:m" for r in responses)
    copies = [r for r in read_records(url, kind="call") if r.arm == "shadow"]
    assert len(copies) == 4 and c.requests == 4
    assert all(r.operation == "stream" and r.outcome == "ok" for r in copies)


def test_a_failing_shadow_is_rolled_back_by_the_guard_and_copies_stop(kind: str) -> None:
    c = faulty("c", Fault("flaky", status=500, rate=0.5))
    cfg = shadow_cfg(shadow=50, canary={"guard": {"min_calls": 20, "max_error_rate_delta": 0.05}})
    client, _ = run_calls(kind, cfg, KEYS[:600], {"c": c})
    control = client._core.router.canary
    live = control.live("f")
    assert live["shadow"] == 0 and live["percent"] == 0
    assert "guard" in live["reason"] and "error" in live["reason"]
    assert 20 <= c.requests < 300  # rolled back well before half of 600 calls were copied


def test_after_a_rollback_no_copy_is_sent_by_the_same_client(kind: str) -> None:
    c = faulty("c", Fault("outage", status=500))
    cfg = shadow_cfg(shadow=100, canary={"guard": {"min_calls": 20}})
    seen: list[int] = []
    run_calls(kind, cfg, KEYS[:300], {"c": c}, check=lambda r: seen.append(c.requests))
    assert seen[-1] < 100  # rolled back early
    assert seen[-1] == seen[-50]  # and the last 50 calls sent no copy


def test_a_healthy_shadow_is_not_rolled_back_and_status_shows_it(kind: str) -> None:
    cfg = shadow_cfg(shadow=50, canary={"guard": {"min_calls": 20}})
    client, _ = run_calls(kind, cfg, KEYS[:400])
    st = client.canary_status("f")
    assert st["percent"] == 0 and st["shadow_percent"] == 50
    assert st["shadow"].calls > 150 and st["canary"].calls == 0
    assert st["candidate"].calls == st["shadow"].calls
    assert st["verdict"].verdict in ("hold", "promote")


def test_status_from_the_ledger_shows_the_shadow_arm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = shadow_cfg(shadow=100)
    cfg["portal"]["ledger"] = url
    run_calls("sync", cfg, KEYS[:40], ledger=url)
    path = tmp_path / "portal.toml"
    path.write_text(
        f'[portal]\nledger = "{url}"\n'
        '[providers.a]\nkind = "sim"\n[providers.c]\nkind = "sim"\n'
        '[features.f]\nprimary = "a:m"\n'
        '[features.f.canary]\ntarget = "c:new"\npercent = 0\nshadow = 100\n'
    )
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["canary", "status", "f", "--config", str(path)]) == 0
    text = out.getvalue()
    shadow_line = next(line for line in text.splitlines() if line.strip().startswith("shadow "))
    assert "calls      40" in shadow_line
    assert "shadow copies of 100% of the baseline's calls" in text


def test_shadow_spend_is_the_features_never_the_callers_hold_or_tenant() -> None:
    providers = {n: {"kind": "sim", "options": {"time_scale": 0}} for n in ("a", "c")}
    cfg = {
        "portal": {"ledger": "none"},
        "providers": providers,
        "features": {
            "f": {
                "primary": "a:sim-small",
                "max_tokens": 50,
                "budget": {"usd_per_day": 100.0, "per_tenant": True},
                "canary": {"target": "c:sim-large", "percent": 0, "shadow": 100},
            }
        },
    }
    client = portal.Client(cfg)
    user_cost = 0.0
    for i in range(10):
        r = client.chat(
            feature="f", tenant="t1", messages=[portal.user(f"order {i}?")], key=f"k{i}"
        )
        user_cost += r.cost_usd
    client._core.shadows.wait()
    budgets = client._core.budgets
    spent, reserved = budgets.levels("f", "t1")
    assert spent == pytest.approx(user_cost)  # the tenant pays for its own calls only
    assert reserved == pytest.approx(0.0)  # every hold released, none held twice
    shadow_spent, shadow_reserved = budgets.levels("f", None)
    assert shadow_spent > 0 and shadow_reserved == pytest.approx(0.0)
    copies = client._core.router.canary.status("f")["shadow"]
    assert copies.calls == 10
    assert shadow_spent == pytest.approx(copies.cost.total)
    client.close()


def test_the_sync_client_bounds_copies_in_flight() -> None:
    import threading

    from portal.engine.shadow import ThreadShadows

    gate = threading.Event()
    ran: list[int] = []

    def slow(flow: Any) -> None:
        gate.wait(5)
        ran.append(1)

    shadows = ThreadShadows(slow, threads=2, limit=3)

    def flow() -> Any:
        yield None

    deadline = time.perf_counter() + 10
    for _ in range(5):
        shadows.launch(flow(), deadline)
    assert shadows.dropped == 2 and shadows.running == 3
    gate.set()
    shadows.wait()
    assert len(ran) == 3 and shadows.running == 0
    shadows.launch(flow(), deadline)  # room again
    shadows.wait()
    assert len(ran) == 4 and shadows.dropped == 2
    shadows.close()


@pytest.mark.parametrize(
    ("canary", "key", "message"),
    [
        ({"target": "c:new", "shadow": 150}, "canary.shadow", "between 0 and 100"),
        ({"target": "c:new", "shadow": -1}, "canary.shadow", "between 0 and 100"),
        ({"target": "a:m", "shadow": 5}, "canary.shadow", "is the primary"),
        ({"shadow": 5}, "canary.target", "required"),
    ],
)
def test_bad_shadow_settings_are_refused_by_client_and_config_check(
    canary: dict[str, Any], key: str, message: str, tmp_path: Path
) -> None:
    cfg = config({"a": sim_provider(), "c": sim_provider()}, {"f": {"primary": "a:m"}})
    cfg["features"]["f"]["canary"] = canary
    with pytest.raises(ConfigError) as err:
        portal.Client(cfg, ledger=None)
    assert key in str(err.value) and message in str(err.value)

    lines = "".join(
        f"{k} = {v}\n" if isinstance(v, (int, float)) else f'{k} = "{v}"\n'
        for k, v in canary.items()
    )
    path = tmp_path / "portal.toml"
    path.write_text(
        '[portal]\nledger = "none"\n'
        '[providers.a]\nkind = "sim"\n[providers.c]\nkind = "sim"\n'
        f'[features.f]\nprimary = "a:m"\n[features.f.canary]\n{lines}'
    )
    import contextlib
    import io

    out, errs = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errs):
        code = cli_main(["config", "check", "--config", str(path)])
    assert code != 0
    printed = out.getvalue() + errs.getvalue()
    assert key in printed and message in printed


def test_reports_compare_the_shadow_with_the_baseline_and_the_sla_leaves_it_out(
    tmp_path: Path,
) -> None:
    from portal.metering.report import build_report
    from portal.metering.report.cells import report_sections
    from portal.metering.sla import account

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    c = faulty("c", Fault("flaky", status=500, rate=1.0, first=3))
    cfg = shadow_cfg(shadow=100, sla={"availability": 0.99})
    run_calls("sync", cfg, KEYS[:20], {"c": c}, ledger=url)
    records = read_records(url)
    report = build_report(records, load_config(cfg))
    [row] = report["canary"]
    assert row["feature"] == "f (shadow)" and row["arm"] == "shadow"
    assert row["baseline"]["calls"] == 20 and row["canary"]["calls"] == 20
    assert row["canary"]["error_rate"] == pytest.approx(3 / 20)
    assert any(s[0] == "canary vs baseline" for s in report_sections(report))
    # three copies failed, no caller did: the feature's SLA is met
    sla = account(records, load_config(cfg))
    assert not [b for b in sla.breaches if b.scope == "feature"]


class _Recording:
    """A sim vendor that keeps each request's JSON body."""

    def __init__(self, name: str) -> None:
        self.inner = faulty(name)
        self.bodies: list[dict[str, Any]] = []

    def handle_request(self, request: Any) -> Any:
        import json

        self.bodies.append(json.loads(request.read()))
        return self.inner.handle_request(request)

    async def handle_async_request(self, request: Any) -> Any:
        import json

        self.bodies.append(json.loads(await request.aread()))
        return await self.inner.handle_async_request(request)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        pass


def test_a_copy_is_sent_the_request_the_primary_is_sent_after_the_guards(kind: str) -> None:
    a, c = _Recording("a"), _Recording("c")
    cfg = shadow_cfg(shadow=100, safety=["pii"])
    cls = portal.Client if kind == "sync" else portal.AsyncClient
    client: Any = cls(cfg, transports={"a": a, "c": c}, ledger=None)
    msgs = [portal.user("Mail me at bob.smith@example.com about order 123")]
    if kind == "sync":
        client.chat(feature="f", key="k", messages=msgs)
        client._core.shadows.wait()
        client.close()
    else:

        async def go() -> None:
            await client.chat(feature="f", key="k", messages=msgs)
            await client._core.shadows.wait()
            await client.aclose()

        anyio.run(go)
    assert len(a.bodies) == 1 and len(c.bodies) == 1
    assert "bob.smith@example.com" not in str(a.bodies[0])  # the guard redacted it
    assert c.bodies[0]["messages"] == a.bodies[0]["messages"]
    assert c.bodies[0]["model"] == "new" and a.bodies[0]["model"] == "m"


def test_route_explain_says_whether_a_key_is_copied() -> None:
    client = portal.Client(shadow_cfg(shadow=5), ledger=None)
    cfg = load_config(shadow_cfg(shadow=5))
    router = Router(cfg, AdapterPool(cfg), MemoryState())
    copied = next(k for k in KEYS if router.route("f", k, None).shadow is not None)
    plain = next(k for k in KEYS if router.route("f", k, None).shadow is None)
    assert "shadow copies of 5% of the baseline's calls to c:new" in client.explain("f", copied)
    assert "this key is copied" in client.explain("f", copied)
    assert "this key is not copied" in client.explain("f", plain)
    assert "drawn per call (no key)" in client.explain("f")
    client.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_async_copy_that_overstays_its_deadline_is_cancelled(backend: str) -> None:
    from portal.engine.shadow import SHADOW_GRACE_S, TaskShadows

    ended: list[float] = []

    async def stuck(flow: Any) -> None:
        try:
            await anyio.sleep(30)
        finally:
            ended.append(time.perf_counter())

    def flow() -> Any:
        yield None

    async def main() -> float:
        shadows = TaskShadows(stuck)
        t0 = time.perf_counter()
        shadows.launch(flow(), t0 + 0.1)
        await shadows.wait(10)
        assert shadows.running == 0
        return t0

    t0 = anyio.run(main, backend=backend)
    assert len(ended) == 1
    assert 0.1 + SHADOW_GRACE_S - 0.05 <= ended[0] - t0 < 0.1 + SHADOW_GRACE_S + 1.0


def test_aclose_cancels_the_copies_still_running() -> None:
    from portal.engine.shadow import TaskShadows

    async def stuck(flow: Any) -> None:
        await anyio.sleep(30)

    def flow() -> Any:
        yield None

    async def main() -> float:
        shadows = TaskShadows(stuck)
        shadows.launch(flow(), time.perf_counter() + 60)
        await anyio.sleep(0.05)
        assert shadows.running == 1
        t0 = time.perf_counter()
        await shadows.aclose()
        assert shadows.running == 0
        return time.perf_counter() - t0

    assert anyio.run(main) < 1.0
