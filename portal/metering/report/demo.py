"""The report `portal demo` prints at its end, from the demo's own ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portal.metering.report.analysis import build_report
from portal.metering.report.cells import (
    DEMO_COLUMNS,
    headline_lines,
    metric_text,
    report_sections,
)
from portal.metering.report.html import render_html
from portal.metering.report.ledgers import ledger_urls, load_records, shown_url
from portal.metering.report.plain import plain_table

__all__ = ["demo_report"]


def demo_report(
    config_path: str | Path, out_dir: str | Path, html: bool = True, printer: Any = print
) -> str | None:
    """`portal demo`'s numbers: tables by feature and by target and canary against baseline,
    from its own ledger, and ``out_dir/report.html``. Returns the HTML path (None without html)."""
    from portal.config import load_config

    config = load_config(config_path)
    urls = ledger_urls(config)
    records = load_records(urls)
    meta = {"ledgers": [shown_url(u) for u in urls], "since": None}
    printer("")
    printer(f"report from the ledger (portal report --config {config_path} --since all):")
    report = build_report(records, config, by="feature", meta=meta)
    by_target = build_report(records, config, by="target", meta=meta)
    for line in headline_lines(report):
        printer(line)
    sections = report_sections(report, DEMO_COLUMNS)
    shown = [sections[0], report_sections(by_target, DEMO_COLUMNS)[0]]
    shown += [s for s in sections if s[0] in ("errors by feature", "canary vs baseline")]
    for title, heads, rows in shown:
        printer("")
        printer(f"{title}:")
        for line in plain_table(heads, rows):
            printer(line)
    sla = report["sla"]
    if sla is not None:
        n = len(sla["breaches"])
        printer("")
        printer(
            f"SLA: {n} breach(es)"
            + (
                ": "
                + "; ".join(
                    f"{b['scope']} {b['name']} {b['metric']} "
                    f"{metric_text(b['metric'], b['actual'])} vs "
                    f"{metric_text(b['metric'], b['target'])}"
                    for b in sla["breaches"][:4]
                )
                if n
                else ""
            )
        )
    if not html:
        return None
    path = Path(out_dir) / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    printer(f"HTML report: {path}")
    return str(path)
