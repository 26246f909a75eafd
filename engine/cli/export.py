"""``leukoscan-cli export CASE.leukoscan``: the reports and the review history of a case file, written by
:func:`engine.case.export.export_store` (the one export of a case file; this module adds the checks of the
output paths, the case file's lock and the messages)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..report import exclusions_text
from .common import (
    EXIT_OK,
    EXIT_WRITE,
    CliError,
    add_command,
    add_report_options,
    broken,
    check_output,
    counts_json,
    delimiter,
    emit_json,
    is_stdout,
    real,
    same_file,
    say,
    shown,
    take_lock,
    warn,
    write_or_rescue,
)

if TYPE_CHECKING:
    from ..case.export import StoreExport

SCHEMA = "leukoscan.export/2"
CODES = (
    "0    written, and recorded in the case file unless --no-bookkeeping",
    "1    a report could not be written where asked (then saved in the temp folder, see message; not recorded)",
    "2    usage error, unreadable or empty case file, or the app holds it (without --no-bookkeeping)",
    "4    the case file's record is broken: nothing written, nothing changed",
)


def add_parser(sub) -> None:
    e = add_command(
        sub,
        "export",
        "write the CSV reports and the review history of a case file (--store or the app)",
        CODES,
        "leukoscan-cli export case.leukoscan --out final.csv --summary final_summary.csv",
        "leukoscan-cli export case.leukoscan --out - --no-bookkeeping -q > final.csv",
    )
    e.add_argument("case_file", metavar="CASE.leukoscan", help="case file to read")
    add_report_options(e)
    e.add_argument(
        "--reviews",
        metavar="REVIEWS.csv",
        help="where the review history goes (default <REPORT stem>_reviews.csv beside the report; "
        "with --out - only when given)",
    )
    e.add_argument(
        "--json",
        action="store_true",
        help=f"print the export's summary as JSON on stdout (schema {SCHEMA}, see docs/cli.md); not with --out -",
    )
    e.add_argument("--force", action="store_true", help="replace the reports even when an existing file is read-only")
    e.add_argument(
        "--no-bookkeeping",
        action="store_true",
        help="only read the case file: do not record the export in it (works while the app has it open)",
    )
    e.set_defaults(run=run)


def run(args) -> int:
    if args.json and str(args.out) == "-":
        raise CliError("--json and --out - both write to stdout: give --out a file name")
    db = Path(os.path.abspath(Path(args.case_file).expanduser()))
    if not db.is_file():
        raise CliError(f"{db}: no such case file")
    out, summary, history = _outputs(args, db)
    done = _export(args, db, out, summary, history)
    if done.record_errors:
        warn(f"the export could not be recorded in the case file ({done.record_errors[0]})")
    code = EXIT_OK if done.complete else EXIT_WRITE
    say(_account(done))
    if args.json:
        emit_json(SCHEMA, _json(done, db, code))
    return code


def _outputs(args, db: Path) -> tuple[Path, Path | None, Path | None]:
    """The report, the summary and the review history to write (None: not written), each checked: not the case
    file, not another of the three, writable (:func:`.common.check_output`)."""
    from ..case.export import reviews_path

    for label, p in (("--out", args.out), ("--summary", args.summary), ("--reviews", args.reviews)):
        if p and p != "-" and same_file(Path(p).expanduser(), db):
            raise CliError(f"{label} is the case file itself; give a file name such as report.csv")
    inputs = {real(db)}
    out = check_output(Path(args.out), "--out", inputs, args.force, stdout=True)
    summary = check_output(Path(args.summary), "--summary", inputs, args.force) if args.summary else None
    if summary is not None and same_file(summary, out):
        raise CliError("--summary and --out must be different files")
    history: Path | None
    if args.reviews:
        history = check_output(Path(args.reviews), "--reviews", inputs, args.force)
    else:
        history = None if is_stdout(out) else check_output(reviews_path(out), "review history", inputs, args.force)
    if history is not None and any(p is not None and same_file(history, p) for p in (out, summary)):
        raise CliError(f"the review history ({history}) must be another file than --out and --summary")
    return out, summary, history


def _export(args, db: Path, out: Path, summary: Path | None, history: Path | None) -> StoreExport:
    """:func:`engine.case.export.export_store` under the case file's write lock (not with ``--no-bookkeeping``);
    why it refused, as a :class:`CliError`."""
    from ..case.export import NothingToExport, RecordBroken, export_store
    from ..case.store import StoreError

    lock = None if args.no_bookkeeping else take_lock(db, "leukoscan-cli export")
    try:
        return export_store(
            db,
            out,
            summary,
            history,
            mark_exported=not args.no_bookkeeping,
            history=history is not None,
            bom=args.bom,
            delimiter=delimiter(args),
            write=write_or_rescue,
        )
    except StoreError as exc:
        if exc.kind.movable:
            hint = "it was left as it is; the app offers to move a damaged case file aside"
        elif args.no_bookkeeping:
            hint = "it was left as it is"
        else:  # e.g. a read-only file or folder: recording the export needs write access, the export does not
            hint = "it was left as it is; --no-bookkeeping exports it without recording the export in it"
        raise CliError(f"cannot use the case file: {exc} ({hint})") from None
    except RecordBroken as exc:
        raise broken(db, exc) from None
    except NothingToExport as exc:
        raise CliError(f"{db} {exc}; nothing written") from None
    finally:
        if lock is not None:
            lock.release()


def _account(done: StoreExport) -> str:
    """The one line an export says: its counts and where each file went."""
    doc, cc, model = done.doc, done.counts, done.model
    where = {k: ("stdout" if is_stdout(v) else str(v)) for k, v in done.written.items()}
    return (
        f"{cc.cells} cells in {len(done.summary)} folder(s), model {model.name} {model.version}, "
        f"threshold {doc.threshold:g}: {cc.flagged} flagged for review, {cc.reviewed} reviewed, {cc.review_open} "
        f"review(s) open{'; ' + exclusions_text(done.rows) if cc.excluded else ''}"
        f"{f'; INCOMPLETE: {cc.pending} of {cc.cells} images not classified' if cc.pending else ''}; "
        f"report: {where['report']}"
        + (f"; summary: {where['summary']}" if "summary" in where else "")
        + (
            f"; review history ({len(done.history)} events): {where['reviews']}"
            if "reviews" in where
            else f"; review history ({len(done.history)} events) not written (give --reviews FILE)"
        )
    )


def _json(done: StoreExport, db: Path, code: int) -> dict:
    """The export's summary on stdout (``--json``, schema :data:`SCHEMA`)."""
    return {
        "status": "completed",
        "exit_code": code,
        "case_file": str(db),
        "model": {"name": done.model.name, "version": done.model.version},
        "threshold": done.doc.threshold,
        "counts": counts_json(done.rows),
        "folders": len(done.summary),
        "review_events": len(done.history),
        "files": {k: shown(done.written.get(k)) for k in ("report", "summary", "reviews")},
        "recorded": done.recorded,
        "complete": done.complete,
    }
