"""The GPU route (issue 28 item 1): ``pip install -e ".[gpu]"`` resolved onnxruntime (a dependency) AND
onnxruntime-gpu, which overwrite each other.  Now there is no ``gpu`` extra, and ``make venv-gpu`` installs
requirements/gpu.txt (the app's dependencies without onnxruntime) with onnxruntime-gpu, and LeukoScan itself with
``--no-deps``: no pip run of the route can be asked for onnxruntime."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _gpu_reqs() -> list[Requirement]:
    lines = (REPO / "requirements" / "gpu.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(x) for x in (line.split("#")[0].strip() for line in lines) if x]


def test_no_extra_adds_onnxruntime_gpu_to_an_install_that_has_onnxruntime():
    project = _project()
    base = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert "onnxruntime" in base
    for extra, reqs in project.get("optional-dependencies", {}).items():
        names = {canonicalize_name(Requirement(r).name) for r in reqs}
        assert "onnxruntime-gpu" not in names, f"the {extra!r} extra would install both runtimes"


def test_gpu_requirements_are_the_app_dependencies_without_onnxruntime():
    app = {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, _project()["dependencies"])}
    gpu = {canonicalize_name(r.name): str(r.specifier) for r in _gpu_reqs()}
    assert "onnxruntime" not in gpu and "onnxruntime-gpu" not in gpu  # the runtime comes from ORT_GPU_SPEC
    del app["onnxruntime"]
    assert gpu == app


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_venv_gpu_never_asks_pip_for_onnxruntime(tmp_path):
    """What ``make venv-gpu`` would run (``make -n``): every pip install of the route either installs the GPU
    requirements with onnxruntime-gpu, or LeukoScan with --no-deps."""
    venv = tmp_path / "v"
    p = subprocess.run(
        ["make", "-n", "-B", "venv-gpu", f"VENV_GPU={venv}", "PYTHON=python3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    installs = [line for line in p.stdout.splitlines() if re.search(r"pip install(?! -q --upgrade pip)", line)]
    assert len(installs) == 2, p.stdout
    deps, app = installs
    assert "-r requirements/gpu.txt" in deps and "onnxruntime-gpu" in deps
    assert not re.search(r"onnxruntime(?!-gpu)", deps.replace("requirements/gpu.txt", ""))
    assert "--no-deps" in app and "-e ." in app


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")], check=True)


def test_gpu_parity_runs_cpu_against_cpu(tmp_path):
    """benchmarks/gpu_parity.py (gpu_check.sh's step 3) on the tiny models, CPU against CPU: parity OK, a speed."""
    import sys

    from tinymodels import make_tiny_model

    make_tiny_model(tmp_path, name="tiny_a", size=32, seed=0)
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_parity.py"), "--device", "cpu", "--models-dir", str(tmp_path)]
        + ["--n", "12"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert re.match(r"tiny_a: parity OK on 6 sample cells .*cells/s end to end on CPU .* 12 cells", p.stdout)
