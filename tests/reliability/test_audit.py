"""The dependency audit (``.ci/audit.py``), offline only.

The OSV range evaluation runs on advisory YAML written here; the live path runs against a
local index on 127.0.0.1 serving project JSON written here, and audits a throwaway venv whose
installed distributions are dist-info directories written here. Nothing reaches the internet.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "audit.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("portal_ci_audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


audit = _load()


# ---------------------------------------------------------------- offline OSV snapshot


def _osv(root: Path, directory: str, vid: str, name: str, ranges: list[Any], **extra: Any) -> None:
    """Write one advisory in the PyPA advisory DB layout: vulns/<dir>/<ID>.yaml."""
    rec: dict[str, Any] = {
        "id": vid,
        "details": f"{name} test advisory {vid}",
        "aliases": [f"CVE-2099-{vid[-4:]}"],
        "modified": "2099-01-01T00:00:00Z",
        "published": "2099-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"name": name, "ecosystem": "PyPI", "purl": f"pkg:pypi/{name}"},
                "ranges": ranges,
                "versions": extra.pop("versions", None),
            }
        ],
    }
    rec.update(extra)
    d = root / "vulns" / directory
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{vid}.yaml").write_text(yaml.safe_dump(rec, sort_keys=False))


def _eco(*events: dict[str, str]) -> dict[str, Any]:
    return {"type": "ECOSYSTEM", "events": list(events)}


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    root = tmp_path / "osv"
    # introduced/fixed
    _osv(
        root,
        "rangelib",
        "PYSEC-2099-0001",
        "rangelib",
        [_eco({"introduced": "1.0"}, {"fixed": "1.4.2"})],
    )
    # fixed, then re-introduced and fixed again (events deliberately out of order)
    _osv(
        root,
        "twice",
        "PYSEC-2099-0002",
        "twice",
        [_eco({"introduced": "2.0"}, {"fixed": "1.0"}, {"introduced": "0"}, {"fixed": "2.1"})],
    )
    # last_affected: that version is affected, the next one is not
    _osv(
        root,
        "lastlib",
        "PYSEC-2099-0003",
        "lastlib",
        [_eco({"introduced": "0"}, {"last_affected": "1.11.0"})],
    )
    # an explicit versions list only, with a non-canonical spelling
    _osv(root, "listlib", "PYSEC-2099-0004", "listlib", [], versions=["0.12.01", "0.13"])
    # withdrawn: would match every version, must be ignored
    _osv(
        root,
        "listlib",
        "PYSEC-2099-0005",
        "listlib",
        [_eco({"introduced": "0"})],
        withdrawn="2099-02-01T00:00:00Z",
    )
    # a GIT range (commit ids) carries no version information
    _osv(
        root,
        "gitlib",
        "PYSEC-2099-0006",
        "gitlib",
        [
            {
                "type": "GIT",
                "repo": "https://example.invalid/g",
                "events": [{"introduced": "0"}, {"fixed": "abc123"}],
            }
        ],
    )
    # directory name not PEP 503 normalized (the real DB has vulns/jw.util)
    _osv(
        root,
        "Dotted.Name",
        "PYSEC-2099-0007",
        "dotted.name",
        [_eco({"introduced": "0"}, {"fixed": "3"})],
    )
    # a record in this directory about another package, and one for another ecosystem
    _osv(root, "rangelib", "PYSEC-2099-0008", "otherlib", [_eco({"introduced": "0"})])
    rec = yaml.safe_load((root / "vulns/rangelib/PYSEC-2099-0001.yaml").read_text())
    rec["id"] = "GHSA-not-pypi"
    rec["affected"][0]["package"]["ecosystem"] = "npm"
    rec["affected"][0]["ranges"] = [_eco({"introduced": "0"})]
    (root / "vulns/rangelib/GHSA-not-pypi.yaml").write_text(yaml.safe_dump(rec))
    return root


def _ids(snap: Any, name: str, version: str) -> list[str]:
    return sorted(f.id for f in snap.check(name, version))


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("rangelib", "0.9", []),
        ("rangelib", "1.0", ["PYSEC-2099-0001"]),
        ("rangelib", "1.4.1", ["PYSEC-2099-0001"]),
        ("rangelib", "1.4.2rc1", ["PYSEC-2099-0001"]),
        ("rangelib", "1.4.2", []),
        ("rangelib", "1.4.2.post1", []),
        ("twice", "0.5", ["PYSEC-2099-0002"]),
        ("twice", "1.5", []),
        ("twice", "2.0", ["PYSEC-2099-0002"]),
        ("twice", "2.1", []),
        ("lastlib", "1.11.0", ["PYSEC-2099-0003"]),
        ("lastlib", "1.11", ["PYSEC-2099-0003"]),
        ("lastlib", "1.11.1", []),
        ("listlib", "0.12.1", ["PYSEC-2099-0004"]),
        ("listlib", "0.13.0", ["PYSEC-2099-0004"]),
        ("listlib", "0.14", []),
        ("gitlib", "0.1", []),
        ("Dotted_Name", "2.9", ["PYSEC-2099-0007"]),
        ("dotted-name", "3.0", []),
        ("otherlib", "1.0", []),
        ("nolib", "1.0", []),
    ],
)
def test_osv_ranges(snapshot: Path, name: str, version: str, expected: list[str]) -> None:
    assert _ids(audit.OsvSnapshot(snapshot), name, version) == expected


def test_osv_finding_carries_fix_and_aliases(snapshot: Path) -> None:
    (f,) = audit.OsvSnapshot(snapshot).check("twice", "2.0.5")
    assert f.fixed_in == ["1.0", "2.1"]
    assert f.aliases == ["CVE-2099-0002"]
    assert f.source == "offline"


def test_osv_json_records_are_read(tmp_path: Path) -> None:
    d = tmp_path / "jsonlib"
    d.mkdir()
    rec = {
        "id": "PYSEC-2099-0100",
        "affected": [
            {
                "package": {"name": "jsonlib", "ecosystem": "PyPI"},
                "ranges": [_eco({"introduced": "0"}, {"fixed": "2"})],
            }
        ],
    }
    (d / "PYSEC-2099-0100.json").write_text(json.dumps(rec))
    snap = audit.OsvSnapshot(tmp_path)  # the vulns/ directory itself is accepted too
    assert _ids(snap, "jsonlib", "1.9") == ["PYSEC-2099-0100"]
    assert _ids(snap, "jsonlib", "2") == []


# ---------------------------------------------------------------- live index + fake venv


class _Index:
    """A local stand-in for PyPI's JSON API: path -> (status, body); remembers what was asked."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.asked: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.asked.append(self.path)
                status, body = index.routes.get(self.path, (404, b'{"message": "Not Found"}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pypi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def project(self, name: str, latest: str, vulns: list[dict[str, Any]] | None = None) -> None:
        doc = {
            "info": {"name": name, "version": latest},
            "releases": {latest: []},
            "urls": [],
            "vulnerabilities": vulns or [],
        }
        self.routes[f"/pypi/{name}/json"] = (200, json.dumps(doc).encode())


def _vuln(vid: str, fixed: str, withdrawn: str | None = None) -> dict[str, Any]:
    return {
        "id": vid,
        "aliases": [f"CVE-2099-{vid[-4:]}"],
        "details": f"test advisory {vid}",
        "summary": None,
        "fixed_in": [fixed],
        "link": f"https://osv.dev/vulnerability/{vid}",
        "source": "osv",
        "withdrawn": withdrawn,
    }


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv without pip whose only distributions are the ones written here."""
    root = tmp_path_factory.mktemp("auditvenv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for name, version in [
        ("VulnLib", "2.0"),
        ("Clean_Lib", "1.0"),
        ("oldlib", "1.0"),
        ("gone-lib", "0.1"),
        ("portal_sdk", "0.1.0"),
    ]:
        d = Path(site) / f"{name}-{version}.dist-info"
        d.mkdir()
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return py


@pytest.fixture
def index() -> Iterator[_Index]:
    idx = _Index()
    idx.project(
        "vulnlib",
        "2.0",
        [_vuln("PYSEC-2099-0201", "2.1"), _vuln("PYSEC-2099-0202", "2.2", "2099-03-01T00:00:00Z")],
    )
    idx.project("clean-lib", "1.0.0")
    idx.project("oldlib", "3.0", [_vuln("PYSEC-2099-0203", "3.1")])  # about 3.0, not 1.0
    # gone-lib is not served: 404
    yield idx
    idx.server.shutdown()
    idx.server.server_close()


def _run(
    venv: Path, *args: str | Path, ignore: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    cmd = [sys.executable, str(SCRIPT), "--python", str(venv), "--timeout", "5"]
    cmd += ["--ignore-file", str(ignore or venv.parent / "no-ignore-file.txt")]
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


def _rows(out: str) -> dict[str, list[str]]:
    """Table rows of the report (split on whitespace), by advisory id."""
    rows = (line.split() for line in out.splitlines())
    return {r[2]: r for r in rows if len(r) > 4 and r[2].startswith("PYSEC-")}


def test_vulnerable_latest_fails(venv: Path, index: _Index) -> None:
    p = _run(venv, "--index-url", index.url)
    assert p.returncode == 1, p.stdout + p.stderr
    rows = _rows(p.stdout)
    assert set(rows) == {
        "PYSEC-2099-0201"
    }  # the withdrawn one and oldlib's (about 3.0) are not findings
    assert rows["PYSEC-2099-0201"][:5] == [
        "VulnLib",
        "2.0",
        "PYSEC-2099-0201",
        "(CVE-2099-0201)",
        "2.1",
    ]
    assert rows["PYSEC-2099-0201"][5] == "live"
    assert "oldlib 1.0: not checked live (installed 1.0, latest 3.0)" in p.stdout
    assert "gone-lib 0.1: not on the index (404)" in p.stdout
    assert (
        "audit: 4 packages, 2 checked live, 0 checked offline, 1 vulnerabilities, 2 unchecked"
        in p.stdout
    )
    # PEP 503 names in the URLs, portal-sdk itself never asked about
    assert sorted(index.asked) == [
        "/pypi/clean-lib/json",
        "/pypi/gone-lib/json",
        "/pypi/oldlib/json",
        "/pypi/vulnlib/json",
    ]


def test_clean_index_passes_with_a_warning_and_strict_fails(venv: Path, index: _Index) -> None:
    index.project("vulnlib", "2.0", [_vuln("PYSEC-2099-0202", "2.2", "2099-03-01T00:00:00Z")])
    index.routes["/pypi/oldlib/json"] = (503, b"unavailable")
    p = _run(venv, "--index-url", index.url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No known vulnerabilities found." in p.stdout
    assert "WARNING: not checked" in p.stdout
    assert "oldlib 1.0: network error:" in p.stdout and "503" in p.stdout
    assert (
        "2 checked live, 0 checked offline, 0 vulnerabilities, 2 unchecked (1 network errors)"
        in p.stdout
    )
    assert index.asked.count("/pypi/oldlib/json") == 2  # retried once
    assert _run(venv, "--index-url", index.url, "--strict").returncode == 3


def test_unreachable_index_is_a_warning_not_a_failure(venv: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/pypi"
    p = _run(venv, "--index-url", dead)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (
        "0 checked live, 0 checked offline, 0 vulnerabilities, 4 unchecked (4 network errors)"
        in p.stdout
    )
    assert _run(venv, "--index-url", dead, "--strict").returncode == 3


def test_older_than_latest_is_checked_offline(venv: Path, index: _Index, tmp_path: Path) -> None:
    index.project("vulnlib", "2.0")
    osv = tmp_path / "osv"
    _osv(osv, "oldlib", "PYSEC-2099-0301", "oldlib", [_eco({"introduced": "0"}, {"fixed": "1.2"})])
    _osv(osv, "oldlib", "PYSEC-2099-0302", "oldlib", [_eco({"introduced": "0"}, {"fixed": "0.9"})])
    # vulnlib is latest and checked live: the (older) snapshot is not consulted for it
    _osv(osv, "vulnlib", "PYSEC-2099-0303", "vulnlib", [_eco({"introduced": "0"})])
    p = _run(venv, "--index-url", index.url, "--osv-dir", osv)
    assert p.returncode == 1, p.stdout + p.stderr
    rows = _rows(p.stdout)
    assert set(rows) == {"PYSEC-2099-0301"}
    assert rows["PYSEC-2099-0301"][:2] == ["oldlib", "1.0"] and rows["PYSEC-2099-0301"][4:6] == [
        "1.2",
        "offline",
    ]
    assert "Checked against the offline OSV snapshot only:" in p.stdout
    assert (
        "4 packages, 2 checked live, 2 checked offline, 1 vulnerabilities, 0 unchecked" in p.stdout
    )
    # the 404 package was checked offline, so strict is satisfied... but the finding still fails
    assert _run(venv, "--index-url", index.url, "--osv-dir", osv, "--strict").returncode == 1


def test_ignore_file(venv: Path, index: _Index, tmp_path: Path) -> None:
    ignore = tmp_path / "audit-ignore.txt"
    ignore.write_text(
        "# advisories we accept, with why\n"
        "CVE-2099-0201  only reachable through the XML parser, which portal never calls\n"
        "PYSEC-2000-0001  fixed long ago  # stale\n"
    )
    p = _run(venv, "--index-url", index.url, ignore=ignore)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "only reachable through the XML parser, which portal never calls" in p.stdout
    assert "0 vulnerabilities (1 ignored)" in p.stdout
    assert "ignore entry PYSEC-2000-0001 matched nothing" in p.stderr

    ignore.write_text("PYSEC-2099-0201\n")  # no reason given: refused
    p = _run(venv, "--index-url", index.url, ignore=ignore)
    assert p.returncode == 2
    assert "has no reason" in p.stderr


def test_no_live_uses_only_the_snapshot(venv: Path, index: _Index, tmp_path: Path) -> None:
    osv = tmp_path / "osv"
    _osv(
        osv,
        "clean-lib",
        "PYSEC-2099-0401",
        "Clean.Lib",
        [_eco({"introduced": "1.0"}, {"fixed": "1.0.1"})],
    )
    p = _run(venv, "--no-live", "--osv-dir", osv)
    assert p.returncode == 1, p.stdout + p.stderr
    assert set(_rows(p.stdout)) == {"PYSEC-2099-0401"}
    assert (
        "4 packages, 0 checked live, 4 checked offline, 1 vulnerabilities, 0 unchecked" in p.stdout
    )
    assert index.asked == []


def test_unreadable_snapshot_is_a_usage_error(venv: Path, tmp_path: Path) -> None:
    """A broken advisory file must stop the audit (exit 2), not pass as 'no advisories'."""
    d = tmp_path / "osv" / "vulns" / "oldlib"
    d.mkdir(parents=True)
    (d / "PYSEC-2099-0501.yaml").write_text("id: [unclosed\n")
    p = _run(venv, "--no-live", "--osv-dir", tmp_path / "osv")
    assert p.returncode == 2
    assert "PYSEC-2099-0501.yaml: not valid YAML" in p.stderr
    assert _run(venv, "--no-live", "--osv-dir", tmp_path / "missing").returncode == 2
