"""`portal contracts check` and `portal contracts diff`: argument parsing and output
formats (text, json, github). The checks themselves are `portal.contract_check` and
`portal.contracts.diff`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from portal.cli._help import examples
from portal.contract_check import run_check
from portal.contracts.compat import Comparison
from portal.contracts.diff import run_diff
from portal.contracts.findings import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    CheckReport,
    Finding,
    UsageError,
)

__all__ = ["main"]


# --------------------------------------------------------------------------------- output


def _format_text(report: CheckReport, out: Any) -> None:
    by_feature: dict[str | None, list[Finding]] = {}
    for f in report.findings:
        by_feature.setdefault(f.feature, []).append(f)
    for feat in report.features:
        header = f"{feat.feature}: {feat.contract or '(no contract)'}"
        if feat.version:
            header += f" v{feat.version}"
        if feat.targets:
            header += f"  -> {', '.join(feat.targets)}"
        if feat.verdict:
            header += f"  [{feat.verdict}]"
        print(header, file=out)
        for f in by_feature.pop(feat.feature, []):
            where = f"{f.file}:{f.line}" if f.file and f.line else (f.file or "")
            print(f"  {f.severity:<7} {where}  {f.message}", file=out)
    for rest in by_feature.values():
        for f in rest:
            print(f"  {f.severity:<7} {f.file or ''}  {f.message}", file=out)
    status = "FAILED" if report.exit_code else "OK"
    print(
        f"{status}: {report.count('error')} error(s), {report.count('warning')} warning(s), "
        f"{report.count('info')} note(s) in {len(report.features)} feature(s)",
        file=out,
    )


def _gh_escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def _format_github(report: CheckReport, out: Any) -> None:
    level = {"error": "error", "warning": "warning", "info": "notice"}
    for f in report.findings:
        props = []
        if f.file:
            props.append(f"file={_gh_escape(f.file, True)}")
            if f.line:
                props.append(f"line={f.line}")
        title = f"portal contracts: {f.feature}" if f.feature else "portal contracts"
        props.append(f"title={_gh_escape(title, True)}")
        print(f"::{level[f.severity]} {','.join(props)}::{_gh_escape(f.message)}", file=out)
    print(
        f"portal contracts: {report.count('error')} error(s), {report.count('warning')} "
        f"warning(s), {report.count('info')} note(s)",
        file=out,
    )


def _emit(report: CheckReport, fmt: str, command: str, out: Any) -> None:
    if fmt == "json":
        print(json.dumps(report.to_json(command), indent=2), file=out)
    elif fmt == "github":
        _format_github(report, out)
    else:
        _format_text(report, out)


# ------------------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portal contracts",
        description="Check feature contracts in CI: schemas, examples, vendor capabilities, "
        "data-path policy and breaking changes (no API key needed).",
        **examples(
            "portal contracts check --config portal.toml",
            "portal contracts check --against origin/main --format github",
            "portal contracts diff old/support_answer.toml contracts/support_answer.toml",
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="check every contract named by the config",
        description="Contracts valid, examples valid, every routed target can serve them, "
        "data-path policy, and breaking changes since a git ref. Exit 0 ok, 1 errors, 2 usage.",
        **examples(
            "portal contracts check --config portal.toml",
            "portal contracts check --config portal.toml --against origin/main --format github",
        ),
    )
    check.add_argument(
        "--config",
        type=Path,
        default=None,
        help="portal.toml or pyproject.toml (default: ./portal.toml)",
    )
    check.add_argument(
        "--against",
        metavar="GIT_REF",
        default=None,
        help="compare each contract with its version at this git ref",
    )
    check.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: workflow annotations on the changed lines",
    )
    diff = sub.add_parser(
        "diff",
        help="compatibility analysis between two contract files",
        description="Every change between two versions of a contract, breaking or not. "
        "Exit 0 compatible (or a major version bump), 1 breaking.",
        **examples("portal contracts diff old/support_answer.toml contracts/support_answer.toml"),
    )
    diff.add_argument("old", type=Path, help="the contract as it was")
    diff.add_argument("new", type=Path, help="the contract as it is now")
    diff.add_argument("--format", choices=("text", "json", "github"), default="text")
    return parser


def main(argv: list[str] | None = None, out: Any = None, err: Any = None) -> int:
    """Entry point; `portal contracts ...` delegates here. Returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    try:
        if args.command == "check":
            report = run_check(args.config, args.against)
            _emit(report, args.format, "check", out)
            return report.exit_code
        cmp, report = run_diff(args.old, args.new)
        if args.format == "text":
            _format_diff(cmp, args.old, args.new, out)
        else:
            _emit(report, args.format, "diff", out)
        return EXIT_FAIL if cmp.verdict == "breaking" else EXIT_OK
    except UsageError as exc:
        print(f"portal contracts: error: {exc}", file=err)
        return EXIT_USAGE


def _format_diff(cmp: Comparison, old: Path, new: Path, out: Any) -> None:
    explain = {
        "unchanged": "no changes",
        "compatible": "compatible: no breaking changes",
        "intended": "breaking changes, intended by the major version bump",
        "breaking": "BREAKING changes without a major version bump",
    }[cmp.verdict]
    print(f"{old} ({cmp.old_version}) -> {new} ({cmp.new_version}): {explain}", file=out)
    for c in cmp.changes:
        tag = "BREAKING" if c.breaking else "ok"
        print(f"  {tag:<9}{c.area:<9}{c.message}", file=out)
    if cmp.verdict == "breaking":
        major = cmp.old_version.split(".")[0]
        nxt = f"{int(major) + 1}.0.0" if major.isdigit() else "the next major version"
        print(f"  fix: bump version to {nxt}, or make the change compatible", file=out)


if __name__ == "__main__":  # python -m portal.cli.contracts
    sys.exit(main(sys.argv[1:]))
