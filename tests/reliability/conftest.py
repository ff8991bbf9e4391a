"""Slow tests (the long soak, long crash loops) run only when asked: ``pytest -m slow``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "reliability" in str(item.path) and item.get_closest_marker("slow"):
            item.add_marker(skip)
