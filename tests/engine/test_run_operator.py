"""The classification operator (engine.run): a spec resolved once, a batch source driven into sinks, every sink
finished once with whether the run completed (after a cancel, a failing model and a failing sink too)."""

from __future__ import annotations

import threading

import pytest

from engine.card import ModelError
from engine.pipeline import classify, scan
from engine.registry import Registry
from engine.run import ResultBatch, RunSpec, local, run


class _Log:
    """A sink that keeps what it is given (and can act on a batch: cancel the run, fail)."""

    def __init__(self, on_add=None, fail_finish: bool = False):
        self.batches: list[ResultBatch] = []
        self.finished: list[bool] = []
        self.on_add, self.fail_finish = on_add, fail_finish

    def add(self, batch: ResultBatch) -> None:
        self.batches.append(batch)
        if self.on_add is not None:
            self.on_add(batch)

    def finish(self, complete: bool) -> None:
        self.finished.append(complete)
        if self.fail_finish:
            raise OSError("disk full")


@pytest.fixture
def tiny_a(tiny_models_dir):
    return Registry([tiny_models_dir]).load("tiny_a")


def test_every_sink_gets_every_batch_in_order_then_finish_complete(cells_dir, tiny_a):
    items = scan([cells_dir])
    spec = RunSpec.of(items, 0.5, batch_size=3)
    a, b = _Log(), _Log()
    outcome = run(spec, local(tiny_a), [a, b])
    assert [len(x.results) for x in a.batches] == [3, 3, 2]
    assert [x.done for x in a.batches] == [3, 6, 8] and {x.total for x in a.batches} == {8}
    assert all(x.model is tiny_a for x in a.batches)
    assert [x.results for x in b.batches] == [x.results for x in a.batches]
    assert a.finished == b.finished == [True]
    assert (outcome.done, outcome.total, outcome.cancelled) == (8, 8, False) and outcome.seconds > 0
    got = [r.p_all for x in a.batches for r in x.results]
    assert got == [r.p_all for r in classify(items, tiny_a, batch_size=3)]  # the same pipeline underneath


def test_a_cancel_ends_the_run_with_the_cells_done_and_finish_incomplete(cells_dir, tiny_a):
    cancel = threading.Event()
    sink = _Log(on_add=lambda batch: cancel.set())
    outcome = run(RunSpec.of(scan([cells_dir]) * 3, 0.5, batch_size=2), local(tiny_a), [sink], cancel)
    assert len(sink.batches) == 1 and sink.finished == [False]
    assert (outcome.done, outcome.total, outcome.cancelled) == (2, 24, True)


def test_a_failing_model_finishes_the_sinks_then_raises(cells_dir, tiny_a):
    def source(spec, cancel):
        yield from local(tiny_a)(spec, cancel)  # the first batch ...
        raise ModelError("model 'tiny_a' failed on a batch: out of memory")  # ... then the model fails

    items = scan([cells_dir])
    sink = _Log()
    with pytest.raises(ModelError, match="out of memory"):
        run(RunSpec.of(items, 0.5, batch_size=len(items)), source, [sink])
    assert len(sink.batches) == 1 and sink.finished == [False]  # what was classified before is kept


def test_the_models_error_is_raised_even_when_a_sink_then_fails_to_finish(cells_dir, tiny_a, caplog):
    def source(spec, cancel):
        raise ModelError("model 'tiny_a' failed on a batch: out of memory")
        yield  # a generator

    first, second = _Log(fail_finish=True), _Log()
    with pytest.raises(ModelError, match="out of memory"):
        run(RunSpec.of(scan([cells_dir]), 0.5), source, [first, second])
    assert first.finished == second.finished == [False]
    assert "finishing _Log after a failed run failed too: disk full" in caplog.text


def test_a_sink_that_fails_to_finish_does_not_keep_the_others_from_finishing(cells_dir, tiny_a):
    first, second = _Log(fail_finish=True), _Log()
    with pytest.raises(OSError, match="disk full"):
        run(RunSpec.of(scan([cells_dir]), 0.5), local(tiny_a), [first, second])
    assert first.finished == second.finished == [True]


def test_nothing_to_classify_is_a_complete_run(tiny_a):
    sink = _Log()
    outcome = run(RunSpec.of([], 0.5), local(tiny_a), [sink])
    assert sink.batches == [] and sink.finished == [True] and not outcome.cancelled


@pytest.mark.parametrize(
    "threshold,batch_size,message", [(1.5, 8, "between 0 and 1"), (0.0, 8, "between 0 and 1"), (0.5, 0, "at least 1")]
)
def test_a_spec_refuses_what_no_run_could_use(threshold, batch_size, message):
    with pytest.raises(ValueError, match=message):
        RunSpec.of([], threshold, batch_size)
    assert RunSpec.of([], None, 4).threshold is None  # the app: its case document decides
