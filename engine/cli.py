"""``leukoscan-cli``: classify folders of cell images headless, list the models.

    leukoscan-cli classify PATH [PATH ...] --model NAME --out REPORT.csv [--summary SUMMARY.csv]
                  [--device auto|cpu|cuda] [--batch-size N] [--threads N] [--workers N]
                  [--threshold T] [--models-dir DIR] [--no-progress] [--force] [--store CASE.leukoscan]
                  [--engine local|ray] [--address ADDR] [--actors N] [--gpus-per-actor G]
    leukoscan-cli models [--models-dir DIR] [--check]
    leukoscan-cli export CASE.leukoscan --out REPORT.csv [--summary SUMMARY.csv] [--force]
    leukoscan-cli report REPORT.csv --pdf CASE.pdf [--models-dir DIR] [--force]
    leukoscan-cli verify CASE.leukoscan

``verify`` checks a case file's history (the hash chain, the append-only triggers, the live reviews and
sign-offs against the history): "intact", exit 0, or the first broken row and why, exit 4.  ``export`` and
``report CASE.leukoscan`` refuse a broken record (exit 4, nothing written, nothing in it changed or deleted).

Writers take the case file's lock (``CASE.leukoscan.lock``, the app's too): ``classify --store`` and ``export``
(which records the export in the case file) exit 2 naming the holder (host, pid, since) while another
program writes it; ``export --no-bookkeeping``, ``report`` and ``verify`` only read and work meanwhile.

``--store CASE.leukoscan`` also writes the run into a case file (created if needed; results stored 64 cells
at a time as they arrive; ``.leukoscan`` is the case file's extension everywhere, a ``.db`` name still
works), which the app opens for review without classifying again; cells already in it
with a valid result of the model (same card, file unchanged) are skipped.  ``export`` writes the
reports of a case file (reviews included) and its review history ``<REPORT stem>_reviews.csv``.

``--engine ray`` reads and scores the cells on a Ray cluster (a private local one without ``--address``;
the ``ray`` extra, see README "Running on a cluster"): the same scan, the same report, the same exit statuses.

Exit status: 0 the run completed (even when some files were unreadable: they are error rows);
2 usage error (bad option, missing PATH, no image found, unusable output path: a folder, an input
image, the same file for ``--out`` and ``--summary`` even through a symlink, an existing read-only
file without ``--force``); 3 the model cannot be used; 1 the report could not be written where asked
(it is then saved in the temp folder, see message) or not at all (disk and temp folder full);
4 the case file's record is broken (``verify`` says where); 5 ``classify --store`` would change a signed-off case
(new or changed images) and no ``--reopen REASON`` was given: nothing was classified or written;
130 interrupted with Ctrl-C (SIGINT), 143 stopped with SIGTERM: in both cases the cells done so far go
to ``<REPORT>.partial.csv``, never to REPORT (a second signal quits at once, still writing that file).
Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from . import __version__
from .card import ModelError
from .model import DEVICES
from .paths import user_models_dir
from .pipeline import classify, scan
from .preprocess import is_supported
from .registry import Registry, default_dirs, default_model, describe_metrics
from .report import cell_row, count_rows, exclusions_text, summarize, write_cell_report, write_summary

PROG = "leukoscan-cli"
EXIT_OK, EXIT_WRITE, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
EXIT_BROKEN = 4  # the case file's record is broken (leukoscan-cli verify says where)
EXIT_SIGNED_OFF = 5  # classify --store would change a signed-off case and no --reopen REASON was given
#: Signals that stop a run cleanly (partial report), and the exit status each gives.
STOP_SIGNALS = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's usage block is still printed first)
        self.print_usage(sys.stderr)
        raise CliError(message, EXIT_USAGE)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {v}")
    return v


def _threshold(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {s!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="LeukoScan headless: classify single-cell blood-smear images as ALL or HEM.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{classify,models,export,report,verify}", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("classify", help="classify every image under the given folders/files, write a CSV report")
    c.add_argument("paths", nargs="+", metavar="PATH", help="folder (searched recursively) or image file")
    c.add_argument("--model", default=None,
                   help="model name (see `leukoscan-cli models`), e.g. ensemble, inceptionv3, vgg19; default: the "
                        "recommended model (as in the app)")
    c.add_argument("--out", required=True, metavar="REPORT.csv", help="per-cell CSV report to write")
    c.add_argument("--summary", metavar="SUMMARY.csv", help="also write a per-folder summary CSV")
    c.add_argument("--device", choices=DEVICES, default="auto", help="auto (CUDA when usable, else CPU), cpu or cuda")
    c.add_argument("--batch-size", type=_positive_int, default=32, help="cells per inference batch (default 32)")
    c.add_argument("--threads", type=_positive_int, default=None, help="onnxruntime threads (default: all cores)")
    c.add_argument("--workers", type=_positive_int, default=None,
                   help="image decoding threads (default: min(4, cores) on CPU, min(8, cores) with CUDA)")
    c.add_argument("--threshold", type=_threshold, default=None,
                   help="decision threshold on P(ALL) (default: the model card's validated threshold)")
    c.add_argument("--models-dir", action="append", default=[], metavar="DIR", help="extra folder of model cards (repeatable)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument("--force", action="store_true", help="replace --out/--summary even when the existing file is read-only")
    c.add_argument("--store", metavar="CASE.leukoscan", default=None,
                   help="also store the run in this case file (created if needed) to review it in the app; cells "
                        "it already holds with a valid result of the model are not classified again")
    c.add_argument("--reopen", metavar="REASON", default=None,
                   help="--store: the run may change a signed-off case (new or changed images); it is reopened "
                        "first with this reason, logged with your OS user. Without it such a run is refused")
    c.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: classify on this machine (default); ray: on a Ray cluster (the ray extra)")
    c.add_argument("--address", default=None, metavar="ADDR",
                   help="--engine ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); "
                        "default: a private local Ray instance")
    c.add_argument("--actors", type=_positive_int, default=None,
                   help="--engine ray: classifier actors, each with its own model session (default: fill the "
                        "cluster, one per --threads CPUs (default 1) or per --gpus-per-actor GPUs)")
    c.add_argument("--gpus-per-actor", type=_positive_float, default=None, metavar="G",
                   help="--engine ray: GPUs each actor reserves (0.5: two actors share a GPU); actors then use CUDA")

    m = sub.add_parser("models", help="list the available models, their validation metrics and invalid cards")
    m.add_argument("--models-dir", action="append", default=[], metavar="DIR", help="extra folder of model cards (repeatable)")
    m.add_argument("--check", action="store_true",
                   help="also load every model (checks the ONNX graph against its card; slower)")

    e = sub.add_parser("export", help="write the CSV reports and the review history of a case file (--store or the app)")
    e.add_argument("case_file", metavar="CASE.leukoscan", help="case file to read")
    e.add_argument("--out", required=True, metavar="REPORT.csv",
                   help="per-cell CSV report to write (the review history goes to <REPORT stem>_reviews.csv)")
    e.add_argument("--summary", metavar="SUMMARY.csv", help="also write a per-folder summary CSV")
    e.add_argument("--force", action="store_true", help="replace the reports even when an existing file is read-only")
    e.add_argument("--no-bookkeeping", action="store_true",
                   help="only read the case file: do not record the export in it (works while the app has it open)")

    r = sub.add_parser("report", help="print a per-cell CSV report or a case store as a PDF case report (one or more pages per case)")
    r.add_argument("report", metavar="REPORT.csv|CASE.leukoscan", help="per-cell report written by classify, export or the app, or a case store")
    r.add_argument("--pdf", required=True, metavar="CASE.pdf", help="PDF file to write")
    r.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                   help="extra folder of model cards (repeatable): the card of the report's model adds its facts")
    r.add_argument("--force", action="store_true", help="replace --pdf even when the existing file is read-only")

    v = sub.add_parser("verify", help="check a case file's history: 'intact' (exit 0) or the first broken row (exit 4)")
    v.add_argument("case_file", metavar="CASE.leukoscan", help="case file to check (only read)")
    return p


def _take_lock(path: Path, program: str):
    """The case file's write lock (one protocol with the app); exit 2 naming the holder when it is taken."""
    from .case.lock import StoreLock, StoreLocked

    lock = StoreLock(path, program)
    try:
        lock.acquire()
    except StoreLocked as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot lock the case file {path} ({exc.strerror or exc})") from None
    if lock.took_over:
        _say(f"warning: {lock.took_over}")
    return lock


def _refuse_broken(store) -> None:
    """Exit 4 (nothing written, nothing changed) when the case file's record is broken."""
    problem = store.verify()
    if problem is not None:
        raise CliError(f"{store.path}: the case record is broken: {problem}; nothing was written and nothing in "
                       f"it was changed (leukoscan-cli verify {store.path})", EXIT_BROKEN)


def cmd_verify(args) -> int:
    from .case.store import CaseStore, StoreError

    db = Path(os.path.abspath(Path(args.case_file).expanduser()))
    if not db.is_file():
        raise CliError(f"{db}: no such case file")
    try:
        store = CaseStore.open(db, create=False, read_only=True)
    except StoreError as exc:
        raise CliError(f"cannot read the case file: {exc}") from None
    try:
        problem = store.verify()
        rows, head = store.head()
    finally:
        store.close()
    if problem is not None:
        print(f"{db}: broken: {problem}")
        return EXIT_BROKEN
    print(f"{db}: intact ({rows} history rows, chain head {head[:16]})")
    return EXIT_OK


def _say(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def _model_name(reg: Registry, args) -> str:
    """``--model``, else the registry's default (the one the app opens with); ModelError when none."""
    name = args.model or default_model(reg.cards())
    if name is None:
        raise ModelError("no model is installed (see `leukoscan-cli models`)")
    return name


def _registry(extra: Sequence[str]) -> Registry:
    return Registry([*default_dirs(), *[Path(d).expanduser() for d in extra]])


# -------------------------------------------------------------------------------------- models


def cmd_models(args) -> int:
    reg = _registry(args.models_dir)
    cards = reg.cards()
    rows = [("NAME", "VERSION", "ARCHITECTURE", "INPUT", "THRESHOLD", "VALIDATION")]
    for c in cards:
        if c.is_ensemble:
            inp = "mean of " + "+".join(c.members)
        else:
            h, w = c.input_size
            inp = f"{h}x{w}"
            pre = c.preprocessing
            if pre and (pre.crop_mode == "centroid" or pre.crop_fraction < 1):
                inp += (f" window {pre.window_px}px on the cell" if pre.crop_mode == "centroid"
                        else f" crop {pre.crop_fraction:g}")
        rows.append((c.name, c.version, c.architecture, inp, f"{c.threshold:g}", describe_metrics(c)))
    if cards:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r[:5])) + "  " + r[5])
    else:
        print("No usable models found.")
    default = default_model(cards)
    if default:
        print(f"\nDefault model (the app opens it; classify uses it without --model): {default}")
    print("\nModel folders: " + ", ".join(str(d) for d in reg.dirs))
    print(f"(add a model: copy <name>.onnx + <name>.json into {user_models_dir()})")
    problems = list(reg.problems)
    if getattr(args, "check", False):
        for c in cards:
            try:
                clf = reg.load(c.name, device="cpu")
                print(f"check {c.name}: loads and runs ({clf.device_label})")
            except ModelError as exc:
                problems.append(str(exc))
    if problems:
        print("\nInvalid model cards (not usable):")
        for msg in problems:
            print(f"  - {msg}")
    return EXIT_OK if not (getattr(args, "check", False) and problems) else EXIT_MODEL


# -------------------------------------------------------------------------------------- classify


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    """Same file by real path (symlinks resolved) or by inode (hard links)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _read_only(path: Path) -> bool:
    """An existing file the user cannot write, or that is marked read-only (root may write a 0444 one)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not os.access(path, os.W_OK) or not st.st_mode & 0o222


def _check_output(path: Path, label: str, inputs: set[str], force: bool = False) -> Path:
    path = Path(os.path.abspath(path.expanduser()))
    if path.is_dir():
        raise CliError(f"{label} {path} is a folder; give a file name such as report.csv")
    if is_supported(path) or _real(path) in inputs:
        raise CliError(f"{label} {path} is an image file; refusing to overwrite an input image (use a .csv name)")
    folder = path.parent
    if not folder.is_dir():
        raise CliError(f"{label}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".leukoscan-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CliError(f"{label}: cannot write in {folder} ({exc.strerror or exc})") from None
    if not force and _read_only(path):
        raise CliError(f"{label} {path} exists and is read-only; refusing to replace it (use --force to replace it)")
    return path


def _write_or_rescue(kind: str, path: Path, writer, rows) -> tuple[Path, bool]:
    """Write; if the target fails (disk full, permissions changed mid-run), save in the temp folder.

    Raises :class:`CliError` (exit 1, one line) when the temp folder fails too (both disks full)."""
    try:
        return writer(path, rows), True
    except OSError as exc:
        first = exc.strerror or str(exc)
    rescue = Path(f"leukoscan-{time.strftime('%Y%m%d-%H%M%S')}-{path.name}")
    try:
        rescue = Path(tempfile.gettempdir()) / rescue  # raises when no temp folder is writable
        writer(rescue, rows)
    except OSError as exc:
        raise CliError(f"cannot write {kind} {path} ({first}), nor a copy in the temp folder "
                       f"({exc.strerror or exc}); nothing was saved", EXIT_WRITE) from None
    _say(f"cannot write {kind} {path} ({first}); {kind} saved instead to {rescue}")
    return rescue, False


def cmd_classify(args) -> int:
    warnings: list[str] = []
    try:
        items = scan(args.paths, warnings=warnings)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    for w in warnings:
        _say(f"warning: {w}")
    if not items:
        raise CliError("no image files found in " + ", ".join(args.paths) +
                       " (looked for .bmp .png .jpg .jpeg .tif .tiff .webp; hidden files are skipped)")
    inputs = {_real(it.path) for it in items}
    out = _check_output(Path(args.out), "--out", inputs, args.force)
    summary = _check_output(Path(args.summary), "--summary", inputs, args.force) if args.summary else None
    if summary is not None and _same_file(summary, out):
        raise CliError("--summary and --out must be different files")
    store_path = _check_store_path(args, inputs, out, summary)
    if getattr(args, "engine", "local") == "ray":
        if store_path is not None:
            raise CliError("--store is not available with --engine ray")
        return _classify_on_ray(args, items, out, summary)
    if getattr(args, "address", None) or getattr(args, "actors", None) or getattr(args, "gpus_per_actor", None):
        raise CliError("--address, --actors and --gpus-per-actor need --engine ray")

    reg = _registry(args.models_dir)
    try:
        clf = reg.load(_model_name(reg, args), device=args.device, threads=args.threads)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    threshold = clf.threshold if args.threshold is None else args.threshold
    run = _store_run(store_path, args, clf, items) if store_path is not None else None
    todo, skipped = (items, 0) if run is None else (run.todo, run.skipped)
    threshold = threshold if run is None else run.threshold
    _say(
        f"model {clf.name} {clf.version} on {clf.device_label} ({clf.active_provider}); "
        f"threshold {threshold:g}{'' if args.threshold is None else ' (card: %g)' % clf.threshold}; "
        f"{len(items)} image files"
    )
    for w in clf.warnings:
        _say(f"warning: {w}")

    cancel = threading.Event()
    stopped_by: list[int] = []  # the first stop signal received
    rows: list[dict[str, str]] = []
    t0 = time.perf_counter()
    try:
        with _stop_signals(cancel, stopped_by), _progress_bar(len(todo), args) as bar:
            for res in classify(todo, clf, batch_size=args.batch_size, threads=args.workers, cancel=cancel):
                rows.append(cell_row(res, clf, threshold))
                if run is not None:
                    run.add(res)
                bar.update(1)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    except KeyboardInterrupt:
        cancel.set()
    finally:
        store_failed = run is not None and _finish_store_run(run)
    elapsed = time.perf_counter() - t0
    if run is not None:  # the report covers every item, the skipped ones with their stored results
        from .case.export import cell_rows

        rows = cell_rows(run.doc, run.cells)
    return _write_reports(rows, len(items), out, summary, cancel.is_set(), stopped_by, elapsed,
                          skipped=skipped, store_path=store_path, store_failed=store_failed,
                          signoffs=run.doc.signoffs if run is not None else None)


@contextmanager
def _stop_signals(cancel: threading.Event, stopped_by: list[int]):
    """SIGINT and SIGTERM set ``cancel`` (the run stops, keeping the cells done so far; the signal is
    appended to ``stopped_by``); a second one raises KeyboardInterrupt.  Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        stopped_by.append(signum)
        cancel.set()
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        _say(f"interrupted ({signal.Signals(signum).name}): stopping ({again} again to quit at once)")

    old_handlers = {sig: signal.signal(sig, on_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def _progress_bar(total: int, args):
    from tqdm import tqdm

    return tqdm(total=total, unit="cell", file=sys.stderr, disable=args.no_progress, mininterval=0.5,
                dynamic_ncols=True)


def _write_reports(rows, n_items: int, out: Path, summary: Path | None, cancelled: bool, stopped_by: list[int],
                   elapsed: float, *, skipped: int = 0, store_path: Path | None = None,
                   store_failed: bool = False, signoffs=None) -> int:
    """The end of a classify run, whichever engine ran it: only ``<REPORT>.partial.csv`` when it was
    stopped before the end, else the report, the summary and the one-line account.  The exit status."""
    if cancelled and len(rows) < n_items:
        partial = out.with_name(out.stem + ".partial" + (out.suffix or ".csv"))
        if rows:
            where, _ = _write_or_rescue("partial report", partial, write_cell_report, rows)
            _say(f"interrupted after {len(rows)} of {n_items} cells; those rows are in {where}; "
                 f"{out} was not written")
        else:
            _say("interrupted before any cell was classified; nothing written")
        return STOP_SIGNALS[stopped_by[0]] if stopped_by else EXIT_INTERRUPTED

    code = EXIT_WRITE if store_failed else EXIT_OK
    where, ok = _write_or_rescue("report", out, write_cell_report, rows)
    code = code if ok else EXIT_WRITE
    sums = summarize(rows, signoffs=signoffs)
    if summary is not None:
        swhere, ok = _write_or_rescue("summary", summary, write_summary, sums)
        code = code if ok else EXIT_WRITE
    cc = count_rows(rows)
    _say(
        f"{cc.cells} cells in {len(sums)} folder(s): {cc.classified} classified ({cc.all} ALL, {cc.hem} HEM, "
        f"{cc.flagged} flagged for review, {cc.review_open} review(s) open"
        f"{f', {cc.qc} failed the quality check' if cc.qc else ''}), {cc.errors} unreadable"
        f"{'; ' + exclusions_text(rows) if cc.excluded else ''}; "
        f"{(len(rows) - skipped) / max(elapsed, 1e-9):.1f} cells/s; "
        f"report: {where}" + (f"; summary: {swhere}" if summary is not None else "")
        + (f"; case file: {store_path}" if store_path is not None else "")
    )
    return code


RAY_MISSING = "--engine ray needs the ray extra: pip install 'leukoscan[ray]'"


def _classify_on_ray(args, items, out: Path, summary: Path | None) -> int:
    """``--engine ray``: the cells are read and scored by Ray tasks and actors (engine.distributed,
    imported only here); the rows, the reports and the exit statuses are the local engine's."""
    try:
        ray_engine = importlib.import_module("engine.distributed.ray_engine")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "ray":
            raise
        raise CliError(RAY_MISSING) from None
    from .distributed.payload import ModelPayload

    if args.device == "cuda" and not args.gpus_per_actor:
        raise CliError("--engine ray: --device cuda needs --gpus-per-actor G (the GPUs each actor reserves)")
    reg = _registry(args.models_dir)
    try:
        payload = ModelPayload.from_registry(reg, _model_name(reg, args))
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    card = payload.card
    threshold = card.threshold if args.threshold is None else args.threshold
    cancel = threading.Event()
    stopped_by: list[int] = []
    rows: list[dict[str, str]] = []
    t0, elapsed = time.perf_counter(), None
    try:
        with ray_engine.connect(args.address):  # before the signal handlers: ray.init sets its own SIGTERM one
            n = args.actors or ray_engine.default_actors(args.gpus_per_actor or 0.0, args.threads)
            n = max(1, min(n, -(-len(items) // args.batch_size)))  # no actor without a batch
            with ray_engine.ClassifierPool(payload, n, args.gpus_per_actor or 0.0, args.threads) as pool:
                _say(f"model {card.name} {card.version} on Ray ({args.address or 'local instance'}): {n} actor(s) "
                     f"on {pool.device_label} ({pool.active_provider}); threshold {threshold:g}"
                     f"{'' if args.threshold is None else ' (card: %g)' % card.threshold}; {len(items)} image files")
                for w in pool.warnings:
                    _say(f"warning: {w}")
                t0 = time.perf_counter()
                with _stop_signals(cancel, stopped_by), _progress_bar(len(items), args) as bar:
                    for res, model in ray_engine.classify(items, pool, batch_size=args.batch_size, cancel=cancel):
                        rows.append(cell_row(res, model, threshold))
                        bar.update(1)
                elapsed = time.perf_counter() - t0  # not the shutdown of a local Ray instance
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    except KeyboardInterrupt:
        cancel.set()
    except ConnectionError as exc:
        what = f"connect to the Ray cluster at {args.address}" if args.address else "start a local Ray instance"
        raise CliError(f"cannot {what}: {exc}") from None
    elapsed = time.perf_counter() - t0 if elapsed is None else elapsed
    return _write_reports(rows, len(items), out, summary, cancel.is_set(), stopped_by, elapsed)


# -------------------------------------------------------------------------------------- case files


def _check_store_path(args, inputs: set[str], out: Path, summary: Path | None) -> Path | None:
    if not getattr(args, "store", None):
        return None
    path = _check_output(Path(args.store), "--store", inputs, force=True)  # a case file is added to, not replaced
    if any(p is not None and _same_file(path, p) for p in (out, summary)):
        raise CliError("--store must be another file than --out and --summary")
    return path


def _store_run(path: Path, args, clf, items):
    """Open (or create) the case file and add this run's cells to it; exit 2 when it cannot be read."""
    from .case import ModelFacts
    from .case.store import CaseStore, HeadlessRun, SignedOffChanged, StoreError

    lock = _take_lock(path, "leukoscan-cli classify --store")
    try:
        store = CaseStore.open(path)
    except StoreError as exc:
        lock.release()
        raise CliError(f"--store: {exc}; the file was left as it is (give another --store; the app offers "
                       "to move a damaged case file aside)") from None
    store.lock = lock  # released with the store (_finish_store_run)
    try:
        opened = [(os.path.abspath(Path(p).expanduser()), os.path.isdir(p)) for p in args.paths]
        from .case.audit import reviewer_name

        reopen = getattr(args, "reopen", None)
        run = HeadlessRun(store, ModelFacts.of(clf), items, args.threshold, opened, reopen=reopen,
                          reopened_by=reviewer_name() if reopen else "")
    except SignedOffChanged as exc:
        store.close()
        lock.release()
        raise CliError(f"--store {path}: {exc}", EXIT_SIGNED_OFF) from None
    except StoreError as exc:
        store.close()
        lock.release()
        raise CliError(f"--store: {exc}; the file was left as it is") from None
    except BaseException:
        store.close()
        lock.release()
        raise
    note = f", {len(run.changed)} changed since and classified again" if run.changed else ""
    if args.threshold is None and abs(run.threshold - clf.threshold) > 1e-12:
        note += f"; threshold {run.threshold:g} kept from the case file (card: {clf.threshold:g})"
    _say(f"case file {path}: {run.skipped} of {len(items)} cells already classified by {clf.name} "
         f"{clf.version} are skipped{note}")
    return run


def _finish_store_run(run) -> bool:
    """Store the last results and close the case file; True (said on stderr) when writes failed."""
    try:
        errors = run.finish()
    finally:
        lock = getattr(run.store, "lock", None)
        if lock is not None:
            lock.release()
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        _say(f"error: {errors[0]}{more}")
    return bool(errors)


def cmd_export(args) -> int:
    from .case.export import cell_rows, review_history_rows, reviews_path, write_reviews
    from .case.store import CaseStore, StoreError

    db = Path(os.path.abspath(Path(args.case_file).expanduser()))
    if not db.is_file():
        raise CliError(f"{db}: no such case file")
    for label, p in (("--out", args.out), ("--summary", args.summary)):
        if p and _same_file(Path(p).expanduser(), db):
            raise CliError(f"{label} is the case file itself; give a file name such as report.csv")
    out = _check_output(Path(args.out), "--out", {_real(db)}, args.force)
    summary = _check_output(Path(args.summary), "--summary", {_real(db)}, args.force) if args.summary else None
    if summary is not None and _same_file(summary, out):
        raise CliError("--summary and --out must be different files")
    history_path = _check_output(reviews_path(out), "review history", {_real(db)}, args.force)
    if summary is not None and _same_file(summary, history_path):
        raise CliError(f"--summary must not be {history_path}: the review history goes there")
    lock = None if args.no_bookkeeping else _take_lock(db, "leukoscan-cli export")
    try:
        store = CaseStore.open(db, create=False, read_only=bool(args.no_bookkeeping))
    except StoreError as exc:
        if lock is not None:
            lock.release()
        raise CliError(f"cannot read the case file: {exc} (it was left as it is; the app offers to move a "
                       "damaged case file aside)") from None
    try:
        _refuse_broken(store)
        try:
            doc = store.load()
            history = review_history_rows(store)
        except StoreError as exc:
            raise CliError(f"cannot read the case file: {exc} (it was left as it is)") from None
        rows = cell_rows(doc)
        if not rows:
            raise CliError(f"{db} holds no classified cells" + ("" if doc.current else " (no model has run on it)")
                           + "; nothing written")
        code = EXIT_OK
        where, ok = _write_or_rescue("report", out, write_cell_report, rows)
        code = code if ok else EXIT_WRITE
        sums = summarize(rows, signoffs=doc.signoffs, sample_ids=doc.sample_ids)
        if summary is not None:
            swhere, ok = _write_or_rescue("summary", summary, write_summary, sums)
            code = code if ok else EXIT_WRITE
        hwhere, ok = _write_or_rescue("review history", history_path, write_reviews, history)
        code = code if ok else EXIT_WRITE
        if code == EXIT_OK and lock is not None:
            closed_at = store.meta().get("closed_at", "")
            store.attach(doc)
            doc.mark_exported()
            if closed_at:  # a normally closed record stays closed (the app must not offer it for restore)
                doc.note_closed(closed_at)
    finally:
        store.close()
        if lock is not None:
            lock.release()
    if store.errors:
        _say(f"warning: the export could not be recorded in the case file ({store.errors[0]})")
    cc = count_rows(rows)
    _say(f"{cc.cells} cells in {len(sums)} folder(s), model {doc.current.name} {doc.current.version}, threshold "
         f"{doc.threshold:g}: {cc.flagged} flagged for review, {cc.reviewed} reviewed, {cc.review_open} review(s) "
         f"open{'; ' + exclusions_text(rows) if cc.excluded else ''}"
         f"{f'; INCOMPLETE: {cc.pending} of {cc.cells} images not classified' if cc.pending else ''}; report: {where}"
         + (f"; summary: {swhere}" if summary is not None else "")
         + f"; review history ({len(history)} events): {hwhere}")
    return code


# -------------------------------------------------------------------------------------- report (PDF)

#: Columns a per-cell report must have to be printed (older reports without ``root`` are one case).
#: Plus ``flagged`` (``needs_review`` in reports written before 3.0).
REPORT_NEEDS = ("path", "file", "status", "prediction", "p_all", "model", "threshold")


def _store_report(path: Path) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, str]]]:
    """The per-cell rows, the sample ids and the sign-offs per case root of a case store (CASE.leukoscan)."""
    from .case.export import cell_rows, pdf_signoffs
    from .case.store import CaseStore, StoreError

    try:
        store = CaseStore.open(path, create=False, read_only=True)
        try:
            _refuse_broken(store)
            doc = store.load()
        finally:
            store.close()
    except StoreError as exc:
        raise CliError(f"cannot read the case store: {exc}") from None
    if doc.current is None:
        raise CliError(f"{path}: the case store has no classified cells")
    rows = cell_rows(doc)
    if not rows:
        raise CliError(f"{path}: the case store has no classified cells")
    return rows, {c.root: c.sample_id for c in doc.cases.values() if c.sample_id}, pdf_signoffs(doc)


def _report_rows(path: Path) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, str]]]:
    """The per-cell rows to print from ``path`` (a REPORT.csv or a case store .db), the sample ids and the
    sign-offs per case root (a store's); :class:`CliError` (exit 2) when it is neither."""
    import csv

    from .report import read_cell_report

    if not path.is_file():
        raise CliError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    from .case.store import SQLITE_MAGIC

    with open(path, "rb") as fh:
        if fh.read(16) == SQLITE_MAGIC:
            return _store_report(path)
    try:
        rows = read_cell_report(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise CliError(f"{path} has no cell rows: not a LeukoScan report, or an empty one")
    missing = [c for c in REPORT_NEEDS if c not in rows[0]]
    if "flagged" not in rows[0] and "needs_review" not in rows[0]:
        missing.append("flagged")
    if missing:
        raise CliError(f"{path} is not a LeukoScan per-cell report (missing columns: {', '.join(missing)})")
    return (rows, *_summary_record(path))


def _summary_record(report: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]] | tuple[None, None]:
    """Sample ids and sign-offs per root from the summary written beside a per-cell report (``<stem>_summary.csv``,
    as the app and ``--summary`` name it); (None, None) when there is none: the PDF then says "unknown (not in
    this CSV)" instead of asserting "not signed off" or "not given"."""
    import csv

    from .report import read_cell_report

    summary = report.with_name(f"{report.stem}_summary.csv")
    try:
        rows = read_cell_report(summary) if summary.is_file() else None
    except (OSError, UnicodeDecodeError, csv.Error):
        rows = None
    if not rows or "signed_off_by" not in rows[0]:
        return None, None
    ids = {r.get("root", ""): r.get("sample_id", "") for r in rows if r.get("sample_id")}
    signed = {r.get("root", ""): {"signed_off_by": r["signed_off_by"], "signed_off_at": r.get("signed_off_at", ""),
                                  "comment": r.get("comment", "")} for r in rows if r.get("signed_off_by")}
    return ids, signed


def cmd_report(args) -> int:
    from .pdf_report import write_case_pdf

    src = Path(args.report).expanduser()
    rows, sample_ids, signoffs = _report_rows(src)
    if _same_file(Path(args.pdf).expanduser(), src):
        raise CliError("--pdf must be another file than the report it prints")
    out = _check_output(Path(args.pdf), "--pdf", set(), args.force)
    reg = _registry(args.models_dir)
    cards = {name: reg.get(name) for name in {r.get("model", "") for r in rows} if name in reg}
    where, ok = _write_or_rescue("PDF report", out, lambda p, rs: write_case_pdf(
        p, rs, card=cards, sample_ids=sample_ids, signoffs=signoffs, record_known=signoffs is not None), rows)
    n_cases = len({r.get("root", "") for r in rows})
    unknown = sorted({r.get("model", "") for r in rows if r.get("status") == "ok"} - set(cards))
    _say(f"{len(rows)} cells in {n_cases} case(s); PDF report: {where}"
         + (f" (no model card found for {', '.join(unknown)}: card facts left out)" if unknown else ""))
    return EXIT_OK if ok else EXIT_WRITE


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format=f"{PROG}: %(levelname)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "verify":
            return cmd_verify(args)
        return cmd_classify(args)
    except CliError as exc:
        _say(f"error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `leukoscan-cli models | head`
        return EXIT_OK
    except OSError as exc:  # any other I/O failure (e.g. a full disk): one line, never a traceback
        _say(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return EXIT_WRITE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
