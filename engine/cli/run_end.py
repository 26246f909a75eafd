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


def progress_bar(total: int, args):
    """On stderr, only when it is a terminal (tqdm's ``disable=None``): ``2>err.txt`` gets no progress frames."""
    from tqdm import tqdm

    off = True if args.no_progress or verbosity(args) < 0 else None
    return tqdm(total=total, unit="cell", file=sys.stderr, disable=off, mininterval=0.5, dynamic_ncols=True)


def write_reports(
    args,
    rows: list[ReportRow],
    n_items: int,
    out: Path,
    summary: Path | None,
    cancelled: bool,
    stopped_by: list[int],
    elapsed: float,
    facts: dict,
    *,
    skipped: int = 0,
    store_path: Path | None = None,
    store_failed: bool = False,
    signoffs=None,
    sample_ids=None,
    record=None,
) -> int:
    """The end of a classify run, whichever engine ran it: only ``<REPORT>.partial.csv`` when it was
    stopped before the end (``--out -``: in the temp folder; stdout gets nothing), else the report, the
    summary and the one-line account (``--json``: the summary on stdout).  The exit status."""
    bom = bool(getattr(args, "bom", False))
    delim = delimiter(args)
    files: dict[str, str | None] = {"report": None, "summary": None, "partial": None}
    result = {
        "case_file": shown(store_path),  # --store; top level, as export names the case file it read
        **facts,
        "images": n_items,
        "skipped": skipped,
        "elapsed_s": round(elapsed, 3),
        "cells_per_s": round((len(rows) - skipped) / max(elapsed, 1e-9), 2),
    }
    done = [r for r in rows if r.status != CellStatus.PENDING]  # --store: the report lists the cells not reached too
    if cancelled and len(done) < n_items:
        rows = done
        if is_stdout(out):
            partial_path = (
                Path(tempfile.gettempdir()) / f"leukoscan-{time.strftime('%Y%m%d-%H%M%S')}-stdout.partial.csv"
            )
        else:
            partial_path = out.with_name(out.stem + ".partial" + (out.suffix or ".csv"))
        if rows:
            where, _ = write_or_rescue(
                "partial report", partial_path, partial(write_cell_report, bom=bom, delimiter=delim), rows
            )
            files["partial"] = str(where)
            say(
                f"interrupted after {len(rows)} of {n_items} cells; those rows are in {where}; "
                f"{'nothing was written to stdout' if is_stdout(out) else f'{out} was not written'}"
            )
        else:
            say("interrupted before any cell was classified; nothing written")
        code = STOP_SIGNALS[stopped_by[0]] if stopped_by else EXIT_INTERRUPTED
        if args.json:
            emit_json(
                SCHEMA,
                {
                    "status": "interrupted",
                    "exit_code": code,
                    **result,
                    "counts": counts_json(rows),
                    "cases": case_figures(rows),
                    "folders": None,
                    "files": files,
                    "complete": False,
                },
            )
        return code

    code = EXIT_WRITE if store_failed else EXIT_OK
    where, ok = write_or_rescue("report", out, partial(write_cell_report, bom=bom, delimiter=delim), rows)
    files["report"] = shown(where)
    code = code if ok else EXIT_WRITE
    sums = summarize(rows, signoffs=signoffs, sample_ids=sample_ids, record=record)
    if summary is not None:
        swhere, ok = write_or_rescue("summary", summary, partial(write_summary, bom=bom, delimiter=delim), sums)
        files["summary"] = shown(swhere)
        code = code if ok else EXIT_WRITE
    cc = count_rows(rows)
    say(
        f"{cc.cells} cells in {len(sums)} folder(s): {cc.classified} classified ({cc.all} ALL, {cc.hem} HEM, "
        f"{cc.flagged} flagged for review, {cc.review_open} review(s) open"
        f"{f', {cc.qc} failed the quality check' if cc.qc else ''}), {cc.errors} unreadable"
        f"{'; ' + exclusions_text(rows) if cc.excluded else ''}; {result['cells_per_s']:.1f} cells/s; "
        f"report: {'stdout' if is_stdout(where) else where}"
        + (f"; summary: {swhere}" if summary is not None else "")
        + (f"; case file: {store_path}" if store_path is not None else "")
    )
    if args.json:
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
