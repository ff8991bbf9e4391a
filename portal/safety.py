"""Safety guards around a call (public): the `Guard` protocol, the built-in guards (the
vendor moderation one too), the chain a feature's ``safety = [...]`` builds, and
`register_guard` for your own. Names load on first use. Docs: docs/safety.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Action": "portal.layers.safety",
    "Decision": "portal.layers.safety",
    "DenylistGuard": "portal.layers.safety",
    "Guard": "portal.layers.safety",
    "GuardBlocked": "portal.layers.safety",
    "GuardChain": "portal.layers.safety",
    "GuardResult": "portal.layers.safety",
    "InjectionGuard": "portal.layers.safety",
    "LengthGuard": "portal.layers.safety",
    "ModerationGuard": "portal.layers.moderation",
    "PIIGuard": "portal.layers.safety",
    "Stage": "portal.layers.safety",
    "Vault": "portal.layers.safety",
    "register_guard": "portal.layers.safety",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.layers.moderation import ModerationGuard as ModerationGuard
    from portal.layers.safety import Action as Action
    from portal.layers.safety import Decision as Decision
    from portal.layers.safety import DenylistGuard as DenylistGuard
    from portal.layers.safety import Guard as Guard
    from portal.layers.safety import GuardBlocked as GuardBlocked
    from portal.layers.safety import GuardChain as GuardChain
    from portal.layers.safety import GuardResult as GuardResult
    from portal.layers.safety import InjectionGuard as InjectionGuard
    from portal.layers.safety import LengthGuard as LengthGuard
    from portal.layers.safety import PIIGuard as PIIGuard
    from portal.layers.safety import Stage as Stage
    from portal.layers.safety import Vault as Vault
    from portal.layers.safety import register_guard as register_guard
