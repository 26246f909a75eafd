"""The engine's sinks of a run on their own: the CSV rows (the spec's threshold, each batch's model), a case file
(every result stored, the file closed complete or not) and the progress display."""

from __future__ import annotations

import threading

import pytest

from engine.case import ModelFacts
from engine.case.headless import HeadlessRun
from engine.case.store import CaseStore
from engine.distributed.payload import ModelPayload
from engine.pipeline import classify, scan
from engine.registry import Registry
from engine.report import cell_row
from engine.run import Progress, ResultBatch, Rows, RunSpec, Store, local, run


@pytest.fixture
def tiny_a(tiny_models_dir):
    return Registry([tiny_models_dir]).load("tiny_a")


def test_rows_are_the_reports_rows_at_the_specs_threshold(cells_dir, tiny_a):
    items = scan([cells_dir])
    results = list(classify(items, tiny_a))
    for threshold in (0.3, 0.7, None):
        rows = Rows(RunSpec.of(items, threshold))
        rows.add(ResultBatch(tuple(results[:5]), tiny_a, 5, 8))
        rows.add(ResultBatch(tuple(results[5:]), tiny_a, 8, 8))
        rows.finish(True)
        assert rows.rows == [cell_row(r, tiny_a, threshold) for r in results]


def test_rows_name_the_model_of_each_batch(cells_dir, tiny_models_dir, tiny_a):
    """A Ray batch carries the model with the provider of the actor that scored it: its rows say so."""
    items = scan([cells_dir])
    results = list(classify(items, tiny_a))
    on_actor = ModelPayload.from_registry(Registry([tiny_models_dir]), "tiny_a").report_model("ActorProvider")
    rows = Rows(RunSpec.of(items, 0.5))
    rows.add(ResultBatch(tuple(results[:4]), tiny_a, 4, 8))
    rows.add(ResultBatch(tuple(results[4:]), on_actor, 8, 8))
    assert rows.rows == [cell_row(r, tiny_a, 0.5) for r in results[:4]] + [
        cell_row(r, on_actor, 0.5) for r in results[4:]
    ]
    assert rows.rows[:4] != [cell_row(r, on_actor, 0.5) for r in results[:4]]  # the provider differs


def _stored(db) -> list:
    store = CaseStore.open(db, create=False, read_only=True)
    try:
        return [c for c in store.load().cells if c.status == "ok"]
    finally:
        store.close()


def test_store_keeps_every_result_and_closes_the_case_file(cells_dir, tiny_a, tmp_path):
    items = scan([cells_dir])
    db = tmp_path / "case.leukoscan"
    headless = HeadlessRun(CaseStore.open(db), ModelFacts.of(tiny_a), items, chunk=3)
    sink = Store(headless)
    outcome = run(RunSpec.of(headless.todo, headless.threshold, batch_size=2), local(tiny_a), [sink])
    assert outcome.done == 8 and sink.errors == [] and headless.record is not None
    assert len(_stored(db)) == 8  # closed: another reader sees every result


def test_an_interrupted_store_run_keeps_what_was_done(cells_dir, tiny_a, tmp_path):
    items = scan([cells_dir])
    db = tmp_path / "case.leukoscan"
    headless = HeadlessRun(CaseStore.open(db), ModelFacts.of(tiny_a), items)
    cancel = threading.Event()
    progress = Progress(lambda n: cancel.set())
    outcome = run(
        RunSpec.of(headless.todo, headless.threshold, batch_size=3), local(tiny_a), [Store(headless), progress], cancel
    )
    assert outcome.cancelled and outcome.done == 3
    assert len(_stored(db)) == 3
    again = HeadlessRun(CaseStore.open(db), ModelFacts.of(tiny_a), items)  # the next run does only the rest
    try:
        assert again.skipped == 3 and len(again.todo) == 5
    finally:
        again.finish()


def test_progress_advances_by_the_cells_of_each_batch(cells_dir, tiny_a):
    steps: list[int] = []
    run(RunSpec.of(scan([cells_dir]), 0.5, batch_size=3), local(tiny_a), [Progress(steps.append)])
    assert steps == [3, 3, 2]
