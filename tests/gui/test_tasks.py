"""gui.tasks: the one worker pattern of the GUI (callbacks on the GUI thread; cancel drops what is late)."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import make_window, settled  # noqa: F401  (fixture)
from PySide6.QtWidgets import QApplication

from gui.tasks import Relay, TaskRunner


def _runner(_qtbot, workers=1):
    return TaskRunner(workers, "test")


def test_result_partials_and_error_arrive_on_the_gui_thread_in_order(qtbot):
    r = _runner(qtbot)
    got, threads = [], set()

    def work(state, n):
        for i in range(n):
            state.set_partial_result(i)
        return "done"

    def note(kind):
        return lambda v: (got.append((kind, v)), threads.add(threading.current_thread()))

    t = r.start(work, 3, on_partial=note("partial"), on_result=note("result"))
    qtbot.waitUntil(lambda: t.delivered, timeout=5_000)
    assert got == [("partial", 0), ("partial", 1), ("partial", 2), ("result", "done")]
    assert threads == {threading.main_thread()}

    def boom(_state):
        raise ValueError("broken model")

    errors = []
    t = r.start(boom, on_result=got.append, on_error=errors.append)
    qtbot.waitUntil(lambda: t.delivered, timeout=5_000)
    assert len(errors) == 1 and isinstance(errors[0], ValueError) and str(errors[0]) == "broken model"
    r.shutdown()


def test_cancel_drops_what_was_already_queued_and_stops_the_worker(qtbot):
    r = _runner(qtbot)
    got = []
    posted = threading.Event()

    def work(state):
        state.set_partial_result("late batch")  # queued for the GUI thread before cancel
        posted.set()
        state.interrupt.wait(5)  # as engine.pipeline.classify waits on its cancel event
        return "interrupted" if state.is_interruption_requested() else "ran out"

    t = r.start(work, on_partial=got.append, on_result=got.append, on_error=got.append)
    assert posted.wait(5)
    t.cancel()  # before the event loop ran: the queued partial must not arrive either
    assert t.wait(5)
    QApplication.processEvents()  # the worker has returned: whatever it queued is delivered now, or never
    assert got == [] and not t.delivered
    r.shutdown()


def test_request_interrupt_stops_the_worker_and_still_reports(qtbot):
    r = _runner(qtbot)
    got = []
    t = r.start(lambda state: state.interrupt.wait(5) and "stopped", on_result=got.append)
    t.request_interrupt()
    qtbot.waitUntil(lambda: got == ["stopped"], timeout=5_000)
    r.shutdown()


def test_a_task_queued_behind_another_never_starts_once_cancelled(qtbot):
    r = _runner(qtbot)
    started, gate = [], threading.Event()
    first = r.start(lambda state: gate.wait(5))
    second = r.start(lambda state: started.append(1))
    second.cancel()
    gate.set()
    assert first.wait(5) and second.wait(5)
    assert started == []
    r.shutdown()


def test_shutdown_ends_the_threads_and_refuses_new_tasks(qtbot):
    r = _runner(qtbot, workers=2)
    r.start(lambda state: state.interrupt.wait(5))
    assert r.threads()
    r.shutdown(wait=True, timeout=5)
    assert r.closed and not r.threads()
    got = []
    t = r.start(lambda state: got.append(1))
    assert t.cancelled and t.wait(0) and got == []


def test_relay_calls_on_the_gui_thread(qtbot):
    relay = Relay()
    seen = []
    th = threading.Thread(target=lambda: relay.call(lambda v: seen.append((v, threading.current_thread())), 7))
    th.start()
    th.join()
    qtbot.waitUntil(lambda: bool(seen), timeout=5_000)
    assert seen == [(7, threading.main_thread())]


def test_a_stopped_run_delivers_nothing_more(qtbot, make_window, cells_dir, monkeypatch):
    """RunController.stop() cancels the run's task: no batch of it reaches the document afterwards (this
    replaced the controller's job-id filters)."""
    import time

    from engine.run import operator as operator_mod

    real = operator_mod.classify_batches  # what the app's run (the classification operator) iterates

    def slow(items, clf, **kw):
        for batch in real(items, clf, **kw):
            time.sleep(0.05)
            yield batch

    monkeypatch.setattr(operator_mod, "classify_batches", slow)
    w = make_window(batch_size=1)
    with qtbot.waitSignal(w.runs.resultsStored, timeout=30_000):
        w.opener.open_paths([cells_dir])
    late = []
    w.runs.resultsStored.connect(late.append)
    w.runs.finished.connect(late.append)
    task = w.runs.task
    assert task is not None
    w.runs.stop()
    done = sum(c.result is not None for c in w.doc.cells)
    settled(qtbot, task)  # a late batch of a run that was not really stopped would have arrived by now
    assert not w.runs.running and late == []
    assert sum(c.result is not None for c in w.doc.cells) == done < 8


def test_a_size_change_drops_images_decoded_at_the_old_size(qtbot, cells_dir):
    from gui.thumbs import ImageLoader

    files = sorted(str(p) for p in cells_dir.iterdir())
    loader = ImageLoader(size=32)
    try:
        for f in files:
            loader.get(f)
        loader.set_size(64)
        assert loader.get(files[0]) is None
        qtbot.waitUntil(lambda: all(loader.get(f) is not None for f in files), timeout=10_000)
        sizes = {max(img.width(), img.height()) for img in (loader.get(f) for f in files) if img is not None}
        assert sizes == {64}
    finally:
        loader.close()


def test_decoded_images_reach_the_gui_thread_in_batches(qtbot, cells_dir, monkeypatch):
    """A decode task hands its images over in batches (at most one every BATCH_SECONDS), each key announced once it
    is cached: a scrolled gallery costs the event loop a few batches, not an event per tile.  The keys asked for while
    a task decodes go to the next task together, newest first."""
    import gui.thumbs as thumbs

    monkeypatch.setattr(thumbs, "BATCH_SECONDS", 60.0)  # everything a task decodes comes in one batch
    files = sorted(str(p) for p in cells_dir.iterdir())
    loader = thumbs.ImageLoader(size=32)
    batches, ready = [], []
    loader.ready.connect(ready.append)
    real = loader._decoded
    monkeypatch.setattr(loader, "_decoded", lambda batch: (batches.append([k for k, _ in batch]), real(batch)))
    try:
        for f in files:  # the first starts a task; the rest wait for it (the GUI thread does not run it meanwhile)
            loader.get(f)
        qtbot.waitUntil(lambda: len(ready) == len(files), timeout=10_000)
        assert batches == [[files[0]], files[1:][::-1]] and sorted(ready) == files
        assert all(loader.get(f) is not None for f in files)
    finally:
        loader.close()


def test_a_later_model_choice_cancels_the_load_in_flight(qtbot, make_window):
    """Choosing another model before the first one loaded: only the last choice is announced, and a superseded
    choice that could not load shows no dialog."""
    w = make_window()
    loaded, failed = [], []
    w.model_chooser.loaded.connect(lambda clf: loaded.append(clf.name))
    w.model_chooser.failed.connect(lambda t, m: failed.append(t))
    w.model_chooser.select("no_such_model")  # would fail
    superseded = w.model_chooser._loading
    assert superseded is not None
    w.model_chooser.select("tiny_a")  # chosen before the event loop ran again
    qtbot.waitUntil(lambda: loaded == ["tiny_a"], timeout=30_000)
    settled(qtbot, superseded)  # the superseded load's failure would have arrived by now
    assert loaded == ["tiny_a"] and failed == [] and w.model_chooser.classifier.name == "tiny_a"


def test_gui_background_work_goes_through_gui_tasks_only():
    """No GUI module but gui/tasks.py makes threads or thread pools, or emits into the GUI thread on its own:
    a new background job uses TaskRunner (cancel drops its stale results) instead of a pattern of its own."""
    import ast
    from pathlib import Path

    import gui

    forbidden = {"Thread", "ThreadPoolExecutor", "ProcessPoolExecutor", "QThread", "QThreadPool", "QRunnable"}
    found = []
    for path in sorted(Path(gui.__file__).parent.glob("*.py")):
        if path.name == "tasks.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in forbidden:
                    found.append(f"{path.name}:{node.lineno} {name}()")
            elif isinstance(node, ast.Attribute) and node.attr == "QueuedConnection":
                found.append(f"{path.name}:{node.lineno} QueuedConnection")
    assert not found, found


def test_the_window_decodes_every_image_on_one_runner(qtbot, make_window):
    """The gallery's thumbnails and the preview's full-size images share the window's one image pool (issue 27: no
    pool of its own per loader), and it ends with the window."""
    w = make_window(wait_model=False)
    assert w.thumbs.runner is w.images and w.preview.loader.runner is w.images
    assert len(w.images.threads()) <= 1
