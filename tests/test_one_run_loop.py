"""Issue 27 part 2: one classification operator.  The app's run, the CLI's local run (with or without a case file)
and the Ray run (tests/engine/test_ray_engine.py) all go through ``engine.run.operator.run``, and no other module
of the engine or the app iterates the batch generators: a fourth run loop fails here."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest

from engine.cli import main
from engine.pipeline import scan
from engine.registry import Registry
from engine.run import Rows, Store, operator

REPO = Path(__file__).resolve().parents[1]
#: The result generators only the operator iterates (engine.pipeline's and the Ray driver's).
GENERATORS = {"classify", "classify_batches"}


def _callers(path: Path) -> set[str]:
    """The generators of engine.pipeline / engine.distributed.ray_engine that ``path`` imports or calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").rsplit(".", 1)[-1] in ("pipeline", "ray_engine"):
            found |= {a.name for a in node.names if a.name in GENERATORS}
        elif isinstance(node, ast.Attribute) and node.attr in GENERATORS:
            if isinstance(node.value, ast.Name) and node.value.id in ("pipeline", "ray_engine"):
                found.add(node.attr)
    return found


def test_the_finder_sees_both_ways_of_calling_a_generator(tmp_path):
    probe = tmp_path / "loop.py"
    probe.write_text("from engine.pipeline import classify, scan\nfor r in ray_engine.classify_batches(x, p): pass\n")
    assert _callers(probe) == {"classify", "classify_batches"}


def test_only_the_operator_iterates_the_result_generators():
    mine = {"engine/pipeline.py", "engine/distributed/ray_engine.py"}  # where they are defined
    loops = {
        rel: names
        for path in sorted([*REPO.glob("engine/**/*.py"), *REPO.glob("gui/**/*.py")])
        if not (rel := path.relative_to(REPO).as_posix()).startswith("engine/run/") and rel not in mine
        if (names := _callers(path))
    }
    assert not loops, f"a run loop outside engine.run: {loops} (drive engine.run.operator.run)"


@pytest.fixture
def runs(monkeypatch) -> list[tuple]:
    """Every call of the operator: (the spec, the sink types)."""
    calls: list[tuple] = []
    real = operator.run

    def spy(spec, source, sinks, cancel=None):
        calls.append((spec, [type(s).__name__ for s in sinks]))
        return real(spec, source, sinks, cancel)

    monkeypatch.setattr(operator, "run", spy)
    return calls


def test_the_cli_runs_the_operator(cells_dir, tiny_models_dir, tmp_path, runs, monkeypatch):
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "no-bundled"))
    common = ["--model", "tiny_a", "--models-dir", str(tiny_models_dir), "--no-progress", "-q"]
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "r.csv"), *common]) == 0
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "s.csv"),
                "--store",
                str(tmp_path / "c.leukoscan"),
                *common,
            ]
        )
        == 0
    )
    (plain, sinks), (stored, store_sinks) = runs
    assert len(plain.items) == len(stored.items) == 8
    assert sinks == [Rows.__name__, "Progress"] and store_sinks == [Store.__name__, "Progress"]


def test_the_app_runs_the_operator(cells_dir, tiny_models_dir, runs):
    from gui.service import EngineService, RunBatch, ToGuiThread

    class State:  # what gui.tasks gives a worker
        interrupt = threading.Event()
        partials: list = []

        def is_interruption_requested(self):
            return self.interrupt.is_set()

        def set_partial_result(self, value):
            self.partials.append(value)

    state, clf = State(), Registry([tiny_models_dir]).load("tiny_a")
    end = EngineService._run(state, scan([cells_dir]), clf, 3)
    ((spec, sinks),) = runs
    assert sinks == [ToGuiThread.__name__] and spec.threshold is None  # the document decides, at the shown threshold
    assert not end.cancelled and all(isinstance(b, RunBatch) for b in state.partials)
    assert [r.index for b in state.partials for r in b.results] == list(range(8))
