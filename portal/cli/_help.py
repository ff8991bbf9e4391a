"""`--help` ends with examples on every command: the quickest way to learn a command is a
working line to copy."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["examples"]


def examples(*lines: str) -> dict[str, Any]:
    """Keyword arguments for `argparse.ArgumentParser` (or ``add_parser``): the example
    command lines as the help's epilog, shown as written."""
    return {
        "epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
