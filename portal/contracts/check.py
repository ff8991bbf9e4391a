"""`portal contracts check` and `portal contracts diff`: contracts in CI.

``check`` walks every feature of a config, and for each contract file it names reports:
the file and its schemas (against the declared JSON Schema draft), examples that do not
validate, what each reachable target (primary, fallbacks, canary) cannot serve or will have
translated, data-path policy violations, and with ``--against REF`` the changes since the
file at that git ref. ``diff OLD NEW`` is the compatibility analysis between two files.

Exit codes: 0 clean, 1 contract errors or unversioned breaking changes, 2 usage or config
error. Output formats: ``text`` (people), ``json`` (tools; documented in docs/contracts.md,
``schema_version`` 1), ``github`` (workflow annotations).
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from portal.contracts.compat import Comparison, compare
from portal.contracts.feature import FeatureContract, load_contract, parse_contract
from portal.errors import ConfigError, ContractError

__all__ = ["CheckReport", "Finding", "UsageError", "run_check", "run_diff"]

JSON_SCHEMA_VERSION = 1
Severity = Literal["error", "warning", "info"]
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments, unreadable config, unknown git ref: exit code 2."""


@dataclass(slots=True)
class Finding:
    severity: Severity
    code: str
    message: str
    feature: str | None = None
    file: str | None = None
    line: int | None = None
    pointer: str | None = None
    target: str | None = None
    keyword: str | None = None


@dataclass(slots=True)
class FeatureResult:
    feature: str
    contract: str | None
    version: str | None
    targets: list[str]
    verdict: str | None = None


@dataclass(slots=True)
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    features: list[FeatureResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if any(f.severity == "error" for f in self.findings) else EXIT_OK

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def to_json(self, command: str = "check") -> dict[str, Any]:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "command": command,
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "summary": {
                "features": len(self.features),
                "contracts": sum(1 for f in self.features if f.contract),
                "errors": self.count("error"),
                "warnings": self.count("warning"),
                "info": self.count("info"),
            },
            "features": [asdict(f) for f in self.features],
            "findings": [asdict(f) for f in self.findings],
        }


# ---------------------------------------------------------------------------------- config


@dataclass(slots=True)
class _Feature:
    name: str
    contract: str | None
    targets: list[str]
    regions: list[str] | None
    tags: list[str] | None


@dataclass(slots=True)
class _Provider:
    name: str
    kind: str
    region: str | None
    tags: list[str]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Config:
    path: Path
    features: list[_Feature]
    providers: dict[str, _Provider]


def _default_config() -> Path:
    for candidate in ("portal.toml", "pyproject.toml"):
        if Path(candidate).exists():
            return Path(candidate)
    raise UsageError("no portal.toml or pyproject.toml here; pass --config PATH")


def _load_config(path: Path) -> _Config:
    if not path.exists():
        raise UsageError(f"{path}: config file not found")
    try:
        from portal.config import load_config  # the lead's loader, once it exists
    except ImportError:
        return _load_config_minimal(path)
    data = _read_toml(path)
    try:
        # contract checks run in CI without secrets: credentials are not needed
        cfg = load_config(data, keys_required=False)
    except ConfigError as exc:
        lines = [_relabel(e, path) for e in exc.errors]
        raise UsageError("\n".join(lines)) from None
    return _from_portal_config(path, cfg)


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


def _from_portal_config(path: Path, cfg: Any) -> _Config:
    providers: dict[str, _Provider] = {}
    for name, p in (getattr(cfg, "providers", None) or {}).items():
        providers[name] = _Provider(
            name,
            str(getattr(p, "kind", None) or name),
            getattr(p, "region", None),
            list(getattr(p, "tags", None) or []),
            dict(getattr(p, "options", None) or {}),
        )
    features: list[_Feature] = []
    for name, f in (getattr(cfg, "features", None) or {}).items():
        targets = _targets(
            getattr(f, "primary", None),
            getattr(f, "fallbacks", None) or [],
            getattr(getattr(f, "canary", None), "target", None),
        )
        allowed = getattr(f, "allowed", None)
        regions = _opt_list(getattr(allowed, "regions", None) if allowed is not None else None)
        tags = _opt_list(getattr(allowed, "tags", None) if allowed is not None else None)
        contract = getattr(f, "contract", None)
        features.append(_Feature(name, str(contract) if contract else None, targets, regions, tags))
    return _Config(path, features, providers)


def _load_config_minimal(path: Path) -> _Config:
    """Read just the keys the check needs, until portal.config exists."""
    data = _read_toml(path)
    providers: dict[str, _Provider] = {}
    for name, p in (data.get("providers") or {}).items():
        if not isinstance(p, dict):
            raise UsageError(f"{path}: providers.{name}: must be a table")
        providers[name] = _Provider(
            name,
            str(p.get("kind") or name),
            p.get("region"),
            list(p.get("tags") or []),
            dict(p.get("options") or {}),
        )
    features: list[_Feature] = []
    for name, f in (data.get("features") or {}).items():
        if not isinstance(f, dict):
            raise UsageError(f'{path}: features."{name}": must be a table')
        canary = f.get("canary") or {}
        allowed = f.get("allowed") or {}
        targets = _targets(f.get("primary"), f.get("fallbacks") or [], canary.get("target"))
        features.append(
            _Feature(
                name,
                f.get("contract"),
                targets,
                _opt_list(allowed.get("regions")),
                _opt_list(allowed.get("tags")),
            )
        )
    return _Config(path, features, providers)


def _targets(primary: Any, fallbacks: Iterable[Any], canary: Any) -> list[str]:
    out: list[str] = []
    for t in [primary, *fallbacks, canary]:
        if t is None:
            continue
        s = str(getattr(t, "id", None) or t)
        if s not in out:
            out.append(s)
    return out


def _opt_list(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]


# ----------------------------------------------------------------------------------- check


def run_check(config_path: Path | None, against: str | None = None) -> CheckReport:
    """The whole check; raises `UsageError` for usage and config errors (exit 2)."""
    cfg = _load_config(config_path or _default_config())
    report = CheckReport()
    base = cfg.path.parent
    git = _Git(base, against) if against else None
    for feat in cfg.features:
        result = FeatureResult(feat.name, feat.contract, None, feat.targets)
        report.features.append(result)
        kinds = _kinds(cfg, feat, report)
        _policy(cfg, feat, report)
        if not feat.contract:
            continue
        path = (
            (base / feat.contract).resolve()
            if not Path(feat.contract).is_absolute()
            else Path(feat.contract)
        )
        shown = _shown(path)
        text = _read(path)
        if text is None:
            report.findings.append(
                Finding(
                    "error",
                    "contract.missing",
                    f"contract file not found: {feat.contract}",
                    feat.name,
                    shown,
                )
            )
            continue
        try:
            contract = parse_contract(text, shown, name=feat.name, check_examples=False)
        except ContractError as exc:
            _contract_error(report, exc, feat.name, shown, text)
            continue
        result.version = contract.version
        _examples(report, contract, feat.name, shown, text)
        _capabilities(report, cfg, contract, feat, kinds, shown, text)
        if git is not None:
            result.verdict = _against(report, git, contract, path, feat.name, shown, text)
    return report


def _kinds(cfg: _Config, feat: _Feature, report: CheckReport) -> dict[str, str]:
    from portal.providers.registry import known_kinds

    kinds: dict[str, str] = {}
    for target in feat.targets:
        provider, sep, model = target.partition(":")
        if not sep or not model:
            raise UsageError(
                f'{cfg.path}: features."{feat.name}": target {target!r} must be "provider:model"'
            )
        p = cfg.providers.get(provider)
        if p is not None:
            kinds[target] = p.kind
        elif provider in known_kinds():
            kinds[target] = provider
        else:
            raise UsageError(
                f'{cfg.path}: features."{feat.name}": target {target!r} names provider '
                f"{provider!r}, which is neither configured under [providers] nor a known kind"
            )
    return kinds


def _policy(cfg: _Config, feat: _Feature, report: CheckReport) -> None:
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
                        _shown(cfg.path),
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
                        _shown(cfg.path),
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
                        _shown(cfg.path),
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
        line = detail.get("line") or (_locate(text, str(pointer), shown) if pointer else None)
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
                _locate(text, f"/examples/{i}/{part}", shown),
                pointer,
                keyword=err["keyword"],
            )
        )


def _capabilities(
    report: CheckReport,
    cfg: _Config,
    contract: FeatureContract,
    feat: _Feature,
    kinds: dict[str, str],
    shown: str,
    text: str,
) -> None:
    from portal.contracts.capability import check_target
    from portal.providers.base import ProviderSettings

    for target in feat.targets:
        kind = kinds[target]
        try:
            provider = cfg.providers.get(target.partition(":")[0])
            options = provider.options if provider else None
            settings = (
                ProviderSettings(
                    provider.name,
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
                    _locate(text, issue.pointer, shown),
                    issue.pointer,
                    target,
                    issue.keyword,
                )
            )


# ------------------------------------------------------------------------------------ git


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
    _report_comparison(report, cmp, feature, shown, text)
    return cmp.verdict


def _report_comparison(
    report: CheckReport, cmp: Comparison, feature: str | None, shown: str, text: str
) -> None:
    verdict = cmp.verdict
    for change in cmp.changes:
        if change.breaking and verdict == "breaking":
            sev: Severity = "error"
            code = "compat.breaking"
            msg = (
                f"breaking change without a major version bump "
                f"({cmp.old_version} -> {cmp.new_version}): {change.message}"
            )
        elif change.breaking:
            sev, code = "info", "compat.intended"
            msg = (
                f"breaking change, intended by the major version bump "
                f"({cmp.old_version} -> {cmp.new_version}): {change.message}"
            )
        else:
            sev, code, msg = "info", "compat.compatible", f"compatible change: {change.message}"
        report.findings.append(
            Finding(
                sev,
                code,
                msg,
                feature,
                shown,
                _locate(text, change.pointer, shown),
                change.pointer,
                keyword=change.rule,
            )
        )


# ------------------------------------------------------------------------------------ diff


def run_diff(old_path: Path, new_path: Path) -> tuple[Comparison, CheckReport]:
    try:
        old = load_contract(old_path, check_examples=False)
        new = load_contract(new_path, check_examples=False)
    except ContractError as exc:
        raise UsageError(str(exc)) from None
    cmp = compare(old, new)
    report = CheckReport()
    report.features.append(FeatureResult(new.name, str(new_path), new.version, [], cmp.verdict))
    _report_comparison(report, cmp, new.name, _shown(new_path), _read(new_path) or "")
    return cmp, report


# ------------------------------------------------------------------------------ lookups


def _shown(path: Path) -> str:
    """The path as CI tools want it: relative to the working directory when inside it."""
    try:
        return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
    except ValueError:
        return path.as_posix()


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return None


def _pointer_keys(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]


def _locate(text: str, pointer: str | None, source: str) -> int | None:
    """Best-effort line (1-based) of a JSON pointer in a TOML or JSON contract file."""
    if not pointer or not text:
        return None
    keys = _pointer_keys(pointer)
    if not keys:
        return 1
    lines = text.splitlines()
    if source.lower().endswith(".json"):
        return _locate_json(lines, keys)
    return _locate_toml(lines, keys)


def _locate_json(lines: list[str], keys: list[str]) -> int | None:
    start, found = 0, None
    for key in keys:
        if key.isdigit():
            continue
        pat = re.compile(r'"' + re.escape(key) + r'"\s*:')
        for n in range(start, len(lines)):
            if pat.search(lines[n]):
                found, start = n + 1, n + 1
                break
    return found


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _header_keys(raw: str) -> list[str]:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s]+)', raw)
    return [a or b or c for a, b, c in parts]


def _locate_toml(lines: list[str], keys: list[str]) -> int | None:
    # array-of-tables index: /tools/1/... -> after the 2nd [[tools]] header
    start = 0
    path: list[str] = []
    rest = list(keys)
    if len(rest) >= 2 and rest[1].isdigit():
        name, index = rest[0], int(rest[1])
        seen = -1
        for n, line in enumerate(lines):
            m = _HEADER.match(line)
            if m and line.strip().startswith("[[") and _header_keys(m.group(1)) == [name]:
                seen += 1
                if seen == index:
                    start = n
                    break
        path = [name]
        rest = rest[2:]
        if not rest:
            return start + 1
    best = start + 1 if path else None
    full = path + [k for k in rest if not k.isdigit()]
    # the deepest table header that is a prefix of the key path
    header_line, depth = None, 0
    for n in range(start, len(lines)):
        m = _HEADER.match(lines[n])
        if not m:
            continue
        hk = _header_keys(m.group(1))
        if path and n > start and hk[: len(path)] != path:
            break
        if hk == full[: len(hk)] and len(hk) > depth:
            header_line, depth = n, len(hk)
    if header_line is not None:
        best = header_line + 1
        remaining = full[depth:]
        if remaining:
            pat = re.compile(r'^\s*["\']?' + re.escape(remaining[0]) + r'["\']?\s*=')
            for n in range(header_line + 1, len(lines)):
                if _HEADER.match(lines[n]):
                    break
                if pat.match(lines[n]):
                    return n + 1
        return best
    if full:
        pat = re.compile(r'^\s*["\']?' + re.escape(full[-1]) + r'["\']?\s*=')
        for n in range(start, len(lines)):
            if pat.match(lines[n]):
                return n + 1
    return best
