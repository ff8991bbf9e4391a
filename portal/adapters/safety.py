"""Deprecated: import from `portal.safety` instead. Every name of
`portal.layers.safety` stays importable here, as the same object, with a DeprecationWarning
on first import."""

from __future__ import annotations

import warnings

from portal.layers.safety import *  # noqa: F403
from portal.layers.safety import __all__ as __all__

warnings.warn(
    "portal.adapters.safety is deprecated; import from portal.safety instead",
    DeprecationWarning,
    stacklevel=2,
)
