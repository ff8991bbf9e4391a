"""What users read speaks to users: no issue numbers, notes about work sessions, helper
names or paths of the machine the docs were written on, in the docs, the README, the
examples or the package's own docstrings and comments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_INTERNAL = {
    "an issue or pull request number": r"\b(issues?|PR|pull request)\s*#?\d+\b",
    "a note about a work session": (
        r"\b(this|previous|last|earlier|next|current|the|that)\s+session(\b|'s)(?!\s+(id|key|"
        r"token|cookie)s?\b)|\bclosing (note|review)\b"
    ),
    "a helper's name": r"\bhelper[- ]?i?\d+\b",
    "a path on the authors' machine": (
        r"(?<![\w.~])/(work|root|home/[\w.-]+|Users/[\w.-]+|tmp|mnt|opt|var/folders)/"
    ),
}
_CODE_INTERNAL = {k: v for k, v in _INTERNAL.items() if "session" not in k}

#: portal is installed from a wheel or a git URL: a bare ``pip install portal-sdk`` (with or
#: without extras) finds nothing on a package index
_BARE_INSTALL = r"pip install\s+['\"]?portal-sdk(\[[^\]]*\])?(?!\S*\s*@)"


def _user_docs() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "benchmarks" / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted(
        p for p in (ROOT / "examples").rglob("*") if p.suffix in (".py", ".md", ".toml")
    )
    return [p for p in files if p.is_file()]


def _scan(text: str, patterns: dict[str, str]) -> list[tuple[int, str, str, str]]:
    """(line number, what, the match, the line) of every internal note in ``text``."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for what, pattern in patterns.items():
            m = re.search(pattern, line, flags=re.I)
            if m:
                found.append((n, what, m.group(0), line.strip()))
    return found


def _findings(path: Path, patterns: dict[str, str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{n}: {what}: {match!r}: {line}"
        for n, what, match, line in _scan(path.read_text(encoding="utf-8"), patterns)
    ]


def test_user_docs_carry_no_internal_notes() -> None:
    found = [f for p in _user_docs() for f in _findings(p, _INTERNAL)]
    assert not found, "rewrite these for users:\n" + "\n".join(found)


def test_install_commands_name_a_wheel_or_a_git_url() -> None:
    files = [*_user_docs(), *sorted((ROOT / "portal").rglob("*.py"))]
    found = [f for p in files for f in _findings(p, {"an install from an index": _BARE_INSTALL})]
    assert not found, "portal is not on an index; install a wheel or a git URL:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("pip install portal-sdk", True),
        ("pip install 'portal-sdk[otel]'", True),
        ("pip install 'portal-sdk[cli] @ git+https://git.example.com/t/portal.git@v1'", False),
        ("pip install 'portal-sdk @ git+https://git.example.com/t/portal.git'", False),
        ("pip install 'dist/portal_sdk-0.1.0-py3-none-any.whl[cli]'", False),
    ],
)
def test_the_install_pattern(line: str, bad: bool) -> None:
    assert bool(_scan(line, {"x": _BARE_INSTALL})) is bad


def test_package_sources_carry_no_internal_notes() -> None:
    files = sorted((ROOT / "portal").rglob("*.py"))
    found = [f for p in files for f in _findings(p, _CODE_INTERNAL)]
    assert not found, "rewrite these for users:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "This page shows how it is measured (issue 6).",
        "the previous session's runs were slower",
        "See PR #12 for details.",
        "helper-3 measured it",
        "python3.11 -m venv /work/bench-venv",
        "git clone x /tmp/osv",
        "after the closing review",
    ],
)
def test_the_patterns_catch_internal_notes(line: str) -> None:
    assert len(_scan(f"ok line\n{line}\n", _INTERNAL)) == 1


@pytest.mark.parametrize(
    "line",
    [
        "`key=` is the sticky routing key (a user or session id)",
        "the session token of AWS credentials",
        "raw aiohttp ClientSession",
        "sqlite:////abs/x.db and ../bench-venv/bin/python",
        "areas never issued, so they never match",
    ],
)
def test_the_patterns_leave_user_text_alone(line: str) -> None:
    assert _scan(line, _INTERNAL) == []
