"""Every `portal` command's --help ends with examples, and every option an example uses is
one the command accepts."""

from __future__ import annotations

import re

import pytest

from portal.cli import main as portal_main

COMMANDS = [
    [],
    ["demo"],
    ["config"],
    ["config", "check"],
    ["contracts"],
    ["contracts", "check"],
    ["contracts", "diff"],
    ["canary"],
    ["route"],
    ["route", "explain"],
    ["report"],
    ["prices"],
    ["prices", "show"],
    ["loadtest"],
    ["gameday"],
]


def _help(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = portal_main([*command, "--help"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    return capsys.readouterr().out


def _options(text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z0-9-]*", text.split("examples:", 1)[0]))


def _leaf(words: list[str]) -> list[str]:
    """The most specific command an example line runs (``portal route explain X`` ->
    ``route explain``)."""
    return max((c for c in COMMANDS if words[1 : 1 + len(c)] == c), key=len)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "portal")
def test_help_shows_working_examples(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(command, capsys)
    assert "examples:" in text, f"portal {' '.join(command)} --help has no examples"
    lines = [ln.strip() for ln in text.split("examples:", 1)[1].splitlines() if ln.strip()]
    assert lines and all(ln.startswith(" ".join(["portal", *command])) for ln in lines), lines
    for line in lines:
        leaf = _leaf(line.split())
        options = _options(_help(leaf, capsys))
        for flag in re.findall(r"(?<!\S)--[a-z][a-z0-9-]*", line):
            assert flag in options, f"{line!r} uses {flag}, which portal {' '.join(leaf)} lacks"


def test_gameday_accepts_the_load_options_of_loadtest(capsys: pytest.CaptureFixture[str]) -> None:
    assert _options(_help(["loadtest"], capsys)) - _options(_help(["gameday"], capsys)) == set()
