"""`strategy = "cheapest"` ranks by the effective price: a target whose recent calls of the
feature read most of their input from a cache is priced at its cache-read rate for that
share."""

from __future__ import annotations

from typing import Any

import portal
from portal.contracts.messages import coerce_messages
from portal.contracts.request import ChatRequest
from portal.routing.call import Call

from .conftest import config

DOC = "The warranty clause covers parts and labour for two years. " * 300  # ~3,000 tokens


def _cfg() -> dict[str, Any]:
    # a: dearer input, a 90% cache discount (and it caches); b: cheaper input, no cache
    caching = {"time_scale": 0, "prompt_cache": True}
    providers = {
        "a": {
            "kind": "sim",
            "options": caching,
            "prices": {"m": {"input": 3.0, "output": 15.0, "cached_input": 0.3}},
        },
        "b": {
            "kind": "sim",
            "options": {"time_scale": 0},
            "prices": {"m": {"input": 2.0, "output": 15.0}},
        },
    }
    return config(
        providers,
        {"f": {"primary": "a:m", "fallbacks": ["b:m"], "strategy": "cheapest", "max_tokens": 50}},
    )


def _order(r: Any, question: str) -> list[str]:
    req = ChatRequest(messages=coerce_messages([portal.system(DOC), portal.user(question)]))
    call = Call("chat", r.client.router.route("f", None, None), req)
    return [t.id for t in r.control.plan(call)]


def test_cheapest_prices_a_target_at_its_observed_cache_hit_rate(make: Any) -> None:
    r = make(_cfg())
    assert _order(r, "q0") == ["b:m", "a:m"]  # nothing observed: b's input is cheaper
    for i in range(10):  # calls pinned to a: its cache warms up
        resp = r.chat(feature="f", model="a:m", messages=[portal.system(DOC), portal.user(f"q{i}")])
    assert resp.usage.cached_input_tokens > 0.8 * resp.usage.input_tokens
    assert _order(r, "q-next") == ["a:m", "b:m"]  # ~90% of a's input at $0.30: cheaper
    # the rate follows recent calls: a run of misses on a brings b back first
    for i in range(40):
        r.chat(feature="f", model="a:m", messages=[portal.system(f"{i} " + DOC[:5000])])
    assert _order(r, "q-later") == ["b:m", "a:m"]
