"""The built wheel installs into a fresh virtualenv and `portal demo` runs from there."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_and_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("portal_sdk-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    # the price table ships inside the wheel
    listing = subprocess.run(
        [
            str(py),
            "-c",
            (
                "import importlib.resources as r; "
                "print(r.files('portal.metering').joinpath('prices.json').is_file())"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.strip() == "True"
    demo = subprocess.run(
        [
            str(env_dir / "bin" / "portal"),
            "demo",
            "--users",
            "40",
            "--no-html",
            "--out",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "portal demo: 40 user actions" in demo.stdout
    assert "errors seen by users" in demo.stdout
