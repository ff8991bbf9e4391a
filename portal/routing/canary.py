"""Sticky canary assignment: a pure hash, so every process and replica agrees without talking.

A key falls in one of 10,000 buckets from a hash of (feature, canary target, key); it is in
the canary when its bucket is below ``percent * 100``. Raising the percentage only adds
buckets, so a key that was in the canary at 5% stays in it at 25%.
"""

from __future__ import annotations

import random
import zlib

__all__ = ["BUCKETS", "bucket", "in_canary"]

BUCKETS = 10_000


def bucket(feature: str, canary_target: str, key: str) -> int:
    data = f"{feature}\x1f{canary_target}\x1f{key}".encode()
    # crc32 is stable across processes and Python versions (unlike hash()) and costs ~0.2 µs
    return zlib.crc32(data) % BUCKETS


def in_canary(feature: str, canary_target: str, key: str | None, percent: float) -> bool:
    """Sticky per key; calls without a key are assigned per call."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    threshold = int(round(percent * (BUCKETS / 100)))
    if key is None:
        return random.randrange(BUCKETS) < threshold
    return bucket(feature, canary_target, key) < threshold
