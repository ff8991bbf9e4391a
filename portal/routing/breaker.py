"""Circuit breakers, one per target, kept in `State` so a fleet shares them.

A breaker opens after ``consecutive_failures`` failures in a row, or when at least
``min_calls`` calls in the last ``window_s`` seconds failed at a rate of ``failure_rate``
or more. It stays open for ``cooldown_s``; then one call is let through as a probe
(half-open, claimed atomically so only one process probes): success closes it, failure
opens it for another cooldown. 401/404 trip it at once (the target itself is broken).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from portal.config import BreakerConfig
from portal.routing.state import State

__all__ = ["BreakerState", "Breakers"]

BreakerState = Literal["closed", "open", "half-open"]

_DEFAULT = BreakerConfig()


class Breakers:
    def __init__(
        self, state: State, config_for: Callable[[str], BreakerConfig | None] | None = None
    ) -> None:
        self.state = state
        self._config_for = config_for or (lambda _t: None)
        self._configs: dict[str, BreakerConfig] = {}
        self._key_cache: dict[str, tuple[str, str, str, str]] = {}

    def config(self, target: str) -> BreakerConfig:
        cfg = self._configs.get(target)
        if cfg is None:
            cfg = self._configs[target] = self._config_for(target) or _DEFAULT
        return cfg

    # keys: open-until value, consecutive-failure counter, call/failure window, probe claim
    def _keys(self, target: str) -> tuple[str, str, str, str]:
        keys = self._key_cache.get(target)
        if keys is None:  # built once per target: success() runs on every call
            keys = self._key_cache[target] = (
                f"br:{target}:open",
                f"br:{target}:n",
                f"br:{target}",
                f"br:{target}:probe",
            )
        return keys

    def status(self, target: str) -> BreakerState:
        until = self.state.get(f"br:{target}:open")
        if until is None:
            return "closed"
        return "open" if self.state.clock() < until else "half-open"

    def allow(self, target: str) -> bool:
        """May a call go to ``target`` now? Claims the half-open probe when it is due."""
        open_key, _, _, probe_key = self._keys(target)
        until = self.state.get(open_key)
        if until is None:
            return True
        if self.state.clock() < until:
            return False
        return self.state.claim(probe_key, self.config(target).cooldown_s)

    def success(self, target: str) -> None:
        open_key, n_key, w_key, probe_key = self._keys(target)
        self.state.hit(w_key, {"calls": 1.0})
        if self.state.counters(n_key).get("n") or self.state.get(open_key) is not None:
            self.state.reset(n_key)
            self.state.delete(open_key)
            self.state.delete(probe_key)

    def failure(self, target: str) -> None:
        open_key, n_key, w_key, _probe_key = self._keys(target)
        cfg = self.config(target)
        st = self.state
        st.hit(w_key, {"calls": 1.0, "failures": 1.0})
        st.incr(n_key, "n")
        st.set(f"br:{target}:last_failure", st.clock())
        until = st.get(open_key)
        now = st.clock()
        if until is not None and now < until:
            return  # already open: late failures of calls started before it opened
        half_open = until is not None
        consecutive = st.counters(n_key).get("n", 0.0)
        w = st.window(w_key, cfg.window_s)
        calls = w.get("calls", 0.0)
        rate_tripped = calls >= cfg.min_calls and w.get("failures", 0.0) / calls >= cfg.failure_rate
        if half_open or consecutive >= cfg.consecutive_failures or rate_tripped:
            self._open(target, cfg.cooldown_s)

    def trip(self, target: str) -> None:
        """Open now (401/404: retrying the target cannot help until someone fixes it)."""
        self.state.set(f"br:{target}:last_failure", self.state.clock())
        self._open(target, self.config(target).cooldown_s)

    def _open(self, target: str, cooldown_s: float) -> None:
        open_key, _, _, probe_key = self._keys(target)
        self.state.set(open_key, self.state.clock() + cooldown_s)
        self.state.delete(probe_key)

    def last_failure(self, target: str) -> float:
        got = self.state.get(f"br:{target}:last_failure")
        return float(got) if got is not None else 0.0

    def describe(self, target: str) -> str:
        st = self.status(target)
        n = int(self.state.counters(f"br:{target}:n").get("n", 0))
        if st == "open":
            left = self.state.get(f"br:{target}:open") - self.state.clock()
            return f"breaker open ({left:.0f}s of cooldown left, {n} failures in a row)"
        if st == "half-open":
            return "breaker half-open (next call is a probe)"
        return f"breaker closed ({n} failures in a row)" if n else "breaker closed"
