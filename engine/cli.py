"""``leukoscan-cli``: classify folders of cell images headless, list the models.

    leukoscan-cli classify PATH [PATH ...] --model NAME --out REPORT.csv [--summary SUMMARY.csv]
                  [--device auto|cpu|cuda] [--batch-size N] [--threads N] [--workers N]
                  [--threshold T] [--models-dir DIR] [--no-progress] [--force]
    leukoscan-cli models [--models-dir DIR] [--check]

Exit status: 0 the run completed (even when some files were unreadable: they are error rows);
2 usage error (bad option, missing PATH, no image found, unusable output path: a folder, an input
image, the same file for ``--out`` and ``--summary`` even through a symlink, an existing read-only
file without ``--force``); 3 the model cannot be used; 1 the report could not be written where asked
(it is then saved in the temp folder, see message) or not at all (disk and temp folder full);
130 interrupted with Ctrl-C (SIGINT), 143 stopped with SIGTERM: in both cases the cells done so far go
to ``<REPORT>.partial.csv``, never to REPORT (a second signal quits at once, still writing that file).
Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .card import ModelError
from .model import DEVICES
from .paths import user_models_dir
from .pipeline import classify, scan
from .preprocess import is_supported
from .registry import Registry, default_dirs, default_model, describe_metrics
from .report import cell_row, summarize, write_cell_report, write_summary

PROG = "leukoscan-cli"
EXIT_OK, EXIT_WRITE, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
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
    sub = p.add_subparsers(dest="command", metavar="{classify,models}", parser_class=_Parser)
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

    m = sub.add_parser("models", help="list the available models, their validation metrics and invalid cards")
    m.add_argument("--models-dir", action="append", default=[], metavar="DIR", help="extra folder of model cards (repeatable)")
    m.add_argument("--check", action="store_true",
                   help="also load every model (checks the ONNX graph against its card; slower)")
    return p


def _say(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


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
            if c.preprocessing and c.preprocessing.crop_fraction < 1:
                inp += f" crop {c.preprocessing.crop_fraction:g}"
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

    reg = _registry(args.models_dir)
    try:
        name = args.model or default_model(reg.cards())
        if name is None:
            raise ModelError("no model is installed (see `leukoscan-cli models`)")
        clf = reg.load(name, device=args.device, threads=args.threads)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    threshold = clf.threshold if args.threshold is None else args.threshold
    _say(
        f"model {clf.name} {clf.version} on {clf.device_label} ({clf.active_provider}); "
        f"threshold {threshold:g}{'' if args.threshold is None else ' (card: %g)' % clf.threshold}; "
        f"{len(items)} image files"
    )
    for w in clf.warnings:
        _say(f"warning: {w}")

    cancel = threading.Event()
    stopped_by: list[int] = []  # the first stop signal received
    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_stop(signum, frame):  # SIGINT and SIGTERM alike: stop, keep the cells done so far
            if cancel.is_set():
                raise KeyboardInterrupt
            stopped_by.append(signum)
            cancel.set()
            again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
            _say(f"interrupted ({signal.Signals(signum).name}): stopping ({again} again to quit at once)")
        old_handlers = {sig: signal.signal(sig, on_stop) for sig in STOP_SIGNALS}

    rows: list[dict[str, str]] = []
    t0 = time.perf_counter()
    try:
        from tqdm import tqdm

        with tqdm(total=len(items), unit="cell", file=sys.stderr, disable=args.no_progress,
                  mininterval=0.5, dynamic_ncols=True) as bar:
            for res in classify(items, clf, batch_size=args.batch_size, threads=args.workers, cancel=cancel):
                rows.append(cell_row(res, clf, threshold))
                bar.update(1)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    except KeyboardInterrupt:
        cancel.set()
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    elapsed = time.perf_counter() - t0

    if cancel.is_set() and len(rows) < len(items):
        partial = out.with_name(out.stem + ".partial" + (out.suffix or ".csv"))
        if rows:
            where, _ = _write_or_rescue("partial report", partial, write_cell_report, rows)
            _say(f"interrupted after {len(rows)} of {len(items)} cells; those rows are in {where}; "
                 f"{out} was not written")
        else:
            _say("interrupted before any cell was classified; nothing written")
        return STOP_SIGNALS[stopped_by[0]] if stopped_by else EXIT_INTERRUPTED

    code = EXIT_OK
    where, ok = _write_or_rescue("report", out, write_cell_report, rows)
    code = code if ok else EXIT_WRITE
    sums = summarize(rows)
    if summary is not None:
        swhere, ok = _write_or_rescue("summary", summary, write_summary, sums)
        code = code if ok else EXIT_WRITE
    n_ok = sum(r["status"] == "ok" for r in rows)
    n_all = sum(r["final_label"] == "ALL" for r in rows if r["status"] == "ok")
    n_rev = sum(r["needs_review"] == "true" for r in rows)
    n_qc = sum(bool(r["qc"]) for r in rows)
    _say(
        f"{len(rows)} cells in {len(sums)} folder(s): {n_ok} classified ({n_all} ALL, {n_ok - n_all} HEM, "
        f"{n_rev} need review{f', {n_qc} of them failed the quality check' if n_qc else ''}), "
        f"{len(rows) - n_ok} unreadable; {len(rows) / max(elapsed, 1e-9):.1f} cells/s; "
        f"report: {where}" + (f"; summary: {swhere}" if summary is not None else "")
    )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format=f"{PROG}: %(levelname)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "models":
            return cmd_models(args)
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
