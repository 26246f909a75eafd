"""The app's sink of a run (gui.service.ToGuiThread) on its own: the operator's batches reach the GUI thread as
RunBatch partial results, at most one per CHUNK_SECONDS, the rest when the run finishes (after an error too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.domain.kinds import CellStatus
from engine.pipeline import CellResult
from engine.run import ResultBatch
from gui import service
from gui.service import RunBatch, ToGuiThread


class _State:
    """What gui.tasks gives a worker: its partial results are kept here instead of queued to the GUI thread."""

    def __init__(self):
        self.partials: list[RunBatch] = []

    def set_partial_result(self, value):
        self.partials.append(value)


def _batches(sizes: list[int], total: int) -> list[ResultBatch]:
    out, done = [], 0
    for n in sizes:
        results = tuple(
            CellResult(
                done + k, Path(f"/c/{done + k}.bmp"), Path("/c"), ".", f"{done + k}.bmp", "", CellStatus.OK, "", 0.5
            )
            for k in range(n)
        )
        done += n
        out.append(ResultBatch(results, None, done, total))  # the app's sink never reads the model
    return out


def test_each_batch_goes_out_when_the_chunk_time_has_passed(monkeypatch):
    monkeypatch.setattr(service, "CHUNK_SECONDS", 0.0)
    state, batches = _State(), _batches([3, 3, 2], 8)
    sink = ToGuiThread(state, 8)
    for b in batches:
        sink.add(b)
    sink.finish(True)
    assert [(len(p.results), p.done, p.total) for p in state.partials] == [(3, 3, 8), (3, 6, 8), (2, 8, 8)]


def test_batches_within_a_chunk_go_out_together_at_the_end(monkeypatch):
    monkeypatch.setattr(service, "CHUNK_SECONDS", 3600.0)
    state, batches = _State(), _batches([3, 3, 2], 8)
    sink = ToGuiThread(state, 8)
    for b in batches:
        sink.add(b)
    assert state.partials == []  # nothing yet: the event loop is not flooded
    sink.finish(False)
    ((chunk,),) = [state.partials]
    assert [r.index for r in chunk.results] == list(range(8)) and (chunk.done, chunk.total) == (8, 8)


@pytest.mark.parametrize("complete", [True, False])
def test_a_run_with_no_result_still_says_its_total(complete):
    state = _State()
    ToGuiThread(state, 5).finish(complete)
    assert [(p.results, p.done, p.total) for p in state.partials] == [([], 0, 5)]
