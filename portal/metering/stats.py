"""Small statistics shared by the demo, reports, canary guards and load tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "percentiles"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; None for
    no data. ``values`` need not be sorted."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * (q / 100.0)
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(data[lo])
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> list[float | None]:
    data = sorted(values)
    return [percentile(data, q) for q in qs]
