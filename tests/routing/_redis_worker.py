"""Run by test_redis_state.py in separate processes: one portal client against shared Redis
state. argv: PREFIX MODE N; prints one JSON line with what it observed."""

from __future__ import annotations

import json
import sys

import portal
from portal.providers.simulated import SimOptions, SimTransport
from portal.routing.state import open_state
from portal.stress.faults import Fault, FaultTransport


def main() -> None:
    prefix, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}&refresh_ms=50"
    if mode == "take":  # raw bucket: n takes from a 10-request bucket, as fast as possible
        state = open_state(url)
        got = sum(state.take("tp:x", [("requests", 1.0, 1e-9, 10.0)]) for _ in range(n))
        state.close()
        print(json.dumps({"taken": got}))
        return
    cfg = {
        "portal": {"ledger": "none", "state": url},
        "providers": {
            "a": {
                "kind": "sim",
                "options": {"time_scale": 0},
                "breaker": {"consecutive_failures": 3, "cooldown_s": 600},
                "throughput": {"requests_per_min": 4},
            },
            "b": {"kind": "sim", "options": {"time_scale": 0}},
        },
        "features": {"f": {"primary": "a:m", "fallbacks": ["b:m"], "retry": {"attempts": 1}}},
    }
    faults = [Fault("outage", status=503)] if mode == "fail" else []
    a = FaultTransport(SimTransport(SimOptions(time_scale=0), "a"), faults)
    client = portal.Client(cfg, transports={"a": a}, ledger=None)
    targets = [client.chat(feature="f", messages=[portal.user("hi")]).target for _ in range(n)]
    status = client._core.control.breakers.status("a:m")
    client.close()  # flushes queued writes
    print(json.dumps({"targets": targets, "a_requests": a.requests, "breaker": status}))


if __name__ == "__main__":
    main()
