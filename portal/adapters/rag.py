"""Deprecated: import from `portal.rag` instead. Every name of
`portal.layers.rag` stays importable here, as the same object, with a DeprecationWarning
on first import."""

from __future__ import annotations

import warnings

from portal.layers.rag import *  # noqa: F403
from portal.layers.rag import __all__ as __all__

warnings.warn(
    "portal.adapters.rag is deprecated; import from portal.rag instead",
    DeprecationWarning,
    stacklevel=2,
)
