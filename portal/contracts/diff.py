"""`portal contracts diff OLD NEW`: the compatibility analysis between two contract files,
as a `Comparison` and a `CheckReport`."""

from __future__ import annotations

from pathlib import Path

from portal.contracts.compat import Comparison, compare
from portal.contracts.feature import load_contract
from portal.contracts.findings import CheckReport, FeatureResult, UsageError, report_comparison
from portal.contracts.locate import read_text, shown
from portal.errors import ContractError

__all__ = ["run_diff"]


def run_diff(old_path: Path, new_path: Path) -> tuple[Comparison, CheckReport]:
    """Compare two contract files; `UsageError` when either does not load."""
    try:
        old = load_contract(old_path, check_examples=False)
        new = load_contract(new_path, check_examples=False)
    except ContractError as exc:
        raise UsageError(str(exc)) from None
    cmp = compare(old, new)
    report = CheckReport()
    report.features.append(FeatureResult(new.name, str(new_path), new.version, [], cmp.verdict))
    report_comparison(report, cmp, new.name, shown(new_path), read_text(new_path) or "")
    return cmp, report
