"""classify_batches(): one list per inference batch, one thread pool per run (no watcher thread of its own), and a
cancel that aborts the batch running in onnxruntime through a worker of that pool."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from engine.model import Prediction
from engine.pipeline import classify, classify_batches, scan
from engine.registry import Registry


def test_batches_are_the_inference_batches_in_item_order(cells_dir, tiny_models_dir):
    clf = Registry([tiny_models_dir]).load("tiny_a")
    items = scan([cells_dir])
    batches = list(classify_batches(items, clf, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 2]
    flat = [r for b in batches for r in b]
    assert [r.index for r in flat] == list(range(len(items)))
    assert [r.p_all for r in flat] == [r.p_all for r in classify(items, clf, batch_size=3)]


def test_a_run_holds_one_pool_of_the_workers_asked_for_and_no_other_thread(cells_dir, tiny_models_dir):
    """Issue 27: the cancel watcher was a thread of its own beside the decode pool; now a worker of the pool
    watches the running batch.  While a run is under way, every thread it started is a worker of its pool."""
    clf = Registry([tiny_models_dir]).load("tiny_a")
    items = scan([cells_dir]) * 4
    before = set(threading.enumerate())
    seen: set[str] = set()
    for _ in classify_batches(items, clf, batch_size=2, threads=2):
        seen |= {t.name for t in set(threading.enumerate()) - before}
    started = {n for n in seen if n.startswith("leukoscan")}
    assert started and all(n.startswith("leukoscan-decode") for n in started), started
    assert len(started) <= 2


class _SlowModel:
    """A classifier whose every batch runs until onnxruntime's ``terminate`` flag is set (then it fails, as
    onnxruntime does), or 10 s pass: the inference a Cancel must abort."""

    def __init__(self, real):
        self.name = "slow"
        self.active_provider = "CPUExecutionProvider"
        self.preprocessings = real.preprocessings
        self.terminated = threading.Event()

    @staticmethod
    def run_options():
        return SimpleNamespace(terminate=False)

    def predict(self, inputs, run_options):
        n = len(next(iter(inputs.values())))
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            if run_options.terminate:
                self.terminated.set()
                raise RuntimeError("Exiting due to terminate flag being set to true")
            time.sleep(0.01)
        return Prediction(np.full(n, 0.5), {}, np.zeros(n, dtype=bool))


@pytest.mark.parametrize("threads", [1, 2])
def test_cancel_aborts_the_running_batch_within_a_second(cells_dir, tiny_models_dir, threads):
    """With one decoding worker too: the worker that decoded the batch watches it while it runs."""
    slow = _SlowModel(Registry([tiny_models_dir]).load("tiny_a"))
    cancel = threading.Event()
    got: list = []
    ended = threading.Event()

    def consume():
        got.extend(classify_batches(scan([cells_dir]), slow, batch_size=4, threads=threads, cancel=cancel))
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.3)  # the first batch is running
    t0 = time.monotonic()
    cancel.set()
    assert ended.wait(5)
    assert time.monotonic() - t0 < 1.0
    assert slow.terminated.is_set() and got == []
