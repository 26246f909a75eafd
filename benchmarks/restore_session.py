"""Restoring a 20,000-cell session in the app: from ``case_files.restore(path)`` to a drawn gallery.

1. ``build`` (a child process, engine API only, no Qt): a case store of 20,000 real C-NMC image paths
   (symlinks, in a temp folder, to ``../shared/data/C-NMC_Leukemia/training_data/fold_0/all/*.webp``,
   replicated as ``gui_throughput.link_folder`` does) is written the way the app writes one:
   ``CaseDocument`` + ``CaseStore.attach`` + ``note_opened`` + ``add_items`` + ``set_model`` +
   ``add_results`` (batches of 64, as a run delivers them; synthetic P(ALL), the images' real sha256, two
   member p's when the model is an ensemble) + 2,000 reviews in 200 steps, then ``close``.  The results
   belong to the model the app would load: its :class:`ModelFacts` come from the loaded classifier
   (``ModelFacts.of``), as the window's own (``win.bridge.facts_of``) do, so the card digests match.
2. ``restore`` (this process, which then holds only what the app holds): a fresh ``MainWindow``
   (offscreen, ``check_orphans=False``, a temp ``LEUKOSCAN_DATA_DIR``, ``settings.model`` = that model)
   loads the model; then ``win.case_files.restore(path)`` is timed until every row is in ``win.cell_model``,
   the gallery shows tiles (``indexAt(10, 10)`` valid) and the summary shows 20,000 classified cells.
   Nothing may be classified again: ``win.runs.running`` is checked at every event-loop turn, through the
   re-scan of the opened folder that the restore starts (any run is reported with the cells it covers).

Prints the store build time, the restore-to-drawn-gallery time (goal < 2 s) and the RSS after the
restore.  Timings on a shared machine (other jobs running) are noisy.  Exit status 1 when something was
classified again or a goal check failed to complete.

Usage: ``QT_QPA_PLATFORM=offscreen python benchmarks/restore_session.py [--cells 20000] [--reviews 2000]
[--model NAME] [--tiny] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rss import rss_mb

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

SOURCE = REPO.parent / "shared" / "data" / "C-NMC_Leukemia" / "training_data" / "fold_0" / "all"
GOAL_S = 2.0


def link_folder(dest: Path, n: int) -> Path:
    """``n`` symlinks to the fold_0/all images, named as ``gui_throughput.link_folder`` names its copies
    (``c<copy>_<index>_<name>``), the images replicated as often as needed."""
    files = sorted(SOURCE.glob("*.webp"))
    if not files:
        sys.exit(f"no C-NMC cells found under {SOURCE} (../shared beside the repository)")
    dest.mkdir(parents=True)
    for j in range(n):
        k, i = divmod(j, len(files))
        (dest / f"c{k:02d}_{i:05d}_{files[i].name}").symlink_to(files[i])
    return dest


def tiny_models(tmp: Path) -> list[Path]:
    from tinymodels import make_tiny_ensemble, make_tiny_model

    d = tmp / "tiny-models"
    make_tiny_model(d, name="tiny_a", size=32, seed=0)
    make_tiny_model(d, name="tiny_b", size=48, seed=3, crop_fraction=0.8)
    make_tiny_ensemble(d, ["tiny_a", "tiny_b"], name="tiny_ensemble")
    return [d]


# ------------------------------------------------------------------------------------------ 1. build


def build(folder: Path, path: Path, name: str, dirs: list[Path] | None, n_reviews: int) -> dict:
    """The case store, with the engine API only (child process); returns what it measured."""
    from engine.case import CaseDocument, ModelFacts
    from engine.case.store import CaseStore
    from engine.pipeline import CellResult, scan
    from engine.registry import Registry

    t0 = time.perf_counter()
    clf = Registry(dirs).load(name, device="cpu")
    facts = ModelFacts.of(clf)  # what the window's RunController computes for the loaded model
    load_s = time.perf_counter() - t0
    members = facts.member_names

    t0 = time.perf_counter()
    items = scan([folder])
    sha: dict[str, str] = {}  # one per real image (the symlinks of one image share its bytes)
    digests = []
    for it in items:
        target = os.path.realpath(it.path)
        if target not in sha:
            sha[target] = hashlib.sha256(Path(target).read_bytes()).hexdigest()
        digests.append(sha[target])
    prep_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    doc.note_opened(str(folder), True)  # what a restore re-scans
    cells = doc.add_items(items)
    doc.set_model(facts)
    t_items = time.perf_counter()
    n = len(cells)
    for b in range(0, n, 64):
        pairs = []
        for i, c in enumerate(cells[b : b + 64], b):
            p = (i * 7919 % 1000) / 1000
            mp = {}
            if members:
                mp = {m: min(1.0, max(0.0, p * (0.9 if k % 2 == 0 else 1.1))) for k, m in enumerate(members)}
            pairs.append(
                (
                    c,
                    CellResult(
                        i,
                        c.path,
                        c.root,
                        c.folder,
                        c.file,
                        digests[i],
                        "ok",
                        "",
                        p,
                        mp,
                        bool(members) and i % 13 == 0,
                        "",
                    ),
                )
            )
        doc.add_results(facts, pairs)
    t_results = time.perf_counter()
    per_step = 10
    reviewed = cells[:: max(1, n // max(1, n_reviews))][:n_reviews]
    for s in range(0, len(reviewed), per_step):
        doc.review(reviewed[s : s + per_step], "accept" if s % 3 else "ALL", "bench")
    t_reviews = time.perf_counter()
    ok = store.close(120)
    t_end = time.perf_counter()
    t1 = time.perf_counter()  # what the restore does off the GUI thread (EngineService.open_store)
    again = CaseStore.open(path, create=False)
    again.load()
    read_s = time.perf_counter() - t1
    again.close()
    return {
        "model": facts.name,
        "version": facts.version,
        "card_sha256": facts.card_sha256,
        "members": list(members),
        "cells": n,
        "reviews": len(doc.reviews),
        "load_model_s": load_s,
        "prepare_s": prep_s,
        "items_s": t_items - t0,
        "results_s": t_results - t_items,
        "reviews_s": t_reviews - t_results,
        "close_s": t_end - t_reviews,
        "build_s": t_end - t0,
        "read_s": read_s,
        "closed": ok,
        "errors": list(store.errors),
        "size_mib": path.stat().st_size / 2**20,
    }


# ------------------------------------------------------------------------------------------ 2. restore


def restore(
    path: Path, name: str, dirs: list[Path] | None, built: dict, timeout: float, window_model: str | None = None
) -> int:
    """``name``: the model whose results are stored; ``window_model``: the one the window loads (default:
    the same; another one shows what a restore does when the window's model is not the store's)."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication

    from gui.app import configure_runtime
    from gui.mainwindow import MainWindow
    from gui.run_controller import RunState
    from gui.service import EngineService
    from gui.settings import Settings

    configure_runtime()
    app = QApplication.instance() or QApplication([])
    n = built["cells"]
    rss_start = rss_mb()
    s = Settings()
    s.model = window_model or name
    s.reviewer = "bench"
    win = MainWindow(EngineService(dirs), s, check_orphans=False)
    win.resize(1400, 900)
    win.show()

    runs: list[dict] = []  # every run the window starts

    def on_state(state) -> None:  # RUNNING is entered once per run
        if state == RunState.RUNNING:
            cells = list(win.runs._cells)
            runs.append(
                {
                    "job": len(runs) + 1,
                    "cells": len(cells),
                    "at_s": time.perf_counter() - t_restore,
                    "with_stored_result": sum(1 for c in cells if name in c.results),
                    "example": str(cells[0].path) if cells else "",
                }
            )

    win.runs.stateChanged.connect(on_state)
    t_restore = time.perf_counter()  # replaced below; on_state may fire while the model loads (no cells)

    deadline = time.monotonic() + 180
    want = window_model or name
    while (
        (win.model_chooser.classifier is None or win.model_chooser.classifier.name != want)
        or (win.case_files.path is not None and win.bridge.store is None)
    ) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    if win.model_chooser.classifier is None or win.model_chooser.classifier.name != want:
        sys.exit(f"the window did not load {want} (the log says why)")
    for _ in range(20):
        app.processEvents()
    facts = win.bridge.facts_of(win.model_chooser.classifier)
    same_card = facts.card_sha256 == built["card_sha256"]
    print(
        f"window : model {facts.name} {facts.version} on {win.model_chooser.classifier.device_label}; card digest "
        f"{facts.card_sha256[:12]} {'==' if same_card else '!='} stored {built['card_sha256'][:12]}; "
        f"RSS {rss_mb():.0f} MB (before the window {rss_start:.0f} MB)"
    )
    if window_model and window_model != name:
        print(f"note   : the window loads {window_model}, the stored results are {name}'s (--window-model)")
    elif not same_card:
        print(
            "BUG?   : the loaded model's card digest differs from the one its results were stored with: "
            "the restore will classify every cell again"
        )
    runs.clear()
    scans: list[int] = []
    win.opener.scanned.connect(lambda found: scans.append(len(found.items)))

    def summary_cells() -> bool:
        t = win.side.summary
        return any((it := t.item(r, 1)) is not None and it.text() == str(n) for r in range(t.rowCount()))

    marks: dict[str, float] = {}
    job_seen = 0
    t_restore = time.perf_counter()
    if not win.case_files.restore(path):
        sys.exit("restore refused (the log says why)")
    while len(marks) < 3:
        app.processEvents()
        now = time.perf_counter() - t_restore
        job_seen += win.runs.running
        if "rows" not in marks and len(win.cell_model.cells) == n:
            marks["rows"] = now
        if (
            "rows" in marks
            and "gallery" not in marks
            and win.browser.gallery.isVisible()
            and win.browser.gallery.indexAt(QPoint(10, 10)).isValid()
        ):
            marks["gallery"] = now
        if "summary" not in marks and summary_cells():
            marks["summary"] = now
        if runs:  # something is classified again: reported below, not waited for
            break
        if now > timeout:
            print(
                f"restore: not done after {timeout:.0f} s: {marks}, {len(win.cell_model.cells)} rows (the log says why)"
            )
            break
    drawn = max(marks.values()) if len(marks) == 3 else float("nan")
    # the restore also re-scans the opened folder (new images are added) and stats the files: let that
    # finish, still watching for a run
    settle_deadline = time.perf_counter() + 60
    quiet_since = None
    while time.perf_counter() < settle_deadline:
        app.processEvents()
        job_seen += win.runs.running
        if runs:
            break
        busy = not scans or win.opener.busy or win.runs.running
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.perf_counter()
        elif time.perf_counter() - quiet_since > 1.5:
            break
        time.sleep(0.002)
    settled = time.perf_counter() - t_restore
    rss = rss_mb()
    doc = win.doc
    unclassified = len(doc.unclassified())
    nan = float("nan")
    print(
        f"restore: {len(win.cell_model.cells)} rows in win.cell_model {marks.get('rows', nan):.2f} s, gallery tiles "
        f"{marks.get('gallery', nan):.2f} s, summary {n} cells {marks.get('summary', nan):.2f} s "
        f"-> restore-to-drawn-gallery {drawn:.2f} s (goal < {GOAL_S:.0f} s)"
    )
    print(
        f"after  : settled in {settled:.1f} s (re-scan found {scans[0] if scans else '?'} images); "
        f"{len(doc.reviews)} reviews, undo {'available' if doc.can_undo else 'EMPTY'}; "
        f"{unclassified} cells without a result of the current model {doc.model_name}"
    )
    print(f"rss    : {rss:.0f} MB after the restore ({len(win.cell_model.cells)} cells, the model loaded)")
    bad = bool(runs) or job_seen > 0 or unclassified > 0
    if runs:
        for r in runs:
            print(
                f"RE-CLASSIFICATION: run {r['job']} started {r['at_s']:.2f} s after restore() over {r['cells']} "
                f"cells, {r['with_stored_result']} of them with a stored {name} result (e.g. {r['example']})"
            )
    elif job_seen:
        print(f"RE-CLASSIFICATION: a run was going during {job_seen} event-loop turns")
    else:
        print("no classification run was started (win.runs.running stayed False throughout)")
    win.doc.unexported = False  # no close prompt (the reviews stay in the store)
    win.close()
    app.processEvents()
    return 1 if bad or len(marks) < 3 else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--reviews", type=int, default=2_000)
    ap.add_argument("--model", help="model name (default: the app's default, engine.registry.default_model)")
    ap.add_argument("--tiny", action="store_true", help="the tiny test models (GUI overhead only)")
    ap.add_argument("--keep", metavar="DIR", help="build in DIR and keep it (default: a temp folder, removed)")
    ap.add_argument(
        "--window-model",
        help="the model the window loads (default: --model's); another one "
        "shows what restoring a store of one model into a window of another does",
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="give up on the restore after this many s")
    ap.add_argument("--build", nargs=2, metavar=("FOLDER", "STORE"), help=argparse.SUPPRESS)
    ap.add_argument("--dirs", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        dirs = [Path(d) for d in args.dirs] if args.dirs else None
        print(json.dumps(build(Path(args.build[0]), Path(args.build[1]), args.model, dirs, args.reviews)))
        return 0

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="leukoscan-restorebench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["LEUKOSCAN_DATA_DIR"] = str(tmp / "user-data")  # never touch the real settings/sessions
    try:
        from engine.registry import Registry, default_model

        dirs = tiny_models(tmp) if args.tiny else None
        reg = Registry(dirs)
        cards = reg.cards()
        if not cards:
            sys.exit("no models installed (resources/models); use --tiny")
        name = args.model or default_model(cards)
        folder = link_folder(tmp / "case" / "patient 0001", args.cells)
        path = tmp / "bench-restore.db"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--build",
            str(folder),
            str(path),
            "--model",
            name,
            "--reviews",
            str(args.reviews),
        ]
        if dirs:
            cmd += ["--dirs", *map(str, dirs)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if p.returncode:
            sys.exit(f"building the store failed ({p.returncode}):\n{p.stderr[-3000:]}")
        built = json.loads(p.stdout.strip().splitlines()[-1])
        print(
            f"model  : {name} {built['version']} (members: {', '.join(built['members']) or 'none'}); "
            f"{os.cpu_count()} CPUs; shared machine: timings are noisy"
        )
        print(
            f"build  : {built['cells']} cells, {built['cells']} results, {built['reviews']} reviews in "
            f"{built['build_s']:.2f} s (cells {built['items_s']:.2f} s, results {built['results_s']:.2f} s, "
            f"reviews {built['reviews_s']:.2f} s, close/flush {built['close_s']:.2f} s); file "
            f"{built['size_mib']:.1f} MiB; CaseStore.open + load {built['read_s']:.2f} s; [not included: model load {built['load_model_s']:.1f} s, "
            f"sha256 of the images {built['prepare_s']:.1f} s]"
            + ("" if built["closed"] and not built["errors"] else f"; STORE ERRORS {built['errors']}")
        )
        return restore(path, name, dirs, built, args.timeout, args.window_model)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
