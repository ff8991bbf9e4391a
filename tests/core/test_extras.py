"""Hints for optional features name packages pip can find: portal itself is not on an index,
so ``pip install 'portal-sdk[redis]'`` would fail for a user who installed a wheel."""

from __future__ import annotations

import importlib.metadata

import pytest

from portal import _extras


@pytest.fixture(autouse=True)
def _fresh() -> None:
    _extras._requirements.cache_clear()


def test_the_hint_lists_the_extras_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        "httpx2>=2.16",
        'redis>=5; extra == "redis"',
        "opentelemetry-api>=1.25; extra == 'otel'",
        'opentelemetry-sdk>=1.25 ; extra == "otel"',
        'psycopg[binary]>=3.1; extra == "postgres"',
    ]
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: lines)
    assert _extras.install_hint("redis") == "pip install 'redis>=5' (portal's redis extra)"
    assert _extras.install_hint("otel") == (
        "pip install 'opentelemetry-api>=1.25' 'opentelemetry-sdk>=1.25' (portal's otel extra)"
    )
    assert "'psycopg[binary]>=3.1'" in _extras.install_hint("postgres")


def test_without_metadata_the_hint_says_how_to_ask_for_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> list[str]:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", missing)
    hint = _extras.install_hint("redis")
    assert (
        hint
        == "install portal with its redis extra: pip install '<the portal wheel or git URL>[redis]'"
    )
    assert "portal-sdk[" not in hint
