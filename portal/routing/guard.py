"""The canary guard's statistics: always-valid comparisons of a canary arm with its baseline.

The guard looks after every few calls for as long as a canary runs. A fixed-sample test
looked at that often rolls back healthy canaries (with two identical arms, one in eight was
rolled back within a hundred calls). Every comparison here is instead built on a
*time-uniform* bound: a confidence sequence or an e-process whose false-alarm probability
holds over all looks at once (Ville's inequality), so looking after every call costs nothing.

Per metric (``metrics`` in ``[features.X.canary.guard]``):

* ``errors``: the arm's own attempts that failed. Worse: if both arms fail at the same rate,
  each failed attempt is the canary's with probability equal to the canary's share of
  attempts, whatever that rate is; a mixture of likelihood ratios over how much likelier
  (Robbins' method of mixtures, as in a mixture sequential probability ratio test) measures
  the evidence against it, and the canary's observed excess must also pass
  ``max_error_rate_delta``. No normal approximation and no baseline rate to estimate, which
  is what makes it right for rare errors. Acceptable: a two-sample likelihood ratio with
  Jeffreys-mixture numerators against "worse by at least the allowed difference" (the
  universal-inference construction of Wasserman, Ramdas and Balakrishnan).
* ``p95`` / ``p99``: the latency quantiles of successful attempts, each arm bounded by the
  beta-binomial confidence sequence for quantiles (Howard and Ramdas, "Sequential estimation
  of quantiles with applications to A/B-testing", Bernoulli 2022). Compared with the baseline
  (ratio ``max_p95_ratio`` / ``max_p99_ratio``) and with the feature's SLA (``sla.p95_ms``).
* ``cost``: cost per call, and each ``feedback`` metric: means bounded by the asymptotic
  confidence sequence of Waudby-Smith et al. ("Time-uniform central limit theory and
  asymptotic confidence sequences", Annals of Statistics 2024).

Each metric gets ``false_alarm_rate / number of metrics``; a metric judged from one bound per
arm splits its share between the two. A metric says ``rollback`` when the canary is worse
than the baseline by more than its minimum practical difference, ``promote`` when it is
shown to be worse by less than that, ``hold`` otherwise. The guard's verdict is ``rollback``
if any metric says so, ``promote`` if every metric does, else ``hold``.

Everything here is pure and works on counts (the `ArmSample` of each arm), so the counters
can live in a shared `State` and every process reaches the same verdict.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

__all__ = [
    "BIN_RATIO",
    "LookSchedule",
    "attempt_fields",
    "call_fields",
    "feedback_fields",
    "ArmSample",
    "GuardSettings",
    "LatencyCdf",
    "MetricResult",
    "Moments",
    "Verdict",
    "VerdictName",
    "bernoulli_bounds",
    "error_rate_log_e",
    "excess_share_log_e",
    "exceedance_threshold",
    "difference_bounds",
    "judge",
    "latency_bin",
    "mean_bounds",
    "quantile_bounds",
]

VerdictName = Literal["promote", "hold", "rollback"]

#: latency histogram bins are 2% wide (a bin's upper edge is 1.02 x its lower edge)
BIN_RATIO = 1.02
_LOG_BIN = math.log(BIN_RATIO)
#: the asymptotic confidence sequence for means is tightest around this many samples
_MEAN_TUNED_FOR = 500
#: means need this many samples before their normal approximation is trusted at all
_MIN_MEAN_SAMPLES = 30


# ============================================================================ counts


def latency_bin(ms: float) -> int:
    """The histogram bin of a latency: bin i holds [expm1(i*w), expm1((i+1)*w))."""
    return int(math.log1p(max(ms, 0.0)) / _LOG_BIN)


def _bin_low(i: int) -> float:
    return math.expm1(i * _LOG_BIN)


def _bin_high(i: int) -> float:
    return math.expm1((i + 1) * _LOG_BIN)


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of a metric's values."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass(frozen=True)
class ArmSample:
    """What the guard knows of one arm in the current step: counts only.

    ``attempts``/``errors`` are the arm's own first-target attempts (before a retry or a
    failover absorbs an error); ``latency`` is the histogram of successful attempts
    (`latency_bin` -> count); ``cost`` is per finished call with a known price."""

    calls: int = 0
    attempts: int = 0
    errors: int = 0
    latency: Mapping[int, float] = field(default_factory=dict)
    cost: Moments = Moments()
    feedback: Mapping[str, Moments] = field(default_factory=dict)
    #: per quantile level ("95", "99"): (attempts judged against the live threshold, of
    #: which slower); see `exceedance_threshold`
    exceed: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.attempts if self.attempts else None

    @property
    def cost_per_call(self) -> float | None:
        return self.cost.mean

    @cached_property
    def cdf(self) -> LatencyCdf:
        return LatencyCdf(self.latency)

    def quantile(self, q: float) -> float | None:
        """The empirical q-quantile of latency (the middle of its bin), ms."""
        return self.cdf.quantile(q)

    @classmethod
    def from_counters(cls, counters: Mapping[str, float]) -> ArmSample:
        """Read the fields `CanaryControl` counts: ``calls``, ``attempts``, ``errors``,
        ``h<bin>``, ``cost_n``/``cost``/``cost2``, ``fb:<metric>:n|s|s2``, ``t95``/``x95``
        and ``t99``/``x99``."""
        hist: dict[int, float] = {}
        fb: dict[str, dict[str, float]] = {}
        for name, value in counters.items():
            if name[:1] == "h" and name[1:].isdigit():
                hist[int(name[1:])] = value
            elif name.startswith("fb:"):
                metric, _, part = name[3:].rpartition(":")
                fb.setdefault(metric, {})[part] = value
        return cls(
            calls=int(counters.get("calls", 0)),
            attempts=int(counters.get("attempts", 0)),
            errors=int(counters.get("errors", 0)),
            latency=hist,
            cost=Moments(
                counters.get("cost_n", 0.0), counters.get("cost", 0.0), counters.get("cost2", 0.0)
            ),
            feedback={
                m: Moments(v.get("n", 0.0), v.get("s", 0.0), v.get("s2", 0.0))
                for m, v in fb.items()
            },
            exceed={
                level: (counters.get(f"t{level}", 0.0), counters.get(f"x{level}", 0.0))
                for level in ("95", "99")
                if counters.get(f"t{level}")
            },
        )


def attempt_fields(
    ok: bool, latency_ms: float, thresholds: Mapping[str, float]
) -> list[tuple[str, float]]:
    """The counters one attempt on an arm's own target adds (`ArmSample.from_counters`)."""
    if not ok:
        return [("attempts", 1.0), ("errors", 1.0)]
    out = [("attempts", 1.0), (f"h{latency_bin(latency_ms)}", 1.0)]
    for level, limit in thresholds.items():
        out.append((f"t{level}", 1.0))
        if latency_ms > limit:
            out.append((f"x{level}", 1.0))
    return out


def call_fields(cost: float | None) -> list[tuple[str, float]]:
    """The counters one finished call adds (cost only when its price is known)."""
    if cost is None:
        return [("calls", 1.0)]
    return [("calls", 1.0), ("cost_n", 1.0), ("cost", cost), ("cost2", cost * cost)]


def feedback_fields(metric: str, value: float) -> list[tuple[str, float]]:
    """The counters one feedback score adds."""
    return [(f"fb:{metric}:n", 1.0), (f"fb:{metric}:s", value), (f"fb:{metric}:s2", value * value)]


class LookSchedule:
    """When the guard looks: every ``every`` canary calls, thinning to every 5% of the
    step's calls (at most ~5% more calls to a verdict). Any schedule keeps the tests valid."""

    __slots__ = ("every", "next", "seen")

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.seen = 0
        self.next = every

    def due(self) -> bool:
        """Count one canary call; True when the guard should look now."""
        self.seen += 1
        if self.seen < self.next:
            return False
        self.next = self.seen + max(self.every, self.seen // 20)
        return True


# ======================================================================= statistics


def _loglik(k: float, n: float, p: float) -> float:
    """Log-likelihood of k successes in n Bernoulli(p) trials (one fixed order)."""
    out = 0.0
    if k > 0:
        if p <= 0.0:
            return -math.inf
        out += k * math.log(p)
    if n - k > 0:
        if p >= 1.0:
            return -math.inf
        out += (n - k) * math.log1p(-p)
    return out


def _log_mixture(k: float, n: float) -> float:
    """Log marginal likelihood of k successes in n trials under a Jeffreys Beta(1/2, 1/2)
    prior: the numerator of the method of mixtures."""
    return (
        math.lgamma(k + 0.5)
        + math.lgamma(n - k + 0.5)
        - math.lgamma(n + 1.0)
        - 2 * math.lgamma(0.5)
        + math.lgamma(1.0)
    )


def _bernoulli_log_e(k: float, n: float, p: float) -> float:
    """Log of the mixture e-process against "the success rate is p"."""
    return _log_mixture(k, n) - _loglik(k, n, p)


def bernoulli_bounds(k: float, n: float, alpha: float) -> tuple[float, float]:
    """A (1 - alpha) confidence sequence for a Bernoulli rate after k successes in n trials:
    every p whose mixture e-process is below 1/alpha. Valid at every n at once."""
    if n <= 0:
        return 0.0, 1.0
    limit = math.log(1.0 / alpha)
    mix = _log_mixture(k, n)
    hat = k / n

    def inside(p: float) -> bool:
        return mix - _loglik(k, n, p) < limit

    def edge(lo: float, hi: float, out_low: bool) -> float:
        # bisection between a point outside (out_low side) and one inside
        for _ in range(50):
            mid = (lo + hi) / 2
            if inside(mid) == out_low:
                hi = mid
            else:
                lo = mid
        return hi if out_low else lo

    low = 0.0 if inside(0.0) else edge(0.0, hat, True)
    high = 1.0 if inside(1.0) else edge(hat, 1.0, False)
    return low, high


#: how much likelier (odds ratio) a failed attempt is the canary's: the mixture's grid
_ODDS = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 50.0, 100.0)


def excess_share_log_e(kc: float, nc: float, kb: float, nb: float) -> float:
    """Log of an e-value against "an event (an error, a slow reply) is no likelier on the
    canary than on the baseline", from kc events in nc canary trials and kb in nb.

    Under it, each event is the canary's with probability pi, the canary's share of trials,
    whatever the common rate: so the test needs no estimate of that rate. The alternative is
    a uniform mixture over odds ratios `_ODDS`; each component is a likelihood ratio with
    mean 1 under the null, so the mixture is a test martingale (Robbins' method of mixtures,
    as in a mixture sequential probability ratio test)."""
    if kc <= 0 or nc <= 0 or nb <= 0:
        return 0.0
    pi = nc / (nc + nb)
    terms = []
    for odds in _ODDS:
        theta = pi * odds / (pi * odds + 1 - pi)
        terms.append(kc * math.log(theta / pi) + kb * math.log((1 - theta) / (1 - pi)))
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms) / len(terms))


def error_rate_log_e(
    kc: float, nc: float, kb: float, nb: float, delta: float, harm: bool = True
) -> float:
    """Log of an e-value against H0: p_canary <= p_baseline + delta (``harm``) or against
    H0: p_canary >= p_baseline + delta (not ``harm``: the canary is shown acceptable).

    Numerator: Jeffreys mixtures of both arms; denominator: the likelihood maximized over H0.
    For any rates in H0 the ratio is at most a test martingale, so by Ville's inequality it
    exceeds 1/alpha with probability at most alpha, however often it is looked at."""
    if nc <= 0 or nb <= 0:
        return 0.0
    gap = kc / nc - kb / nb - delta
    if (gap <= 0) if harm else (gap >= 0):
        return 0.0  # the estimates already satisfy H0: no evidence against it
    # the maximum over H0 lies on the line p_c = p_b + delta, p_b in [max(0,-delta), 1-max(0,delta)]
    lo = max(0.0, -delta)
    hi = 1.0 - max(0.0, delta)

    def slope(p: float) -> float:
        pc = p + delta
        d = 0.0
        if kc:
            d += kc / pc if pc > 0 else math.inf
        if nc - kc:
            d -= (nc - kc) / (1 - pc) if pc < 1 else math.inf
        if kb:
            d += kb / p if p > 0 else math.inf
        if nb - kb:
            d -= (nb - kb) / (1 - p) if p < 1 else math.inf
        return d

    a, b = lo, hi
    for _ in range(30):  # the log-likelihood is concave along the line: bisect its slope
        mid = (a + b) / 2
        if slope(mid) > 0:
            a = mid
        else:
            b = mid
    p = (a + b) / 2
    best = max(
        _loglik(kc, nc, p + delta) + _loglik(kb, nb, p),
        _loglik(kc, nc, lo + delta) + _loglik(kb, nb, lo),
        _loglik(kc, nc, hi + delta) + _loglik(kb, nb, hi),
    )
    return _log_mixture(kc, nc) + _log_mixture(kb, nb) - best


class LatencyCdf:
    """A latency histogram sorted once: its bins and the count below each."""

    __slots__ = ("below", "bins", "n")

    def __init__(self, hist: Mapping[int, float]) -> None:
        self.bins = sorted(hist)
        self.below = [0.0]  # below[j]: observations in bins before bins[j]
        for i in self.bins:
            self.below.append(self.below[-1] + hist[i])
        self.n = self.below[-1]

    def _position(self, q: float) -> int:
        """Index of the bin holding the empirical q-quantile."""
        j = bisect.bisect_left(self.below, q * self.n, 1) - 1
        return min(max(j, 0), len(self.bins) - 1)

    def quantile(self, q: float) -> float | None:
        if self.n <= 0:
            return None
        return math.expm1((self.bins[self._position(q)] + 0.5) * _LOG_BIN)

    def bounds(self, q: float, alpha: float) -> tuple[float | None, float | None]:
        n = self.n
        if n <= 0:
            return None, None
        k_lo, k_hi = _count_limits(n, q, alpha)
        bins, below = self.bins, self.below
        upper = lower = None
        if k_hi <= n:
            # the first bin whose upper edge has at least k_hi observations at or below it
            j = bisect.bisect_left(below, k_hi, 1) - 1
            upper = _bin_high(bins[min(j, len(bins) - 1)])
        if k_lo >= 0:
            # the last bin whose lower edge has at most k_lo observations below it
            j = bisect.bisect_right(below, k_lo) - 1
            lower = _bin_low(bins[min(j, len(bins) - 1)])
        return lower, upper


@functools.lru_cache(maxsize=8192)
def _count_limits(n: float, q: float, alpha: float) -> tuple[float, float]:
    """(k_lo, k_hi): of n observations, at most k_lo below a latency make it certainly under
    the q-quantile, at least k_hi at or below it make it certainly over (the mixture e-value
    against "the rate is q" reaches 1/alpha). -1 / n+1 when no count is enough yet."""
    limit = math.log(1.0 / alpha)
    center = q * n
    # the e-value grows as k moves away from q*n: bisect each side for the first count
    hi_k = math.floor(center) + 1.0
    if _bernoulli_log_e(n, n, q) < limit:
        k_hi = n + 1.0
    else:
        a, b = hi_k, n  # e(a) may be short, e(b) is enough
        if _bernoulli_log_e(a, n, q) >= limit:
            b = a
        while b - a > 1:
            mid = math.floor((a + b) / 2)
            if _bernoulli_log_e(mid, n, q) >= limit:
                b = mid
            else:
                a = mid
        k_hi = b
    lo_k = math.ceil(center) - 1.0
    if lo_k < 0 or _bernoulli_log_e(0.0, n, q) < limit:
        k_lo = -1.0
    else:
        a, b = 0.0, lo_k  # e(a) is enough, e(b) may be short
        if _bernoulli_log_e(b, n, q) >= limit:
            a = b
        while b - a > 1:
            mid = math.floor((a + b) / 2)
            if _bernoulli_log_e(mid, n, q) >= limit:
                a = mid
            else:
                b = mid
        k_lo = a
    return k_lo, k_hi


def quantile_bounds(
    hist: Mapping[int, float] | LatencyCdf, q: float, alpha: float
) -> tuple[float | None, float | None]:
    """A (1 - alpha) confidence sequence for the q-quantile of a latency histogram, in ms:
    (lower, upper), None where the data cannot bound it yet (Howard and Ramdas 2022: the
    beta-binomial boundary at the quantile's level holds for every latency at once). Bin
    edges are used outward, so the 2% bins only ever widen the bounds."""
    cdf = hist if isinstance(hist, LatencyCdf) else LatencyCdf(hist)
    return cdf.bounds(q, alpha)


def mean_bounds(
    m: Moments, alpha: float, tuned_for: float = _MEAN_TUNED_FOR
) -> tuple[float, float] | None:
    """A (1 - alpha) asymptotic confidence sequence for a mean (Waudby-Smith et al. 2024,
    the Robbins normal-mixture boundary with the running variance), or None below
    ``_MIN_MEAN_SAMPLES`` values."""
    n = m.n
    if n < _MIN_MEAN_SAMPLES:
        return None
    mean = m.total / n
    var = max(m.squares / n - mean * mean, 0.0)
    two_log = -2 * math.log(alpha)
    rho2 = (two_log + math.log(two_log + 1)) / tuned_for
    width = math.sqrt(var) * math.sqrt(
        2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )
    return mean - width, mean + width


def difference_bounds(c: Moments, b: Moments, alpha: float) -> tuple[float, float] | None:
    """A (1 - alpha) asymptotic confidence sequence for mean(canary) - mean(baseline).

    Each value is turned into one term of a single stream, y/pi on the canary and
    -y/(1 - pi) on the baseline (pi: the canary's share of values), whose mean is the
    difference; the stream's confidence sequence (`mean_bounds`) bounds it. One sequence
    for the difference is much tighter than one per arm compared with each other."""
    if c.n < _MIN_MEAN_SAMPLES or b.n < _MIN_MEAN_SAMPLES:
        return None
    n = c.n + b.n
    pi = c.n / n
    # values centred on the pooled mean first (the difference is unchanged by a shift,
    # and uncentred values would carry their mean's square into the variance)
    m = (c.total + b.total) / n
    c_sq = c.squares - 2 * m * c.total + c.n * m * m
    b_sq = b.squares - 2 * m * b.total + b.n * m * m
    total = (c.total - c.n * m) / pi - (b.total - b.n * m) / (1 - pi)
    squares = c_sq / (pi * pi) + b_sq / ((1 - pi) * (1 - pi))
    return mean_bounds(Moments(n, total, squares), alpha, tuned_for=_MEAN_TUNED_FOR / pi)


#: a quantile's live threshold waits for this many baseline replies per reply above it
_THRESHOLD_TAIL = 20


def exceedance_threshold(
    base: ArmSample, q: float, ratio: float, floor_ms: float = 0.0
) -> float | None:
    """The latency (ms) that attempts are judged against for the q-quantile: ``ratio`` x the
    baseline's current q-quantile, and at least ``floor_ms`` above it, once the baseline has
    ``20 / (1 - q)`` replies.

    The guard fixes it before the attempts it judges (at each look), so under "the arms
    are alike" a reply above it is the canary's with probability equal to its share of
    attempts, which `excess_share_log_e` tests."""
    n = base.cdf.n
    if n < _THRESHOLD_TAIL / (1 - q):
        return None
    p = base.quantile(q)
    return None if p is None else slower_than(p, ratio, floor_ms)


def slower_than(baseline_ms: float, ratio: float, floor_ms: float) -> float:
    """The latency a canary must exceed to be practically slower than ``baseline_ms``: more
    than ``ratio`` times it and more than ``floor_ms`` over it (1 ms against 0.3 ms is three
    times slower and nothing a user notices)."""
    return max(ratio * baseline_ms, baseline_ms + floor_ms)


# ========================================================================= verdicts


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """What `judge` needs from the config (``[features.X.canary.guard]`` and ``sla``)."""

    metrics: tuple[str, ...] = ("errors", "p95", "cost")
    false_alarm_rate: float = 0.01
    min_calls: int = 50
    max_error_rate_delta: float = 0.01
    max_p95_ratio: float = 1.1
    max_p99_ratio: float = 1.2
    min_latency_delta_ms: float = 50.0
    max_cost_ratio: float = 1.1
    #: feedback metric -> (minimum practical drop, higher is better)
    feedback: Mapping[str, tuple[float, bool]] = field(default_factory=dict)
    sla_p95_ms: float | None = None
    sla_p99_ms: float | None = None

    def thresholds(self, base: ArmSample) -> dict[str, float]:
        """The live latency thresholds (ms) per quantile level the guard judges, from the
        baseline as it is now (`exceedance_threshold`)."""
        out: dict[str, float] = {}
        for level, q, ratio in (("95", 0.95, self.max_p95_ratio), ("99", 0.99, self.max_p99_ratio)):
            if f"p{level}" in self.metrics:
                limit = exceedance_threshold(base, q, ratio, self.min_latency_delta_ms)
                if limit is not None:
                    out[level] = limit
        return out

    def judged(self) -> list[str]:
        """Every comparison the guard makes, in order (the false-alarm rate is split over
        them): built-in metrics, the SLA checks, then feedback metrics."""
        out = list(self.metrics)
        if "p95" in self.metrics and self.sla_p95_ms:
            out.append("p95_sla")
        if "p99" in self.metrics and self.sla_p99_ms:
            out.append("p99_sla")
        out += [f"feedback:{m}" for m in self.feedback]
        return out


@dataclass(frozen=True, slots=True)
class MetricResult:
    metric: str
    verdict: VerdictName
    canary: float | None
    baseline: float | None
    #: the figures the verdict rests on (bounds, e-value, threshold), for logs and status
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "verdict": self.verdict,
            "canary": self.canary,
            "baseline": self.baseline,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: VerdictName
    metrics: tuple[MetricResult, ...]
    reason: str

    def deciding(self) -> MetricResult | None:
        """The metric that made a rollback (the first one that says so)."""
        return next((m for m in self.metrics if m.verdict == "rollback"), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "metrics": [m.to_dict() for m in self.metrics],
        }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} ms"


def _judge_errors(s: GuardSettings, base: ArmSample, can: ArmSample, alpha: float) -> MetricResult:
    delta = s.max_error_rate_delta
    limit = math.log(1 / alpha)
    args = (can.errors, can.attempts, base.errors, base.attempts)
    excess = (can.error_rate or 0.0) - (base.error_rate or 0.0)
    harm = excess_share_log_e(*args) if excess > delta else 0.0
    safe = error_rate_log_e(*args, delta, harm=False) if harm < limit else 0.0
    verdict: VerdictName = "rollback" if harm >= limit else "promote" if safe >= limit else "hold"
    detail = (
        f"canary {_pct(can.error_rate)} of {can.attempts} attempts vs baseline "
        f"{_pct(base.error_rate)} of {base.attempts} (allowed +{delta:.2%}); "
        f"evidence worse {math.exp(min(harm, 700)):.3g}, within {math.exp(min(safe, 700)):.3g}, "
        f"needed {1 / alpha:.3g}"
    )
    return MetricResult("errors", verdict, can.error_rate, base.error_rate, detail)


def _judge_quantile(
    name: str,
    q: float,
    ratio: float,
    base: ArmSample,
    can: ArmSample,
    alpha: float,
    floor_ms: float = 0.0,
) -> MetricResult:
    """Worse: replies slower than ``ratio`` x the baseline's quantile are the canary's more
    often than its share (`excess_share_log_e`), and its quantile is over that ratio.
    Acceptable: the canary's upper bound is within ``ratio`` of the baseline's lower one."""
    level = name.removeprefix("p")
    judged_c, slow_c = can.exceed.get(level, (0.0, 0.0))
    judged_b, slow_b = base.exceed.get(level, (0.0, 0.0))
    c_q, b_q = can.quantile(q), base.quantile(q)
    over = c_q is not None and b_q is not None and c_q > slower_than(b_q, ratio, floor_ms)
    harm = excess_share_log_e(slow_c, judged_c, slow_b, judged_b) if over else 0.0
    limit = math.log(1 / alpha)
    verdict: VerdictName = "hold"
    c_hi = b_lo = None
    if harm >= limit:
        verdict = "rollback"
    else:
        c_hi = can.cdf.bounds(q, alpha / 2)[1]
        b_lo = base.cdf.bounds(q, alpha / 2)[0]
        if c_hi is not None and b_lo is not None and c_hi <= slower_than(b_lo, ratio, floor_ms):
            verdict = "promote"
    detail = (
        f"canary {name} {_ms(c_q)} vs baseline {_ms(b_q)} (allowed {ratio:g}x and "
        f"+{floor_ms:g} ms); slower than "
        f"the threshold: canary {slow_c:.0f} of {judged_c:.0f}, baseline {slow_b:.0f} of "
        f"{judged_b:.0f}; evidence worse {math.exp(min(harm, 700)):.3g}, needed {1 / alpha:.3g}"
    )
    if verdict != "rollback":
        detail += f"; canary at most {_ms(c_hi)}, baseline at least {_ms(b_lo)}"
    return MetricResult(name, verdict, c_q, b_q, detail)


def _judge_sla(
    name: str, q: float, sla_ms: float, base: ArmSample, can: ArmSample, alpha: float
) -> MetricResult:
    half = alpha / 2
    c_lo, c_hi = can.cdf.bounds(q, half)
    b_lo, _ = base.cdf.bounds(q, half)
    verdict: VerdictName = "hold"
    # the canary certainly misses the SLA while the baseline is not known to miss it too
    if c_lo is not None and c_lo > sla_ms and not (b_lo is not None and b_lo > sla_ms):
        verdict = "rollback"
    elif c_hi is not None and c_hi <= sla_ms:
        verdict = "promote"
    metric = name.removesuffix("_sla")
    detail = (
        f"canary {metric} {_ms(can.quantile(q))} (at least {_ms(c_lo)}, at most {_ms(c_hi)}) "
        f"vs SLA {sla_ms:g} ms"
    )
    return MetricResult(name, verdict, can.quantile(q), sla_ms, detail)


def _judge_mean(
    name: str,
    c: Moments,
    b: Moments,
    alpha: float,
    *,
    ratio: float | None = None,
    drop: float = 0.0,
    higher_is_better: bool = False,
) -> MetricResult:
    """Cost (worse when higher, by a ratio) or feedback (worse when lower, by ``drop``).

    Worse: the confidence sequence of the difference excludes "no worse" and the estimate is
    past the allowed difference. Acceptable: each arm's own bounds show it within."""
    cm, bm = c.mean, b.mean
    d = difference_bounds(c, b, alpha)
    verdict: VerdictName = "hold"
    if d is not None and cm is not None and bm is not None:
        if higher_is_better:
            worse = d[1] < 0 and bm - cm > drop
        elif ratio is not None:
            worse = d[0] > 0 and cm > ratio * bm
        else:
            worse = d[0] > 0 and cm - bm > drop
        if worse:
            verdict = "rollback"
    cb = bb = None
    if verdict != "rollback":
        cb, bb = mean_bounds(c, alpha / 2), mean_bounds(b, alpha / 2)
        if cb is not None and bb is not None:
            if higher_is_better:
                ok = cb[0] >= bb[1] - drop
            elif ratio is not None:
                ok = cb[1] <= ratio * bb[0]
            else:
                ok = cb[1] <= bb[0] + drop
            if ok:
                verdict = "promote"

    def show(x: float | None) -> str:
        return "-" if x is None else f"{x:.6g}"

    sign = "-" if higher_is_better else "+"
    allowed = f"allowed {ratio:g}x" if ratio is not None else f"allowed {sign}{drop:g}"
    diff = "-" if d is None else f"{d[0]:.6g}..{d[1]:.6g}"
    detail = (
        f"canary {show(cm)} (n={c.n:.0f}) vs baseline {show(bm)} (n={b.n:.0f}), {allowed}; "
        f"canary - baseline within {diff}"
    )
    return MetricResult(name, verdict, cm, bm, detail)


def judge(s: GuardSettings, base: ArmSample, can: ArmSample) -> Verdict:
    """The guard's verdict on the current step. ``hold`` until each arm has ``min_calls``."""
    judged = s.judged()
    if not judged:
        return Verdict("hold", (), "no metrics to judge")
    if base.calls < s.min_calls or can.calls < s.min_calls:
        return Verdict(
            "hold",
            (),
            f"collecting: {can.calls} canary and {base.calls} baseline calls of {s.min_calls} each",
        )
    alpha = s.false_alarm_rate / len(judged)
    results: list[MetricResult] = []
    for metric in judged:
        if metric == "errors":
            results.append(_judge_errors(s, base, can, alpha))
        elif metric == "p95":
            results.append(
                _judge_quantile(
                    "p95", 0.95, s.max_p95_ratio, base, can, alpha, s.min_latency_delta_ms
                )
            )
        elif metric == "p99":
            results.append(
                _judge_quantile(
                    "p99", 0.99, s.max_p99_ratio, base, can, alpha, s.min_latency_delta_ms
                )
            )
        elif metric == "p95_sla" and s.sla_p95_ms:
            results.append(_judge_sla(metric, 0.95, s.sla_p95_ms, base, can, alpha))
        elif metric == "p99_sla" and s.sla_p99_ms:
            results.append(_judge_sla(metric, 0.99, s.sla_p99_ms, base, can, alpha))
        elif metric == "cost":
            if not (can.cost.n or base.cost.n):
                continue  # no priced call on either arm: nothing to judge
            results.append(_judge_mean("cost", can.cost, base.cost, alpha, ratio=s.max_cost_ratio))
        elif metric.startswith("feedback:"):
            name = metric.removeprefix("feedback:")
            drop, higher = s.feedback[name]
            empty = Moments()
            results.append(
                _judge_mean(
                    metric,
                    can.feedback.get(name, empty),
                    base.feedback.get(name, empty),
                    alpha,
                    drop=drop,
                    higher_is_better=higher,
                )
            )
    bad = next((r for r in results if r.verdict == "rollback"), None)
    if bad is not None:
        return Verdict("rollback", tuple(results), f"{bad.metric}: {bad.detail}")
    if all(r.verdict == "promote" for r in results):
        return Verdict("promote", tuple(results), "every metric is within its allowed difference")
    waiting = ", ".join(r.metric for r in results if r.verdict == "hold")
    return Verdict("hold", tuple(results), f"inconclusive so far: {waiting}")
