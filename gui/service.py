"""The one boundary between the GUI and the engine.

Every engine call the app makes goes through :class:`EngineService`, and every slow one runs off the
GUI thread as a task of :mod:`gui.tasks` (the one worker pattern of the GUI):

- ``io``: listing/loading models, scanning folders, opening stores, writing reports (2 workers);
- ``store-close``: closing case stores and removing the files of empty ones, in order (1 worker; the
  case store's own writer thread, :mod:`engine.case.store`, writes every change as it happens);
- ``classify``: one run at a time, the classification operator (:func:`engine.run.operator.run`, as the
  CLI's) whose sink (:class:`ToGuiThread`) hands results to the GUI thread as partial results in chunks (at
  most one per ``CHUNK_SECONDS``), so the event loop never drowns in per-cell events.  :meth:`start_run`
  returns the run's :class:`~gui.tasks.Task`; cancelling it stops the engine within a second (a running batch
  is aborted) and drops whatever the run still hands out.

Every job takes the callbacks that get its outcome (on the GUI thread, with the typed payloads below) and
returns its Task: whoever asked cancels it when the outcome would be stale (a later choice, another
document).  The service has no signals of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from engine.cam import cam_available, cell_cam  # noqa: F401  (the preview's overlay: one cell, off the GUI thread)
from engine.card import ModelError
from engine.case.document import cards_digest
from engine.case.export import cell_rows, review_history_rows, reviews_path, snapshot, write_reviews
from engine.case.headless import rehash_changed
from engine.case.store import CaseStore, StoreError, move_aside
from engine.domain.kinds import StoreErrorKind
from engine.domain.store_files import store_paths
from engine.fileio import read_regular_file  # noqa: F401  (thumbnails: regular files only, bounded read)
from engine.heldout import donor_chart, plain_words, reliability_table  # noqa: F401  (the card view: words, charts)
from engine.pipeline import scan
from engine.preprocess import load_rgb  # noqa: F401  (thumbnails: the engine's RGB conversion)
from engine.registry import Registry, default_model, model_dirs  # noqa: F401  (model_dirs: gui.app's --models-dir)
from engine.report import summarize, write_cell_report, write_summary
from engine.run import ResultBatch, RunSpec, local, operator

from .session import SessionFiles
from .tasks import Task, TaskRunner

CHUNK_SECONDS = 0.05
log = logging.getLogger("leukoscan.gui")


@dataclass(frozen=True)
class ModelList:
    """A listing of the models: the registry's usable cards and why the others cannot be used."""

    cards: list
    problems: list[str]


@dataclass(frozen=True)
class ModelLoadFailed:
    """A model that did not load, and why."""

    name: str
    message: str


@dataclass(frozen=True)
class ScanResult:
    """A scan: the images found, the paths that could not be opened (and why), and the paths
    opened as ``(path, is_dir)``."""

    items: list
    problems: list[str]
    opened: list[tuple[str, bool]]


@dataclass(frozen=True)
class RunBatch:
    """A run's partial result: the cells classified since the last batch, and how far it is."""

    results: list
    done: int
    total: int


@dataclass(frozen=True)
class RunEnd:
    """A run's result: whether it was cancelled before the end, and how long it took."""

    cancelled: bool
    seconds: float


@dataclass(frozen=True)
class StoreOpened:
    """An opened store: the store at ``path`` and its document (None: a new store, nothing loaded)."""

    path: Path
    store: Any
    doc: Any


@dataclass(frozen=True)
class StoreFailed:
    """A store that could not be opened, in one line, and where it was moved aside."""

    path: Path
    reason: str
    moved: Path | None = None


@dataclass(frozen=True)
class Orphan:
    """A case store of an app that did not close normally (``meta``: :meth:`CaseStore.peek`, or a
    ``problem``)."""

    path: Path
    meta: dict


@dataclass(frozen=True)
class FilesChanged:
    """Cells of ``doc`` whose image content changed since the store was written."""

    doc: Any
    cells: list


class ToGuiThread:
    """The app's sink of a run (:class:`engine.run.Sink`): its results, as :class:`RunBatch` partial results of the
    task, reach the GUI thread (where :class:`gui.run_controller.RunController` adds them to the case document)
    in chunks, at most one per ``CHUNK_SECONDS``, so the event loop never drowns in per-batch events."""

    def __init__(self, state, total: int) -> None:
        self.state, self.total = state, total
        self.done, self.sent = 0, False
        self.buf: list = []
        self.last = time.monotonic()

    def add(self, batch: ResultBatch) -> None:
        self.buf.extend(batch.results)
        self.done = batch.done
        now = time.monotonic()
        if now - self.last >= CHUNK_SECONDS:
            self._send()
            self.last = now

    def finish(self, complete: bool) -> None:
        """The rest, also after an error (the cells classified before it are kept); one empty batch when nothing
        was classified, so the run's total is shown."""
        if self.buf or not self.sent:
            self._send()

    def _send(self) -> None:
        self.state.set_partial_result(RunBatch(self.buf, self.done, self.total))
        self.buf, self.sent = [], True


def _record(store) -> tuple[int, str] | None:
    """(rows, head) of ``store``'s history chain once what is queued is written (on a worker): the anchor a report
    prints, as the CLI's do (``leukoscan-cli verify STORE --report FILE``); None without a store."""
    if store is None:
        return None
    store.flush(10.0)
    return store.head()


class EngineService(QObject):
    def __init__(self, registry_dirs: Sequence[str | Path] | None = None, parent=None) -> None:
        super().__init__(parent)
        self._registry_dirs = [Path(d) for d in registry_dirs] if registry_dirs else None
        self._registry: Registry | None = None
        self._classifiers: dict[tuple[str, ...], Any] = {}  # (name, device, card digest, precision)
        self._io = TaskRunner(2, "leukoscan-io", self)
        self._store_close = TaskRunner(1, "leukoscan-store-close", self)  # closes stores, removes empty ones
        self._classify = TaskRunner(1, "leukoscan-classify", self)
        self._lock = threading.Lock()
        self._closed = False

    # --- helpers --------------------------------------------------------------------------------
    def _start(self, fn: Callable, *args, runner: TaskRunner | None = None, **callbacks) -> Task:
        return (runner or self._io).start(fn, *args, **callbacks)

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

    def list_models(self, on_result: Callable[[ModelList], None]) -> Task:
        """Read the registry's cards in the background -> ``on_result``."""

        def work(_state):
            try:
                reg = Registry(dirs=self._registry_dirs) if self._registry_dirs else Registry()
                cards = list(reg.cards())
                problems = [str(p) for p in getattr(reg, "problems", [])]
            except Exception as exc:  # a broken models folder must not kill the app
                return ModelList([], [f"cannot read the model folders: {exc}"])
            with self._lock:
                self._registry = reg
                # sessions of cards that changed or went away are dropped (keys carry the card digest)
                live = {(c.name, self.card_digest(reg, c.name)) for c in cards}
                self._classifiers = {k: v for k, v in self._classifiers.items() if (k[0], k[2]) in live}
            return ModelList(cards, problems)

        return self._start(work, on_result=on_result)

    def load_model(
        self,
        name: str,
        device: str,
        on_loaded: Callable,
        on_failed: Callable[[ModelLoadFailed], None],
        precision: str = "fp32",
    ) -> Task:
        """Load (or reuse) a classifier in the background -> ``on_loaded(classifier)`` or ``on_failed``; cancel the
        task (a later choice): neither.  ``precision``: engine.card.PRECISIONS (the Settings' model precision)."""

        def work(_state):
            with self._lock:
                reg = self._registry or Registry(dirs=self._registry_dirs)
            key = (name, device, self.card_digest(reg, name), precision)  # a changed card is another model
            with self._lock:  # list_models replaces the dict under the same lock
                clf = self._classifiers.get(key)
            if clf is None:
                clf = reg.load(name, device=device, precision=precision)
                with self._lock:
                    self._classifiers[key] = clf
            return clf

        def failed(exc: BaseException) -> None:  # onnxruntime errors etc.: same dialog, app stays usable
            message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            on_failed(ModelLoadFailed(name, message))

        return self._start(work, on_result=on_loaded, on_error=failed)

    # --- folders --------------------------------------------------------------------------------
    def scan(self, paths: Sequence[str | Path], on_result: Callable[[ScanResult], None]) -> Task:
        """Find the images under ``paths`` in the background -> ``on_result`` (cancel the task: never)."""

        def work(_state):
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
            return ScanResult(items, problems, opened)

        return self._start(work, on_result=on_result)

    # --- classification ---------------------------------------------------------------------------
    def start_run(
        self,
        items: list,
        classifier,
        batch_size: int,
        *,
        on_batch: Callable[[RunBatch], None],
        on_end: Callable[[RunEnd], None],
        on_error: Callable[[BaseException], None],
    ) -> Task:
        """Classify ``items`` on the ``classify`` worker (one run at a time: a new one waits for the one
        before to stop).  ``on_batch`` gets :class:`RunBatch` es, then ``on_end`` a :class:`RunEnd` or
        ``on_error`` the exception that stopped the model (after the batch of the cells done before it).
        Cancelling the returned task stops the engine within a batch; nothing of the run arrives after."""
        return self._start(
            self._run,
            list(items),
            classifier,
            batch_size,
            runner=self._classify,
            on_partial=on_batch,
            on_result=on_end,
            on_error=on_error,
        )

    @staticmethod
    def _run(state, items: list, classifier, batch_size: int) -> RunEnd:
        """The run on the worker: the classification operator (:mod:`engine.run`, the CLI's too) with the app's
        sink, which hands the results to the GUI thread, where the case document takes them."""
        spec = RunSpec.of(items, None, batch_size)  # the document decides, at the threshold shown
        outcome = operator.run(spec, local(classifier), [ToGuiThread(state, spec.total)], state.interrupt)
        return RunEnd(state.is_interruption_requested() and outcome.cancelled, outcome.seconds)

    # --- reports --------------------------------------------------------------------------------
    def export(
        self,
        cells_csv: Path,
        summary_csv: Path,
        doc,
        cells: list,
        store=None,
        bom: bool = False,
        *,
        on_done: Callable[[list[str]], None],
        on_failed: Callable[[str], None],
    ) -> int:
        """Write the per-cell and summary CSVs, and the review history beside them, in the background
        (``bom``: UTF-8 with a byte-order mark, the setting for Excel).  With the window's case ``store``, the
        summary carries the record's chain length and head (``record_rows``/``record_head``), as the CLI's
        does: ``leukoscan-cli verify STORE --report SUMMARY.csv`` checks the record against it.

        The report is a snapshot of ``doc`` taken now, on the GUI thread (model, threshold, the cells'
        immutable results and reviews); returns its revision, so the caller can tell whether anything
        changed while it was written."""
        snap = snapshot(doc, cells)

        def work(_state):
            rows = cell_rows(snap)
            record = _record(store)
            write_cell_report(cells_csv, rows, bom=bom)
            sums = summarize(rows, signoffs=snap.signoffs, sample_ids=snap.sample_ids, record=record)
            write_summary(summary_csv, sums, bom=bom)
            written = [str(cells_csv), str(summary_csv)]
            if store is not None:
                hist = reviews_path(cells_csv)
                write_reviews(hist, review_history_rows(store), bom=bom)
                written.append(str(hist))
            return written

        self._start(work, on_result=on_done, on_error=lambda exc: on_failed(f"{type(exc).__name__}: {exc}"))
        return snap.revision

    def export_pdf(
        self,
        pdf: Path,
        doc,
        cells: list,
        store=None,
        *,
        on_done: Callable[[list[str]], None],
        on_failed: Callable[[str], None],
    ) -> int:
        """Write the printable case report (:mod:`engine.pdf_report`) of a snapshot of ``doc`` in the
        background -> ``on_done([pdf])`` / ``on_failed(message)``; returns the snapshot's revision.  With the
        window's case ``store``, the PDF prints the record's chain length and head under the signature (the
        anchor ``leukoscan-cli verify STORE --report THIS.pdf`` checks), as the CLI's does."""
        snap = snapshot(doc, cells)
        signoffs = {root: so.as_dict() for root, so in snap.signoffs.items()}
        reg = self._registry

        def work(_state):
            from engine.pdf_report import write_case_pdf

            rows = cell_rows(snap)
            cards = {}
            if reg is not None:
                cards = {n: reg.get(n) for n in {r.model.name for r in rows} if n in reg}
            record = _record(store)
            write_case_pdf(pdf, rows, sample_ids=snap.sample_ids, signoffs=signoffs, card=cards, record=record)
            return [str(pdf)]

        self._start(work, on_result=on_done, on_error=lambda exc: on_failed(f"{type(exc).__name__}: {exc}"))
        return snap.revision

    # --- case stores ------------------------------------------------------------------------------
    def open_store(
        self,
        path: Path,
        load: bool,
        move_damaged: bool = False,
        *,
        on_opened: Callable[[StoreOpened], None],
        on_failed: Callable[[StoreFailed], None],
    ) -> Task:
        """Open (create) the store at ``path``; with ``load``, also read its document -> ``on_opened``, else
        ``on_failed``.  Only a LeukoScan store that is damaged is ever moved aside (``.corrupt``), and only
        with ``move_damaged`` (the user was asked first); a file that is not a LeukoScan store (a CSV, another
        program's SQLite database) is never touched."""

        def work(_state) -> StoreOpened | StoreFailed:
            try:
                store = CaseStore.open(path, create=not load)
                doc = store.load() if load else None
            except StoreError as exc:
                moved = None
                if load and move_damaged and exc.kind == StoreErrorKind.DAMAGED and Path(path).exists():
                    try:
                        moved = move_aside(path)
                    except OSError:
                        moved = None
                return StoreFailed(Path(path), str(exc), moved)
            except OSError as exc:
                return StoreFailed(Path(path), exc.strerror or str(exc), None)
            return StoreOpened(Path(path), store, doc)

        def opened(outcome: StoreOpened | StoreFailed) -> None:
            if isinstance(outcome, StoreOpened):
                on_opened(outcome)
            else:
                on_failed(outcome)

        return self._start(work, on_result=opened)

    def check_files(self, store, doc, on_changed: Callable[[FilesChanged], None]) -> Task:
        """Cells whose image changed on disk since the store was written -> ``on_changed`` (stat first, then
        the sha256 of those that look changed); nothing when none did."""
        cells_by_key = {c.key: c for c in doc.cells}

        def work(_state):
            keys = store.changed_files()
            return rehash_changed(doc, keys, store) if keys else []

        def checked(changed: list) -> None:
            if changed:
                on_changed(FilesChanged(doc, [cells_by_key.get(c.key, c) for c in changed]))

        return self._start(
            work, on_result=checked, on_error=lambda exc: log.warning("checking the images failed: %s", exc)
        )

    def check_images(self, stored, items: list, on_result: Callable[[dict | None], None]) -> Task:
        """The images of the stored cases ``stored`` (:func:`engine.case.images.case_images`, taken on the GUI
        thread) against the scanned ``items``, by sha256 (every image read on the worker) -> ``on_result({root:
        ImageChange})``; ``on_result(None)`` when the check failed (an unreadable file is left out of it, not a failure)."""

        def work(_state):
            from engine.case.images import compare_stored, hash_files, paths_to_hash

            return compare_stored(stored, items, hash_files(paths_to_hash(stored, items)))

        def failed(exc: BaseException) -> None:
            log.warning("checking the images by sha256 failed: %s", exc)
            on_result(None)

        return self._start(work, on_result=on_result, on_error=failed)

    def close_store(self, store) -> Task:
        return self._start(lambda _state: store.close(), runner=self._store_close)

    def find_orphans(self, files: SessionFiles, on_result: Callable[[list[Orphan]], None]) -> Task:
        """The stores of sessions that did not close normally (never those closed normally) -> ``on_result``."""

        def work(_state):
            found = []
            try:
                for p in files.orphans():
                    try:
                        meta = CaseStore.peek(p)
                    except (StoreError, OSError) as exc:
                        meta = {"problem": str(exc)}
                    if meta.get("closed_at"):
                        continue  # closed normally: opened on request only (File > Open case store)
                    found.append(Orphan(p, meta))
            except Exception:
                found = []
            return found

        return self._start(work, on_result=on_result)

    def create_store(self, path: Path):
        """A new, empty case store at ``path`` (an empty SQLite file: quick enough to make on the caller's
        thread; loading and closing stores stay on the workers)."""
        from engine.case.store import CaseStore

        return CaseStore.open(path)

    def remove_file(self, path: Path) -> None:
        def work(_state):
            for p in store_paths(path, lock=True):
                try:
                    p.unlink()
                except OSError:
                    pass

        self._start(work, runner=self._store_close)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until queued store closes and file removals are done (used when closing)."""
        self._start(lambda _state: None, runner=self._store_close).wait(timeout)

    def shutdown(self) -> None:
        """Stop the run (within a batch), let queued store closes finish, drop everything else."""
        if self._closed:
            return
        self._closed = True
        self._classify.shutdown(wait=True, timeout=3.0)
        self._store_close.shutdown(wait=True, cancel=False)
        self._io.shutdown(wait=False)
