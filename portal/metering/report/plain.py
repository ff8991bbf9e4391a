"""Plain-text renderers: aligned tables (``--format table`` without rich, and `portal demo`)
and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from portal.metering.report.cells import headline_lines, report_sections, report_title
from portal.metering.report.model import COLUMNS

__all__ = ["plain_table", "render_csv", "render_text"]


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render_text(report: dict[str, Any], columns: Sequence[str] = COLUMNS) -> str:
    """The report as plain-text tables."""
    lines = [report_title(report), *headline_lines(report)]
    for title, heads, rows in report_sections(report, columns):
        lines += ["", f"{title}:"]
        lines += plain_table(heads, rows) if rows else ["  none"]
    return "\n".join(lines) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    """The group rows (and the total) as CSV, raw numbers."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = [c for c in COLUMNS if c != "group"]
    writer.writerow([report["by"], *cols])
    for r in [*report["rows"], report["total"]]:
        writer.writerow([r["group"], *("" if r.get(c) is None else r[c] for c in cols)])
    return buf.getvalue()
