"""GUI vs CLI-pipeline throughput, event-loop stalls, and memory with 20,000 cells loaded.

1. The same N real C-NMC cells (default 2,000; one folder of symlinks to ``../shared/data``) are
   classified with the same model, batch size and thread settings:
   - ``CLI pipeline``: ``engine.pipeline.classify`` consumed in a plain loop (what ``leukoscan-cli`` runs);
   - ``GUI``: the real ``MainWindow`` (offscreen): open the folder -> scan -> worker thread -> results
     streamed into the case document (``win.doc``), hence to its case store (SQLite, written by the
     store's writer thread), the gallery, summary and chart; timed from ``open_paths`` to the run's end.
   While the GUI classifies, a 10 ms ``QTimer`` on the GUI thread records how late it fires (the stall).
2. 20,000 cells are loaded into the window (the real results of a short run, replicated onto distinct
   paths and attached with ``win.doc.add_results`` as a run does, so they are written to the case store
   too), the gallery is scrolled from top to bottom (thumbnails decoded on the way) and the process RSS
   is read, in a fresh process that holds only what the app holds.

Models: the registry's (bundled ``resources/models``) when it has any, else the tiny test models
(``--model`` picks one; default: the ensemble when there is one).  The last line is::

    GUI/CLI throughput ratio R, event-loop stall p99 S ms

Goals: R >= 0.90 (results are written to the case store as well), S < 50 ms, RSS < 1 GB with 20,000
cells and the ensemble.  Timings on a shared machine are noisy: the CLI rate is the mean of a run before
and one after the GUI run.
Usage: ``QT_QPA_PLATFORM=offscreen python benchmarks/gui_throughput.py [--n 2000] [--tiny] [--model NAME]``

``--only scroll`` runs part 2 alone (no CLI measurement; the app classifies at most 64 cells, whose results are
replicated), for measuring the gallery's scrolling; ``--profile FILE`` writes a cProfile of the scroll loop
(``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rss import rss_mb

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data" / "C-NMC_Leukemia" / "training_data"


def pick_cells(n: int) -> list[Path]:
    files = sorted(SHARED.glob("fold_*/*/*.webp"))
    if not files:
        sys.exit(f"no C-NMC cells found under {SHARED} (../shared beside the repository)")
    step = max(1, len(files) // n)
    out = files[::step][:n]
    while len(out) < n:  # fewer files than asked: reuse
        out += files[: n - len(out)]
    return out


def link_folder(dest: Path, files: list[Path], copies: int = 1) -> Path:
    dest.mkdir(parents=True)
    for k in range(copies):
        for i, f in enumerate(files):
            (dest / f"c{k:02d}_{i:05d}_{f.name}").symlink_to(f)
    return dest


def models(tiny: bool, tmp: Path):
    from engine.registry import Registry

    if not tiny:
        reg = Registry()
        if reg.cards():
            return None, reg
        print(
            "no registered models: using the tiny test models (numbers are for the GUI overhead, "
            "not for real-model speed)"
        )
    from tinymodels import make_tiny_ensemble, make_tiny_model

    d = tmp / "tiny-models"
    make_tiny_model(d, name="tiny_a", size=32, seed=0)
    make_tiny_model(d, name="tiny_b", size=48, seed=3, crop_fraction=0.8)
    make_tiny_ensemble(d, ["tiny_a", "tiny_b"], name="tiny_ensemble")
    return [d], Registry([d])


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="cells classified (default 2000)")
    ap.add_argument("--big", type=int, default=20000, help="cells loaded for the memory check (default 20000)")
    ap.add_argument(
        "--batch-size", type=int, default=8, help="for both the GUI and the CLI pipeline (default: the app's, 8)"
    )
    ap.add_argument("--model", help="model name (default: the ensemble, else the first model)")
    ap.add_argument("--tiny", action="store_true", help="use the tiny test models even if real ones are installed")
    ap.add_argument(
        "--app-only",
        action="store_true",
        help="(internal) no CLI measurement: the memory check runs in a process holding only what "
        "the app holds (one model session), started by the full benchmark",
    )
    ap.add_argument(
        "--only",
        choices=["scroll"],
        help="scroll: only the --big cells loaded and scrolled (the app classifies at most 64 cells first)",
    )
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the scroll loop to FILE")
    args = ap.parse_args()
    if args.only == "scroll":
        args.app_only, args.n = True, min(args.n, 64)
    return args


class StallMeter:
    """A 10 ms timer on the GUI thread and how late each tick fired (ms): the event loop's stalls."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.lateness: list[float] = []
        self.tick = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._on_tick)

    def _on_tick(self) -> None:
        el = self.tick.nsecsElapsed() / 1e6
        self.tick.restart()
        self.lateness.append(max(0.0, el - 10.0))

    def start(self) -> None:
        self.lateness.clear()
        self.tick.restart()
        self.timer.start()

    def stop(self) -> list[float]:
        """Stop; the lateness of every tick, sorted."""
        self.timer.stop()
        self.lateness.sort()
        return self.lateness

    @staticmethod
    def p99(sorted_lateness: list[float]) -> float:
        return sorted_lateness[int(0.99 * (len(sorted_lateness) - 1))] if sorted_lateness else 0.0


def cli_run(items, clf, batch_size: int) -> tuple[list, float]:
    """The CLI pipeline over ``items``: its results and the seconds taken."""
    from engine.pipeline import classify

    t0 = time.perf_counter()
    results = list(classify(items, clf, batch_size=batch_size))
    return results, time.perf_counter() - t0


def open_window(app, args, dirs, name: str):
    """The real MainWindow (offscreen), once its model is loaded and its session's case store attached."""
    from gui.mainwindow import MainWindow
    from gui.service import EngineService
    from gui.settings import Settings

    s = Settings()
    s.batch_size = args.batch_size
    s.model = name
    s.reviewer = "bench"
    win = MainWindow(EngineService(dirs), s, check_orphans=False)
    win.resize(1400, 900)
    win.show()
    deadline = time.monotonic() + 120
    # the model loaded, and the new session's case store attached (results are written to it)
    while (
        (win.model_chooser.classifier is None or win.model_chooser.classifier.name != name)
        or (win.case_files.path is not None and win.bridge.store is None)
    ) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    if win.model_chooser.classifier is None:
        sys.exit(f"the GUI could not load {name} (the log says why)")
    return win


def gui_run(app, win, case: Path, meter: StallMeter) -> tuple[float, list]:
    """Open ``case`` in the window and wait for its run to end: seconds, and the CellResults it delivered."""
    finished = []
    win.runs.finished.connect(lambda run: finished.append((run.cancelled, run.seconds)))
    delivered: list = []  # the engine's CellResults as the run delivers them (replicated by the memory check)
    win.runs.resultsStored.connect(lambda batch: delivered.extend(batch.results))
    t0 = time.perf_counter()
    meter.start()
    win.opener.open_paths([case])
    while not finished or win.runs.running:
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - t0 > 3600:
            sys.exit("GUI run did not finish within an hour")
    return time.perf_counter() - t0, delivered


def app_only_process(args, name: str, dirs) -> None:
    """The memory check in a fresh process that holds only what the app holds (this one also holds the CLI's
    model); its lines printed with a prefix."""
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), "--app-only", "--n", str(min(args.n, 300))]
    cmd += ["--big", str(args.big), "--batch-size", str(args.batch_size), "--model", name]
    if dirs is not None:
        cmd.append("--tiny")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    for line in p.stdout.splitlines():
        print("[app-only process] " + line)
    if p.returncode:
        print(f"memory check failed ({p.returncode}): {p.stderr[-2000:]}")


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="leukoscan-guibench-"))
    os.environ["LEUKOSCAN_DATA_DIR"] = str(tmp / "user-data")  # never touch the real settings/sessions
    dirs, reg = models(args.tiny, tmp)
    cards = reg.cards()
    name = args.model or next((c.name for c in cards if c.is_ensemble), cards[0].name)
    cells = pick_cells(args.n)
    case = link_folder(tmp / "case", cells)

    from engine.pipeline import classify, scan

    items = scan([case])
    if not args.app_only:
        clf = reg.load(name, device="auto")
        print(
            f"model {name} on {clf.device_label}; {args.n} real cells; batch size {args.batch_size}; "
            f"{os.cpu_count()} CPUs"
        )
        list(classify(items[:64], clf, batch_size=args.batch_size))  # warm-up (sessions, caches)
        cli_results, cli_s = cli_run(items, clf, args.batch_size)
        cli = len(cli_results) / cli_s
        print(f"CLI pipeline: {len(cli_results)} cells in {cli_s:.2f} s = {cli:.1f} cells/s")

    from PySide6.QtWidgets import QApplication

    from gui.app import configure_runtime

    configure_runtime()  # as the app does (after the CLI measurement, which runs without it)
    app = QApplication.instance() or QApplication([])
    win = open_window(app, args, dirs, name)
    if args.app_only:
        print(
            f"model {win.model_chooser.classifier.name} on {win.model_chooser.classifier.device_label}; {args.n} real cells"
        )
    meter = StallMeter()
    gui_s, delivered = gui_run(app, win, case, meter)
    lateness = meter.stop()
    done = sum(1 for c in win.cell_model.cells if c.result is not None)
    gui_rate, p99 = done / gui_s, meter.p99(lateness)
    print(
        f"GUI: {done} cells in {gui_s:.2f} s = {gui_rate:.1f} cells/s (open -> last result shown); "
        f"timer ticks {len(lateness)}, stall median {statistics.median(lateness):.1f} ms, "
        f"p99 {p99:.1f} ms, max {lateness[-1]:.1f} ms"
    )
    rss_run = rss_mb()
    if args.app_only:
        base = sorted((r for r in delivered if r.status == "ok"), key=lambda r: r.index) or delivered
        return memory_check(args, app, win, base, cells, tmp, rss_run, meter)
    same = sum(1 for a, c in zip(cli_results, win.cell_model.cells) if c.result and c.result.p_all == a.p_all)
    print(f"GUI and CLI P(ALL) identical for {same}/{len(cli_results)} cells")
    # the machine may be shared: measure the CLI pipeline again after the GUI run and use the mean
    again, again_s = cli_run(items, clf, args.batch_size)
    cli2 = len(again) / again_s
    cli = (cli + cli2) / 2
    print(f"CLI pipeline again: {cli2:.1f} cells/s; mean {cli:.1f} cells/s")
    win.doc.unexported = False
    win.close()
    app_only_process(args, name, dirs)
    print(f"GUI/CLI throughput ratio {gui_rate / cli:.2f}, event-loop stall p99 {p99:.1f} ms")
    return 0


def memory_check(args, app, win, base_results, cells, tmp, rss_run, meter: StallMeter) -> int:
    """20,000 cells in the window: open them through the app, attach real results (replicated: the
    engine's CellResults of the short run, moved onto each cell's path), scroll the gallery end to end,
    report stalls and the process RSS."""
    copies = max(1, -(-args.big // args.n))
    big = link_folder(tmp / "big", cells, copies)
    for f in sorted(big.iterdir())[args.big :]:
        f.unlink()
    win.opener.close_cases()
    # open the 20,000-cell folder through the app (scan in the background, rows added in chunks);
    # the run it starts is cancelled at once: real results are attached below instead
    meter.start()
    t0 = time.perf_counter()
    win.opener.open_paths([big])
    while len(win.cell_model.cells) < args.big or win.opener.busy:
        app.processEvents()
        time.sleep(0.001)
    open_s = time.perf_counter() - t0
    lateness = meter.stop()
    win.run_panel.cancel()
    while win.runs.running:
        app.processEvents()
        time.sleep(0.005)
    print(
        f"opened {len(win.cell_model.cells)} cells in {open_s:.2f} s; event-loop stall while opening: "
        f"max {max(lateness or [0]):.0f} ms"
    )
    t0 = time.perf_counter()
    facts = win.bridge.facts_of(win.model_chooser.classifier)  # the loaded model: the results are its
    pairs = [
        (
            c,
            dataclasses.replace(
                base_results[i % len(base_results)],
                index=i,
                path=c.path,
                root=c.root,
                folder=c.folder,
                file=c.path.name,
            ),
        )
        for i, c in enumerate(win.cell_model.cells)
    ]
    for b in range(0, len(pairs), 64):  # in batches, as a run delivers them (one store transaction each)
        win.doc.add_results(facts, pairs[b : b + 64])
    win.views.refresh_summary()
    app.processEvents()
    load_s = time.perf_counter() - t0
    missing = sum(1 for c in win.cell_model.cells if c.result is None)
    if missing:
        print(f"WARNING: {missing} cells without a result after add_results")
    meter.start()
    scroll_s = scroll_gallery(app, win, args.profile)
    lateness = meter.stop()
    sp99 = meter.p99(lateness)
    rss_big = rss_mb()
    print(
        f"{len(win.cell_model.cells)} results attached in {load_s:.2f} s; scrolled top to bottom in {scroll_s:.1f} s "
        f"({win.thumbs.cached_count()} thumbnails cached, {win.thumbs.cached_bytes() / 2**20:.0f} MB); "
        f"stall while scrolling p99 {sp99:.1f} ms (median {statistics.median(lateness or [0]):.1f}, "
        f"max {max(lateness or [0]):.1f}; {len(lateness)} ticks; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"app process RSS after classifying {args.n} cells {rss_run:.0f} MB; with {len(win.cell_model.cells)} cells "
        f"loaded and scrolled {rss_big:.0f} MB (goal < 1024 MB)"
    )
    win.doc.unexported = False
    win.close()
    return 0


def scroll_gallery(app, win, profile: str | None, steps: int = 200) -> float:
    """Scroll the gallery top to bottom in ``steps`` jumps, the event loop running 20 ms after each; seconds taken.
    ``profile``: a file to write a cProfile of it to."""
    import cProfile

    sb = win.browser.gallery.verticalScrollBar()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    for k in range(steps + 1):
        sb.setValue(int(sb.maximum() * k / steps))
        t1 = time.perf_counter()
        while time.perf_counter() - t1 < 0.02:
            app.processEvents()
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
