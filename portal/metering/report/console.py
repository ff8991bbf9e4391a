"""The console renderer: the report's tables drawn with rich, when it is installed."""

from __future__ import annotations

from typing import Any

from portal.metering.report.cells import BRIEF_COLUMNS, report_sections, report_title

__all__ = ["print_rich"]


def print_rich(report: dict[str, Any], file: Any) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    tty = getattr(file, "isatty", lambda: False)()
    console = Console(file=file, width=None if tty else 180)
    console.print(report_title(report), style="bold")
    for title, heads, rows in report_sections(report, BRIEF_COLUMNS):
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(heads):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for r in rows:
            table.add_row(*r)
        if not rows:
            table.add_row(*(["none"] + [""] * (len(heads) - 1)))
        console.print(table)
    return True
