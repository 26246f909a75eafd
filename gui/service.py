"""The one boundary between the GUI and the engine.

Every engine call the app makes goes through :class:`EngineService`, and every slow one runs off the
GUI thread:

- a small thread pool for listing/loading models, scanning folders, writing reports;
- the case store's own writer thread (:mod:`engine.case.store`), which writes every change of the
  case document as it happens; opening, loading and closing a store happen in the pool;
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
from engine.case.document import cards_digest
from engine.case.export import cell_rows, review_history_rows, reviews_path, snapshot, write_reviews
from engine.case.store import CaseStore, StoreError, move_aside, rehash_changed
from engine.pipeline import classify, scan
from engine.preprocess import load_rgb  # noqa: F401  (thumbnails: the engine's RGB conversion)
from engine.fileio import read_regular_file  # noqa: F401  (thumbnails: regular files only, bounded read)
from engine.heldout import plain_words  # noqa: F401  (the card view leads with the held-out facts in words)
from engine.registry import Registry, default_model
from engine.report import summarize, write_cell_report, write_summary

from .session import SessionFiles

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
    storeOpened = Signal(object, object, object)  # path, CaseStore, CaseDocument | None (None: a new store)
    storeFailed = Signal(object, str, object)  # path, one-line reason, where it was moved aside (or None)
    orphansFound = Signal(object)  # [(Path, {meta})] of stores of apps that did not close normally
    filesChanged = Signal(object, object)  # document, [Cell] whose image content changed since it was stored
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
    def card_digest(reg, name: str) -> str:
        """The card digest a loaded classifier of ``name`` will report (ModelFacts.card_sha256)."""
        card = reg.get(name)
        return cards_digest(card, [reg.get(m) for m in card.members] if card.is_ensemble else [])

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
                # sessions of cards that changed or went away are dropped (keys carry the card digest)
                live = {(c.name, self.card_digest(reg, c.name)) for c in cards}
                self._classifiers = {k: v for k, v in self._classifiers.items() if (k[0], k[2]) in live}
            self._emit("modelsListed", cards, problems)

        self._submit(work)

    def load_model(self, name: str, device: str = "auto") -> None:
        """Load (or reuse) a classifier in the background -> ``modelLoaded`` / ``modelFailed``."""

        def work():
            try:
                with self._lock:
                    reg = self._registry or Registry(dirs=self._registry_dirs)
                key = (name, device, self.card_digest(reg, name))  # a changed card is another model
            except ModelError as exc:
                self._emit("modelFailed", name, str(exc))
                return
            with self._lock:  # list_models replaces the dict under the same lock
                clf = self._classifiers.get(key)
            if clf is None:
                try:
                    clf = reg.load(name, device=device)
                except ModelError as exc:
                    self._emit("modelFailed", name, str(exc))
                    return
                except Exception as exc:  # onnxruntime errors etc.: same dialog, app stays usable
                    self._emit("modelFailed", name, f"{type(exc).__name__}: {exc}")
                    return
                with self._lock:
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
    def export(self, cells_csv: Path, summary_csv: Path, doc, cells: list, store=None) -> int:
        """Write the per-cell and summary CSVs, and the review history beside them, in the background.

        The report is a snapshot of ``doc`` taken now, on the GUI thread (model, threshold, the cells'
        immutable results and reviews); returns its revision, so the caller can tell whether anything
        changed while it was written."""
        snap = snapshot(doc, cells)

        def work():
            try:
                rows = cell_rows(snap)
                write_cell_report(cells_csv, rows)
                write_summary(summary_csv, summarize(rows, signoffs=snap.signoffs, sample_ids=snap.sample_ids))
                written = [str(cells_csv), str(summary_csv)]
                if store is not None:
                    store.flush(10.0)
                    hist = reviews_path(cells_csv)
                    write_reviews(hist, review_history_rows(store))
                    written.append(str(hist))
            except Exception as exc:
                self._emit("exportFailed", f"{type(exc).__name__}: {exc}")
                return
            self._emit("exportDone", written)

        self._submit(work)
        return snap.revision

    def export_pdf(self, pdf: Path, doc, cells: list) -> int:
        """Write the printable case report (:mod:`engine.pdf_report`) of a snapshot of ``doc`` in the
        background -> ``exportDone``; returns the snapshot's revision."""
        snap = snapshot(doc, cells)
        signoffs = {root: so.as_dict() for root, so in snap.signoffs.items()}
        reg = self._registry

        def work():
            try:
                from engine.pdf_report import write_case_pdf

                rows = cell_rows(snap)
                cards = {}
                if reg is not None:
                    cards = {n: reg.get(n) for n in {r.get("model", "") for r in rows} if n in reg}
                write_case_pdf(pdf, rows, sample_ids=snap.sample_ids, signoffs=signoffs, card=cards)
            except Exception as exc:
                self._emit("exportFailed", f"{type(exc).__name__}: {exc}")
                return
            self._emit("exportDone", [str(pdf)])

        self._submit(work)
        return snap.revision

    # --- case stores ------------------------------------------------------------------------------
    def open_store(self, path: Path, load: bool, move_damaged: bool = False) -> None:
        """Open (create) the store at ``path``; with ``load``, also read its document -> ``storeOpened``.
        Else ``storeFailed``.  Only a LeukoScan store that is damaged is ever moved aside (``.corrupt``), and only
        with ``move_damaged`` (the user was asked first); a file that is not a LeukoScan store (a CSV, another
        program's SQLite database) is never touched."""

        def work():
            try:
                store = CaseStore.open(path, create=not load)
                doc = store.load() if load else None
            except StoreError as exc:
                moved = None
                if load and move_damaged and exc.kind == "damaged" and Path(path).exists():
                    try:
                        moved = move_aside(path)
                    except OSError:
                        moved = None
                self._emit("storeFailed", Path(path), str(exc), moved)
                return
            except OSError as exc:
                self._emit("storeFailed", Path(path), exc.strerror or str(exc), None)
                return
            self._emit("storeOpened", Path(path), store, doc)

        self._submit(work)

    def check_files(self, store, doc) -> None:
        """Cells whose image changed on disk since the store was written -> ``filesChanged`` (stat first,
        then the sha256 of those that look changed)."""
        cells_by_key = {c.key: c for c in doc.cells}

        def work():
            try:
                keys = store.changed_files()
                changed = rehash_changed(doc, keys, store) if keys else []
            except Exception:
                return
            if changed:
                self._emit("filesChanged", doc, [cells_by_key.get(c.key, c) for c in changed])

        self._submit(work)

    def close_store(self, store) -> Future | None:
        return self._submit(store.close, pool=self._writer)

    def find_orphans(self, files: SessionFiles) -> None:
        def work():
            found = []
            try:
                for p in files.orphans():
                    try:
                        meta = CaseStore.peek(p)
                    except (StoreError, OSError) as exc:
                        meta = {"problem": str(exc)}
                    if meta.get("closed_at"):
                        continue  # closed normally: opened on request only (File > Open case store)
                    found.append((p, meta))
            except Exception:
                found = []
            self._emit("orphansFound", found)

        self._submit(work)

    def create_store(self, path: Path):
        """A new, empty case store at ``path`` (an empty SQLite file: quick enough to make on the caller's
        thread; loading and closing stores stay on the workers)."""
        from engine.case.store import CaseStore

        return CaseStore.open(path)

    def remove_file(self, path: Path) -> None:
        def work():
            for p in (Path(path), Path(str(path) + ".lock"), Path(str(path) + "-wal"), Path(str(path) + "-shm")):
                try:
                    p.unlink()
                except OSError:
                    pass

        self._submit(work, pool=self._writer)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until queued store closes and file removals are done (used when closing)."""
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
