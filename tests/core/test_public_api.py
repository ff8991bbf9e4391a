"""The public surface: explicit, sorted, importable, and `import portal` stays light."""

from __future__ import annotations

import subprocess
import sys

import portal
import portal.errors


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert portal.__all__ == sorted(portal.__all__)
    for name in portal.__all__:
        assert getattr(portal, name) is not None, name


def test_every_error_class_is_exported() -> None:
    for name in portal.errors.__all__:
        assert getattr(portal, name) is getattr(portal.errors, name)


def test_error_tree_matches_the_design() -> None:
    assert issubclass(portal.ContextTooLong, portal.BadRequest)
    for cls in (
        portal.RateLimited,
        portal.Overloaded,
        portal.ServerError,
        portal.ProviderTimeout,
        portal.AuthenticationError,
        portal.NotFound,
        portal.BadRequest,
        portal.ContentFiltered,
        portal.StreamInterrupted,
    ):
        assert issubclass(cls, portal.ProviderError)
    assert issubclass(portal.AllTargetsFailed, ExceptionGroup)
    for cls in (
        portal.ConfigError,
        portal.ContractError,
        portal.PolicyViolation,
        portal.BudgetExceeded,
        portal.ProviderError,
        portal.AllTargetsFailed,
    ):
        assert issubclass(cls, portal.PortalError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        portal.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


HEAVY = (
    "pydantic",
    "httpx2",
    "tiktoken",
    "jsonschema",
    "anyio",
    "tenacity",
    "botocore",
    "redis",
    "psycopg",
    "opentelemetry",
    "plotly",
    "rich",
    "sqlite3",
)


def test_import_portal_loads_nothing_heavy() -> None:
    code = (
        "import sys, portal; "
        f"print(','.join(m for m in {HEAVY!r} if any(k == m or k.startswith(m + '.') for k in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_client_import_does_not_load_optional_extras() -> None:
    code = (
        "import sys, portal; portal.Client; "
        "print(','.join(m for m in ('botocore','redis','psycopg','opentelemetry','plotly','rich') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
