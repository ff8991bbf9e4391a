"""Where a JSON pointer sits in a contract file: the line CI annotations and error messages
point at (best effort, for TOML and JSON contract files), and a path shown as CI tools want."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["locate", "read_text", "shown"]


def shown(path: Path) -> str:
    """The path as CI tools want it: relative to the working directory when inside it."""
    try:
        return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
    except ValueError:
        return path.as_posix()


def read_text(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return None


def _pointer_keys(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]


def locate(text: str, pointer: str | None, source: str) -> int | None:
    """Best-effort line (1-based) of a JSON pointer in a TOML or JSON contract file."""
    if not pointer or not text:
        return None
    keys = _pointer_keys(pointer)
    if not keys:
        return 1
    lines = text.splitlines()
    if source.lower().endswith(".json"):
        return _locate_json(lines, keys)
    return _locate_toml(lines, keys)


def _locate_json(lines: list[str], keys: list[str]) -> int | None:
    start, found = 0, None
    for key in keys:
        if key.isdigit():
            continue
        pat = re.compile(r'"' + re.escape(key) + r'"\s*:')
        for n in range(start, len(lines)):
            if pat.search(lines[n]):
                found, start = n + 1, n + 1
                break
    return found


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _header_keys(raw: str) -> list[str]:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s]+)', raw)
    return [a or b or c for a, b, c in parts]


def _locate_toml(lines: list[str], keys: list[str]) -> int | None:
    # array-of-tables index: /tools/1/... -> after the 2nd [[tools]] header
    start = 0
    path: list[str] = []
    rest = list(keys)
    if len(rest) >= 2 and rest[1].isdigit():
        name, index = rest[0], int(rest[1])
        seen = -1
        for n, line in enumerate(lines):
            m = _HEADER.match(line)
            if m and line.strip().startswith("[[") and _header_keys(m.group(1)) == [name]:
                seen += 1
                if seen == index:
                    start = n
                    break
        path = [name]
        rest = rest[2:]
        if not rest:
            return start + 1
    best = start + 1 if path else None
    full = path + [k for k in rest if not k.isdigit()]
    # the deepest table header that is a prefix of the key path
    header_line, depth = None, 0
    for n in range(start, len(lines)):
        m = _HEADER.match(lines[n])
        if not m:
            continue
        hk = _header_keys(m.group(1))
        if path and n > start and hk[: len(path)] != path:
            break
        if hk == full[: len(hk)] and len(hk) > depth:
            header_line, depth = n, len(hk)
    if header_line is not None:
        best = header_line + 1
        remaining = full[depth:]
        if remaining:
            pat = re.compile(r'^\s*["\']?' + re.escape(remaining[0]) + r'["\']?\s*=')
            for n in range(header_line + 1, len(lines)):
                if _HEADER.match(lines[n]):
                    break
                if pat.match(lines[n]):
                    return n + 1
        return best
    if full:
        pat = re.compile(r'^\s*["\']?' + re.escape(full[-1]) + r'["\']?\s*=')
        for n in range(start, len(lines)):
            if pat.match(lines[n]):
                return n + 1
    return best
