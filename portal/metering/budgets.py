"""Spending limits per feature (and per tenant) over a day, a week or a month.

``[features.X] budget = { usd = 50, window = "day" | "week" | "month", on_exceed = "block" |
"fallback-cheapest" | "warn", per_tenant = false, on_unknown_price = "block" | "warn" |
"allow" }`` (``usd_per_day = 50`` is short for ``usd = 50, window = "day"``). Windows are UTC:
a day from 00:00, an ISO week from Monday 00:00, a month from the 1st.

Budgets observe and decide; they never route. Before a call, `Budgets.decide` returns a
`BudgetDecision` (or raises `BudgetExceeded`) that the caller applies:

* ``block``: the call's worst case is *reserved* before sending: the dearest reachable
  target's price (its dearest tier and input rate) x (input tokens + ``max_tokens``) x the
  tool loop's steps x (1 + hedges); where a target would first create an explicit prompt
  cache (Gemini, Vertex AI), its creation (the input again) and, with a ``cache_storage``
  price, its storage for the cache's lifetime are added. The reservation is atomic in the
  routing `State` (one Lua call with Redis, so every process of a fleet sees it) and
  refused when spent + reserved + this call would pass the limit: ``BudgetExceeded``
  before any money is spent.
  After the call, `Budgets.settle` adds the real cost and releases the reservation; a
  process that dies mid-call releases it by its TTL. So concurrent calls, however many and
  in however many processes, overshoot the limit by no more than what their worst cases
  under-estimate (nothing, when ``max_tokens`` is set).
* ``fallback-cheapest``: once spent + reserved + this call's estimate would pass the limit,
  the decision asks for the cheapest target first; the call goes ahead at the lowest rate.
* ``warn``: the same test logs once per budget and window; the call goes ahead.

A reachable target without a price cannot be bounded. Under a ``block`` budget,
``on_unknown_price = "block"`` (the default) takes it out of the call's targets, and refuses
the call when no priced target is left, naming the model and the config key that prices it;
``"warn"`` keeps it (one warning per model) and ``"allow"`` keeps it silently. Its cost is
recorded as unknown, never 0.

Counters live in the routing `State` under ``budget:<feature>:<window>`` (``2025-03-10``,
``2025-W11``, ``2025-03``), with fields ``spent|<tenant>`` and ``held|<tenant>`` (``_`` when
the budget is not per tenant or the call has no tenant).
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from portal.errors import BudgetExceeded

if TYPE_CHECKING:
    from portal.config import BudgetConfig, PortalConfig
    from portal.metering.prices import Price

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "RESERVE_OUTPUT_TOKENS",
    "BudgetDecision",
    "Budgets",
    "Reservation",
    "day_window",
    "window_of",
]


class Target(Protocol):
    """A route's target as budgets see it (metering never imports routing): its id, and who
    serves it at which price."""

    @property
    def id(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...


class State(Protocol):
    """Where spend and holds live: the routing state (in memory, or shared through Redis),
    as budgets use it."""

    def forget(self, key: str) -> None: ...

    def reserve(
        self, key: str, field: str, amount: float, limit: float, ttl_s: float, rid: str
    ) -> tuple[bool, float, float]: ...

    def settle(self, key: str, field: str, rid: str, cost: float, final: bool = True) -> None: ...

    def spend(self, key: str, field: str) -> tuple[float, float]: ...


T = TypeVar("T", bound=Target)

logger = logging.getLogger("portal.metering")

#: expected output of a chat call that sets no max_tokens, for the pre-call estimate
DEFAULT_OUTPUT_TOKENS = 512
#: output a reservation assumes for a call without max_tokens (set max_tokens for a tight one)
RESERVE_OUTPUT_TOKENS = 4096
#: how long a reservation outlives its call's deadline before it is released anyway
RESERVATION_GRACE_S = 60.0
#: a reservation's lifetime when the call has no deadline
RESERVATION_TTL_S = 600.0
_NO_TENANT = "_"

PriceLookup = Callable[[str, str], "Price | None"]


def window_of(window: str, now: float) -> tuple[str, float]:
    """The UTC window (``day``, ``week``, ``month``) containing ``now``: its id and end."""
    day = _dt.datetime.fromtimestamp(now, _dt.UTC).date()
    if window == "week":
        start = day - _dt.timedelta(days=day.weekday())
        end = start + _dt.timedelta(days=7)
        year, week, _ = day.isocalendar()
        label = f"{year}-W{week:02d}"
    elif window == "month":
        end = _dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        label = f"{day.year}-{day.month:02d}"
    else:
        end = day + _dt.timedelta(days=1)
        label = day.isoformat()
    return label, _dt.datetime.combine(end, _dt.time(), _dt.UTC).timestamp()


def day_window(now: float) -> tuple[str, float]:
    """The UTC day containing ``now`` (epoch seconds): its date and when it ends."""
    return window_of("day", now)


@dataclass(slots=True)
class Reservation:
    """Money held for one call (or one tool loop) until it settles."""

    key: str
    field: str
    rid: str
    amount: float


@dataclass(slots=True)
class BudgetDecision:
    """What a budget asks of a call: targets to leave out (unpriced under a block budget),
    whether the cheapest target should go first, and the reservation to settle."""

    exclude: frozenset[str] = frozenset()
    cheapest_first: bool = False
    reservation: Reservation | None = None
    reasons: list[str] = field(default_factory=list)

    def targets(self, targets: Sequence[T], cost: Callable[[T], float | None]) -> list[T]:
        """``targets`` as this decision wants them (``cost``: a target's estimate, None if
        unpriced; unpriced ones go last when cheapest goes first)."""
        kept = [t for t in targets if t.id not in self.exclude]
        if not self.cheapest_first:
            return kept

        def key(item: tuple[int, T]) -> tuple[int, float, int]:
            i, t = item
            c = cost(t)
            return (1, 0.0, i) if c is None else (0, c, i)

        return [t for _, t in sorted(enumerate(kept), key=key)]


class Budgets:
    """The budget decisions of one client. ``clock`` (epoch seconds) is injectable for tests."""

    def __init__(
        self,
        config: PortalConfig,
        state: State,
        price: PriceLookup,
        clock: Callable[[], float] = time.time,
        warn_unknown: Callable[[str, str], None] | None = None,
        cache_ttl: Callable[[Any, Any], float | None] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.price = price
        self.clock = clock
        self.warn_unknown = warn_unknown
        #: (target, request) -> the lifetime (s) of the prompt cache the call would create
        #: on that target before sending (Gemini's explicit caches), or None
        self.cache_ttl = cache_ttl
        self._warned: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        #: the latest window seen per feature; its predecessors' counters are forgotten
        self._windows: dict[str, str] = {}

    @functools.cached_property
    def active(self) -> bool:
        """Whether any feature has a budget (read once: a call without one pays nothing)."""
        return any(f.budget is not None for f in self.config.features.values())

    def _budget(self, feature: str | None) -> BudgetConfig | None:
        if feature is None:
            return None
        feat = self.config.features.get(feature)
        return None if feat is None else feat.budget

    @staticmethod
    def _field(budget: BudgetConfig, tenant: str | None) -> str:
        return tenant if budget.per_tenant and tenant else _NO_TENANT

    def _window(self, feature: str, budget: BudgetConfig) -> tuple[str, str, float]:
        """(state key, window id, end) of ``feature``'s current window; when a new window
        starts, the last one's local counters are forgotten (with Redis: no longer
        refreshed), so a process that runs for months keeps one counter per budget."""
        label, ends = window_of(budget.window, self.clock())
        last = self._windows.get(feature)
        if last != label:
            with self._lock:
                last = self._windows.get(feature)
                if last is None or label > last:
                    self._windows[feature] = label
                    self._warned = {w for w in self._warned if w[2] >= label or w[0] != feature}
            if last is not None and last < label:
                self.state.forget(f"budget:{feature}:{last}")
        return f"budget:{feature}:{label}", label, ends

    def spent(self, feature: str, tenant: str | None = None) -> float:
        """USD settled in the current window for ``feature`` (and ``tenant`` if per tenant)."""
        return self.levels(feature, tenant)[0]

    def levels(self, feature: str, tenant: str | None = None) -> tuple[float, float]:
        """(spent, reserved) USD in the current window."""
        budget = self._budget(feature)
        if budget is None:
            return 0.0, 0.0
        key, _, _ = self._window(feature, budget)
        return self.state.spend(key, self._field(budget, tenant))

    # -- before the call --------------------------------------------------------------------
    def decide(
        self,
        feature: str | None,
        targets: Sequence[Target],
        request: Any,
        tenant: str | None,
        *,
        steps: int = 1,
        deadline_s: float | None = None,
    ) -> BudgetDecision | None:
        """The budget's decision for a call about to go to ``targets`` (None: go ahead as
        planned), or `BudgetExceeded`. ``steps``: the most model calls it may make (the tool
        loop's ``max_steps``); ``deadline_s``: how long it may run (the reservation's TTL)."""
        budget = self._budget(feature)
        if budget is None or feature is None or not targets:
            return None
        key, label, ends = self._window(feature, budget)
        field_ = self._field(budget, tenant)
        name = f"features.{_quote(feature)}.budget"
        if field_ != _NO_TENANT:
            name += f" (tenant {tenant!r})"
        resets = _dt.datetime.fromtimestamp(ends, _dt.UTC).isoformat().replace("+00:00", "Z")
        if budget.on_exceed == "block":
            return self._reserve(
                budget, feature, targets, request, key, field_, name, resets, steps, deadline_s
            )
        try:
            spent, held = self.state.spend(key, field_)
        except Exception as exc:
            if type(exc).__name__ != "StateUnavailable":
                raise
            return None  # warn and fallback-cheapest never stop a call; the state logged it
        estimate = self.estimate(targets[0], request)
        if spent + held + estimate <= budget.limit_usd:
            return None
        if budget.on_exceed == "warn":
            self._warn_once(
                (feature, field_, label),
                "portal: %s: $%.4f of $%g per %s spent; calls go on (on_exceed = "
                '"warn"); it resets at %s',
                name,
                spent,
                budget.limit_usd,
                budget.window,
                resets,
            )
            return None
        return BudgetDecision(
            cheapest_first=True,
            reasons=[
                f"{name}: ${spent:.4f} of ${budget.limit_usd:g} per {budget.window} spent; "
                "cheapest target first"
            ],
        )

    def _reserve(
        self,
        budget: BudgetConfig,
        feature: str,
        targets: Sequence[Target],
        request: Any,
        key: str,
        field_: str,
        name: str,
        resets: str,
        steps: int,
        deadline_s: float | None,
    ) -> BudgetDecision:
        priced: list[tuple[Target, Price]] = []
        unpriced: list[Target] = []
        for t in targets:
            price = self.price(t.provider, t.model)
            (unpriced.append(t) if price is None else priced.append((t, price)))
        decision = BudgetDecision()
        if unpriced:
            if self.warn_unknown is not None:
                for t in unpriced:
                    self.warn_unknown(t.provider, t.model)
            policy = budget.on_unknown_price
            if policy == "block":
                decision.exclude = frozenset(t.id for t in unpriced)
                decision.reasons.append(
                    f"{name}: left out {', '.join(t.id for t in unpriced)}: no price "
                    '(on_unknown_price = "block")'
                )
                if not priced:
                    t = unpriced[0]
                    raise BudgetExceeded(
                        f"{name}: {t.id} has no price, so this call cannot be bounded by the "
                        f"budget and is refused before sending. Set its price with "
                        f'[providers.{t.provider}.prices."{t.model}"] input = ..., output = '
                        '... (USD per 1M tokens), or set on_unknown_price = "warn" or "allow"',
                        budget=name,
                        limit_usd=budget.limit_usd,
                        resets_at=resets,
                    )
            elif policy == "warn":
                for t in unpriced:
                    self._warn_once(
                        (feature, f"unpriced:{t.id}", ""),
                        "portal: %s: %s has no price; calls to it are not bounded by the "
                        'budget (on_unknown_price = "warn")',
                        name,
                        t.id,
                    )
        if not priced:
            return decision
        amount = self.worst_case([p for _, p in priced], priced[0][0], request, steps)
        amount += self.cache_creation(priced, request) * max(1, steps)
        amount *= self._hedges(feature)
        ttl = (deadline_s if deadline_s is not None else RESERVATION_TTL_S) * max(1, steps)
        rid = uuid.uuid4().hex
        try:
            ok, spent, held = self.state.reserve(
                key, field_, amount, budget.limit_usd, ttl + RESERVATION_GRACE_S, rid
            )
        except Exception as exc:
            if type(exc).__name__ != "StateUnavailable":
                raise
            raise BudgetExceeded(
                f"{name}: {exc}; a shared budget that cannot be checked is not spent, so "
                "this call is refused before sending (fail closed). Restore Redis, or set "
                'on_exceed = "warn" to keep serving without the check',
                budget=name,
                limit_usd=budget.limit_usd,
                resets_at=resets,
            ) from None
        if not ok:
            raise BudgetExceeded(
                f"{name}: ${spent:.4f} of ${budget.limit_usd:g} per {budget.window} spent and "
                f"${held:.4f} reserved by calls in flight; this call (up to ${amount:.4f}) "
                f"would exceed it. It resets at {resets}; raise {budget.limit_key} or set "
                'on_exceed = "fallback-cheapest" or "warn"',
                budget=name,
                spent_usd=spent,
                limit_usd=budget.limit_usd,
                resets_at=resets,
            )
        decision.reservation = Reservation(key, field_, rid, amount)
        return decision

    def worst_case(
        self, prices: Sequence[Price], first: Target, request: Any, steps: int = 1
    ) -> float:
        """The most a call can cost: the dearest of ``prices`` for its input tokens and its
        ``max_tokens`` (else `RESERVE_OUTPUT_TOKENS`), times ``steps``."""
        tokens_in, max_tokens = self._tokens(first, request)
        tokens_out = max_tokens if max_tokens is not None else RESERVE_OUTPUT_TOKENS
        most = max(p.worst_case(tokens_in, tokens_out) for p in prices)
        return most * max(1, steps)

    def cache_creation(self, priced: Sequence[tuple[Target, Price]], request: Any) -> float:
        """The most creating a prompt cache first can add to a call (0 when no target would
        create one): the whole input written at its dearest rate, plus, with a
        ``cache_storage`` price, its storage for the cache's lifetime. The prefix is at most
        the whole input, so this bounds it."""
        if self.cache_ttl is None:
            return 0.0
        most = 0.0
        tokens_in: int | None = None
        for target, price in priced:
            ttl = self.cache_ttl(target, request)
            if not ttl:
                continue
            if tokens_in is None:
                tokens_in = self._tokens(target, request)[0]
            cost = price.worst_case(tokens_in, 0)
            if price.cache_storage is not None:
                cost += tokens_in * ttl / 3600.0 * price.cache_storage / 1_000_000
            most = max(most, cost)
        return most

    def _hedges(self, feature: str) -> int:
        feat = self.config.features.get(feature)
        hedge = getattr(feat, "hedge", None)
        return 1 + (hedge.max_extra if hedge is not None else 0)

    def estimate(self, target: Target, request: Any) -> float:
        """USD a call to ``target`` is expected to cost (0 when its price is unknown)."""
        price = self.price(target.provider, target.model)
        if price is None:
            return 0.0
        tokens_in, max_tokens = self._tokens(target, request)
        tokens_out = max_tokens if max_tokens is not None else DEFAULT_OUTPUT_TOKENS
        return (tokens_in * price.input + tokens_out * price.output) / 1_000_000

    @staticmethod
    def _tokens(target: Target, request: Any) -> tuple[int, int | None]:
        from portal.contracts.request import EmbedRequest
        from portal.tokens import count_request, count_tokens

        if isinstance(request, EmbedRequest):
            return sum(count_tokens(t, target.model).tokens for t in request.inputs), 0
        tokens_in = count_request(request, model=target.model).tokens
        return tokens_in, getattr(request, "max_tokens", None) or None

    def cheapest_first(self, targets: Sequence[Target], request: Any) -> list[Target]:
        """``targets`` cheapest first for ``request`` (unpriced last, in their order)."""
        return BudgetDecision(cheapest_first=True).targets(
            targets,
            lambda t: (
                None if self.price(t.provider, t.model) is None else self.estimate(t, request)
            ),
        )

    def _warn_once(self, key: tuple[str, str, str], msg: str, *args: Any) -> None:
        if key in self._warned:
            return
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            logger.warning(msg, *args)

    # -- after the call ---------------------------------------------------------------------
    def settle(
        self,
        feature: str | None,
        tenant: str | None,
        cost: float | None,
        reservation: Reservation | None = None,
        final: bool = True,
    ) -> None:
        """Add a finished call's real cost (every attempt, failed ones included; unknown
        costs add nothing) and release its reservation (``final=False``: a tool loop step;
        only as much as it cost is released)."""
        if reservation is not None:
            self.state.settle(
                reservation.key, reservation.field, reservation.rid, float(cost or 0.0), final
            )
            return
        budget = self._budget(feature)
        if budget is None or not cost or feature is None:
            return
        key, _, _ = self._window(feature, budget)
        self.state.settle(key, self._field(budget, tenant), "-", float(cost), True)


def _quote(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
