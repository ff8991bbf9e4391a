"""Provider kinds, mapped explicitly to their adapter classes and imported only when used.

Third-party adapters register through the ``portal.providers`` entry-point group:
``[project.entry-points."portal.providers"] mykind = "mypkg.adapter:MyAdapter"``.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from typing import TYPE_CHECKING

from portal.errors import ConfigError

if TYPE_CHECKING:
    from portal.providers.adapter import Adapter

__all__ = ["adapter_class", "known_kinds", "register"]

_BUILTIN: dict[str, str] = {
    "anthropic": "portal.providers.anthropic:AnthropicAdapter",
    "azure-openai": "portal.providers.azure_openai:AzureOpenAIAdapter",
    "bedrock": "portal.providers.bedrock:BedrockAdapter",
    "cohere": "portal.providers.cohere:CohereAdapter",
    "gemini": "portal.providers.gemini:GeminiAdapter",
    "mistral": "portal.providers.mistral:MistralAdapter",
    "openai": "portal.providers.openai:OpenAIAdapter",
    "openai-compatible": "portal.providers.openai_compatible:OpenAICompatibleAdapter",
    "openai-responses": "portal.providers.openai_responses:OpenAIResponsesAdapter",
    "sim": "portal.providers.simulated:SimulatedAdapter",
    "vertex": "portal.providers.gemini:VertexAdapter",
}

_registered: dict[str, type[Adapter] | str] = {}


def register(kind: str, adapter: type[Adapter] | str) -> None:
    """Add or replace a provider kind at run time (tests, plugins without entry points)."""
    _registered[kind] = adapter
    adapter_class.cache_clear()


@cache
def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group="portal.providers")}


def known_kinds() -> list[str]:
    kinds = set(_BUILTIN) | set(_registered)
    try:
        kinds |= set(_entry_points())
    except Exception:  # a broken third-party distribution must not break portal
        pass
    return sorted(kinds)


@cache
def adapter_class(kind: str) -> type[Adapter]:
    """The adapter class of a kind; `ConfigError` with the known kinds otherwise."""
    target: type[Adapter] | str | None = _registered.get(kind) or _BUILTIN.get(kind)
    if target is None:
        try:
            target = _entry_points().get(kind)
        except Exception:
            target = None
    if target is None:
        kinds = known_kinds()
        close = difflib.get_close_matches(kind, kinds, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ConfigError(f"unknown provider kind {kind!r}{hint} Known kinds: {', '.join(kinds)}")
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            from portal._extras import install_hint

            raise ConfigError(
                f"provider kind {kind!r} needs a package that is not installed ({exc.name}); "
                f"{install_hint(kind)}"
            ) from exc
        return getattr(module, attr)  # type: ignore[no-any-return]
    return target
