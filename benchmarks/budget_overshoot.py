"""How far a fleet overshoots a blocking budget: N calls in flight at once from P processes
against one $1-a-day budget shared through a real Redis.

    python benchmarks/budget_overshoot.py                   # 200 calls, 2 processes, $1
    python benchmarks/budget_overshoot.py --calls 400 --processes 4 --time-scale 0.2

Each process is a separate `portal.AsyncClient` (its own interpreter) sending its share of the
calls all at once to a simulated vendor (~200 ms a reply) priced so that a call costs about
2 cents. Before sending, each call reserves its worst case in Redis; calls that do not fit are
refused (`BudgetExceeded`) before any money is spent; after the reply, the reservation is
settled to the real cost. The script prints what was spent in total, the overshoot over the
limit and the largest single call's worst case (the bound the overshoot must stay under).
Needs Redis on 127.0.0.1:6379 (or --redis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIMIT_USD = 1.0
#: negotiated prices for the simulated model: about 2 cents for a 48-token reply
PRICES = {"sim-small": {"input": 100.0, "output": 400.0}}


def config(url: str, time_scale: float, limit: float) -> dict[str, Any]:
    return {
        "portal": {"ledger": "none", "state": url},
        "providers": {
            "v": {
                "kind": "sim",
                "options": {"seed": 7, "time_scale": time_scale, "latency_p50_ms": 200},
                "prices": PRICES,
            }
        },
        "features": {
            "f": {
                "primary": "v:sim-small",
                "max_tokens": 64,
                "retry": {"attempts": 1},
                "budget": {"usd": limit, "window": "day", "on_exceed": "block"},
            }
        },
    }


async def _worker(url: str, calls: int, time_scale: float, limit: float) -> dict[str, Any]:
    import portal
    from portal.errors import BudgetExceeded

    client = portal.AsyncClient(config(url, time_scale, limit))
    holds: list[float] = []
    state = client._core.state
    real_reserve = state.reserve

    def reserve(key: str, field: str, amount: float, *rest: Any) -> Any:
        holds.append(amount)
        return real_reserve(key, field, amount, *rest)

    state.reserve = reserve  # type: ignore[method-assign]  # observe the worst cases

    async def one(i: int) -> float | None:
        try:
            resp = await client.chat(feature="f", messages=[portal.user(f"where is my order {i}?")])
        except BudgetExceeded:
            return None
        return resp.cost_usd

    costs = await asyncio.gather(*(one(i) for i in range(calls)))
    await client.aclose()
    ok = [c for c in costs if c is not None]
    return {
        "ok": len(ok),
        "refused": calls - len(ok),
        "spent_usd": sum(ok),
        "max_call_usd": max(ok, default=0.0),
        "max_worst_case_usd": max(holds, default=0.0),
    }


def run(
    calls: int = 200,
    processes: int = 2,
    limit: float = LIMIT_USD,
    time_scale: float = 1.0,
    redis: str = "redis://127.0.0.1:6379/0",
) -> dict[str, Any]:
    """Run the fleet; returns the totals (also what `main` prints)."""
    prefix = f"bench-budget-{uuid.uuid4().hex[:8]}"
    url = f"{redis}?prefix={prefix}"
    share = [calls // processes + (i < calls % processes) for i in range(processes)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, str(n), str(time_scale), str(limit)],
            stdout=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        for n in share
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"worker failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - started
    from portal.routing.state import RedisState

    state = RedisState(redis, prefix=prefix, start=False)
    try:
        from portal.metering.budgets import window_of

        label, _ = window_of("day", time.time())
        spent_redis, held = state.spend(f"budget:f:{label}", "_")
    finally:
        state.clear()
        state.close()
    spent = sum(r["spent_usd"] for r in results)
    worst = max(r["max_worst_case_usd"] for r in results)
    return {
        "calls": calls,
        "processes": processes,
        "limit_usd": limit,
        "ok": sum(r["ok"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "spent_usd": spent,
        "spent_in_redis_usd": spent_redis,
        "held_after_usd": held,
        "overshoot_usd": max(0.0, spent - limit),
        "max_call_usd": max(r["max_call_usd"] for r in results),
        "max_worst_case_usd": worst,
        "elapsed_s": elapsed,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, n, scale, limit = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
        print(json.dumps(asyncio.run(_worker(url, n, scale, limit))))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--limit", type=float, default=LIMIT_USD, help="budget in USD per day")
    p.add_argument("--time-scale", type=float, default=1.0, help="simulated latency scale")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = run(args.calls, args.processes, args.limit, args.time_scale, args.redis)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        f"{r['calls']} calls from {r['processes']} processes against ${r['limit_usd']:g}/day "
        f"(shared through Redis) in {r['elapsed_s']:.1f}s\n"
        f"  served {r['ok']}, refused before sending {r['refused']}\n"
        f"  spent ${r['spent_usd']:.4f} (Redis says ${r['spent_in_redis_usd']:.4f}; "
        f"${r['held_after_usd']:.4f} still reserved)\n"
        f"  overshoot ${r['overshoot_usd']:.4f}; one call's worst case "
        f"${r['max_worst_case_usd']:.4f} (largest real call ${r['max_call_usd']:.4f})"
    )
    return 0 if r["overshoot_usd"] <= r["max_worst_case_usd"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
