"""`RouteControl`: the live controls on a route while calls run over it: target order
(strategy), breakers, committed throughput, retry budgets, latency stats, hedging and the
canary guard, over one `State`.

`Router` (``router.py``) picks a call's `Route` from the config before it runs;
`RouteControl` decides attempt by attempt which of its targets to try and learns from each
outcome. The engine holds one per client and hands it to the flows as ``control``, so both
clients share it and it can be tested without a client.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import Any

from portal.config import PortalConfig
from portal.contracts.cache import cache_lifetime_s, marked, prefix_key
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Attempt, EmbedResponse, Response, Usage
from portal.effects import Take
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    NotFound,
    ProviderError,
)
from portal.routing.breaker import Breakers
from portal.routing.call import Call, estimated_tokens
from portal.routing.canary import BUCKETS, bucket
from portal.routing.ejection import Ejection, EjectPolicy
from portal.routing.limits import Commitments, RetryBudget
from portal.routing.router import Route, Router, Target, context_window
from portal.routing.state import State
from portal.routing.stats import LatencyStats

__all__ = ["RouteControl"]

log = logging.getLogger("portal.routing")

#: output tokens assumed when ranking by price a request without max_tokens
DEFAULT_OUTPUT_TOKENS = 256
#: ``cheapest`` within an SLA: one call in this many ranks by price alone (exploration)
EXPLORE_EVERY = 20
#: affinity writes remembered per process (to skip rewriting a fresh one)
AFFINITY_WRITES_KEPT = 10_000
#: ``cheapest``: each call's weight in a target's observed cache-hit rate decays by this
CACHE_DECAY = 0.95


#: calls a target is measured on before its latency plans a deadline (`RouteControl.reserve`)
RESERVE_SAMPLES = 20


class RouteControl:
    """The flows' routing hooks over one client's `Router` and routing `State`."""

    def __init__(
        self,
        config: PortalConfig,
        router: Router,
        cost: Callable[[Target, Usage], float | None] | None = None,
    ) -> None:
        self.config = config
        self.router = router
        self.state: State = router.state
        self.canary = router.canary
        providers = config.providers
        self.breakers = Breakers(
            self.state,
            lambda target: (providers.get(target.partition(":")[0]) or _NoProvider).breaker,
        )
        self.commitments = Commitments(
            self.state, {n: p.throughput for n, p in providers.items() if p.throughput}
        )
        self.budget = RetryBudget(self.state)
        self.stats = LatencyStats()
        self._cost = cost
        self._hedge_warned = False
        self._request_only: dict[str, Take] = {}
        self._weights: dict[str, dict[str, float]] = {}  # feature -> target id -> weight
        self._explore_turns: dict[str, int] = {}  # feature -> calls ranked by `_cheapest`
        self.ejection = Ejection(self.state, lambda f: eject_policy(config, f))
        #: features with an ``eject`` table (the others pay nothing for ejection)
        self._ejecting = frozenset(n for n, f in config.features.items() if f.eject is not None)
        #: features whose marked calls stick to the target holding their prefix
        self._affine = frozenset(n for n, f in config.features.items() if f.cache_affinity)
        #: affinity keys this process wrote lately: (target, when), oldest first
        self._affinity_writes: dict[str, tuple[str, float]] = {}
        #: ``cheapest`` features, and their observed cache use per target (`_observe_cache`)
        self._cheap = frozenset(n for n, f in config.features.items() if f.strategy == "cheapest")
        self._cache_seen: dict[tuple[str, str], list[float]] = {}

    # -- order -----------------------------------------------------------------------------
    def plan(self, call: Call) -> list[Target]:
        route = call.route
        targets = route.targets
        if len(targets) - route.pinned < 2:
            return targets
        ejecting = route.feature in self._ejecting
        sticky = route.feature in self._affine and self._marked(call)
        if route.strategy == "ordered" and not ejecting and not sticky:
            return targets
        head, rest = targets[: route.pinned], targets[route.pinned :]
        if route.strategy == "fastest":
            # never-measured targets first (they get measured), then by EWMA latency
            rest = sorted(rest, key=lambda t: self.stats.ewma(t.id) or 0.0)
        elif route.strategy == "cheapest":
            rest = self._cheapest(call, rest)
        elif route.strategy == "weighted":
            rest = self._weighted(call, rest)
        if ejecting:  # slow or failing targets go last (but for an exploration share)
            rest = self.ejection.order(route.feature or "", rest, _target_id)
        if sticky:
            rest = self._stick(call, rest)
        return head + rest

    # -- cache affinity --------------------------------------------------------------------
    @staticmethod
    def _marked(call: Call) -> bool:
        req = call.request
        return isinstance(req, ChatRequest) and not call.route.model_pinned and marked(req)

    def _stick(self, call: Call, rest: list[Target]) -> list[Target]:
        """Cache affinity: the target that last served this call's marked prefix goes first,
        if it is one the call could have gone to first anyway (a weighted target, any target
        of a ranking strategy, the primary of an ordered chain; never an ejected one). The
        prefix is hashed here, only for marked requests; the key is per feature and arm."""
        route = call.route
        feature = route.feature or ""
        assert isinstance(call.request, ChatRequest)
        key = prefix_key(call.request)
        if key is None:
            return rest
        call.cache_key = f"affinity:{feature}:{route.arm}:{key}"
        call.cache_ttl_s = cache_lifetime_s(call.request)
        holder = self.state.recall(call.cache_key)
        if not isinstance(holder, str):
            return rest
        call.cache_holder = holder
        if route.strategy == "weighted":
            weights = self._weights.get(feature, {})
            choices = [t for t in rest if t.id in weights]
        elif route.strategy == "ordered":
            choices = rest[:1]
        else:
            choices = rest
        if feature in self._ejecting:
            choices = [t for t in choices if not self.ejection.ejected(feature, t.id)]
        pick = next((t for t in choices if t.id == holder), None)
        if pick is None:
            return rest
        call.cache_first = True
        if pick is rest[0]:
            return rest
        route.reasons.append(f"cache affinity: {holder} served this prefix last")
        return [pick] + [t for t in rest if t is not pick]

    def _affinity_done(self, call: Call, target: Target, attempt: Attempt, ok: bool) -> None:
        """Mark an attempt sent away from the prefix's holder (the cache it will not read),
        and remember who served the prefix: one write per prefix and target, renewed when
        a tenth of the vendor's lifetime has passed, so a hot prefix costs few writes."""
        key = call.cache_key
        assert key is not None
        holder = call.cache_holder
        if holder is not None and target.id != holder and attempt.outcome not in _NOT_JUDGED:
            if not call.cache_first:
                attempt.cache_miss_expected = "route"
            elif any(a.target == holder for a in call.attempts[:-1]) or self.hedge(call) is None:
                attempt.cache_miss_expected = "failover"
            else:
                attempt.cache_miss_expected = "hedge"
        if not ok:
            return
        now = self.state.clock()
        written = self._affinity_writes.get(key)
        ttl = call.cache_ttl_s
        if written is not None and written[0] == target.id and now - written[1] < ttl / 10:
            return
        self.state.remember(key, target.id, ttl)
        self._affinity_writes.pop(key, None)
        self._affinity_writes[key] = (target.id, now)
        while len(self._affinity_writes) > AFFINITY_WRITES_KEPT:
            self._affinity_writes.pop(next(iter(self._affinity_writes)), None)

    def _weighted(self, call: Call, targets: list[Target]) -> list[Target]:
        """One target drawn by weight goes first, the others keep their order as fallbacks.
        The draw is sticky per ``key=`` (the canary's stable hash, so every process agrees)
        and random per call without a key."""
        feature = call.route.feature or ""
        weights = self._weights.get(feature)
        if weights is None:
            feat = self.config.features[feature]
            ids = {t: self.router.adapters.target(t).id for t in feat.weights or {}}
            weights = self._weights[feature] = {
                ids[t]: w for t, w in (feat.weights or {}).items() if w > 0
            }
        live = [(t, weights[t.id]) for t in targets if t.id in weights]
        total = sum(w for _, w in live)
        if not live or total <= 0:
            return targets
        if call.key is None:
            point = random.random() * total
        else:
            point = bucket(feature, "weights", call.key) / BUCKETS * total
        chosen = live[-1][0]  # float rounding can leave the point at the very top
        for target, w in live:
            point -= w
            if point < 0:
                chosen = target
                break
        return [chosen] + [t for t in targets if t is not chosen]

    def _cheapest(self, call: Call, targets: list[Target]) -> list[Target]:
        """By price for this request's estimate; with a feature SLA (p95), targets whose
        rolling p95 meets it come first. A target measured fewer than ``min_samples`` times
        counts as meeting it (one slow call demotes nothing), and every `EXPLORE_EVERY`-th
        call goes by price alone, so a demoted target is measured again and can come back."""
        tokens = estimated_tokens(call)
        out = DEFAULT_OUTPUT_TOKENS
        if isinstance(call.request, ChatRequest) and call.request.max_tokens:
            out = call.request.max_tokens
        usage = Usage(tokens, out)
        feature_name = call.route.feature or ""

        def price(t: Target) -> float:
            if self._cost is None:
                return math.inf
            c = self._cost(t, self._cache_usage(feature_name, t.id, usage))
            return math.inf if c is None else c

        feat = self.config.features.get(call.route.feature or "")
        sla = feat.sla.p95_ms if feat is not None and feat.sla is not None else None

        if sla is None:
            return sorted(targets, key=price)
        assert feat is not None
        feature = call.route.feature or ""
        turn = self._explore_turns[feature] = self._explore_turns.get(feature, 0) + 1
        if turn % EXPLORE_EVERY == 0:
            return sorted(targets, key=price)
        min_samples = feat.min_samples

        def key(t: Target) -> tuple[int, float]:
            if self.stats.count(t.id) < min_samples:
                return 0, price(t)
            p95 = self.stats.quantile(t.id, 0.95)
            return (0 if p95 is None or p95 <= sla else 1), price(t)

        return sorted(targets, key=key)

    def _cache_usage(self, feature: str, target: str, usage: Usage) -> Usage:
        """``usage`` with the cache reads and writes this feature's recent calls on
        ``target`` had, in proportion: what an answer there is likely to cost."""
        seen = self._cache_seen.get((feature, target))
        if seen is None or seen[0] <= 0:
            return usage
        inp, read, written = seen
        n = usage.input_tokens
        return Usage(
            n,
            usage.output_tokens,
            cached_input_tokens=min(n, round(n * read / inp)),
            cache_write_tokens=min(n, round(n * written / inp)),
        )

    def _observe_cache(self, feature: str, target: str, usage: Usage) -> None:
        """Decayed sums of input tokens, cache reads and cache writes per feature and
        target (about the last `1 / (1 - CACHE_DECAY)` calls weigh in)."""
        seen = self._cache_seen.get((feature, target))
        if seen is None:
            seen = self._cache_seen[(feature, target)] = [0.0, 0.0, 0.0]
        seen[0] = seen[0] * CACHE_DECAY + usage.input_tokens
        seen[1] = seen[1] * CACHE_DECAY + usage.cached_input_tokens
        seen[2] = seen[2] * CACHE_DECAY + usage.cache_write_tokens

    # -- gates -----------------------------------------------------------------------------
    def allow(self, target: Target, call: Call) -> bool:
        return self.breakers.allow(target.id)

    def take(self, target: Target, call: Call) -> Take | None:
        provider = target.provider
        if not self.commitments.has(provider):
            return None
        call.reserved[provider] = call.reserved.get(provider, 0) + 1
        if not self.commitments.needs_tokens(provider):  # requests only: the same every time
            take = self._request_only.get(provider)
            if take is None:
                key = self.commitments.key(provider)
                take = self._request_only[provider] = Take(key, self.commitments.dims(provider, 0))
            return take
        tokens = estimated_tokens(call)
        if isinstance(call.request, ChatRequest):
            tokens += call.request.max_tokens or 0
        return Take(self.commitments.key(provider), self.commitments.dims(provider, tokens))

    def may_retry(self, target: Target, call: Call) -> bool:
        return self.budget.allow(target.id, call.route.policy.budget_ratio)

    def fallback(self, call: Call, skipped: list[tuple[Target, str]]) -> Target | None:
        """All targets skipped: the least recently failed of those behind open breakers, or
        else the first one whose commitment was used up (the vendor may still serve it)."""
        if call.route.arm == "shadow":
            return None  # a shadow copy is never forced onto a target that is resting
        for target, why in skipped:
            if why == "committed throughput used up":
                call.reserved.pop(target.provider, None)
        by_breaker = [t for t, why in skipped if why == "breaker open"]
        if by_breaker:
            pick = min(by_breaker, key=lambda t: self.breakers.last_failure(t.id))
            log.debug("portal: every breaker is open; trying %s (least recently failed)", pick.id)
            return pick
        overflow = [t for t, why in skipped if why == "committed throughput used up"]
        return overflow[0] if overflow else None

    def context_window(self, target: Target, call: Call) -> int | None:
        return context_window(target)

    def hedge(self, call: Call) -> tuple[float, int] | None:
        feat = self.config.features.get(call.route.feature or "")
        if feat is None or feat.hedge is None:
            return None
        if call.operation == "stream" and not feat.hedge.streams:
            return None
        after = call.route.hedge_after_s
        if getattr(feat.hedge, "after", None) == "p95" and call.route.targets:
            p95 = self.stats.quantile(call.route.targets[0].id, 0.95)
            if p95 is not None and self.stats.count(call.route.targets[0].id) >= 20:
                after = p95 / 1000.0
        if after is None:
            return None
        return after, feat.hedge.max_extra

    def reserve(self, target: Target, total: float) -> float:
        """Seconds at the end of a call's deadline (``total`` seconds long) kept for
        ``target``, the next target of its chain, while earlier ones are tried: the next
        target's observed p95 with a quarter on top once it has `RESERVE_SAMPLES` samples, a
        third of the deadline until then, never more than half of it."""
        stats = self.stats
        p95 = stats.quantile(target.id, 0.95) if stats.count(target.id) >= RESERVE_SAMPLES else None
        want = total / 3.0 if p95 is None else p95 * 1.25 / 1000.0
        half = total / 2.0
        return want if want < half else half

    def too_slow(self, target: Target, left: float) -> str | None:
        """Why an attempt on ``target`` should not start with ``left`` seconds to go (its
        fastest twentieth of calls takes longer), or None."""
        stats = self.stats
        if stats.count(target.id) < RESERVE_SAMPLES:
            return None
        fast = stats.quantile(target.id, 0.05)
        if fast is None or fast / 1000.0 <= left:
            return None
        return (
            f"deadline too close: {left * 1000:.0f} ms left, its fastest calls take {fast:.0f} ms"
        )

    def warn_no_hedge(self) -> None:
        """The sync client cannot hedge (no concurrency): say so once, run unhedged."""
        if not self._hedge_warned:
            self._hedge_warned = True
            log.warning(
                "portal: hedging (hedge.after_ms) needs portal.AsyncClient; this sync Client "
                "runs hedged features without hedges"
            )

    # -- outcomes --------------------------------------------------------------------------
    def mark_unhealthy(self, target: Target, err: BaseException) -> None:
        self.breakers.trip(target.id)
        log.warning(
            "portal: %s answered %s; its breaker is open for %gs",
            target.id,
            type(err).__name__,
            self.breakers.config(target.id).cooldown_s,
        )

    def attempt_done(
        self, call: Call, target: Target, attempt: Attempt, error: BaseException | None
    ) -> None:
        if attempt.number == 1 or not any(a.target == target.id for a in call.attempts[:-1]):
            self.budget.call(target.id)
        if call.reserved.get(target.provider):
            call.reserved[target.provider] -= 1
            actual = attempt.usage.total_tokens if attempt.usage is not None else None
            est = estimated_tokens(call) if self.commitments.needs_tokens(target.provider) else 0
            if isinstance(call.request, ChatRequest) and est:
                est += call.request.max_tokens or 0
            self.commitments.correct(target.provider, est, actual)
        route = call.route
        if (
            route.canary_threshold is not None
            and route.feature is not None
            and attempt.outcome not in ("cancelled", "hedge_lost")
            and call.attempts
            and call.attempts[0].target == target.id
        ):
            # the guard judges an arm by its own first target's attempts, before a retry or
            # a failover absorbs the error (or it would never see a broken canary)
            self.canary.observe_attempt(route.feature, route.arm, error is None, attempt.latency_ms)
        if call.cache_key is not None:
            self._affinity_done(call, target, attempt, error is None and attempt.outcome == "ok")
        if call.route.feature in self._ejecting:
            if attempt.outcome not in _NOT_JUDGED:
                failed = error is not None and not isinstance(error, _REQUEST_FAULTS)
                self.ejection.observe(
                    call.route.feature or "", target.id, attempt.latency_ms, failed
                )
            elif attempt.outcome == "hedge_lost":
                # it lost because it was still running: slow, if that already took too long
                self.ejection.observe_lost(call.route.feature or "", target.id, attempt.latency_ms)
        if error is None:
            self.breakers.success(target.id)
            self.stats.observe(target.id, attempt.latency_ms)
            if route.feature in self._cheap and attempt.usage is not None:
                self._observe_cache(route.feature or "", target.id, attempt.usage)
        elif attempt.outcome in _NOT_JUDGED:
            return
        elif isinstance(error, ProviderError) and not isinstance(error, _REQUEST_FAULTS):
            # the request's own faults say nothing about the target; 401/404 trip it directly
            self.breakers.failure(target.id)

    def call_done(
        self, call: Call, response: Response | EmbedResponse | None, error: BaseException | None
    ) -> None:
        route = call.route
        if route.feature is None or route.canary_threshold is None:
            return
        target = response.target if response is not None and response.target else ""
        self.canary.observe_call(route.feature, route.arm, call.cost_usd, call.call_id, target)

    # -- explain ---------------------------------------------------------------------------
    def explain(self, feature: str, key: str | None) -> str:
        """What a call with ``key`` would get now, and why (``portal route explain``)."""
        route: Route = self.router.route(feature, key, None)
        feat = self.router.feature(feature)
        lines = [f"feature {feature}: arm {route.arm}"]
        if feat.canary is not None:
            live = self.canary.live(feature)
            if key is None:
                lines.append(
                    f"  canary {feat.canary.target} at {live['percent']:g}% "
                    f"(threshold {route.canary_threshold} of 10000 buckets); no key: "
                    "assigned per call"
                )
            else:
                lines.append(
                    f"  canary {feat.canary.target} at {live['percent']:g}%: key bucket "
                    f"{route.canary_bucket} vs threshold {route.canary_threshold} -> {route.arm}"
                )
            shadow = float(live.get("shadow", feat.canary.shadow))
            if shadow > 0:
                if route.arm != "baseline":
                    this = "none for a canary-arm call"
                elif key is None:
                    this = "drawn per call (no key)"
                else:
                    this = "this key is copied" if route.shadow else "this key is not copied"
                lines.append(
                    f"  shadow copies of {shadow:g}% of the baseline's calls to "
                    f"{feat.canary.target} (answers not served): {this}"
                )
        lines.append(
            f"  strategy {route.strategy}; retry {route.policy.attempts} attempt(s) "
            f"per target, budget {route.policy.budget_ratio:.0%} of calls"
        )
        if route.timeout_s:
            lines.append(
                f"  deadline {route.timeout_s:g}s for the whole call; while a target is tried, "
                "the next one's share is kept"
            )
        if route.first_token_s:
            lines.append(
                f"  first token due {route.first_token_s:g}s into each attempt, or the call "
                "moves on to the next target"
            )
        if feat.hedge is not None:
            when = f"{feat.hedge.after_ms:g} ms" if feat.hedge.after_ms else "the primary's p95"
            what = "calls and streams" if feat.hedge.streams else "calls (not streams)"
            lines.append(f"  hedge {what} after {when} (AsyncClient only)")
        if feat.cache_affinity:
            lines.append(
                "  cache affinity: a call with a cached prefix goes first to the target that "
                "last served that prefix, among the targets it could go to first"
            )
        call = Call("chat", route, ChatRequest(messages=[]), key=key)
        lines.append("  targets, in order:")
        for i, t in enumerate(self.plan(call), 1):
            bits = [self.breakers.describe(t.id)]
            if route.timeout_s and i > 1:
                kept = self.reserve(t, route.timeout_s) * 1000
                bits.append(f"{kept:.0f} ms of the deadline kept for it")
            if feature in self._ejecting and self.ejection.ejected(feature, t.id):
                bits.append("shifted away: slow or failing (eject)")
            if self.commitments.has(t.provider):
                lv = self.commitments.levels(t.provider)
                bits.append("commitment left: " + ", ".join(f"{v:.0f} {k}" for k, v in lv.items()))
            window = context_window(t)
            if window:
                bits.append(f"context {window:,} tokens")
            p50 = self.stats.quantile(t.id, 0.5)
            if p50 is not None:
                bits.append(f"p50 {p50:.0f} ms")
            retries, calls = self.budget.usage(t.id)
            if calls:
                bits.append(f"retries {retries:.0f}/{calls:.0f} calls")
            role = (
                "canary"
                if route.arm == "canary" and i == 1
                else ("primary" if t.id == route.targets[route.pinned].id else "fallback")
            )
            lines.append(f"    {i}. {t.id} [{role}]: " + "; ".join(bits))
        return "\n".join(lines)


class _NoProvider:
    breaker: Any = None


#: attempt outcomes that say nothing about the target (the caller or another lane ended them)
_NOT_JUDGED = ("cancelled", "hedge_lost")
#: the request's own faults say nothing about the target (401/404 trip its breaker directly)
_REQUEST_FAULTS = (BadRequest, ContentFiltered, AuthenticationError, NotFound)


def _target_id(target: Target) -> str:
    return target.id


def eject_policy(config: PortalConfig, feature: str) -> EjectPolicy | None:
    """The feature's ejection settings with its SLA, or None without an ``eject`` table."""
    feat = config.features.get(feature)
    if feat is None or feat.eject is None:
        return None
    e, sla = feat.eject, feat.sla
    availability = sla.availability if sla is not None and sla.availability else 0.99
    return EjectPolicy(
        slow_ms=sla.p95_ms if sla is not None else None,
        error_budget=max(1.0 - availability, 1e-6),
        slow_rate=e.slow_rate,
        burn_rate=e.burn_rate,
        short_window_s=e.short_window_s,
        long_window_s=e.long_window_s,
        min_calls=e.min_calls,
        explore=e.explore,
    )
