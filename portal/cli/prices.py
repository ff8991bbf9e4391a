"""`portal prices show KIND:MODEL [--json]`: the price portal bills a model at, its service
tiers and long-context rates, and where it came from (genai-prices, config, prices.json).
Exit 1 with the close matches when the model has no price."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from portal.cli._help import examples

__all__ = ["main", "price_document"]

_COLUMNS = (
    ("input", "input"),
    ("output", "output"),
    ("cached_input", "cache read"),
    ("cache_write", "cache write 5m"),
    ("cache_write_1h", "cache write 1h"),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="portal prices",
        description=__doc__,
        **examples(
            "portal prices show anthropic:claude-haiku-4-5",
            "portal prices show openai:gpt-4.1-mini --json --config portal.toml",
        ),
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        help="the prices of one model, per 1M tokens",
        description="The prices portal bills a model at (per 1M tokens), its tiers and where "
        "they came from; exit 1 with close matches when it has none. Needs no API key.",
        **examples(
            "portal prices show anthropic:claude-haiku-4-5",
            "portal prices show together:meta-llama/Llama-3.3-70B-Instruct-Turbo --config "
            "portal.toml",
        ),
    )
    show.add_argument(
        "target", help="KIND:MODEL or PROVIDER:MODEL, e.g. anthropic:claude-haiku-4-5"
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument(
        "--config",
        default=None,
        help="portal.toml whose [providers.X.prices] apply (default: ./portal.toml if present)",
    )
    return p


def price_document(target: str, price: Any) -> dict[str, Any]:
    """What `portal prices show --json` prints for a priced model."""
    return {
        "target": target,
        "model_id": price.model_id,
        "source": price.source,
        "unit": "USD per 1M tokens",
        "standard": price.rates(),
        "tiers": {name: tier.rates() for name, tier in sorted(price.tiers.items())},
        "long_context": [
            {k: v for k, v in vars_of(lc).items() if v is not None} for lc in price.long_context
        ],
    }


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(list(argv) if argv is not None else None)
    from portal.config import load_config, parse_model_id
    from portal.errors import ConfigError
    from portal.metering.prices import PriceTable

    try:
        provider, model = parse_model_id(args.target)
        path = args.config or ("portal.toml" if Path("portal.toml").exists() else None)
        if path is not None:
            cfg = load_config(path, keys_required=False)  # reading prices needs no key
            table = PriceTable.for_config(cfg)
            prov = cfg.providers.get(provider)
            kind = (prov.kind if prov is not None else None) or provider
        else:
            table, kind = PriceTable.load(), provider
    except ConfigError as exc:
        print(f"portal prices: {exc}", file=sys.stderr)
        return 2
    price = table.lookup(provider, model, kind)
    if price is None:
        close = table.close_matches(provider, model, kind)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        print(
            f"portal prices: no price for {provider}:{model}{hint}. Set one with "
            f'[providers.{provider}.prices."{model}"] input = ..., output = ... '
            "(USD per 1M tokens)",
            file=sys.stderr,
        )
        return 1
    doc = price_document(args.target, price)
    if args.json:
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    _print_text(doc, out)
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _print_text(doc: dict[str, Any], out: TextIO) -> None:
    out.write(f"{doc['target']}: {doc['model_id']} (source: {doc['source']})\n")
    head = ["USD per 1M tokens", *(label for _, label in _COLUMNS)]
    rows = [["standard", *(_fmt(doc["standard"][k]) for k, _ in _COLUMNS)]]
    for name, rates in doc["tiers"].items():
        rows.append([name, *(_fmt(rates[k]) for k, _ in _COLUMNS)])
    for lc in doc["long_context"]:
        label = f"above {lc['above_input_tokens']:,} in"
        rows.append([label, *(_fmt(lc.get(k)) for k, _ in _COLUMNS)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write("missing cache prices bill at the input rate (1-hour writes at 2x input)\n")
