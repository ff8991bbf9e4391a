"""`portal contracts check`: every contract a config names, checked in CI.

For each feature of the config, and each contract file it names, it reports: the file and its
schemas (against the declared JSON Schema draft), examples that do not validate, what each
reachable target (primary, fallbacks, canary) cannot serve or will have translated (the
providers' capability check), data-path policy violations, and with ``against`` a git ref the
changes since the file at that ref. It reads the config with portal's own loader, without API
keys (CI has no secrets). It sits above the config and the providers it asks; the report it
fills is `portal.contracts.findings`, printed by `portal.cli.contracts`.

Exit codes: 0 clean, 1 contract errors or unversioned breaking changes, 2 usage or config
error.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portal.config import FeatureConfig, PortalConfig, load_config
from portal.contracts.compat import compare
from portal.contracts.feature import FeatureContract, parse_contract
from portal.contracts.findings import (
    CheckReport,
    FeatureResult,
    Finding,
    UsageError,
    report_comparison,
)
from portal.contracts.locate import locate, read_text, shown
from portal.errors import ConfigError, ContractError
from portal.providers.capability import check_target
from portal.providers.registry import known_kinds
from portal.providers.settings import ProviderSettings

__all__ = ["run_check"]


class _Feature:
    """What the check reads of one feature: its contract, the targets a call can reach
    (primary, fallbacks, canary; each once, in that order) and its data-path policy."""

    __slots__ = ("contract", "name", "regions", "tags", "targets")

    def __init__(self, name: str, feat: FeatureConfig) -> None:
        self.name = name
        self.contract = feat.contract
        targets = [feat.primary, *feat.fallbacks]
        if feat.canary is not None:
            targets.append(feat.canary.target)
        self.targets = list(dict.fromkeys(targets))
        allowed = feat.allowed
        self.regions = None if allowed is None or allowed.regions is None else allowed.regions
        self.tags = None if allowed is None or allowed.tags is None else allowed.tags


def _default_config() -> Path:
    for candidate in ("portal.toml", "pyproject.toml"):
        if Path(candidate).exists():
            return Path(candidate)
    raise UsageError("no portal.toml or pyproject.toml here; pass --config PATH")


def _load_config(path: Path) -> PortalConfig:
    if not path.exists():
        raise UsageError(f"{path}: config file not found")
    data = _read_toml(path)
    try:
        # contract checks run in CI without secrets: credentials are not needed
        return load_config(data, keys_required=False)
    except ConfigError as exc:
        lines = [_relabel(e, path) for e in exc.errors]
        raise UsageError("\n".join(lines)) from None


def _relabel(line: str, path: Path) -> str:
    prefix = "tool.portal." if path.name == "pyproject.toml" else ""
    return (
        f"{path.name}: {prefix}{line[len('config: ') :]}" if line.startswith("config: ") else line
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("portal")
        if not isinstance(data, dict):
            raise UsageError(f"{path}: no [tool.portal] table")
    return data


def run_check(config_path: Path | None, against: str | None = None) -> CheckReport:
    """The whole check; raises `UsageError` for usage and config errors (exit 2)."""
    path = config_path or _default_config()
    cfg = _load_config(path)
    report = CheckReport()
    base = path.parent
    git = _Git(base, against) if against else None
    for name, feature in cfg.features.items():
        feat = _Feature(name, feature)
        result = FeatureResult(feat.name, feat.contract, None, feat.targets)
        report.features.append(result)
        kinds = _kinds(cfg, path, feat)
        _policy(cfg, path, feat, report)
        if not feat.contract:
            continue
        contract_path = (
            (base / feat.contract).resolve()
            if not Path(feat.contract).is_absolute()
            else Path(feat.contract)
        )
        where = shown(contract_path)
        text = read_text(contract_path)
        if text is None:
            report.findings.append(
                Finding(
                    "error",
                    "contract.missing",
                    f"contract file not found: {feat.contract}",
                    feat.name,
                    where,
                )
            )
            continue
        try:
            contract = parse_contract(text, where, name=feat.name, check_examples=False)
        except ContractError as exc:
            _contract_error(report, exc, feat.name, where, text)
            continue
        result.version = contract.version
        _examples(report, contract, feat.name, where, text)
        _capabilities(report, cfg, contract, feat, kinds, where, text)
        if git is not None:
            result.verdict = _against(report, git, contract, contract_path, feat.name, where, text)
    return report


def _kinds(cfg: PortalConfig, path: Path, feat: _Feature) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for target in feat.targets:
        provider, sep, model = target.partition(":")
        if not sep or not model:
            raise UsageError(
                f'{path}: features."{feat.name}": target {target!r} must be "provider:model"'
            )
        p = cfg.providers.get(provider)
        if p is not None:
            kinds[target] = p.kind or provider
        elif provider in known_kinds():
            kinds[target] = provider
        else:
            raise UsageError(
                f'{path}: features."{feat.name}": target {target!r} names provider '
                f"{provider!r}, which is neither configured under [providers] nor a known kind"
            )
    return kinds


def _policy(cfg: PortalConfig, path: Path, feat: _Feature, report: CheckReport) -> None:
    if feat.regions is None and feat.tags is None:
        return
    for target in feat.targets:
        name = target.partition(":")[0]
        p = cfg.providers.get(name)
        region = p.region if p else None
        tags = set(p.tags) if p else set()
        if feat.regions is not None:
            if region is None:
                report.findings.append(
                    Finding(
                        "error",
                        "policy.region",
                        f"{target}: provider {name!r} declares no region, so the policy "
                        f"allowed.regions = {feat.regions} cannot be proven; set region under "
                        f"[providers.{name}] or remove the target",
                        feat.name,
                        shown(path),
                        target=target,
                        keyword="regions",
                    )
                )
            elif region not in feat.regions:
                report.findings.append(
                    Finding(
                        "error",
                        "policy.region",
                        f"{target}: provider {name!r} is in region {region!r}, outside "
                        f"allowed.regions = {feat.regions}",
                        feat.name,
                        shown(path),
                        target=target,
                        keyword="regions",
                    )
                )
        if feat.tags:
            missing = sorted(set(feat.tags) - tags)
            if missing:
                report.findings.append(
                    Finding(
                        "error",
                        "policy.tags",
                        f"{target}: provider {name!r} lacks tag(s) {missing} required by "
                        f"allowed.tags = {feat.tags}",
                        feat.name,
                        shown(path),
                        target=target,
                        keyword="tags",
                    )
                )


def _contract_error(
    report: CheckReport, exc: ContractError, feature: str, shown: str, text: str
) -> None:
    details = exc.details or [{}]
    lines = str(exc).splitlines() or [str(exc)]
    for i, detail in enumerate(details):
        pointer = detail.get("pointer")
        line = detail.get("line") or (locate(text, str(pointer), shown) if pointer else None)
        message = lines[i] if i < len(lines) and len(lines) == len(details) else str(exc)
        report.findings.append(
            Finding(
                "error",
                "contract.invalid",
                message,
                feature,
                shown,
                line,
                str(pointer) if pointer else None,
                keyword=detail.get("keyword"),
            )
        )


def _examples(
    report: CheckReport, contract: FeatureContract, feature: str, shown: str, text: str
) -> None:
    for err in contract.example_errors():
        i, part = err["example"], err["part"]
        inner = err["pointer"] if err["pointer"] != "/" else ""
        pointer = f"/examples/{i}/{part}{inner}"
        report.findings.append(
            Finding(
                "error",
                "example.invalid",
                f"examples[{i}].{part} at {err['pointer']}: {err['message']} "
                f"(keyword {err['keyword']!r})",
                feature,
                shown,
                locate(text, f"/examples/{i}/{part}", shown),
                pointer,
                keyword=err["keyword"],
            )
        )


def _capabilities(
    report: CheckReport,
    cfg: PortalConfig,
    contract: FeatureContract,
    feat: _Feature,
    kinds: dict[str, str],
    shown: str,
    text: str,
) -> None:
    for target in feat.targets:
        kind = kinds[target]
        try:
            name = target.partition(":")[0]
            provider = cfg.providers.get(name)
            options = dict(provider.options) if provider else None
            settings = (
                ProviderSettings(
                    name,
                    kind,
                    region=provider.region,
                    tags=list(provider.tags),
                    options=dict(provider.options),
                )
                if provider
                else None
            )
            issues = check_target(contract, target, kind, options=options, provider=settings)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        for issue in issues:
            code = {
                "error": "capability.unsupported",
                "warning": "capability.note",
                "info": "capability.translated",
            }[issue.severity]
            report.findings.append(
                Finding(
                    issue.severity,
                    code,
                    f"{target} ({kind}): {issue.message}",
                    feat.name,
                    shown,
                    locate(text, issue.pointer, shown),
                    issue.pointer,
                    target,
                    issue.keyword,
                )
            )


class _Git:
    def __init__(self, where: Path, ref: str) -> None:
        self.ref = ref
        top = self._run(["rev-parse", "--show-toplevel"], where.resolve())
        if top.returncode != 0:
            raise UsageError(f"--against {ref}: {where} is not inside a git repository")
        self.top = Path(top.stdout.strip()).resolve()
        ok = self._run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], self.top)
        if ok.returncode != 0:
            raise UsageError(
                f"--against {ref}: unknown git ref (in CI, fetch it first, e.g. "
                "actions/checkout with fetch-depth: 0)"
            )

    @staticmethod
    def _run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
            )
        except FileNotFoundError:
            raise UsageError("--against needs git on PATH") from None

    def show(self, path: Path) -> str | None:
        """The file's text at the ref, or None if it did not exist there."""
        rel = path.resolve().relative_to(self.top).as_posix()
        out = self._run(["show", f"{self.ref}:{rel}"], self.top)
        return out.stdout if out.returncode == 0 else None


def _against(
    report: CheckReport,
    git: _Git,
    contract: FeatureContract,
    path: Path,
    feature: str,
    shown: str,
    text: str,
) -> str | None:
    try:
        old_text = git.show(path)
    except ValueError:
        raise UsageError(f"{path}: outside the git repository at {git.top}") from None
    if old_text is None:
        report.findings.append(
            Finding(
                "info", "compat.new", f"new contract (not present at {git.ref})", feature, shown
            )
        )
        return "new"
    try:
        old = parse_contract(old_text, f"{shown}@{git.ref}", name=feature, check_examples=False)
    except ContractError as exc:
        report.findings.append(
            Finding(
                "warning",
                "compat.skipped",
                f"the version at {git.ref} does not load, so it cannot be compared ({exc})",
                feature,
                shown,
            )
        )
        return None
    cmp = compare(old, contract)
    report_comparison(report, cmp, feature, shown, text)
    return cmp.verdict
