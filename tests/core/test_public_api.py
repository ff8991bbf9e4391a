"""The public surface: explicit, sorted, importable, and `import portal` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
        "print(','.join(m for m in ('botocore','redis','psycopg','opentelemetry','plotly','rich',"
        "'openai','mcp','pydantic_ai','langchain_core') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_type_checkers_see_the_sampling_keywords(tmp_path: Path) -> None:
    """``**params: Unpack[SamplingParams]``: mypy accepts the documented keywords on both
    clients and flags a misspelt or mistyped one (at run time those are ContractErrors)."""
    snippet = tmp_path / "use_portal.py"
    snippet.write_text(
        "import portal\n"
        "def f(c: portal.Client) -> None:\n"
        "    c.chat(model='a:m', messages=[], temperature=0.2, max_tokens=5, stop=['x'], seed=1)\n"
        "    c.chat(model='a:m', messages=[], temperatur=0.2)\n"
        "async def g(c: portal.AsyncClient) -> None:\n"
        "    await c.chat(model='a:m', messages=[], provider_options={'anthropic': {'top_k': 5}})\n"
        "    async for _ in c.stream(model='a:m', messages=[], top_p='high'):\n"
        "        pass\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context", str(snippet)],
        cwd=root,  # reuses the package's mypy cache when CI has just checked it
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [
        line.split(": error: ", 1)[1] for line in out.stdout.splitlines() if ": error: " in line
    ]
    assert errors == [
        'Unexpected keyword argument "temperatur" for "chat" of "Client"; did you mean '
        '"temperature"?  [call-arg]',
        'Argument "top_p" to "stream" of "AsyncClient" has incompatible type "str"; expected '
        '"float | None"  [arg-type]',
    ], out.stdout + out.stderr


def test_public_namespaces_resolve_and_stay_light() -> None:
    """`portal.safety`, `portal.rag`, `portal.providers` (for third-party adapters) and
    `portal.stress`: every name in ``__all__`` resolves, and importing them loads nothing
    heavy until a name is used."""
    import importlib

    for name in ("portal.safety", "portal.rag", "portal.providers", "portal.stress"):
        module = importlib.import_module(name)
        assert module.__all__ == sorted(module.__all__), name
        for attr in module.__all__:
            assert getattr(module, attr) is not None, f"{name}.{attr}"
    code = (
        "import sys, portal.safety, portal.rag, portal.providers, portal.stress; "
        f"print(','.join(m for m in {HEAVY!r} if any(k == m or k.startswith(m + '.') for k in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
