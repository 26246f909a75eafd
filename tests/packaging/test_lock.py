"""requirements/dev.lock pins every package `make venv-all` installs (tests, bundle builds): a dependency added to
pyproject.toml without `make lock` would be missing from the lock, or pinned outside the declared range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCKED_EXTRAS = ("train", "dev", "ray")  # what the Makefile's venv-all installs


def _pins() -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, marker)] (a universal lock may pin a package twice, for different Pythons)."""
    pins: dict[str, list[tuple[str, str]]] = {}
    for line in (REPO / "requirements" / "dev.lock").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)\s*(?:;\s*(.*))?$", line.strip())
        if m:
            pins.setdefault(canonicalize_name(m.group(1).split("[")[0]), []).append((m.group(2), m.group(3) or ""))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in LOCKED_EXTRAS:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_every_declared_dependency_is_pinned_inside_its_range():
    pins = _pins()
    env = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.0"}
    problems = []
    for req in _declared():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        got = pins.get(canonicalize_name(req.name))
        if not got:
            problems.append(f"{req.name}: not in requirements/dev.lock (run `make lock`)")
            continue
        for version, _marker in got:
            if not req.specifier.contains(version, prereleases=True):
                problems.append(f"{req.name}=={version} is outside {req.specifier} (run `make lock`)")
    assert not problems, problems


def test_the_makefile_installs_the_lock():
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "LOCK := requirements/dev.lock" in text
    assert re.search(r"^\t\$\(PIP\) install -q -r \$\(LOCK\)$", text, re.M)
