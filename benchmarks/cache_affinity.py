"""What cache affinity is worth: cache hits and cost per call over a 50/50 weighted split.

Two simulated vendors that cache prompt prefixes the way the vendors document it (a prefix
of 1,024 tokens or more seen on that vendor in the last 5 minutes is read from its cache, in
128-token steps; the first time it is written) share a feature 50/50 by weight. The
workload: ``--prefixes`` distinct stable prefixes of ``--prefix-tokens`` tokens each (a
document, a long system prompt; marked ``cache=True``), each asked ``--calls-per-prefix``
different questions, all calls shuffled together and spread round-robin over
``--clients`` clients (replicas of one service: they share the routing state and the two
vendors). It runs twice, with cache affinity and with ``cache_affinity = false``, through
the real client and a SQLite ledger, and reports from the ledger's call rows:

* hit share: calls that read their prefix from a cache, of the calls that could (every
  call but the first of each prefix: that one has to write it somewhere), and of all calls;
* the share of input tokens read from a cache;
* the cost per call at Anthropic-like prices ($3 input, $0.30 cache read, $3.75 cache
  write, $15 output per 1M tokens).

    PYTHONPATH=. .venv/bin/python benchmarks/cache_affinity.py
    PYTHONPATH=. .venv/bin/python benchmarks/cache_affinity.py --prefixes 50 --calls-per-prefix 8
    PYTHONPATH=. .venv/bin/python benchmarks/cache_affinity.py --state redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import portal
from portal.metering.ledger import read_records
from portal.providers.simulated import SimOptions, SimTransport
from portal.routing.state import MemoryState, RedisState
from portal.tokens import count_tokens

PRICES = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
VOCABULARY = [
    "contract",
    "party",
    "clause",
    "term",
    "notice",
    "payment",
    "delivery",
    "warranty",
    "liability",
    "invoice",
    "schedule",
    "service",
    "level",
    "credit",
    "renewal",
    "termination",
    "audit",
    "record",
    "confidential",
    "data",
    "processing",
    "subprocessor",
    "region",
    "breach",
    "remedy",
    "dispute",
    "arbitration",
    "governing",
    "law",
]


def config(affinity: bool) -> dict[str, Any]:
    vendor = {
        "kind": "sim",
        "options": {
            "time_scale": 0,
            "output_tokens": 40,
            "prompt_cache": True,
            "prompt_cache_writes": True,
            "prompt_cache_ttl_s": 300,
        },
        "prices": {"m": PRICES},
    }
    return {
        "portal": {"ledger": "none"},
        "providers": {"vendor_a": dict(vendor), "vendor_b": dict(vendor)},
        "features": {
            "docs": {
                "primary": "vendor_a:m",
                "fallbacks": ["vendor_b:m"],
                "strategy": "weighted",
                "weights": {"vendor_a:m": 1, "vendor_b:m": 1},
                "cache_affinity": affinity,
                "max_tokens": 64,
            }
        },
    }


def document(rng: random.Random, tokens: int) -> str:
    """A text of about ``tokens`` tokens (counted with portal's tokenizer)."""
    words = [rng.choice(VOCABULARY) for _ in range(tokens)]
    text = " ".join(words)
    while count_tokens(text)[0] > tokens:
        words = words[: int(len(words) * 0.98)]
        text = " ".join(words)
    return text


def run(
    affinity: bool,
    prefixes: int,
    per_prefix: int,
    prefix_tokens: int,
    seed: int,
    clients: int,
    state_url: str | None = None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    docs = [f"Document {i}.\n" + document(rng, prefix_tokens) for i in range(prefixes)]
    calls = [(d, q) for d in range(prefixes) for q in range(per_prefix)]
    rng.shuffle(calls)
    cfg = config(affinity)
    options = SimOptions.model_validate(cfg["providers"]["vendor_a"]["options"])
    vendors = {name: SimTransport(options, name) for name in cfg["providers"]}
    # the fleet's routing state: one in memory, or each replica its own RedisState on one
    # Redis (a fresh key prefix per run)
    run_id = f"bench-affinity-{random.Random().getrandbits(40):x}"
    states: list[Any] = (
        [MemoryState()] * clients
        if state_url is None
        else [RedisState(state_url, prefix=run_id) for _ in range(clients)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        random.seed(seed)  # the weighted draw of calls without a key
        started = time.perf_counter()
        fleet = [portal.Client(cfg, ledger=url, transports=vendors) for _ in range(clients)]
        for client, state in zip(fleet, states, strict=True):
            client._core.use_state(state)
        for i, (d, q) in enumerate(calls):
            fleet[i % clients].chat(
                feature="docs",
                messages=[
                    portal.system(docs[d], cache=True),
                    portal.user(f"Question {q}: what does clause {q + 1} say?"),
                ],
            )
        for client in fleet:
            client.close()
        seconds = time.perf_counter() - started
        if state_url is not None:
            states[0].clear()
            for state in states:
                state.close()
        rows = [r for r in read_records(url, kind="call") if r.outcome == "ok"]
    hits = sum(1 for r in rows if r.cached_input_tokens > 0)
    could = len(rows) - prefixes
    inp = sum(r.input_tokens for r in rows)
    cost = [r.cost_usd for r in rows if r.cost_usd is not None]
    return {
        "affinity": affinity,
        "calls": len(rows),
        "hit_share_possible": hits / could if could else 0.0,
        "hit_share_all": hits / len(rows),
        "cached_token_share": sum(r.cached_input_tokens for r in rows) / inp if inp else 0.0,
        "cost_per_call_usd": sum(cost) / len(cost),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefixes", type=int, default=500)
    ap.add_argument("--calls-per-prefix", type=int, default=2)
    ap.add_argument("--prefix-tokens", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument(
        "--state",
        default=None,
        help="redis://host:port/db: each client its own RedisState on it (default: one "
        "MemoryState shared by the clients)",
    )
    args = ap.parse_args()
    results = [
        run(
            aff,
            args.prefixes,
            args.calls_per_prefix,
            args.prefix_tokens,
            args.seed,
            args.clients,
            args.state,
        )
        for aff in (True, False)
    ]
    print(
        f"{args.prefixes} prefixes of {args.prefix_tokens:,} tokens x {args.calls_per_prefix} "
        f"calls over {args.clients} clients (state: {args.state or 'memory'}), 50/50 weighted "
        "over two caching vendors\n"
    )
    print(
        "| cache affinity | calls | hit share (repeat calls) | hit share (all) | "
        "input tokens from cache | cost per call |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {'on' if r['affinity'] else 'off'} | {r['calls']:,} | "
            f"{100 * r['hit_share_possible']:.1f}% | {100 * r['hit_share_all']:.1f}% | "
            f"{100 * r['cached_token_share']:.1f}% | ${r['cost_per_call_usd']:.5f} |"
        )
    on, off = results
    saved = 1 - on["cost_per_call_usd"] / off["cost_per_call_usd"]
    print(f"\naffinity cuts the cost per call by {100 * saved:.1f}%")


if __name__ == "__main__":
    main()
