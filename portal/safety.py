"""Safety guards around a call (public): the `Guard` protocol, the built-in guards, the
chain a feature's ``safety = [...]`` builds, and `register_guard` for your own. Names load
on first use. Docs: docs/safety.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Action": "portal.adapters.safety",
    "Decision": "portal.adapters.safety",
    "DenylistGuard": "portal.adapters.safety",
    "Guard": "portal.adapters.safety",
    "GuardBlocked": "portal.adapters.safety",
    "GuardChain": "portal.adapters.safety",
    "GuardResult": "portal.adapters.safety",
    "InjectionGuard": "portal.adapters.safety",
    "LengthGuard": "portal.adapters.safety",
    "PIIGuard": "portal.adapters.safety",
    "Stage": "portal.adapters.safety",
    "Vault": "portal.adapters.safety",
    "register_guard": "portal.adapters.safety",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.adapters.safety import Action as Action
    from portal.adapters.safety import Decision as Decision
    from portal.adapters.safety import DenylistGuard as DenylistGuard
    from portal.adapters.safety import Guard as Guard
    from portal.adapters.safety import GuardBlocked as GuardBlocked
    from portal.adapters.safety import GuardChain as GuardChain
    from portal.adapters.safety import GuardResult as GuardResult
    from portal.adapters.safety import InjectionGuard as InjectionGuard
    from portal.adapters.safety import LengthGuard as LengthGuard
    from portal.adapters.safety import PIIGuard as PIIGuard
    from portal.adapters.safety import Stage as Stage
    from portal.adapters.safety import Vault as Vault
    from portal.adapters.safety import register_guard as register_guard
