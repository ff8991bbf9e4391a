"""`portal report`: cost, latency and SLAs per feature, vendor, target, arm or day, from the
ledger(s).

    portal report [--config PATH] [--ledger URL ...] [--since 24h] [--feature F]
                  [--by feature|provider|target|arm|day] [--window hour|day]
                  [--format table|json|csv|html] [--out FILE]

By default it reads the ledgers named in the config (``[portal] ledger``; relative sqlite
and jsonl paths resolve against the config file's folder; with none configured,
``<config dir>/.portal/ledger.db``). Several ledgers are merged; a record present in more
than one (the same call written to SQLite and PostgreSQL) is counted once.

What one row says (call rows of the group):

* calls, user-visible errors and error rate (cancelled calls excluded: the caller left);
* latency p50/p95/p99 and time to first token p50/p95, over successful calls;
* tokens and cost in total, per call and per 1,000 calls; calls whose price is unknown
  are counted apart, never as 0;
* attempts per call, and the share of successful calls served by a fallback: by a target
  other than the one tried first, or (with the config) other than the feature's primary
  or canary target.

Plus errors by class per group (calls that failed with it, and failed attempts, including
those a retry or fallback absorbed), canary against baseline per feature (error rate, p95,
cost per call) and SLA breaches and credits (`portal.metering.sla`). ``--format html``
writes one self-contained file (plotly with its JavaScript inlined, opens offline) with
plots and the same tables.

Modules, by job: `model` (what a report holds), `ledgers` (reading records), `analysis`
(the numbers), `overview` (headline, vendors, time series), `cells` (text cells shared by
the renderers), `plain`, `console` and `html`
(renderers), `demo` (what `portal demo` prints).
"""

from __future__ import annotations

from portal.metering.report.analysis import build_report
from portal.metering.report.console import print_rich
from portal.metering.report.demo import demo_report
from portal.metering.report.html import render_html
from portal.metering.report.ledgers import (
    TRAFFIC,
    ledger_urls,
    load_records,
    missing_ledgers,
    parse_since,
    shown_url,
    split_traffic,
)
from portal.metering.report.model import COLUMNS, FORMATS, GROUPINGS, Report
from portal.metering.report.plain import render_csv, render_text

__all__ = [
    "COLUMNS",
    "FORMATS",
    "GROUPINGS",
    "Report",
    "TRAFFIC",
    "build_report",
    "demo_report",
    "ledger_urls",
    "load_records",
    "missing_ledgers",
    "parse_since",
    "print_rich",
    "render_csv",
    "render_html",
    "render_text",
    "shown_url",
    "split_traffic",
]
