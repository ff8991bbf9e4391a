"""The report of a contract check: findings (severity, code, message, where), one result per
feature, exit codes and the JSON document CI tools read (``schema_version`` 1, documented in
docs/contracts.md). `portal.contract_check` fills it; `portal.cli.contracts` prints it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from portal.contracts.compat import Comparison
from portal.contracts.locate import locate
from portal.contracts.schema_issues import Severity

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_USAGE",
    "JSON_SCHEMA_VERSION",
    "CheckReport",
    "FeatureResult",
    "Finding",
    "UsageError",
    "report_comparison",
]

JSON_SCHEMA_VERSION = 1
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments, unreadable config, unknown git ref: exit code 2."""


@dataclass(slots=True)
class Finding:
    severity: Severity
    code: str
    message: str
    feature: str | None = None
    file: str | None = None
    line: int | None = None
    pointer: str | None = None
    target: str | None = None
    keyword: str | None = None


@dataclass(slots=True)
class FeatureResult:
    feature: str
    contract: str | None
    version: str | None
    targets: list[str]
    verdict: str | None = None


@dataclass(slots=True)
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    features: list[FeatureResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if any(f.severity == "error" for f in self.findings) else EXIT_OK

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def to_json(self, command: str = "check") -> dict[str, Any]:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "command": command,
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "summary": {
                "features": len(self.features),
                "contracts": sum(1 for f in self.features if f.contract),
                "errors": self.count("error"),
                "warnings": self.count("warning"),
                "info": self.count("info"),
            },
            "features": [asdict(f) for f in self.features],
            "findings": [asdict(f) for f in self.findings],
        }


def report_comparison(
    report: CheckReport, cmp: Comparison, feature: str | None, shown: str, text: str
) -> None:
    """Add a comparison's changes to the report: breaking ones without a major version bump
    are errors, intended and compatible ones are notes."""
    verdict = cmp.verdict
    for change in cmp.changes:
        if change.breaking and verdict == "breaking":
            sev: Severity = "error"
            code = "compat.breaking"
            msg = (
                f"breaking change without a major version bump "
                f"({cmp.old_version} -> {cmp.new_version}): {change.message}"
            )
        elif change.breaking:
            sev, code = "info", "compat.intended"
            msg = (
                f"breaking change, intended by the major version bump "
                f"({cmp.old_version} -> {cmp.new_version}): {change.message}"
            )
        else:
            sev, code, msg = "info", "compat.compatible", f"compatible change: {change.message}"
        report.findings.append(
            Finding(
                sev,
                code,
                msg,
                feature,
                shown,
                locate(text, change.pointer, shown),
                change.pointer,
                keyword=change.rule,
            )
        )
