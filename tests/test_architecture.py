"""Layering: the engine never imports Qt or TensorFlow (import-linter contract in pyproject.toml),
and importing the engine at run time does not drag them in either."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return cfg["tool"]["importlinter"]["contracts"]


def test_engine_contract_is_declared():
    engine = [c for c in _contracts() if c.get("type") == "forbidden" and "engine" in c.get("source_modules", [])]
    assert engine, "pyproject.toml must declare a forbidden-imports contract for engine"
    forbidden = set().union(*(c["forbidden_modules"] for c in engine))
    assert {"PySide6", "tensorflow", "keras", "gui", "training"} <= forbidden


def test_import_linter_contracts_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = (
        [str(exe)]
        if exe.exists()
        else [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
        ]
    )
    p = subprocess.run([*cmd, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "BROKEN" not in p.stdout and " KEPT" in p.stdout


def test_engine_import_loads_no_qt_or_tensorflow():
    code = (
        "import sys, engine, engine.cli, engine.pipeline, engine.registry, engine.report, engine.paths;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'PySide6', 'tensorflow', 'keras', 'tf2onnx', 'gui', 'training'});"
        "print(','.join(bad))"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", f"engine pulled in: {p.stdout.strip()}"
