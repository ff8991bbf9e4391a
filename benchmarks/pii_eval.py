"""Precision and recall of portal's PII detectors on the labelled snippets.

    python benchmarks/pii_eval.py [path/to/labelled.jsonl] [--errors] [--markdown]

A prediction counts as a true positive only when both its category and its exact text
match a labelled entity of the same snippet; anything else it finds is a false positive,
and every labelled entity it misses is a false negative. ``--errors`` lists the misses
(run it on synthetic data only: it prints the values). The figures in docs/safety.md come
from ``--markdown``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

pii = importlib.import_module("portal.layers.pii")
CATEGORIES: tuple[str, ...] = pii.CATEGORIES
DEFAULT_DATA = ROOT / "tests" / "layers" / "data" / "pii_labelled.jsonl"


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Report:
    snippets: int = 0
    entities: int = 0
    per_category: dict[str, Score] = field(default_factory=lambda: {c: Score() for c in CATEGORIES})
    overall: Score = field(default_factory=Score)
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, type, value, text
    chars_per_second: float = 0.0


def load(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row.get("text"), str) or not isinstance(
                    row.get("entities"), list
                ):
                    raise ValueError(f"{path}:{n}: each line needs 'text' and 'entities'")
                rows.append(row)
    return rows


def evaluate(path: Path = DEFAULT_DATA) -> Report:
    rows = load(path)
    report = Report(snippets=len(rows))
    total_chars = 0
    started = time.perf_counter()
    predictions = []
    for row in rows:
        text = str(row["text"])
        total_chars += len(text)
        predictions.append(pii.detect(text))
    elapsed = time.perf_counter() - started
    report.chars_per_second = total_chars / elapsed if elapsed else float("inf")
    for row, found in zip(rows, predictions, strict=True):
        text = str(row["text"])
        gold = Counter((str(e["type"]), str(e["value"])) for e in row["entities"])
        report.entities += sum(gold.values())
        pred: Counter[tuple[str, str]] = Counter((f.category, f.value) for f in found)
        for key in gold | pred:
            hit = min(gold[key], pred[key])
            score = report.per_category.setdefault(key[0], Score())
            score.tp += hit
            score.fp += pred[key] - hit
            score.fn += gold[key] - hit
            if pred[key] > hit:
                report.errors.append(("false positive", key[0], key[1], text))
            if gold[key] > hit:
                report.errors.append(("missed", key[0], key[1], text))
    for s in report.per_category.values():
        report.overall.tp += s.tp
        report.overall.fp += s.fp
        report.overall.fn += s.fn
    return report


def to_markdown(report: Report) -> str:
    lines = [
        "| category | labelled | found correctly | false positives | missed | precision | recall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*report.per_category.items(), ("**overall**", report.overall)]
    for name, s in rows:
        lines.append(
            f"| {name} | {s.tp + s.fn} | {s.tp} | {s.fp} | {s.fn} "
            f"| {s.precision:.3f} | {s.recall:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--errors", action="store_true", help="list misses and false positives")
    ap.add_argument("--markdown", action="store_true", help="print the table for the docs")
    args = ap.parse_args(argv)
    report = evaluate(args.path)
    print(f"{report.snippets} snippets, {report.entities} labelled entities")
    if args.markdown:
        print(to_markdown(report))
    else:
        print(f"{'category':<10}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}")
        for name, s in [*report.per_category.items(), ("overall", report.overall)]:
            print(f"{name:<10}{s.tp:>5}{s.fp:>5}{s.fn:>5}{s.precision:>11.3f}{s.recall:>8.3f}")
    print(f"throughput: {report.chars_per_second / 1e6:.2f} M chars/s (all detectors, one core)")
    if args.errors:
        for kind, typ, value, text in report.errors:
            print(f"{kind:<15} {typ:<7} {value!r}\n{'':<24}in: {text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
