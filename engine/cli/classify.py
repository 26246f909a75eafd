"""``leukoscan-cli classify``: classify folders of cell images on this machine (``--engine ray``: :mod:`.ray`),
write the per-cell report, optionally the summary and a case file."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ..card import PRECISIONS, ModelError
from ..case.rules import threshold_in_use
from ..model import DEVICES, default_threads, require_cuda
from ..pipeline import scan
from ..run import Progress, Rows, RunSpec, Store, local, operator
from .common import (
    EXIT_MODEL,
    EXIT_NOT_THE_CASE,
    EXIT_SIGNED_OFF,
    CliError,
    add_command,
    add_models_dir,
    add_report_options,
    check_output,
    log,
    real,
    registry,
    same_file,
    say,
    take_lock,
    warn,
)
from .run_end import SCHEMA, Finished, Outputs, model_name, progress_bar, progress_wanted, stop_signals, write_reports

CODES = (
    "0    the run completed (unreadable files are error rows)",
    "1    a report could not be written where asked (then saved in the temp folder, see message) or not at all",
    "2    usage error: bad option, no image found, unusable output path, case file locked by another program",
    "3    the model cannot be used, or --device cuda cannot run on CUDA (the message says why)",
    "5    --store would change a signed-off case (new, changed or gone images, another model or threshold) and "
    "no --reopen REASON was given",
    "6    --store: the folder's images are not the case the case file holds for it (another sample): refused",
    "130  Ctrl-C; 143 SIGTERM: the cells done so far go to <REPORT>.partial.csv, never to REPORT",
)


#: Cells per inference batch.  8, measured (docs/speed.md): VGG19 4.0's wide early activations make a batch of 32
#: peak at 3.3 GB and run slower end to end (22.5 vs 31.8 cells/s on 128 cells, 2 cores); InceptionV3 4.0 gains too.
DEFAULT_BATCH = 8


def _positive_int(s: str) -> int:
    import argparse

    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _positive_float(s: str) -> float:
    import argparse

    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {v}")
    return v


def _threshold(s: str) -> float:
    import argparse

    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {s!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {v}")
    return v


def add_parser(sub) -> None:
    c = add_command(
        sub,
        "classify",
        "classify every image under the given folders/files, write a CSV report",
        CODES,
        "leukoscan-cli classify /data/slide_0423 -o report.csv --summary summary.csv",
        "leukoscan-cli classify /data/slide_0423 --out - -q | csvgrep -c flagged -m true",
    )
    c.add_argument("paths", nargs="+", metavar="PATH", help="folder (searched recursively) or image file")
    c.add_argument(
        "--model",
        default=None,
        help="model name, one of those `leukoscan-cli models` lists; default: the recommended model (as in the app)",
    )
    add_report_options(c)
    c.add_argument(
        "--json",
        action="store_true",
        help=f"print the run's summary as JSON on stdout (schema {SCHEMA}, see docs/cli.md); not with --out -",
    )
    c.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="auto (default): CUDA when usable, else the CPU, saying why on stderr, in the JSON and the "
        "report's device_fallback column; cpu; cuda: CUDA or exit 3 with the reason",
    )
    c.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): the model's int8 file where its card says it passed the int8 gate "
        "(docs/speed.md), else float32; fp32; int8: the int8 file or exit 3 with the reason",
    )
    c.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH,
        help=f"cells per inference batch (default {DEFAULT_BATCH}: docs/speed.md)",
    )
    c.add_argument(
        "--threads", type=_positive_int, default=None, help="onnxruntime threads (default: the physical cores)"
    )
    c.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="image decoding threads (default: min(4, cores) on CPU, min(8, cores) with CUDA)",
    )
    c.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="decision threshold on P(ALL) (default: the model card's validated threshold)",
    )
    add_models_dir(c)
    c.add_argument(
        "--no-progress", action="store_true", help="no progress bar (there is one only when stderr is a terminal)"
    )
    c.add_argument(
        "--force", action="store_true", help="replace --out/--summary even when the existing file is read-only"
    )
    c.add_argument(
        "--store",
        metavar="CASE.leukoscan",
        default=None,
        help="also store the run in this case file (created if needed) to review it in the app; cells "
        "it already holds with a valid result of the model are not classified again",
    )
    c.add_argument(
        "--reopen",
        metavar="REASON",
        default=None,
        help="--store: the run may change a signed-off case (new or changed images); it is reopened "
        "first with this reason, logged with your OS user. Without it such a run is refused",
    )
    c.add_argument(
        "--sample-id",
        metavar="ID",
        default=None,
        help="the sample (patient) id of the one folder classified: in the summary, and with --store the case's "
        "sample id (a case must have one to be signed off); refused with several folders, or for a case the "
        "case file holds under another id",
    )
    c.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: classify on this machine (default); ray: on a Ray cluster (the ray extra)",
    )
    c.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="--engine ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); "
        "default: a private local Ray instance",
    )
    c.add_argument(
        "--actors",
        type=_positive_int,
        default=None,
        help="--engine ray: classifier actors, each with its own model session (default: fill the "
        "cluster, one per --threads CPUs (default 1) or per --gpus-per-actor GPUs)",
    )
    c.add_argument(
        "--gpus-per-actor",
        type=_positive_float,
        default=None,
        metavar="G",
        help="--engine ray: GPUs each actor reserves (0.5: two actors share a GPU); actors then use CUDA",
    )
    c.set_defaults(run=run)


def run(args) -> int:
    """``leukoscan-cli classify``: check the options and the paths, then run on this machine or on Ray."""
    if args.json and str(args.out) == "-":
        raise CliError("--json and --out - both write to stdout: give --out a file name")
    items = _scan(args.paths)
    inputs = {real(it.path) for it in items}
    out = check_output(Path(args.out), "--out", inputs, args.force, stdout=True)
    summary = check_output(Path(args.summary), "--summary", inputs, args.force) if args.summary else None
    if summary is not None and same_file(summary, out):
        raise CliError("--summary and --out must be different files")
    store_path = _check_store_path(args, inputs, out, summary)
    _check_sample_id(args.sample_id, items)
    if args.engine == "ray":
        if store_path is not None:
            raise CliError("--store is not available with --engine ray")
        from .on_ray import classify_on_ray

        return classify_on_ray(args, items, out, summary)
    if args.address or args.actors or args.gpus_per_actor:
        raise CliError("--address, --actors and --gpus-per-actor need --engine ray")
    return _run_local(args, _load_model(args), items, out, summary, store_path)


def _scan(paths: list[str]) -> list:
    """The images under ``paths`` (warnings said on stderr); exit 2 when there is none."""
    warnings: list[str] = []
    try:
        items = scan(paths, warnings=warnings)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    for w in warnings:
        warn(w)
    if not items:
        raise CliError(
            "no image files found in "
            + ", ".join(paths)
            + " (looked for .bmp .png .jpg .jpeg .tif .tiff .webp; hidden files are skipped)"
        )
    return items


def _check_sample_id(sample_id: str | None, items: list) -> None:
    """``--sample-id`` names the patient of one folder: exit 2 when it is empty or the run holds several."""
    roots = list(dict.fromkeys(str(it.root) for it in items))
    if sample_id is not None and (not sample_id.strip() or len(roots) != 1):
        raise CliError(
            "--sample-id names one patient: give one folder (this run holds "
            f"{len(roots)}: {', '.join(roots[:3])}{' ...' if len(roots) > 3 else ''})"
            if sample_id.strip()
            else "--sample-id is empty"
        )


def _load_model(args):
    """The model of ``--model`` (or the default), on ``--device`` at ``--precision``; exit 3 when it cannot run."""
    reg = registry(args.models_dir)
    try:
        clf = reg.load(model_name(reg, args), device=args.device, threads=args.threads, precision=args.precision)
        if args.device == "cuda":
            require_cuda(clf)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    return clf


def _run_local(args, clf, items: list, out: Path, summary: Path | None, store_path: Path | None) -> int:
    """Classify on this machine through the classification operator (:mod:`engine.run`): the CSV rows, or with
    ``--store`` the case file, and the progress bar are its sinks; then the reports."""
    headless, lock = _store_run(store_path, args, clf, items) if store_path is not None else (None, None)
    threshold = threshold_in_use(clf.threshold, args.threshold) if headless is None else headless.threshold
    spec = RunSpec.of(items if headless is None else headless.todo, threshold, args.batch_size, args.workers)
    _say_model(clf, threshold, args.threshold, len(items))
    log.debug(
        f"batch size {args.batch_size}, decoding threads {args.workers or 'default'}, onnxruntime threads "
        f"{args.threads or default_threads()}; {spec.total} cells to classify"
    )
    sink: Rows | Store = Rows(spec) if headless is None else Store(headless)
    cancel = threading.Event()
    stopped_by: list[int] = []  # the first stop signal received
    t0 = time.perf_counter()
    try:
        with stop_signals(cancel, stopped_by), progress_bar(spec.total, progress_wanted(args)) as bar:
            operator.run(spec, local(clf), [sink, Progress(bar.update)], cancel)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    except KeyboardInterrupt:
        cancel.set()
    finally:
        store_failed = isinstance(sink, Store) and _finish_store_run(sink, lock)
    elapsed = time.perf_counter() - t0
    done = Finished(
        sink.rows if isinstance(sink, Rows) else _stored_rows(sink),
        len(items),
        cancel.is_set(),
        tuple(stopped_by),
        elapsed,
        _facts(clf, threshold, args.device),
        skipped=0 if headless is None else headless.skipped,
        store_path=store_path,
        store_failed=store_failed,
        signoffs=headless.doc.signoffs if headless is not None else None,
        sample_ids=headless.doc.sample_ids if headless is not None else _sample_ids(args.sample_id, items),
        record=headless.record if headless is not None else None,
    )
    return write_reports(Outputs.of(args, out, summary), done)


def _stored_rows(store: Store) -> list:
    """With ``--store`` the report covers every item, the skipped ones with their stored results."""
    from ..case.export import cell_rows

    return cell_rows(store.headless.doc, store.headless.cells)


def _say_model(clf, threshold: float, asked: float | None, n_items: int) -> None:
    say(
        f"model {clf.name} {clf.version} ({clf.precision}) on {clf.device_label} ({clf.active_provider}); "
        f"threshold {threshold:g}{'' if asked is None else f' (card: {clf.threshold:g})'}; "
        f"{n_items} image files"
    )
    for w in clf.warnings:
        warn(w)


def _facts(clf, threshold: float, device_requested: str) -> dict:
    """The run's facts in the JSON summary (schema leukoscan.classify/2)."""
    return {
        "engine": "local",
        "model": {"name": clf.name, "version": clf.version, "precision": clf.precision},
        "threshold": threshold,
        "default_threshold": clf.threshold,
        "device": clf.device_label,
        "device_requested": device_requested,
        "device_fallback": clf.device_fallback or None,
        "provider": clf.active_provider,
    }


def _sample_ids(sample_id: str | None, items: list) -> dict[str, str] | None:
    """``--sample-id`` of the run's one folder, spaces collapsed (None without)."""
    return {str(items[0].root): " ".join(sample_id.split())} if sample_id else None


# -------------------------------------------------------------------------------------- --store


def _check_store_path(args, inputs: set[str], out: Path, summary: Path | None) -> Path | None:
    if not args.store:
        return None
    path = check_output(Path(args.store), "--store", inputs, force=True)  # a case file is added to, not replaced
    if any(p is not None and same_file(path, p) for p in (out, summary)):
        raise CliError("--store must be another file than --out and --summary")
    return path


def _store_run(path: Path, args, clf, items):
    """Open (or create) the case file, holding its lock, and add this run's cells to it: (the run, the lock to
    release after :func:`_finish_store_run`); exit 2 when it cannot be read."""
    from ..case import ModelFacts
    from ..case.audit import reviewer_name
    from ..case.headless import HeadlessRun, SignedOffChanged
    from ..case.images import NotTheCase
    from ..case.store import CaseStore, StoreError

    lock = take_lock(path, "leukoscan-cli classify --store")
    try:
        store = CaseStore.open(path)
    except StoreError as exc:
        lock.release()
        raise CliError(
            f"--store: {exc}; the file was left as it is (give another --store; the app offers "
            "to move a damaged case file aside)"
        ) from None
    try:
        opened = [(os.path.abspath(Path(p).expanduser()), os.path.isdir(p)) for p in args.paths]
        reopen = args.reopen
        run = HeadlessRun(
            store,
            ModelFacts.of(clf),
            items,
            args.threshold,
            opened,
            reopen=reopen,
            reopened_by=reviewer_name() if reopen else "",
            sample_id=args.sample_id,
        )
    except SignedOffChanged as exc:
        store.close()
        lock.release()
        raise CliError(f"--store {path}: {exc}", EXIT_SIGNED_OFF) from None
    except NotTheCase as exc:
        store.close()
        lock.release()
        raise CliError(f"--store {path}: {exc}", EXIT_NOT_THE_CASE) from None
    except StoreError as exc:
        store.close()
        lock.release()
        raise CliError(f"--store: {exc}; the file was left as it is") from None
    except BaseException:
        store.close()
        lock.release()
        raise
    for w in run.warnings:
        warn(w)
    note = f", {len(run.changed)} changed since and classified again" if run.changed else ""
    if args.threshold is None and abs(run.threshold - clf.threshold) > 1e-12:
        note += f"; threshold {run.threshold:g} kept from the case file (card: {clf.threshold:g})"
    say(
        f"case file {path}: {run.skipped} of {len(items)} cells already classified by {clf.name} "
        f"{clf.version} are skipped{note}"
    )
    return run, lock


def _finish_store_run(store: Store, lock) -> bool:
    """Store the last results, close the case file (the operator already did, unless the run never started) and
    release its lock; True (said on stderr) when writes failed."""
    try:
        store.finish(complete=False)  # HeadlessRun.finish does its work once
    finally:
        lock.release()
    errors = store.errors
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        say(f"error: {errors[0]}{more}")
    return bool(errors)
