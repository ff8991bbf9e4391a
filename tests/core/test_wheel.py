"""The built wheel installs into a fresh virtualenv, offline, and its `portal` command runs the
demo from a scratch directory and reads the ledger with `portal report`, with no API key set; a
user's type checker sees portal's types from the installed wheel (``py.typed``).

No network: the wheel is built without build isolation (hatchling comes with the dev extra) and
pip installs it with ``--no-index``; its dependencies resolve against the packages of the
running environment, which the fresh venv sees through a ``.pth`` file (portal itself left out,
so only the wheel can provide it)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("hatchling")
pytest.importorskip("build")


def _is_portal(name: str) -> bool:
    """Entries of a site-packages folder that belong to an installed (maybe editable) portal."""
    low = name.lower()
    return (
        low == "portal"
        or low.startswith(("portal_sdk", "_portal_sdk", "__editable__.portal_sdk"))
        or low.startswith("_editable_impl_portal")
        or low.endswith(".pth")
    )


def _deps_without_portal(tmp_path: Path) -> Path:
    """A folder of links to every package installed here except portal."""
    deps = tmp_path / "deps"
    deps.mkdir()
    seen: set[str] = set()
    for key in ("purelib", "platlib"):
        site = Path(sysconfig.get_paths()[key])
        for entry in sorted(site.iterdir()) if site.is_dir() else []:
            if _is_portal(entry.name) or entry.name in seen:
                continue
            seen.add(entry.name)
            (deps / entry.name).symlink_to(entry)
    return deps


def _clean_env() -> dict[str, str]:
    """The environment a new user has: no API keys, no PYTHONPATH into the checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_KEY", "_TOKEN", "_SECRET"))
        and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        and not k.startswith(("AWS_", "AZURE_", "GOOGLE_"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INDEX"] = "1"
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The wheel built from this checkout, installed offline into a fresh venv: its folder,
    and the environment to run it in."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    env = _clean_env()
    dist = tmp_path / "dist"
    built = _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), "."],
        ROOT,
        env,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = dist.glob("portal_sdk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "portal/py.typed",
        "portal/metering/prices.json",
        "portal/contracts/contract.schema.json",
    ):
        assert shipped in names, f"{shipped} is missing from the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = _run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        tmp_path,
        env,
    ).stdout.strip()
    Path(purelib, "_installed_deps.pth").write_text(f"{_deps_without_portal(tmp_path)}\n")

    install = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-index",
            "--find-links",
            str(dist),
            "portal-sdk[cli,report]",
        ],
        tmp_path,
        env,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    assert "Successfully installed portal-sdk" in install.stdout
    return env_dir, env


def test_wheel_installs_offline_and_runs_demo_and_report(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    env_dir, env = installed
    py = env_dir / "bin" / "python"
    # the scratch directory is not the checkout: the installed wheel answers
    work = tmp_path / "scratch"
    work.mkdir()
    where = _run([str(py), "-c", "import portal; print(portal.__file__)"], work, env)
    assert where.stdout.strip().startswith(str(env_dir)), where.stdout + where.stderr

    portal_cmd = str(env_dir / "bin" / "portal")
    demo = _run([portal_cmd, "demo", "--users", "40", "--no-html"], work, env)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "portal demo: 40 user actions" in demo.stdout
    assert "errors seen by users" in demo.stdout
    assert (work / ".portal" / "demo" / "ledger.db").is_file()

    report = _run(
        [portal_cmd, "report", "--config", ".portal/demo/portal.toml", "--since", "all"],
        work,
        env,
    )
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    assert "support.answer" in report.stdout

    # a production config whose keys are not exported here: reading needs none of them
    (work / "portal.toml").write_text(
        '[portal]\nledger = "sqlite:///.portal/demo/ledger.db"\n'
        '[providers.openai]\napi_key = "${OPENAI_API_KEY}"\n'
        '[providers.anthropic]\napi_key = "${ANTHROPIC_API_KEY}"\n'
        '[features."support.answer"]\nprimary = "openai:gpt-4.1-mini"\n'
        'fallbacks = ["anthropic:claude-haiku-4-5"]\n',
        encoding="utf-8",
    )
    for command in (["report", "--since", "all"], ["route", "explain", "support.answer"]):
        done = _run([portal_cmd, *command], work, env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "support.answer" in done.stdout


def test_a_users_type_checker_sees_the_output_type_from_the_wheel(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """mypy on a user's file, against the installed wheel (not this checkout): the wheel is
    typed, ``chat(..., output=Answer).output`` is an ``Answer`` on both clients, and without
    ``output=`` it is ``Any``."""
    env_dir, env = installed
    snippet = tmp_path / "use_portal.py"
    snippet.write_text(
        "import portal\n"
        "from pydantic import BaseModel\n"
        "class Answer(BaseModel):\n"
        "    text: str\n"
        "def f(c: portal.Client) -> None:\n"
        "    reveal_type(c.chat(feature='support', messages=[], output=Answer).output)\n"
        "    reveal_type(c.chat(feature='support', messages=[]).output)\n"
        "async def g(c: portal.AsyncClient) -> None:\n"
        "    reveal_type((await c.chat(model='a:m', messages=[], output=Answer)).output)\n"
    )
    out = _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--python-executable",
            str(env_dir / "bin" / "python"),
            "--no-error-summary",
            str(snippet),
        ],
        tmp_path,  # no checkout on the search path: only the installed wheel
        {k: v for k, v in env.items() if k != "MYPYPATH"},
    )
    notes = [line.split(": ", 1)[1] for line in out.stdout.splitlines()]
    assert notes == [
        'note: Revealed type is "use_portal.Answer"',
        'note: Revealed type is "Any"',
        'note: Revealed type is "use_portal.Answer"',
    ], out.stdout + out.stderr
