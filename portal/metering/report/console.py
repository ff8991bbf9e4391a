"""The console renderer: the headline and every table drawn with rich, when it is installed.
The group table keeps every column of the plain one, split in two (calls and latency, then
tokens and cost) so that each half fits a terminal."""

from __future__ import annotations

from typing import Any

from portal.metering.report.cells import Section, headline_lines, report_sections, report_title
from portal.metering.report.model import COLUMNS

__all__ = ["print_rich"]

#: where the group table is split: the columns from here on go to its second half
_SPLIT = COLUMNS.index("input_tokens")


def _halves(section: Section) -> list[Section]:
    title, heads, rows = section
    return [
        (f"{title}: calls and latency", heads[:_SPLIT], [r[:_SPLIT] for r in rows]),
        (
            f"{title}: tokens and cost",
            [heads[0], *heads[_SPLIT:]],
            [[r[0], *r[_SPLIT:]] for r in rows],
        ),
    ]


def print_rich(report: dict[str, Any], file: Any) -> bool:
    """Print the report with rich; False (nothing printed) when rich is not installed."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    tty = getattr(file, "isatty", lambda: False)()
    console = Console(file=file, width=None if tty else 180, highlight=False)
    console.print(report_title(report), style="bold")
    for line in headline_lines(report):
        console.print(line, style="red" if "MISSED" in line else None)
    first, *rest = report_sections(report, COLUMNS)
    for title, heads, rows in [*_halves(first), *rest]:
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(heads):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for r in rows:
            table.add_row(*r)
        if not rows:
            table.add_row(*(["none"] + [""] * (len(heads) - 1)))
        console.print(table)
    return True
