"""How one configured provider is described to its adapter, and which options it may set.

`ProviderSettings` is what the config hands an adapter: the provider's name, wire kind,
endpoint, key and kind-specific ``options``. It lives apart from the `Adapter` class so the
config tier can build settings without loading any adapter code; its credentials are
registered with the one redactor (`portal.secret`) as soon as they are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portal.secret import Secret, register_secret
from portal.wire import _SECRET_HEADERS

if TYPE_CHECKING:
    from portal.providers.adapter import Adapter

__all__ = ["COMMON_OPTIONS", "ProviderSettings", "unknown_options"]


#: a new connection (TCP and TLS) to a vendor takes well under a second; the vendors' own
#: SDKs give up after 5 s
DEFAULT_CONNECT_TIMEOUT_S = 5.0


@dataclass(slots=True)
class ProviderSettings:
    """One configured provider: a name (the part before ``:`` in model ids), a wire kind, and
    how to reach it. ``options`` holds kind-specific settings (``api_version``, ``project``,
    ``location``, ``deployments``, ``region_name``, quirks of an OpenAI-compatible server...)."""

    name: str
    kind: str
    base_url: str | None = None
    api_key: Secret | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    #: phase limits (None: derived from ``timeout_s`` in ``__post_init__``)
    connect_timeout_s: float | None = None
    first_byte_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    region: str | None = None
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.connect_timeout_s is None:
            self.connect_timeout_s = min(DEFAULT_CONNECT_TIMEOUT_S, self.timeout_s)
        if self.first_byte_timeout_s is None:
            self.first_byte_timeout_s = self.timeout_s
        if self.stall_timeout_s is None:
            self.stall_timeout_s = self.timeout_s
        # credentials given as options (AWS keys, a service token) or as headers are redacted
        # from errors like the API key (`portal.secret`)
        for name, value in self.options.items():
            if isinstance(value, str) and any(w in name.lower() for w in _SECRET_WORDS):
                register_secret(value)
        for name, value in self.headers.items():
            if name.lower() in _SECRET_HEADERS and isinstance(value, str):
                register_secret(value)
                register_secret(value.partition(" ")[2])  # "Bearer <token>"


#: option names that hold credentials
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")

#: provider options every kind reads (size caps, embeddings batch size, context windows)
COMMON_OPTIONS = frozenset(
    {"max_reply_bytes", "max_event_bytes", "embed_batch_size", "context_window", "context_windows"}
)


def unknown_options(cls: type[Adapter], settings: ProviderSettings) -> list[str]:
    """Problems with ``settings.options`` names that ``cls`` does not read, each with the
    closest known name; empty when ``cls`` does not declare `Adapter.option_names`."""
    import difflib

    declared = cls.__dict__.get("option_names")
    if declared is None:
        return []
    known = sorted(declared | COMMON_OPTIONS)
    problems = []
    for name in settings.options:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"providers.{settings.name}.options.{name}: unknown option for kind "
                f"{settings.kind!r}{hint} Known options: {', '.join(known)}"
            )
    return problems
