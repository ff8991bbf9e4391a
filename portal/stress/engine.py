"""The open-loop load engine shared by `portal loadtest` and `portal gameday`.

Every request has an intended start time drawn before the run (`arrivals`). The dispatcher
starts each request when its time comes, whatever the ones before it are doing, and every
latency is measured from the intended start, so time spent queued behind a slow target, a
full concurrency limit or a late event loop counts against the target and is never hidden
(coordinated omission). How late the dispatcher itself was is measured too
(``dispatch_lag``), which is how the generator's own error is known.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from portal.errors import AllTargetsFailed
from portal.metering.ledger import SOURCE_TAG
from portal.metering.stats import percentile
from portal.stress.arrivals import Burst, PromptSource, arrival_times

__all__ = ["LoadSpec", "Progress", "RunResult", "Sample", "error_class", "run_load"]


@dataclass(slots=True)
class LoadSpec:
    feature: str
    rps: float
    duration_s: float
    prompts: PromptSource
    burst: Burst | None = None
    concurrency_limit: int | None = None
    stream: bool = False
    seed: int | None = None
    #: distinct user keys, so sticky canary assignment sees a realistic population
    users: int = 10_000
    #: how long in-flight requests may finish after the last arrival
    drain_s: float = 30.0


@dataclass(slots=True)
class Sample:
    """One request. Times are seconds from the run's start; latencies from the intended
    start."""

    intended_s: float
    dispatched_s: float = 0.0
    #: when the request went to the client, after any wait for the concurrency limit
    sent_s: float | None = None
    end_s: float | None = None
    ok: bool = False
    error: str | None = None
    ttft_ms: float | None = None
    target: str | None = None
    arm: str | None = None
    attempts: int = 0
    failover: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    #: of input_tokens: read from / written to the vendor's prompt cache
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0  # None: the target has no price (never shown as $0)
    attempt_targets: tuple[str, ...] = ()

    @property
    def latency_ms(self) -> float | None:
        return None if self.end_s is None else (self.end_s - self.intended_s) * 1000.0

    @property
    def lag_ms(self) -> float:
        return (self.dispatched_s - self.intended_s) * 1000.0


@dataclass(slots=True)
class Progress:
    """A live snapshot for the progress display."""

    elapsed_s: float
    duration_s: float
    sent: int
    in_flight: int
    ok: int
    errors: int
    p95_ms: float | None


@dataclass(slots=True)
class RunResult:
    spec: LoadSpec
    samples: list[Sample]
    started_at: float  # wall clock (time.time) at the run's zero
    wall_s: float  # from zero until the last request finished or was abandoned
    observations: dict[str, Any] = field(default_factory=dict)


def error_class(exc: BaseException) -> str:
    """The name a user-visible failure is counted under; ``AllTargetsFailed`` keeps the
    last target's reason (``AllTargetsFailed:ServerError``)."""
    if isinstance(exc, AllTargetsFailed) and exc.exceptions:
        return f"AllTargetsFailed:{type(exc.exceptions[-1]).__name__}"
    return type(exc).__name__


def warm_up(client: Any, feature: str) -> None:
    """Pay one-off costs before the clock starts, without sending traffic: building the
    route and its adapters, loading the tokenizer (~0.2 s) and creating the HTTP clients.
    Otherwise the first requests of every run would wait behind them and the generator,
    not the target, would own the first second's latency."""
    from portal.tokens import count_tokens

    route = client.router.route(feature, "warm-up", None)
    count_tokens("warm up the tokenizer")
    http_for = getattr(client, "_http", None)  # the client's per-provider pool, built lazily
    for target in route.targets:
        if http_for is not None:
            http_for(target.provider)


Tick = Callable[[float], Awaitable[None] | None]


async def run_load(
    client: Any,
    spec: LoadSpec,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[], None] | None = None,
    progress_every_s: float = 1.0,
    on_tick: Callable[[float], None] | None = None,
    tick_every_s: float = 0.05,
    tags: Mapping[str, str] | None = None,
) -> RunResult:
    """Drive ``spec`` through ``client`` (a `portal.AsyncClient`) and return every sample.

    ``on_tick(elapsed_s)`` is called every ``tick_every_s`` (game days watch breakers with
    it); ``on_start()`` runs at the run's zero (game days start their fault clock there);
    ``on_progress`` gets a `Progress` every ``progress_every_s``."""
    rng = random.Random(spec.seed)
    warm_up(client, spec.feature)
    times = arrival_times(spec.rps, spec.duration_s, spec.burst, rng)
    # draw every prompt and key up front, so the dispatch loop does no work per request
    plans = [(spec.prompts.draw(rng), f"user-{rng.randrange(spec.users)}") for _ in times]
    samples = [Sample(t) for t in times]
    limiter = anyio.CapacityLimiter(spec.concurrency_limit) if spec.concurrency_limit else None
    call_tags = {SOURCE_TAG: "loadtest", **(tags or {})}  # reports can leave it out
    clock = time.perf_counter
    state = {"sent": 0, "done": 0, "ok": 0}
    recent: deque[tuple[float, float]] = deque()  # (end_s, latency_ms) for the live p95
    t0 = clock()
    wall0 = time.time()
    if on_start is not None:
        on_start()

    async def one(i: int) -> None:
        s = samples[i]
        s.dispatched_s = clock() - t0
        prompt, key = plans[i]
        params: dict[str, Any] = {}
        if prompt.max_tokens is not None:
            params["max_tokens"] = prompt.max_tokens
        try:
            if limiter is not None:
                await limiter.acquire()
            s.sent_s = clock() - t0
            try:
                if spec.stream:
                    resp = None
                    async for ev in client.stream(
                        feature=spec.feature,
                        messages=prompt.messages,
                        key=key,
                        tags=call_tags,
                        **params,
                    ):
                        if ev.type == "text" and s.ttft_ms is None:
                            s.ttft_ms = (clock() - t0 - s.intended_s) * 1000.0
                        elif ev.type == "done":
                            resp = ev.response
                    if resp is None:
                        raise RuntimeError("the stream ended without a final response")
                else:
                    resp = await client.chat(
                        feature=spec.feature,
                        messages=prompt.messages,
                        key=key,
                        tags=call_tags,
                        **params,
                    )
            finally:
                if limiter is not None:
                    limiter.release()
            s.ok = True
            s.target = resp.target
            s.arm = resp.arm
            s.attempts = len(resp.attempts)
            s.attempt_targets = tuple(a.target for a in resp.attempts)
            s.failover = any(a.target != resp.target for a in resp.attempts)
            s.input_tokens = resp.usage.input_tokens
            s.output_tokens = resp.usage.output_tokens
            s.cached_input_tokens = resp.usage.cached_input_tokens
            s.cache_write_tokens = resp.usage.cache_write_tokens
            s.cost_usd = resp.cost_usd
            state["ok"] += 1
        except Exception as exc:  # every failure is what a user would have seen: count it
            s.error = error_class(exc)
        except anyio.get_cancelled_exc_class():
            # still in flight when the drain time ran out: its latency is at least this
            s.error = "Unfinished"
            raise
        finally:
            s.end_s = clock() - t0
            state["done"] += 1
            lat = s.latency_ms
            if lat is not None:
                recent.append((s.end_s, lat))

    async def dispatch(tg: anyio.abc.TaskGroup) -> None:
        n = len(times)
        i = 0
        while i < n:
            now = clock() - t0
            while i < n and times[i] <= now:
                tg.start_soon(one, i)
                i += 1
            state["sent"] = i
            if i < n:
                await anyio.sleep(max(0.0, times[i] - (clock() - t0)))

    async def ticker(every: float, fn: Callable[[float], None]) -> None:
        while True:
            fn(clock() - t0)
            await anyio.sleep(every)

    def progress(elapsed: float) -> None:
        assert on_progress is not None
        cutoff = elapsed - 5.0
        while recent and recent[0][0] < cutoff:
            recent.popleft()
        p95 = percentile([lat for _, lat in recent], 95)
        on_progress(
            Progress(
                elapsed_s=elapsed,
                duration_s=spec.duration_s,
                sent=state["sent"],
                in_flight=state["sent"] - state["done"],
                ok=state["ok"],
                errors=state["done"] - state["ok"],
                p95_ms=p95,
            )
        )

    async with anyio.create_task_group() as outer:
        if on_tick is not None:
            outer.start_soon(ticker, tick_every_s, on_tick)
        if on_progress is not None:
            outer.start_soon(ticker, progress_every_s, progress)
        with anyio.move_on_after(spec.duration_s + spec.drain_s):
            async with anyio.create_task_group() as tg:
                await dispatch(tg)
        outer.cancel_scope.cancel()
    wall = clock() - t0
    for s in samples:
        if s.end_s is None:
            s.error = "Unfinished"  # never dispatched before the drain time ran out
    if on_progress is not None:
        progress(wall)
    return RunResult(spec, samples, wall0, wall)
