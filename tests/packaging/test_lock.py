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


def _app_pins() -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for line in (REPO / "requirements" / "app.lock").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line.strip())
        if m:
            pins.setdefault(canonicalize_name(m.group(1).split("[")[0]), set()).add(m.group(2))
    return pins


def test_the_app_lock_pins_the_apps_dependencies_at_the_tested_versions():
    """`make run` installs requirements/app.lock: every runtime dependency, at a version dev.lock (the tests') has."""
    app, dev = _app_pins(), _pins()
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    missing = [r for r in map(Requirement, project["dependencies"]) if canonicalize_name(r.name) not in app]
    assert not missing, f"not in requirements/app.lock (run `make lock`): {missing}"
    differ = {n: (v, sorted(x for x, _ in dev.get(n, []))) for n, vs in app.items() for v in vs}
    differ = {n: d for n, d in differ.items() if d[0] not in d[1]}
    assert not differ, f"app.lock pins versions dev.lock does not (run `make lock`): {differ}"


def test_make_run_installs_the_app_lock():
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "APP_LOCK := requirements/app.lock" in text
    rule = text.split("$(VENV)/.app-installed:", 1)[1].split("\n\n", 1)[0]
    assert "$(PIP) install -q -r $(APP_LOCK)" in rule and "--no-deps -e ." in rule
