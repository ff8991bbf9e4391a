"""`portal report`: reads the ledger(s), builds the report and writes it as a table, JSON,
CSV or HTML. What the numbers mean is `portal.metering.report`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from portal.cli._help import examples
from portal.metering.report import (
    FORMATS,
    GROUPINGS,
    TRAFFIC,
    build_report,
    ledger_urls,
    load_records,
    missing_ledgers,
    parse_since,
    print_rich,
    render_csv,
    render_html,
    render_text,
    shown_url,
)

if TYPE_CHECKING:
    from portal.config import PortalConfig

__all__ = ["main"]


def _find_config(path: str | None) -> PortalConfig | None:
    from portal.config import load_config

    if path is not None:
        return load_config(path, keys_required=False)
    for candidate in ("portal.toml", "pyproject.toml"):
        p = Path(candidate)
        if p.exists():
            if candidate == "pyproject.toml" and "[tool.portal" not in p.read_text("utf-8"):
                continue
            return load_config(p, keys_required=False)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``portal report ...``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="portal report",
        description="Cost, latency and SLAs per feature, vendor, target, arm or day, "
        "from the ledger(s). Needs no API key.",
        **examples(
            "portal report",
            "portal report --since 7d --by provider",
            "portal report --traffic synthetic --since 1h",
            "portal report --since all --format html --out report.html",
            "portal report --ledger sqlite:///.portal/ledger.db --format csv --out calls.csv",
        ),
    )
    parser.add_argument(
        "--config", help="portal.toml (default: ./portal.toml or ./pyproject.toml [tool.portal])"
    )
    parser.add_argument(
        "--ledger",
        action="append",
        default=None,
        metavar="URL",
        help="ledger to read instead of the config's (repeatable)",
    )
    parser.add_argument(
        "--since", default="24h", help="period: 24h, 30m, 7d, an ISO date, or 'all' (default 24h)"
    )
    parser.add_argument("--feature", help="only this feature")
    parser.add_argument(
        "--traffic",
        choices=TRAFFIC,
        default="production",
        help="production (default: load-test and game-day calls left out), synthetic "
        "(only those), or all",
    )
    parser.add_argument(
        "--by",
        choices=(*GROUPINGS, "vendor"),
        default="feature",
        help="rows per (feature); vendor is provider",
    )
    parser.add_argument(
        "--window",
        choices=("hour", "day"),
        default="hour",
        help="SLA accounting window (default hour)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="(table)")
    parser.add_argument(
        "--out",
        help="write to this file instead of standard output (html defaults to portal-report.html)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)

    from portal.errors import ConfigError

    try:
        config = _find_config(args.config)
        since = parse_since(args.since)
    except ConfigError as exc:
        print(f"portal report: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"portal report: {exc}", file=sys.stderr)
        return 2
    urls = args.ledger or (ledger_urls(config) if config is not None else [])
    if not urls:
        print(
            "portal report: no ledger to read; pass --config portal.toml or "
            "--ledger sqlite:///path/to/ledger.db",
            file=sys.stderr,
        )
        return 2
    for url in missing_ledgers(urls):
        if args.ledger:  # named on the command line: most likely a typo
            print(
                f"portal report: --ledger {shown_url(url)}: no such file; give the path of an "
                "existing ledger (sqlite:///relative.db, sqlite:////absolute/path.db)",
                file=sys.stderr,
            )
            return 2
        print(
            f"portal report: note: {shown_url(url)} does not exist yet (nothing recorded there)",
            file=sys.stderr,
        )
    try:
        records = load_records(urls, since=since, feature=args.feature)
    except Exception as exc:  # a ledger that cannot be read: say which, never its password
        print(
            f"portal report: cannot read the ledger ({type(exc).__name__}: {exc})", file=sys.stderr
        )
        return 1
    report = build_report(
        records,
        config,
        by="provider" if args.by == "vendor" else args.by,
        window=args.window,
        traffic=args.traffic,
        meta={"ledgers": [shown_url(u) for u in urls], "since": since, "feature": args.feature},
    )
    if args.format == "json":
        text = json.dumps(report, indent=2, default=str) + "\n"
    elif args.format == "csv":
        text = render_csv(report)
    elif args.format == "html":
        text = render_html(report)
        out = args.out or "portal-report.html"
        Path(out).write_text(text, encoding="utf-8")
        print(f"portal report: wrote {out} ({len(records):,} records)")
        return 0
    else:
        if args.out is None and print_rich(report, sys.stdout):
            return 0
        text = render_text(report)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"portal report: wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0
