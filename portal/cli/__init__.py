"""The `portal` command: one module per area (`config`, `contracts`, `routing`, `report`,
`prices`, `loadtest`, `gameday`). Each subcommand imports what it needs when it runs, so
`portal --version` and `portal config check` start fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from portal._extras import install_hint
from portal.cli._help import examples

__all__ = ["main"]


def _version() -> str:
    from portal._version import __version__

    return __version__


def _cmd_demo(args: argparse.Namespace) -> int:
    from portal.demo import run_demo

    run_demo(
        out_dir=args.out,
        users=args.users,
        concurrency=args.concurrency,
        seed=args.seed,
        html=not args.no_html,
    )
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from portal.cli.config import config_check

    return config_check(args.config)


def _delegate(module: str, func: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), func)(argv))

    return run


# subcommands implemented in their own packages, given the rest of the command line verbatim
_DELEGATED: dict[str, tuple[str, str, str]] = {
    "contracts": ("portal.cli.contracts", "main", "check contracts and their compatibility"),
    "canary": ("portal.cli.routing", "canary_main", "promote, roll back, show canaries"),
    "route": ("portal.cli.routing", "route_main", "explain where a call would go"),
    "report": ("portal.cli.report", "main", "report cost, latency and SLAs from ledgers"),
    "prices": ("portal.cli.prices", "main", "show the prices portal bills a model at"),
    "loadtest": ("portal.cli.loadtest", "main", "synthetic peak load against a feature"),
    "gameday": ("portal.cli.gameday", "main", "load under an injected vendor fault"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DELEGATED:
        module, func, _ = _DELEGATED[args_list[0]]
        try:
            return _delegate(module, func)(args_list[1:])
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("portal"):
                print(
                    f"portal {args_list[0]}: not available in this build ({exc.name})",
                    file=sys.stderr,
                )
                return 2
            print(
                f"portal {args_list[0]}: needs {exc.name}; {install_hint('all')}",
                file=sys.stderr,
            )
            return 2

    parser = argparse.ArgumentParser(
        prog="portal",
        description="Portable, reliable LLM calls. `portal COMMAND --help` shows each command "
        "with examples.",
        **examples(
            "portal demo",
            "portal config check --config portal.toml",
            "portal report --since 24h",
            "portal route explain support.answer --key user-42",
        ),
    )
    parser.add_argument("--version", action="version", version=f"portal {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the offline demo on simulated vendors",
        description="An offline support app on three simulated vendors (no API key needed), "
        "then the report of its own ledger.",
        **examples("portal demo", "portal demo --users 100 --out demo-run --no-html"),
    )
    demo.add_argument("--out", default=".portal/demo", help="folder for config, ledger, report")
    demo.add_argument("--users", type=int, default=400, help="user actions to simulate")
    demo.add_argument("--concurrency", type=int, default=48, help="user actions in flight")
    demo.add_argument("--seed", type=int, default=7, help="fixes the simulated vendors' draws")
    demo.add_argument("--no-html", action="store_true", help="skip the HTML report")
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser(
        "config",
        help="check a config file",
        **examples("portal config check --config portal.toml"),
    )
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    check = config_sub.add_parser(
        "check",
        help="validate portal.toml; exit 1 listing problems",
        description="Validate the config and build every provider adapter; every problem is "
        "listed with the file, the table and the key (docs/config.md has every key).",
        **examples("portal config check --config portal.toml"),
    )
    check.add_argument("--config", default="portal.toml", help="the file to check")
    check.set_defaults(func=_cmd_config_check)

    for name, (_, _, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    args = parser.parse_args(args_list)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args))
