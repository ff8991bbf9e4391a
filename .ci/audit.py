#!/usr/bin/env python3
"""Audit the distributions installed in a virtualenv for known vulnerabilities.

Why not plain pip-audit: its PyPI service asks ``/pypi/<name>/<version>/json`` and OSV asks
api.osv.dev; where neither answers, pip-audit cannot say anything. This script uses what is
reachable more widely:

* **live**: PyPI's project JSON (``/pypi/<name>/json``). Its ``vulnerabilities`` list is PyPI's
  own advisory data (the source pip-audit uses) but it applies to the *latest* release only, so
  a package is checked live only when the installed version is the latest one.
* **offline** (``--osv-dir``): a checkout or extraction of the PyPA advisory database
  (``vulns/<package>/<ID>.yaml``, OSV format; ``.json`` files are read too). Every package that
  could not be checked live is evaluated against it (ECOSYSTEM ranges and ``versions`` lists).
  Reading the YAML files needs PyYAML (it is in portal's ``dev`` extra).

Exit status: 0 no vulnerability (a warning lists what could not be checked), 1 a vulnerability
not listed in the ignore file, 2 usage error (bad ignore file, unreadable OSV data, no python),
3 with ``--strict``: no vulnerability, but some package was checked neither live nor offline.
Stdlib plus ``packaging``: run it with the venv's python (``.venv/bin/python .ci/audit.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

DEFAULT_INDEX = "https://pypi.org/pypi"
DEFAULT_IGNORE = Path(__file__).resolve().parent / "audit-ignore.txt"
SELF = "portal-sdk"
USER_AGENT = "portal-audit/1 (.ci/audit.py; urllib)"

# Printed by the target interpreter: its installed distributions, first on sys.path wins.
_LIST_DISTS = """
import importlib.metadata as m, json
out = []
for d in m.distributions():
    name = d.metadata["Name"]
    if name:
        out.append([name, d.version])
print(json.dumps(out))
"""


class AuditError(Exception):
    """A usage problem (bad ignore file, unreadable OSV data): exit 2, never a silent pass."""


def normalize(name: str) -> str:
    """PEP 503 name: the form PyPI URLs and the advisory DB directories agree on."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Finding:
    """One advisory that applies to an installed version."""

    package: str
    version: str
    id: str
    aliases: list[str]
    fixed_in: list[str]
    source: str  # "live" or "offline"
    summary: str = ""
    ignored: str = ""  # the reason from the ignore file, when ignored

    def names(self) -> set[str]:
        return {self.id, *self.aliases}


@dataclass
class Result:
    """What was learned about one installed distribution."""

    name: str
    version: str
    live: bool = False
    offline: bool = False
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    network_error: bool = False


# ---------------------------------------------------------------- installed distributions


def installed(python: str) -> list[tuple[str, str]]:
    """(name, version) of every distribution the interpreter sees, without portal-sdk itself.

    Run isolated (``-I``) so the current directory and PYTHON* variables add nothing.
    """
    out = subprocess.run(
        [python, "-I", "-c", _LIST_DISTS], check=True, capture_output=True, text=True
    ).stdout
    seen: dict[str, tuple[str, str]] = {}
    for name, version in json.loads(out):
        key = normalize(name)
        if key != normalize(SELF) and key not in seen:
            seen[key] = (name, version)
    return sorted(seen.values(), key=lambda nv: normalize(nv[0]))


# ---------------------------------------------------------------- versions and OSV ranges


def parse_version(text: str) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def same_version(a: str, b: str) -> bool:
    """PEP 440 equality (1.0 == 1.0.0), falling back to text for non-PEP 440 versions."""
    va, vb = parse_version(a), parse_version(b)
    if va is not None and vb is not None:
        return va == vb
    return str(a) == str(b)


def in_range(version: Version, events: Sequence[dict[str, Any]]) -> bool:
    """OSV ECOSYSTEM range: walk the events in version order, as the OSV schema specifies.

    ``introduced`` switches on at that version, ``fixed`` switches off at it, ``last_affected``
    switches off just after it; ``"0"`` is below every version. ``limit`` only bounds GIT
    ranges and is ignored here.
    """
    points: list[tuple[Version, int, str]] = []
    order = {"introduced": 0, "fixed": 1, "last_affected": 2}
    for event in events:
        for kind, rank in order.items():
            if kind in event:
                raw = str(event[kind])
                at = Version("0") if raw == "0" else parse_version(raw)
                if at is None:
                    continue
                points.append((at, rank, kind))
    affected = False
    for at, _, kind in sorted(points, key=lambda p: (p[0], p[1])):
        if kind == "introduced" and version >= at:
            affected = True
        elif (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at):
            affected = False
    return affected


def osv_affects(entry: dict[str, Any], name: str, version: str) -> list[str] | None:
    """None when the OSV record does not apply to ``name`` at ``version``; else its fix versions.

    A record applies when it is not withdrawn and one of its PyPI ``affected`` entries for
    this package lists the version or has an ECOSYSTEM range containing it.
    """
    if entry.get("withdrawn"):
        return None
    parsed = parse_version(version)
    hit = False
    fixed: list[str] = []
    for aff in entry.get("affected") or []:
        pkg = aff.get("package") or {}
        if pkg.get("ecosystem") != "PyPI" or normalize(str(pkg.get("name", ""))) != normalize(name):
            continue
        listed = [str(v) for v in aff.get("versions") or []]
        this = any(same_version(version, v) for v in listed)
        for rng in aff.get("ranges") or []:
            if rng.get("type") != "ECOSYSTEM":
                continue
            events = rng.get("events") or []
            fixed += [str(e["fixed"]) for e in events if "fixed" in e]
            if parsed is not None and in_range(parsed, events):
                this = True
        hit = hit or this
    if not hit:
        return None
    return sorted(set(fixed), key=lambda v: (parse_version(v) or Version("0"), v))


class OsvSnapshot:
    """An offline PyPA advisory DB: ``<dir>/vulns/<package>/*.yaml`` (or ``<dir>/<package>``)."""

    def __init__(self, root: Path) -> None:
        base = root / "vulns" if (root / "vulns").is_dir() else root
        if not base.is_dir():
            raise AuditError(f"--osv-dir {root} is not a directory")
        # directory names are not always PEP 503 normalized (jw.util): index them
        self.dirs: dict[str, list[Path]] = {}
        for d in base.iterdir():
            if d.is_dir():
                self.dirs.setdefault(normalize(d.name), []).append(d)
        if not self.dirs:
            raise AuditError(f"--osv-dir {root} holds no advisory directories")

    def records(self, name: str) -> Iterable[dict[str, Any]]:
        for d in self.dirs.get(normalize(name), []):
            for path in sorted(d.iterdir()):
                if path.suffix == ".json":
                    try:
                        rec = json.loads(path.read_text(encoding="utf-8"))
                    except ValueError as exc:
                        raise AuditError(f"{path}: not valid JSON: {exc}")
                    if not isinstance(rec, dict):
                        raise AuditError(f"{path} is not an OSV record")
                    yield rec
                elif path.suffix in (".yaml", ".yml"):
                    yield _load_yaml(path)

    def check(self, name: str, version: str) -> list[Finding]:
        found = []
        for rec in self.records(name):
            fixed = osv_affects(rec, name, version)
            if fixed is not None:
                found.append(
                    Finding(
                        package=name,
                        version=version,
                        id=str(rec.get("id", "?")),
                        aliases=[str(a) for a in rec.get("aliases") or []],
                        fixed_in=fixed,
                        source="offline",
                        summary=str(rec.get("summary") or rec.get("details") or ""),
                    )
                )
        return found


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise AuditError(
            f"{path} is YAML and PyYAML is not installed; install it "
            "(pip install pyyaml, it is in portal's dev extra) or give OSV JSON files"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as exc:
        raise AuditError(f"{path}: not valid YAML: {exc}")
    if not isinstance(data, dict):
        raise AuditError(f"{path} is not an OSV record")
    return data


# ---------------------------------------------------------------- live: PyPI project JSON


class NotOnIndex(Exception):
    """The index answered 404: the project is not there (private or renamed package)."""


def fetch_project(index_url: str, name: str, timeout: float) -> dict[str, Any]:
    """GET ``<index>/<normalized name>/json``; one retry on anything but a 404."""
    url = f"{index_url.rstrip('/')}/{urllib.parse.quote(normalize(name))}/json"
    req = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
    )
    last: Exception | None = None
    for _ in range(2):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = json.loads(resp.read())
            if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
                raise ValueError("not a PyPI project JSON document")
            return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotOnIndex(url)
            last = exc
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets, bad JSON
            last = exc
    raise ConnectionError(f"{url}: {last}")


def check_live(result: Result, index_url: str, timeout: float) -> None:
    """Fill ``result`` from the project JSON when the installed version is the latest."""
    try:
        data = fetch_project(index_url, result.name, timeout)
    except NotOnIndex:
        result.notes.append("not on the index (404)")
        return
    except ConnectionError as exc:
        result.network_error = True
        result.notes.append(f"network error: {exc}")
        return
    latest = str(data["info"].get("version", ""))
    if not same_version(result.version, latest):
        result.notes.append(f"not checked live (installed {result.version}, latest {latest})")
        return
    result.live = True
    for vuln in data.get("vulnerabilities") or []:
        if vuln.get("withdrawn"):
            continue
        result.findings.append(
            Finding(
                package=result.name,
                version=result.version,
                id=str(vuln.get("id", "?")),
                aliases=[str(a) for a in vuln.get("aliases") or []],
                fixed_in=[str(v) for v in vuln.get("fixed_in") or []],
                source="live",
                summary=str(vuln.get("summary") or vuln.get("details") or ""),
            )
        )


# ---------------------------------------------------------------- ignore file


def load_ignores(path: Path) -> dict[str, str]:
    """``ADVISORY-ID  reason`` per line, ``#`` comments; the reason is required (why ignore?)."""
    if not path.exists():
        return {}
    ignores: dict[str, str] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise AuditError(f"{path}:{n}: '{parts[0]}' has no reason; write 'ID reason'")
        ignores[parts[0]] = parts[1].strip()
    return ignores


# ---------------------------------------------------------------- main


def _first_cve(aliases: Sequence[str]) -> str:
    return next((a for a in aliases if a.startswith("CVE-")), "")


def render(results: list[Result], strict: bool) -> tuple[str, int, int]:
    """The report text, the count of unignored findings and of unchecked packages."""
    lines: list[str] = []
    findings = [f for r in results for f in r.findings]
    if findings:
        rows = [("Package", "Version", "Advisory", "Fixed in", "Source", "Ignored")]
        for f in findings:
            cve = _first_cve(f.aliases)
            adv = f"{f.id} ({cve})" if cve and cve != f.id else f.id
            rows.append(
                (f.package, f.version, adv, ", ".join(f.fixed_in) or "-", f.source, f.ignored or "")
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    else:
        lines.append("No known vulnerabilities found.")
    unchecked = [r for r in results if not r.live and not r.offline]
    offline = [r for r in results if r.offline]
    if offline:
        lines.append("")
        lines.append("Checked against the offline OSV snapshot only:")
        lines += [f"  {r.name} {r.version}: {'; '.join(r.notes)}" for r in offline]
    if unchecked:
        lines.append("")
        lines.append("WARNING: not checked (neither live nor offline):")
        lines += [f"  {r.name} {r.version}: {'; '.join(r.notes)}" for r in unchecked]
    bad = [f for f in findings if not f.ignored]
    ignored = len(findings) - len(bad)
    errors = sum(r.network_error for r in results)
    lines.append("")
    lines.append(
        f"audit: {len(results)} packages, {sum(r.live for r in results)} checked live, "
        f"{len(offline)} checked offline, {len(bad)} vulnerabilities"
        + (f" ({ignored} ignored)" if ignored else "")
        + f", {len(unchecked)} unchecked ({errors} network errors)"
        + (" [strict]" if strict else "")
    )
    return "\n".join(lines), len(bad), len(unchecked)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except AuditError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--python", default=sys.executable, help="the venv's interpreter to audit")
    ap.add_argument("--index-url", default=DEFAULT_INDEX, help="PyPI JSON API base URL")
    ap.add_argument("--osv-dir", type=Path, help="offline PyPA advisory DB (vulns/<pkg>/*.yaml)")
    ap.add_argument("--ignore-file", type=Path, default=DEFAULT_IGNORE)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    ap.add_argument("--jobs", type=int, default=4, help="concurrent requests")
    ap.add_argument("--no-live", action="store_true", help="skip PyPI; offline snapshot only")
    ap.add_argument(
        "--strict", action="store_true", help="exit 3 when any package could not be checked"
    )
    ap.add_argument("--desc", action="store_true", help="print each advisory's summary")
    args = ap.parse_args(argv)

    ignores = load_ignores(args.ignore_file)
    snapshot = OsvSnapshot(args.osv_dir) if args.osv_dir else None
    try:
        dists = installed(args.python)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"audit: cannot list the distributions of {args.python}: {exc}", file=sys.stderr)
        return 2
    results = [Result(name, version) for name, version in dists]

    if args.no_live:
        for r in results:
            r.notes.append("live check skipped (--no-live)")
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(lambda r: check_live(r, args.index_url, args.timeout), results))
    if snapshot is not None:
        for r in results:
            if not r.live:
                r.findings += snapshot.check(r.name, r.version)
                r.offline = True

    used: set[str] = set()
    for r in results:
        for f in r.findings:
            hit = next((i for i in sorted(f.names()) if i in ignores), None)
            if hit is not None:
                f.ignored = ignores[hit]
                used.add(hit)

    text, bad, unchecked = render(results, args.strict)
    print(text)
    if args.desc:
        for f in (f for r in results for f in r.findings):
            print(f"\n{f.package} {f.id}: {' '.join(f.summary.split())}")
    for stale in sorted(set(ignores) - used):
        print(f"audit: note: ignore entry {stale} matched nothing (remove it?)", file=sys.stderr)
    if bad:
        return 1
    if unchecked and args.strict:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
