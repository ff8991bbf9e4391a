"""The `portal` command. Each subcommand imports what it needs when it runs, so
`portal --version` and `portal config check` start fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


def _version() -> str:
    from portal import __version__

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
    from portal.config import load_config
    from portal.errors import ConfigError

    try:
        cfg = load_config(args.config)
        _check_providers(cfg)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.errors)} problem(s)", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{args.config}: ok ({len(cfg.providers)} provider(s), {len(cfg.features)} feature(s))")
    return 0


def _check_providers(cfg: object) -> None:
    """Build every configured adapter, so kind-specific options are checked too."""
    from portal.config import PortalConfig
    from portal.errors import ConfigError
    from portal.providers.registry import adapter_class

    assert isinstance(cfg, PortalConfig)
    problems: list[str] = []
    for name in cfg.providers:
        settings = cfg.provider_settings(name)
        try:
            adapter_class(settings.kind)(settings)
        except ConfigError as exc:
            problems.extend(exc.errors)
    problems.extend(_policy_problems(cfg))
    if problems:
        raise ConfigError("\n".join(problems), problems)


def _policy_problems(cfg: object) -> list[str]:
    """Targets a feature can reach that sit outside its data-path policy (``allowed``)."""
    from portal.config import PortalConfig

    assert isinstance(cfg, PortalConfig)
    found = []
    for name, feat in cfg.features.items():
        if feat.allowed is None:
            continue
        targets = [feat.primary, *feat.fallbacks]
        if feat.canary is not None:
            targets.append(feat.canary.target)
        for target in targets:
            provider, _ = cfg.resolve_target(target)
            settings = cfg.provider_settings(provider)
            regions, tags = feat.allowed.regions, feat.allowed.tags
            if regions is not None and settings.region not in regions:
                found.append(
                    f'features."{name}".allowed: target {target} is in region '
                    f"{settings.region!r}, outside the allowed regions {regions}"
                )
            if tags is not None and not set(tags) <= set(settings.tags):
                missing = sorted(set(tags) - set(settings.tags))
                found.append(
                    f'features."{name}".allowed: target {target} lacks the required tag(s) '
                    f"{missing}"
                )
    return found


def _delegate(module: str, func: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), func)(argv))

    return run


# subcommands implemented in their own packages, given the rest of the command line verbatim
_DELEGATED: dict[str, tuple[str, str, str]] = {
    "contracts": ("portal.contracts.check", "main", "check contracts and their compatibility"),
    "canary": ("portal.routing.commands", "canary_main", "promote, roll back, show canaries"),
    "route": ("portal.routing.commands", "route_main", "explain where a call would go"),
    "report": ("portal.metering.report", "main", "report cost, latency and SLAs from ledgers"),
    "loadtest": ("portal.stress.loadtest", "main", "synthetic peak load against a feature"),
    "gameday": ("portal.stress.gameday", "main", "load under an injected vendor fault"),
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
                f"portal {args_list[0]}: needs {exc.name}; install portal-sdk[all]", file=sys.stderr
            )
            return 2

    parser = argparse.ArgumentParser(prog="portal", description="portable, reliable LLM calls")
    parser.add_argument("--version", action="version", version=f"portal {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the offline demo on simulated vendors")
    demo.add_argument("--out", default=".portal/demo", help="folder for config, ledger, report")
    demo.add_argument("--users", type=int, default=400, help="user actions to simulate")
    demo.add_argument("--concurrency", type=int, default=48)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--no-html", action="store_true", help="skip the HTML report")
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser("config", help="check a config file")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    check = config_sub.add_parser("check", help="validate portal.toml; exit 1 listing problems")
    check.add_argument("--config", default="portal.toml")
    check.set_defaults(func=_cmd_config_check)

    for name, (_, _, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    args = parser.parse_args(args_list)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
