"""Deprecated: import from `portal.safety` instead. Every name of
`portal.layers.moderation` stays importable here, as the same object, with a DeprecationWarning
on first import."""

from __future__ import annotations

import warnings

from portal.layers.moderation import *  # noqa: F403
from portal.layers.moderation import __all__ as __all__

warnings.warn(
    "portal.adapters.moderation is deprecated; import from portal.safety instead",
    DeprecationWarning,
    stacklevel=2,
)
