"""Find image files and classify them: the streaming pipeline shared by the CLI and the desktop app.

``scan(paths)`` lists the cells to classify; ``classify_batches(items, classifier)`` yields the
:class:`CellResult` s of each inference batch, in item order, while the run's one thread pool reads, hashes, decodes
and preprocesses the next batches (Pillow, hashlib and onnxruntime release the GIL, so decoding overlaps
inference); ``classify`` yields them one at a time.  The classification operator (:mod:`engine.run`) drives it for
the app and the CLI.  At most ``prefetch_batches + 1`` batches are in flight, so memory stays flat on any number
of files.  Cancellation (a ``threading.Event``) is checked while waiting, and a task of the same pool watching it
aborts a running batch through onnxruntime's ``RunOptions.terminate``: the iterator ends within a fraction of a
second.

Hostile or odd entries never hang a run and are never dropped silently: every entry named like an
image becomes a row (a FIFO, a device, a folder named ``x.bmp``, a broken symlink or a symlink loop is
an error row with its reason; files are read through :func:`engine.fileio.read_regular_file`), and a
folder that cannot be listed is an error row of its own, so a report never looks complete when it is not.

Each decoded image also goes through the input quality check (:mod:`engine.qc`); its reason is the
result's ``qc``.  ``decide()`` turns a calibrated P(ALL) (and a QC reason) into a prediction and a
"needs review" flag; it is the only place that rule lives (the GUI calls it again when the user moves
the threshold).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import qc as qc_rules
from .card import ModelError
from .domain.kinds import CellStatus
from .fileio import MAX_FILE_BYTES, FileRefused, describe_os_error, read_regular_file
from .model import NON_FINITE, Classifier, Prediction
from .preprocess import ImageDecodeError, Preprocessing, is_supported, open_rgb, preprocess_image

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ scanning


@dataclass(frozen=True)
class ScanItem:
    path: Path  # absolute
    root: Path  # the PATH given (a file's parent when a file was given)
    folder: str  # the file's folder relative to root, '/'-separated; "." for root itself
    problem: str = ""  # set when the entry cannot be classified at all (a folder that cannot be listed)

    @property
    def file(self) -> str:
        return self.path.name


_DIGITS = re.compile(r"(\d+)")


def natural_key(s: str) -> tuple:
    """'cell 2' < 'cell 10'; case-insensitive; ties broken by the exact string."""
    parts = _DIGITS.split(s)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)) + (s,)


def _is_hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    if os.name == "nt":  # pragma: no cover - Windows hidden/system attribute
        try:
            attrs = entry.stat().st_file_attributes  # type: ignore[attr-defined]
        except OSError:
            return False
        return bool(attrs & (stat.FILE_ATTRIBUTE_HIDDEN | stat.FILE_ATTRIBUTE_SYSTEM))
    return False


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:  # a symlink loop
        return False


def _walk(root: Path, warnings: list[str] | None) -> list[ScanItem]:
    found: list[tuple[tuple, ScanItem]] = []
    try:
        st = root.stat()
        visited = {(st.st_dev, st.st_ino)}
    except OSError:
        visited = set()
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        d, rel = stack.pop()
        folder = "/".join(rel) if rel else "."
        folder_key = tuple(natural_key(r) for r in rel)
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            reason = f"folder cannot be listed ({exc.strerror or exc}), its images are not in this report"
            msg = f"{d}: {reason}"
            log.warning(msg)
            if warnings is not None:
                warnings.append(msg)
            found.append(((folder_key, ()), ScanItem(Path(d), root, folder, problem=reason)))
            continue
        for e in entries:
            if _is_hidden(e):
                continue
            if _is_dir(e):  # loops are cut by the visited set
                try:
                    est = e.stat()
                except OSError:  # vanished
                    continue
                ident = (est.st_dev, est.st_ino)
                if ident not in visited:
                    visited.add(ident)
                    stack.append((Path(e.path), rel + (e.name,)))
            if is_supported(e.name):  # of any kind: load_item() says why a non-file is not a cell
                found.append(((folder_key, natural_key(e.name)), ScanItem(Path(e.path), root, folder)))
    found.sort(key=lambda t: t[0])
    return [it for _, it in found]


def scan(paths: Iterable[str | Path], warnings: list[str] | None = None) -> list[ScanItem]:
    """Image files under ``paths`` (folders recursively, or files), sorted naturally per folder.

    Hidden files/folders (name starting with '.'; hidden attribute on Windows) and entries whose
    extension is not an image type are skipped.  Every other entry named like an image is an item,
    whatever it is (FIFO, folder, broken symlink ...: its row says why it was not classified).
    Symlinked folders are followed once (loops are safe).  A file given explicitly is always an item
    (an unsupported one becomes an error row).  The same file reached twice is listed once.  Raises
    ``FileNotFoundError`` for a path that does not exist; a folder that cannot be listed is an item
    with a ``problem`` (an error row), and a message is appended to ``warnings``.
    """
    items: list[ScanItem] = []
    paths = list(paths)
    for raw in paths:
        p = Path(os.path.abspath(Path(raw).expanduser()))
        if not os.path.lexists(p):
            raise FileNotFoundError(f"{raw}: no such file or folder")
        if p.is_dir():
            items.extend(_walk(p, warnings))
        else:
            items.append(ScanItem(p, p.parent, "."))
    if len(paths) > 1:
        seen: set[str] = set()
        unique = []
        for it in items:
            key = os.path.normcase(os.path.realpath(it.path))
            if key not in seen:
                seen.add(key)
                unique.append(it)
        items = unique
    return items


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class CellResult:
    index: int  # position in the items given to classify()
    path: Path
    root: Path
    folder: str
    file: str
    sha256: str  # of the file bytes; "" when the file could not be read
    status: CellStatus  # OK | ERROR
    error: str  # reason, "" when ok
    p_all: float | None  # calibrated P(ALL); None on error
    member_p: dict[str, float] = field(default_factory=dict)  # ensemble: member -> calibrated P(ALL)
    members_disagree: bool = False
    qc: str = ""  # why the image failed the input quality check (engine.qc); "" when it passed or on error

    @property
    def ok(self) -> bool:
        return self.status == CellStatus.OK


#: Why a cell is flagged for review (the ``flag_reasons`` of a report row, in this order): its P(ALL) is inside the
#: card's review band around the threshold, it failed the input quality check, or an ensemble's members disagree.
FLAG_REVIEW_BAND, FLAG_QC, FLAG_DISAGREEMENT = "review_band", "qc", "model_disagreement"
FLAG_REASONS: tuple[str, ...] = (FLAG_REVIEW_BAND, FLAG_QC, FLAG_DISAGREEMENT)


def in_review_band(p_all: float | None, threshold: float, review_margin: float) -> bool:
    """P(ALL) is closer to the threshold than the card's ``review_margin`` (False without a score)."""
    return p_all is not None and math.isfinite(p_all) and abs(p_all - threshold) < review_margin


def flag_reasons(
    p_all: float | None, threshold: float, review_margin: float, members_disagree: bool = False, qc: str = ""
) -> tuple[str, ...]:
    """Why the cell is flagged for review, in :data:`FLAG_REASONS` order; () when it is not (or has no score:
    an error row).  The one rule behind :func:`decide`'s flag and every report's ``flag_reasons``."""
    if p_all is None or not math.isfinite(p_all):
        return ()
    why = (in_review_band(p_all, threshold, review_margin), bool(qc), bool(members_disagree))
    return tuple(reason for reason, yes in zip(FLAG_REASONS, why) if yes)


def decide(
    p_all: float | None, threshold: float, review_margin: float, members_disagree: bool = False, qc: str = ""
) -> tuple[str, bool]:
    """(prediction, flagged): "ALL" when p_all >= threshold else "HEM"; *flagged* for review when
    :func:`flag_reasons` gives any (the review band, a failed quality check: the score of a not-a-cell image
    means nothing, however confident; the ensemble's members disagreeing).  ("", False) when there is no
    score (an error row)."""
    if p_all is None or not math.isfinite(p_all):
        return "", False
    prediction = "ALL" if p_all >= threshold else "HEM"
    return prediction, bool(flag_reasons(p_all, threshold, review_margin, members_disagree, qc))


# ------------------------------------------------------------------------------------------ classify


@dataclass
class _Loaded:
    sha256: str = ""
    arrays: tuple[np.ndarray, ...] = ()
    error: str = ""
    qc: str = ""


def _read(path: Path) -> bytes | str:
    """The file's bytes, or the reason they cannot be read."""
    try:
        return read_regular_file(path, MAX_FILE_BYTES)  # read-only; the file is never modified
    except FileRefused as exc:
        return str(exc)
    except FileNotFoundError:
        if os.path.islink(path):
            return "broken symbolic link (its target does not exist)"
        return "file not found (moved or deleted during the run)"
    except OSError as exc:
        return f"cannot read file: {describe_os_error(exc)}"


def load_item(path: Path, specs: tuple[Preprocessing, ...]) -> _Loaded:
    """Read a file once: sha256 of its bytes, decode, quality check, one model input per spec.  Never raises."""
    data = _read(path)
    if isinstance(data, str):
        return _Loaded(error=data)
    sha = hashlib.sha256(data).hexdigest()
    try:
        im = open_rgb(path, data)
        arrays = tuple(preprocess_image(im, s) for s in specs)
        qc = qc_rules.check(im)
    except ImageDecodeError as exc:
        return _Loaded(sha, error=str(exc))
    except Exception as exc:
        return _Loaded(sha, error=f"cannot decode image: {exc.__class__.__name__}: {exc}")
    return _Loaded(sha, arrays, qc=qc)


def batch_inputs(
    loaded: list[_Loaded], specs: tuple[Preprocessing, ...]
) -> tuple[list[int], dict[Preprocessing, np.ndarray] | None]:
    """The positions of a batch's readable cells and their stacked model inputs (one array per spec;
    None when no cell is readable).  The per-cell copies are released.  Shared with the Ray engine."""
    good = [k for k, ld in enumerate(loaded) if not ld.error]
    if not good:
        return good, None
    inputs = {s: np.stack([loaded[k].arrays[j] for k in good]) for j, s in enumerate(specs)}
    for k in good:
        loaded[k].arrays = ()  # release per-cell copies early
    return good, inputs


def _problem(reason: str) -> Future:
    """A finished load for an item that is not read at all (a folder that could not be listed)."""
    fut: Future = Future()
    fut.set_result(_Loaded(error=reason))
    return fut


def default_workers(classifier: Classifier | None = None) -> int:
    """Decoding threads: min(4, cores) when inference runs on the CPU (they share the cores with
    onnxruntime); min(8, cores) when it runs on a GPU (then decoding is the bottleneck)."""
    cap = 8 if classifier is not None and "CUDA" in classifier.active_provider else 4
    return max(1, min(cap, os.cpu_count() or 1))


def _load_unless_cancelled(path: Path, specs: tuple[Preprocessing, ...], cancel: threading.Event) -> _Loaded:
    """:func:`load_item`, or nothing once the run is cancelled: the queue drains at once, so the watch of the
    running batch (queued behind it) starts without waiting for images nobody will see."""
    return _Loaded(error="cancelled") if cancel.is_set() else load_item(path, specs)


def _watch(cancel: threading.Event, inferred: threading.Event, run_options: Any) -> None:
    """While a batch runs in onnxruntime: turn a cancel request into an abort of that batch at once (waiting on the
    cancel event wakes on its ``set``), and give the worker back to decoding within 10 ms of the batch's end."""
    while not inferred.is_set():
        if cancel.wait(0.01):
            run_options.terminate = True
            return


class _Job:
    """One classification's one thread pool: it reads, hashes, decodes and preprocesses the next batches while
    one is inferred, and one of its workers watches for a cancel while a batch runs in onnxruntime (no thread
    of its own: a run holds the caller's thread and ``workers`` pool threads, nothing else)."""

    def __init__(self, items: list[ScanItem], specs: tuple[Preprocessing, ...], workers: int, window: int, cancel):
        self.items, self.specs, self.window, self.cancel = items, specs, window, cancel
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="leukoscan-decode")
        self.pending: deque[tuple[int, Future]] = deque()
        self.next_i = 0

    def _fill(self) -> None:
        while self.next_i < len(self.items) and len(self.pending) < self.window:
            it = self.items[self.next_i]
            load = (
                _problem(it.problem)
                if it.problem
                else self.pool.submit(_load_unless_cancelled, it.path, self.specs, self.cancel)
            )
            self.pending.append((self.next_i, load))
            self.next_i += 1

    def take(self, n: int) -> list[tuple[int, Future]]:
        """The next ``n`` items (fewer at the end, none when done); the batches after them start decoding."""
        self._fill()
        batch = [self.pending.popleft() for _ in range(min(n, len(self.pending)))]
        self._fill()  # the next batches decode while this one waits and runs
        return batch

    def wait(self, batch: list[tuple[int, Future]]) -> list[_Loaded] | None:
        """The batch's loaded cells once all are read; None when the run is cancelled meanwhile."""
        loaded: list[_Loaded] = []
        for _, fut in batch:
            while True:
                if self.cancel.is_set():
                    return None
                try:
                    loaded.append(fut.result(timeout=0.05))
                    break
                except TimeoutError:
                    continue
        return loaded

    def infer(self, classifier: Classifier, inputs: dict[Preprocessing, np.ndarray], run_options: Any) -> Prediction:
        """``classifier.predict`` with a pool worker watching for a cancel (which aborts the batch)."""
        inferred = threading.Event()
        self.pool.submit(_watch, self.cancel, inferred, run_options)
        try:
            return classifier.predict(inputs, run_options)
        finally:
            inferred.set()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _predict(job: _Job, classifier: Classifier, loaded: list[_Loaded], run_options: Any) -> tuple[list[int], Any]:
    """(positions of the decoded cells, their Prediction or None); None for the prediction too when the batch was
    aborted by a cancel.  A failing model is a :class:`ModelError`."""
    good, inputs = batch_inputs(loaded, job.specs)
    if inputs is None:
        return good, None
    try:
        return good, job.infer(classifier, inputs, run_options)
    except ModelError:
        raise
    except Exception as exc:
        if job.cancel.is_set():
            return good, None
        raise ModelError(f"model '{classifier.name}' failed on a batch: {exc}") from None


def classify_batches(
    items: Iterable[ScanItem],
    classifier: Classifier,
    *,
    batch_size: int = 32,
    threads: int | None = None,
    cancel: threading.Event | None = None,
    prefetch_batches: int = 2,
) -> Generator[list[CellResult], None, None]:
    """Classify ``items``; yield the results of each inference batch (a list, in item order) as it is done.

    ``threads``: decoding workers (default :func:`default_workers`); the model's own thread count is set
    when it is loaded.  ``cancel``: set it (from any thread) to stop; the iterator then ends without further
    results (a running batch is aborted).  Raises :class:`ModelError` if the model itself fails on a batch (not
    for a bad file).  The classification operator (:mod:`engine.run`) drives it; :func:`classify` flattens it.
    """
    items = list(items)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if not items:
        return
    cancel = cancel if cancel is not None else threading.Event()
    run_options = classifier.run_options()
    window = batch_size * max(1, prefetch_batches)  # + the batch being inferred
    job = _Job(items, classifier.preprocessings, threads or default_workers(classifier), window, cancel)
    try:
        while batch := job.take(batch_size):
            t_wait = time.perf_counter()
            loaded = job.wait(batch)
            if loaded is None:
                return
            t_infer = time.perf_counter()
            good, pred = _predict(job, classifier, loaded, run_options)
            log.debug(  # leukoscan-cli -vv: where the time of each batch goes
                "batch of %d cells (%d decoded): %.3f s waiting for decoding, %.3f s inference",
                len(batch),
                len(good),
                t_infer - t_wait,
                time.perf_counter() - t_infer,
            )
            if cancel.is_set():
                return
            pos = {k: r for r, k in enumerate(good)}
            yield [
                _result(idx, items[idx], ld, pred, pos.get(k)) for k, ((idx, _), ld) in enumerate(zip(batch, loaded))
            ]
    finally:
        job.close()


def classify(
    items: Iterable[ScanItem],
    classifier: Classifier,
    *,
    batch_size: int = 32,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    prefetch_batches: int = 2,
) -> Iterator[CellResult]:
    """Classify ``items``; yield one :class:`CellResult` per item, in item order (:func:`classify_batches`,
    one cell at a time: for the self-test, benchmarks and scripts; a run of the app or the CLI goes through
    :mod:`engine.run`).  ``progress(done, total)`` is called after each result is produced; ``cancel``: set it
    to stop, the iterator then ends without further results.  Raises :class:`ModelError` as the batches do."""
    items = list(items)
    cancel = cancel if cancel is not None else threading.Event()
    done = 0
    batches = classify_batches(
        items, classifier, batch_size=batch_size, threads=threads, cancel=cancel, prefetch_batches=prefetch_batches
    )
    with closing(batches):
        for results in batches:
            for result in results:
                if cancel.is_set():
                    return
                done += 1
                if progress is not None:
                    progress(done, len(items))
                yield result


def _result(idx: int, it: ScanItem, ld: _Loaded, pred: Prediction | None, r: int | None) -> CellResult:
    def result(status: CellStatus, error: str, p_all: float | None = None, **more: Any) -> CellResult:
        return CellResult(
            index=idx,
            path=it.path,
            root=it.root,
            folder=it.folder,
            file=it.path.name,
            sha256=ld.sha256,
            status=status,
            error=error,
            p_all=p_all,
            **more,
        )

    if ld.error or pred is None or r is None:
        return result(CellStatus.ERROR, ld.error or "not classified")
    p = float(pred.p_all[r])
    member_p = {name: float(v[r]) for name, v in pred.member_p.items()}
    if not math.isfinite(p) or not all(math.isfinite(v) for v in member_p.values()):
        return result(CellStatus.ERROR, NON_FINITE)
    return result(CellStatus.OK, "", p, member_p=member_p, members_disagree=bool(pred.members_disagree[r]), qc=ld.qc)
