"""The old homes of the layers (``portal.adapters.safety``, ``.rag``, ``.moderation``) still
import, each with a DeprecationWarning that names the public namespace to use, and give the
very objects the public namespaces give."""

from __future__ import annotations

import importlib
import sys

import pytest

import portal.rag
import portal.safety

OLD = {
    "portal.adapters.safety": ("portal.layers.safety", "portal.safety"),
    "portal.adapters.rag": ("portal.layers.rag", "portal.rag"),
    "portal.adapters.moderation": ("portal.layers.moderation", "portal.safety"),
}


@pytest.mark.parametrize("old", sorted(OLD))
def test_an_old_path_warns_and_gives_the_same_objects(
    old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, public = OLD[old]
    monkeypatch.delitem(sys.modules, old, raising=False)  # warn again: a first import
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated; import from {public}"):
        module = importlib.import_module(old)
    target = importlib.import_module(home)
    assert module.__all__ == target.__all__
    for name in target.__all__:
        assert getattr(module, name) is getattr(target, name), name


def test_documented_names_resolve_from_the_public_namespaces() -> None:
    from portal.layers.moderation import ModerationGuard
    from portal.layers.rag import VectorIndex, register_retriever
    from portal.layers.safety import GuardChain, InjectionGuard, PIIGuard

    assert portal.safety.ModerationGuard is ModerationGuard
    assert portal.safety.GuardChain is GuardChain
    assert portal.safety.PIIGuard is PIIGuard
    assert portal.safety.InjectionGuard is InjectionGuard
    assert portal.rag.VectorIndex is VectorIndex
    assert portal.rag.register_retriever is register_retriever


def test_portal_itself_never_imports_an_old_path() -> None:
    import subprocess

    code = (
        "import warnings, sys; warnings.simplefilter('error', DeprecationWarning); "
        "import portal, portal.safety, portal.rag, portal.testing; "
        "portal.safety.ModerationGuard, portal.rag.VectorIndex, portal.safety.GuardChain; "
        "print(sorted(m for m in sys.modules if m.startswith('portal.adapters')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
