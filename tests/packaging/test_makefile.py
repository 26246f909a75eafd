"""``make sysdeps`` checks every Debian package it lists, and the Makefile picks python3.12 or python3.11.

dpkg-query, apt-get, id and the Pythons are fakes on PATH: nothing is installed, nothing is built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None or shutil.which("sh") is None, reason="needs make and sh")


def _deb_pkgs() -> list[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    return re.search(r"^DEB_PKGS\s*:=(.*)$", text, re.M).group(1).split()


def _fake(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text("#!/bin/sh\n" + script + "\n")
    (bin_dir / name).chmod(0o755)


def _make(args: list[str], path: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=path, LOG=str(tmp_path))
    env.pop("PYTHON", None)
    env.pop("MAKEFLAGS", None)
    return subprocess.run(
        [MAKE, "-s", "--no-print-directory", "-C", str(REPO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _sysdeps(tmp_path: Path, not_installed: set[str], apt_rc: int = 0) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin"
    missing = "|".join(sorted(not_installed)) or "-none-"
    _fake(
        fake,
        "dpkg-query",
        f"""for a; do p="$a"; done; echo "$p" >> "$LOG/queried"
case "$p" in {missing}) echo "dpkg-query: no packages found matching $p" >&2; exit 1;; esac
printf 'install ok installed' """,
    )
    _fake(fake, "apt-get", f'echo "$*" >> "$LOG/apt"; exit {apt_rc}')
    _fake(fake, "id", "echo 0")  # root: no sudo
    return _make(["sysdeps"], f"{fake}{os.pathsep}{os.environ['PATH']}", tmp_path)


def test_sysdeps_checks_every_listed_package_and_installs_the_missing_one(tmp_path):
    r = _sysdeps(tmp_path, {"libxcb-icccm4"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "queried").read_text().split() == _deb_pkgs()
    update, install = (tmp_path / "apt").read_text().splitlines()
    assert update.startswith("update") and install.split()[-1] == "libxcb-icccm4" and "install" in install.split()
    assert "libxcb-icccm4" in r.stdout


def test_sysdeps_installs_nothing_when_everything_is_there(tmp_path):
    r = _sysdeps(tmp_path, set())
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "queried").read_text().split()) == len(_deb_pkgs()) and not (tmp_path / "apt").exists()


def test_sysdeps_failure_says_what_to_install(tmp_path):
    r = _sysdeps(tmp_path, {"xvfb", "libgl1"}, apt_rc=100)
    assert r.returncode != 0
    assert "sudo apt-get install libgl1 xvfb" in r.stderr


@pytest.mark.parametrize(
    "pythons, chosen",
    [
        ({"python3.11": 0}, "python3.11"),
        ({"python3.12": 0, "python3.11": 0}, "python3.12"),
        ({"python3.12": 127, "python3.11": 0}, "python3.11"),  # a pyenv shim of an inactive version
        ({"python3.12": 1}, ""),  # no venv/ensurepip (Debian without python3.12-venv)
        ({}, ""),
    ],
)
def test_python_is_the_first_of_3_12_and_3_11_that_works(tmp_path, pythons, chosen):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, rc in pythons.items():
        _fake(fake, name, f"exit {rc}")
    r = _make(["--eval", "print-python: ; $(info PYTHON=$(PYTHON))", "print-python"], str(fake), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"PYTHON={chosen}"


def test_no_supported_python_says_what_to_install(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    r = _make([f"VENV={tmp_path / 'venv'}", "venv-app"], str(fake), tmp_path)
    assert r.returncode != 0 and not (tmp_path / "venv").exists()
    assert "needs Python 3.12 or 3.11" in r.stderr and "sudo apt-get install python3.12 python3.12-venv" in r.stderr
