"""Helpers for the Qt tests (a uniquely named module: ``conftest`` is ambiguous across test folders)."""

from __future__ import annotations

RUN_TIMEOUT_MS = 30_000


def open_and_classify(qtbot, w, paths, timeout=RUN_TIMEOUT_MS):
    """Open ``paths`` and wait until the run they start has finished; returns the finished args."""
    with qtbot.waitSignal(w.service.runFinished, timeout=timeout) as blocker:
        w.open_paths([str(p) for p in paths])
    qtbot.waitUntil(lambda: w.job is None, timeout=timeout)
    return blocker.args
