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


# ------------------------------------------------------------------------------------------ engine layers

#: The ground floor: labels, kinds, rules and values that every other engine module may stand on.
GROUND = "engine.domain"
#: Import cycles left in engine/, each with why (a new cycle fails the test; a listed one that is gone too, so
#: the list only shrinks).  None: the record check (engine.case.record_check) stands above audit, ledger, schema.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _engine_graph() -> dict[str, set[str]]:
    """Every engine module -> the engine modules it imports, *including* imports under ``TYPE_CHECKING`` and
    inside functions (a cycle mypy or a lazy import hides is still a cycle in the design)."""
    import grimp

    g = grimp.build_graph("engine", cache_dir=None)
    return {m: {i for i in g.find_modules_directly_imported_by(m) if i.split(".")[0] == "engine"} for m in g.modules}


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                scc = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    scc.add(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    found.append(frozenset(scc))
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_engine_has_no_import_cycle():
    cycles = set(_cycles(_engine_graph()))
    assert cycles - KNOWN_CYCLES == set(), f"new import cycles in engine/: {[sorted(c) for c in cycles - KNOWN_CYCLES]}"
    assert KNOWN_CYCLES - cycles == set(), "a known cycle is gone: take it off KNOWN_CYCLES"


def test_domain_imports_nothing_else_of_engine():
    graph = _engine_graph()
    ground = [m for m in graph if m == GROUND or m.startswith(GROUND + ".")]
    assert {f"{GROUND}.labels", f"{GROUND}.kinds", f"{GROUND}.rules"} <= set(ground)
    upward = {m: sorted(i for i in graph[m] if not (i == GROUND or i.startswith(GROUND + "."))) for m in ground}
    assert {m: i for m, i in upward.items() if i} == {}


def test_engine_layers_contract_is_declared():
    layers = [c for c in _contracts() if c.get("type") == "layers"]
    assert layers, "pyproject.toml must declare the engine's layers (import-linter checks them)"
    assert layers[0]["layers"][-1] == GROUND
