"""The one boundary between the GUI and the engine.

Every engine call the app makes goes through :class:`EngineService`, and every slow one runs off the
GUI thread:

- a small thread pool for listing/loading models, scanning folders, writing reports;
- one writer thread for autosaves (so they are written in order);
- one classification thread per run, iterating :func:`engine.pipeline.classify` and handing results
  to the GUI thread in chunks (at most one signal per ``CHUNK_SECONDS``), so the event loop never
  drowns in per-cell signals.  Cancel = a ``threading.Event`` the engine checks between batches.

Results arrive through Qt signals (queued onto the GUI thread).  Each run has a job id; results of a
cancelled or superseded job are dropped by the window.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from PySide6.QtCore import QObject, Qt, Signal

from engine.card import ModelError
from engine.pipeline import classify, decide, scan
from engine.preprocess import load_rgb  # noqa: F401  (thumbnails: the engine's RGB conversion)
from engine.fileio import read_regular_file  # noqa: F401  (thumbnails: regular files only, bounded read)
from engine.registry import Registry, default_model
from engine.report import Review, cell_row, summarize, write_cell_report, write_summary

from .session import SessionFiles, SessionState

CHUNK_SECONDS = 0.05


class EngineService(QObject):
    modelsListed = Signal(object, object)  # [ModelCard], [problem strings]
    modelLoaded = Signal(object)  # Classifier
    modelFailed = Signal(str, str)  # name, message
    scanned = Signal(object, object, object)  # [ScanItem], [problem strings], [(path, is_dir)] opened
    resultsReady = Signal(int, object)  # job id, [CellResult]
    progress = Signal(int, int, int)  # job id, done, total
    runFinished = Signal(int, bool, float)  # job id, cancelled, seconds
    runFailed = Signal(int, str)  # job id, message
    exportDone = Signal(object)  # [written paths]
    exportFailed = Signal(str)
    sessionSaved = Signal(str)
    sessionSaveFailed = Signal(str)
    orphansFound = Signal(object)  # [(Path, SessionState)]
    _posted = Signal(str, object)  # worker threads -> GUI thread relay (see _emit)

    def __init__(self, registry_dirs: Sequence[str | Path] | None = None, parent=None) -> None:
        super().__init__(parent)
        self._registry_dirs = [Path(d) for d in registry_dirs] if registry_dirs else None
        self._registry: Registry | None = None
        self._classifiers: dict[tuple[str, str], Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="leukoscan-io")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leukoscan-autosave")
        self._lock = threading.Lock()
        self._job = 0
        self._cancel: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._posted.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    # --- helpers --------------------------------------------------------------------------------
    def _submit(self, fn: Callable, *args, pool: ThreadPoolExecutor | None = None) -> Future | None:
        if self._closed:
            return None
        return (pool or self._pool).submit(fn, *args)

    def _emit(self, name: str, *args) -> None:
        """Called from worker threads: hand ``signal(*args)`` to the GUI thread, which emits it there.

        Every public signal is therefore emitted on the GUI thread (direct connections only), so no
        queued call can reach a slot or a Python callable that was disconnected in the meantime."""
        try:
            self._posted.emit(name, args)
        except RuntimeError:  # the service was deleted while the app closes
            pass

    def _deliver(self, name: str, args) -> None:
        getattr(self, name).emit(*args)

    @staticmethod
    def default_model(cards) -> str | None:
        return default_model(cards)

    @staticmethod
    def decide(p_all: float, threshold: float, review_margin: float, members_disagree: bool = False, qc: str = ""):
        return decide(p_all, threshold, review_margin, members_disagree, qc)

    # --- models ---------------------------------------------------------------------------------
    def registry_dirs(self) -> list[Path]:
        if self._registry is not None and hasattr(self._registry, "dirs"):
            return [Path(d) for d in self._registry.dirs]
        return list(self._registry_dirs or [])

    def list_models(self) -> None:
        """Read the registry's cards in the background -> ``modelsListed``."""

        def work():
            try:
                reg = Registry(dirs=self._registry_dirs) if self._registry_dirs else Registry()
                cards = list(reg.cards())
                problems = [str(p) for p in getattr(reg, "problems", [])]
            except Exception as exc:  # a broken models folder must not kill the app
                self._emit("modelsListed", [], [f"cannot read the model folders: {exc}"])
                return
            with self._lock:
                self._registry = reg
            self._emit("modelsListed", cards, problems)

        self._submit(work)

    def load_model(self, name: str, device: str = "auto") -> None:
        """Load (or reuse) a classifier in the background -> ``modelLoaded`` / ``modelFailed``."""

        def work():
            key = (name, device)
            clf = self._classifiers.get(key)
            if clf is None:
                try:
                    reg = self._registry or Registry(dirs=self._registry_dirs)
                    clf = reg.load(name, device=device)
                except ModelError as exc:
                    self._emit("modelFailed", name, str(exc))
                    return
                except Exception as exc:  # onnxruntime errors etc.: same dialog, app stays usable
                    self._emit("modelFailed", name, f"{type(exc).__name__}: {exc}")
                    return
                self._classifiers[key] = clf
            self._emit("modelLoaded", clf)

        self._submit(work)

    # --- folders --------------------------------------------------------------------------------
    def scan(self, paths: Sequence[str | Path]) -> None:
        """Find the images under ``paths`` in the background -> ``scanned``."""

        def work():
            problems, good, opened = [], [], []
            for p in paths:
                p = Path(p)
                if not p.exists():
                    problems.append(f"{p}: not found")
                else:
                    good.append(p)
                    opened.append((str(p), p.is_dir()))
            items = []
            if good:
                warnings: list[str] = []
                try:
                    items = list(scan(good, warnings=warnings))
                except Exception as exc:
                    problems.append(f"cannot scan {', '.join(map(str, good))}: {exc}")
                problems.extend(str(w) for w in warnings)
            self._emit("scanned", items, problems, opened)

        self._submit(work)

    # --- classification ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_run(self, items: list, classifier, batch_size: int = 16) -> int:
        """Classify ``items`` in a worker thread; returns the job id used by the run's signals."""
        self.cancel()
        with self._lock:
            self._job += 1
            job = self._job
        cancel = threading.Event()
        self._cancel = cancel
        t = threading.Thread(target=self._run, args=(job, list(items), classifier, batch_size, cancel),
                             name=f"leukoscan-classify-{job}", daemon=True)
        self._thread = t
        t.start()
        return job

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def _run(self, job: int, items: list, classifier, batch_size: int, cancel: threading.Event) -> None:
        t0 = time.monotonic()
        total = len(items)
        buf: list = []
        done = 0
        last = t0
        try:
            for res in classify(items, classifier, batch_size=batch_size, cancel=cancel):
                buf.append(res)
                done += 1
                now = time.monotonic()
                if now - last >= CHUNK_SECONDS:
                    self._emit("resultsReady", job, buf)
                    self._emit("progress", job, done, total)
                    buf, last = [], now
            if buf:
                self._emit("resultsReady", job, buf)
            self._emit("progress", job, done, total)
        except Exception as exc:
            if buf:
                self._emit("resultsReady", job, buf)
            self._emit("runFailed", job, f"{type(exc).__name__}: {exc}")
            return
        self._emit("runFinished", job, cancel.is_set() and done < total, time.monotonic() - t0)

    # --- reports --------------------------------------------------------------------------------
    def export(self, cells_csv: Path, summary_csv: Path, snapshot: list, classifier, threshold: float) -> None:
        """Write the per-cell and summary CSVs in the background.

        ``snapshot``: [(CellResult, ReviewRecord | None)] taken on the GUI thread.
        """

        def work():
            try:
                rows = []
                for res, rec in snapshot:
                    review = Review(rec.label, rec.reviewer, rec.reviewed_at) if rec is not None else None
                    rows.append(cell_row(res, classifier, threshold, review))
                write_cell_report(cells_csv, rows)
                write_summary(summary_csv, summarize(rows))
            except Exception as exc:
                self._emit("exportFailed", f"{type(exc).__name__}: {exc}")
                return
            self._emit("exportDone", [str(cells_csv), str(summary_csv)])

        self._submit(work)

    # --- sessions -------------------------------------------------------------------------------
    def save_session(self, path: Path, state: SessionState) -> Future | None:
        """Write ``state`` (a copy owned by the writer) atomically, in order, off the GUI thread."""

        def work():
            try:
                SessionFiles.write(path, state)
            except Exception as exc:
                self._emit("sessionSaveFailed", f"{path}: {exc}")
                return
            self._emit("sessionSaved", str(path))

        return self._submit(work, pool=self._writer)

    def find_orphans(self, files: SessionFiles) -> None:
        def work():
            try:
                found = files.orphans()
            except Exception:
                found = []
            self._emit("orphansFound", found)

        self._submit(work)

    def remove_file(self, path: Path) -> None:
        def work():
            for p in (Path(path), Path(path).with_suffix(".lock")):
                try:
                    p.unlink()
                except OSError:
                    pass

        self._submit(work, pool=self._writer)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until queued autosaves are on disk (used when closing)."""
        f = self._submit(lambda: None, pool=self._writer)
        if f is not None:
            f.result(timeout)

    def shutdown(self) -> None:
        if self._closed:
            return
        self.cancel()
        self.wait(3.0)
        self._closed = True
        self._writer.shutdown(wait=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

