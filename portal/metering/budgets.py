"""Per-feature (and per-tenant) daily spending limits.

``[features.X] budget = { usd_per_day = 50, on_exceed = "block" | "fallback-cheapest" |
"warn", per_tenant = false }``.

* Before a call (`Budgets.check`) the cost is estimated from the request: its input tokens
  (`count_request`) and its expected output (``max_tokens``, else `DEFAULT_OUTPUT_TOKENS`)
  at the price of the route's first target. If what was spent today plus the estimate
  exceeds the limit:

  - ``block`` raises `BudgetExceeded` (which budget, spent, limit, when it resets) before
    any money is spent;
  - ``fallback-cheapest`` reorders the route so its cheapest target (by the price table)
    goes first, the rest after it cheapest first; the call goes ahead at the lowest rate;
  - ``warn`` logs once per budget per day and lets the call through.

* After a call (`Budgets.settle`) its real cost (every attempt, failed ones included) is
  added to the day's spend.

The window is the UTC day: spend resets at 00:00 UTC. With ``per_tenant = true`` and a
``tenant=`` on the call, each tenant gets its own ``usd_per_day``; calls without a tenant
share one untenanted budget.

Spend lives in the routing `State` as a counter per feature and day
(``budget:<feature>:<YYYY-MM-DD>``, one field per tenant): in memory by default, shared
through Redis with ``[portal] state = "redis://..."`` so a fleet respects one budget
(`RedisState` adds with HINCRBYFLOAT and reads a local copy refreshed every ~100 ms, so
replicas see each other's spend within about that long). Calls already in flight when the
limit is reached still settle; a budget can be overspent by at most those calls.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from portal.errors import BudgetExceeded

if TYPE_CHECKING:
    from portal.config import BudgetConfig, PortalConfig
    from portal.metering.prices import Price
    from portal.routing.router import Route, Target
    from portal.routing.state import State

__all__ = ["DEFAULT_OUTPUT_TOKENS", "Budgets", "day_window"]

logger = logging.getLogger("portal.metering")

#: expected output of a chat call that sets no max_tokens, for the pre-call estimate
DEFAULT_OUTPUT_TOKENS = 512
_NO_TENANT = "_"

PriceLookup = Callable[[str, str], "Price | None"]


def day_window(now: float) -> tuple[str, float]:
    """The UTC day containing ``now`` (epoch seconds): its date and when it ends."""
    day = _dt.datetime.fromtimestamp(now, _dt.UTC).date()
    end = _dt.datetime.combine(day + _dt.timedelta(days=1), _dt.time(), _dt.UTC)
    return day.isoformat(), end.timestamp()


class Budgets:
    """The budget checks of one client. ``clock`` (epoch seconds) is injectable for tests."""

    def __init__(
        self,
        config: PortalConfig,
        state: State,
        price: PriceLookup,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state = state
        self.price = price
        self.clock = clock
        self._warned: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._day = ""  # the latest UTC day seen; its predecessors' counters are forgotten

    @property
    def active(self) -> bool:
        return any(f.budget is not None for f in self.config.features.values())

    def _budget(self, feature: str | None) -> BudgetConfig | None:
        if feature is None:
            return None
        feat = self.config.features.get(feature)
        return None if feat is None else feat.budget

    @staticmethod
    def _field(budget: BudgetConfig, tenant: str | None) -> str:
        return tenant if budget.per_tenant and tenant else _NO_TENANT

    def _today(self, now: float) -> tuple[str, float]:
        """`day_window` of ``now``; on the first call of a new day, yesterday's counters are
        forgotten (the local copy, and with Redis the refresh of them): a process that runs
        for months must not keep, or keep polling, a counter per feature per day."""
        day, ends = day_window(now)
        if day > self._day:
            with self._lock:
                old, self._day = self._day, max(self._day, day)
                self._warned = {w for w in self._warned if w[2] >= self._day}
            if old and old < day:
                for feature, feat in self.config.features.items():
                    if feat.budget is not None:
                        self.state.forget(f"budget:{feature}:{old}")
        return day, ends

    def spent(self, feature: str, tenant: str | None = None) -> float:
        """USD settled today for ``feature`` (and ``tenant`` if the budget is per tenant)."""
        budget = self._budget(feature)
        if budget is None:
            return 0.0
        day, _ = self._today(self.clock())
        counters = self.state.counters(f"budget:{feature}:{day}")
        return float(counters.get(self._field(budget, tenant), 0.0))

    # -- before the call --------------------------------------------------------------------
    def check(
        self, feature: str | None, route: Route, request: Any, tenant: str | None
    ) -> Route | None:
        """Raise `BudgetExceeded`, return a reordered route, or None to go ahead unchanged."""
        budget = self._budget(feature)
        if budget is None or feature is None or not route.targets:
            return None
        day, ends = self._today(self.clock())
        field = self._field(budget, tenant)
        spent = float(self.state.counters(f"budget:{feature}:{day}").get(field, 0.0))
        estimate = self.estimate(route.targets[0], request)
        if spent + estimate <= budget.usd_per_day:
            return None
        name = f"features.{_quote(feature)}.budget"
        if field != _NO_TENANT:
            name += f" (tenant {tenant!r})"
        resets = _dt.datetime.fromtimestamp(ends, _dt.UTC).isoformat().replace("+00:00", "Z")
        if budget.on_exceed == "block":
            raise BudgetExceeded(
                f"{name}: ${spent:.4f} of ${budget.usd_per_day:g} per day spent; this call "
                f"(~${estimate:.4f}) would exceed it. It resets at {resets}; raise "
                'usd_per_day or set on_exceed = "fallback-cheapest" or "warn"',
                budget=name,
                spent_usd=spent,
                limit_usd=budget.usd_per_day,
                resets_at=resets,
            )
        if budget.on_exceed == "warn":
            key = (feature, field, day)
            if key not in self._warned:
                with self._lock:
                    first = key not in self._warned
                    self._warned.add(key)
                if first:
                    logger.warning(
                        "portal: %s: $%.4f of $%g per day spent; calls go on (on_exceed = "
                        '"warn"); it resets at %s',
                        name,
                        spent,
                        budget.usd_per_day,
                        resets,
                    )
            return None
        ordered = self._cheapest_first(route.targets, request)
        if [t.id for t in ordered] == [t.id for t in route.targets]:
            return None
        reason = (
            f"{name}: ${spent:.4f} of ${budget.usd_per_day:g} spent today; cheapest target first"
        )
        return replace(route, targets=ordered, reasons=[*route.reasons, reason])

    def estimate(self, target: Target, request: Any) -> float:
        """USD a call to ``target`` is expected to cost (0 when its price is unknown)."""
        price = self.price(target.provider, target.model)
        if price is None:
            return 0.0
        from portal.contracts.request import EmbedRequest
        from portal.metering.tokens import count_request, count_tokens

        if isinstance(request, EmbedRequest):
            tokens_in = sum(count_tokens(t, target.model).tokens for t in request.inputs)
            tokens_out = 0
        else:
            tokens_in = count_request(request, model=target.model).tokens
            max_tokens = getattr(request, "max_tokens", None)
            tokens_out = max_tokens if max_tokens else DEFAULT_OUTPUT_TOKENS
        return (tokens_in * price.input + tokens_out * price.output) / 1_000_000

    def _cheapest_first(self, targets: list[Target], request: Any) -> list[Target]:
        def key(item: tuple[int, Target]) -> tuple[int, float, int]:
            i, t = item
            if self.price(t.provider, t.model) is None:
                return (1, 0.0, i)  # unknown prices go last: they may cost anything
            return (0, self.estimate(t, request), i)

        return [t for _, t in sorted(enumerate(targets), key=key)]

    # -- after the call ---------------------------------------------------------------------
    def settle(self, feature: str | None, tenant: str | None, cost: float | None) -> None:
        """Add a finished call's real cost to today's spend (unknown costs add nothing)."""
        budget = self._budget(feature)
        if budget is None or not cost:
            return
        day, _ = self._today(self.clock())
        self.state.incr(f"budget:{feature}:{day}", self._field(budget, tenant), float(cost))


def _quote(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
