"""The end of a ``leukoscan-cli classify`` run, whichever engine ran it (this machine: :mod:`.classify`; Ray:
:mod:`.on_ray`): the model's name, the stop signals, the progress bar and the reports.  Both engines import it, so
neither imports the other for it."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..card import ModelError
from ..domain.kinds import CellStatus
from ..registry import default_model
from ..report import (
    ReportRow,
    case_figures,
    count_rows,
    exclusions_text,
    summarize,
    write_cell_report,
    write_summary,
)
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WRITE,
    STOP_SIGNALS,
    counts_json,
    delimiter,
    emit_json,
    is_stdout,
    say,
    shown,
    verbosity,
    write_or_rescue,
)

SCHEMA = "leukoscan.classify/2"


def progress_wanted(args) -> bool:
    """The options' say on the progress bar: off with ``--no-progress`` or ``-q``."""
    return not args.no_progress and verbosity(args) >= 0


def model_name(reg, args) -> str:
    """``--model``, else the registry's default (the one the app opens with); ModelError when none."""
    name = args.model or default_model(reg.cards())
    if name is None:
        raise ModelError("no model is installed (see `leukoscan-cli models`)")
    return name


@contextmanager
def stop_signals(cancel: threading.Event, stopped_by: list[int]):
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
        say(f"interrupted ({signal.Signals(signum).name}): stopping ({again} again to quit at once)")

    old_handlers = {sig: signal.signal(sig, on_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def progress_bar(total: int, wanted: bool):
    """On stderr, only when ``wanted`` (not ``--no-progress`` nor ``-q``) and stderr is a terminal (tqdm's
    ``disable=None``): ``2>err.txt`` gets no progress frames."""
    from tqdm import tqdm

    off = None if wanted else True
    return tqdm(total=total, unit="cell", file=sys.stderr, disable=off, mininterval=0.5, dynamic_ncols=True)


@dataclass(frozen=True)
class Outputs:
    """Where and how a classify run's reports go, read from its options once (:meth:`of`)."""

    out: Path  # the per-cell report ("-": stdout)
    summary: Path | None  # the summary, if asked
    bom: bool = False
    delimiter: str = ","
    json: bool = False  # the run's summary as JSON on stdout

    @classmethod
    def of(cls, args, out: Path, summary: Path | None) -> Outputs:
        return cls(out, summary, bool(getattr(args, "bom", False)), delimiter(args), bool(args.json))


@dataclass(frozen=True)
class Finished:
    """What a classify run did, whichever engine ran it: what its reports say."""

    rows: list[ReportRow]  # with --store: every item, the skipped ones and those not reached too
    n_items: int  # the images found
    cancelled: bool  # stopped by a signal (or Ctrl-C) before the end
    stopped_by: tuple[int, ...]  # the first stop signal received, if any
    elapsed: float  # seconds
    facts: dict  # engine, model, threshold, device ... (the JSON summary's)
    skipped: int = 0  # --store: cells the case file already held a result of the model for
    store_path: Path | None = None  # --store
    store_failed: bool = False  # --store: the case file could not be fully written
    signoffs: dict | None = None  # --store: the case file's sign-offs, for the summary
    sample_ids: dict[str, str] | None = None  # root -> sample id, for the summary
    record: tuple[int, str] | None = None  # --store: (rows, head) of the case file's history chain

    @property
    def result(self) -> dict:
        """The JSON summary's figures of the run."""
        return {
            "case_file": shown(self.store_path),  # --store; top level, as export names the case file it read
            **self.facts,
            "images": self.n_items,
            "skipped": self.skipped,
            "elapsed_s": round(self.elapsed, 3),
            "cells_per_s": round((len(self.rows) - self.skipped) / max(self.elapsed, 1e-9), 2),
        }


def write_reports(to: Outputs, run: Finished) -> int:
    """The end of a classify run, whichever engine ran it: only ``<REPORT>.partial.csv`` when it was
    stopped before the end (``--out -``: in the temp folder; stdout gets nothing), else the report, the
    summary and the one-line account (``--json``: the summary on stdout).  The exit status."""
    done = [
        r for r in run.rows if r.status != CellStatus.PENDING
    ]  # --store: the report lists the cells not reached too
    if run.cancelled and len(done) < run.n_items:
        return _write_partial(to, run, done)
    return _write_complete(to, run)


def _write_partial(to: Outputs, run: Finished, rows: list[ReportRow]) -> int:
    """An interrupted run: its rows in ``<REPORT>.partial.csv`` only; the exit status of the signal."""
    files: dict[str, str | None] = {"report": None, "summary": None, "partial": None}
    if is_stdout(to.out):
        partial_path = Path(tempfile.gettempdir()) / f"leukoscan-{time.strftime('%Y%m%d-%H%M%S')}-stdout.partial.csv"
    else:
        partial_path = to.out.with_name(to.out.stem + ".partial" + (to.out.suffix or ".csv"))
    if rows:
        where, _ = write_or_rescue(
            "partial report", partial_path, partial(write_cell_report, bom=to.bom, delimiter=to.delimiter), rows
        )
        files["partial"] = str(where)
        say(
            f"interrupted after {len(rows)} of {run.n_items} cells; those rows are in {where}; "
            f"{'nothing was written to stdout' if is_stdout(to.out) else f'{to.out} was not written'}"
        )
    else:
        say("interrupted before any cell was classified; nothing written")
    code = STOP_SIGNALS[run.stopped_by[0]] if run.stopped_by else EXIT_INTERRUPTED
    if to.json:
        emit_json(
            SCHEMA,
            {
                "status": "interrupted",
                "exit_code": code,
                **run.result,
                "counts": counts_json(rows),
                "cases": case_figures(rows),
                "folders": None,
                "files": files,
                "complete": False,
            },
        )
    return code


def _write_complete(to: Outputs, run: Finished) -> int:
    """A run that went to the end: the report, the summary, the one-line account; the exit status."""
    files: dict[str, str | None] = {"report": None, "summary": None, "partial": None}
    rows = run.rows
    code = EXIT_WRITE if run.store_failed else EXIT_OK
    where, ok = write_or_rescue("report", to.out, partial(write_cell_report, bom=to.bom, delimiter=to.delimiter), rows)
    files["report"] = shown(where)
    code = code if ok else EXIT_WRITE
    sums = summarize(rows, signoffs=run.signoffs, sample_ids=run.sample_ids, record=run.record)
    if to.summary is not None:
        swhere, ok = write_or_rescue(
            "summary", to.summary, partial(write_summary, bom=to.bom, delimiter=to.delimiter), sums
        )
        files["summary"] = shown(swhere)
        code = code if ok else EXIT_WRITE
    cc = count_rows(rows)
    result = run.result
    say(
        f"{cc.cells} cells in {len(sums)} folder(s): {cc.classified} classified ({cc.all} ALL, {cc.hem} HEM, "
        f"{cc.flagged} flagged for review, {cc.review_open} review(s) open"
        f"{f', {cc.qc} failed the quality check' if cc.qc else ''}), {cc.errors} unreadable"
        f"{'; ' + exclusions_text(rows) if cc.excluded else ''}; {result['cells_per_s']:.1f} cells/s; "
        f"report: {'stdout' if is_stdout(where) else where}"
        + (f"; summary: {swhere}" if to.summary is not None else "")
        + (f"; case file: {run.store_path}" if run.store_path is not None else "")
    )
    if to.json:
        emit_json(
            SCHEMA,
            {
                "status": "completed",
                "exit_code": code,
                **result,
                "counts": counts_json(rows),
                "cases": case_figures(rows),
                "folders": len(sums),
                "files": files,
                "complete": code == EXIT_OK,
            },
        )
    return code
