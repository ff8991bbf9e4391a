"""What to install for an optional feature. portal is installed from a wheel or a git URL, not
from a package index, so asking pip for ``portal-sdk[redis]`` by name would find nothing: the
hint names the extra's own packages, read from the installed distribution's metadata."""

from __future__ import annotations

import re
from functools import cache

__all__ = ["install_hint"]

_EXTRA = re.compile(r"""^(?P<req>[^;]+);\s*extra\s*==\s*["'](?P<extra>[^"']+)["']\s*$""")


@cache
def _requirements(extra: str) -> tuple[str, ...]:
    from importlib.metadata import PackageNotFoundError, requires

    try:
        lines = requires("portal-sdk") or []
    except PackageNotFoundError:  # running from a checkout that is not installed
        return ()
    out = []
    for line in lines:
        m = _EXTRA.match(line.strip())
        if m and m.group("extra") == extra:
            out.append(m.group("req").strip().replace(" ", ""))
    return tuple(out)


def install_hint(extra: str) -> str:
    """``pip install 'redis>=5' (the redis extra)``, or, when the metadata is not at hand,
    how to ask for the extra with the wheel or git URL portal was installed from."""
    reqs = _requirements(extra)
    if reqs:
        packages = " ".join(f"'{r}'" for r in reqs)
        return f"pip install {packages} (portal's {extra} extra)"
    return (
        f"install portal with its {extra} extra: pip install '<the portal wheel or git URL>"
        f"[{extra}]'"
    )
