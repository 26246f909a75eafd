"""``leukoscan-cli report``: print a per-cell CSV report or a case store as a PDF case report."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    EXIT_OK,
    EXIT_WRITE,
    CliError,
    add_command,
    add_models_dir,
    check_output,
    emit_json,
    refuse_broken,
    registry,
    same_file,
    say,
    write_or_rescue,
)

if TYPE_CHECKING:
    from ..report import ReportRow

CODES = (
    "0    written",
    "1    the PDF could not be written where asked (then saved in the temp folder, see message) or not at all",
    "2    usage error, or not a LeukoScan report or case store",
    "4    the case store's record is broken",
)
SCHEMA = "leukoscan.report/1"


def add_parser(sub) -> None:
    r = add_command(
        sub,
        "report",
        "print a per-cell CSV report or a case store as a PDF case report (one or more pages per case)",
        CODES,
        "leukoscan-cli report final.csv -o case.pdf",
        "leukoscan-cli report case.leukoscan --out case.pdf --force --json",
    )
    r.add_argument(
        "report",
        metavar="REPORT.csv|CASE.leukoscan",
        help="per-cell report written by classify, export or the app, or a case store",
    )
    r.add_argument(
        "-o",
        "--out",
        "--pdf",
        dest="pdf",
        required=True,
        metavar="CASE.pdf",
        help="PDF file to write (--pdf is the same option, kept for scripts written before --out)",
    )
    r.add_argument(
        "--case",
        metavar="SAMPLE_ID|FOLDER",
        help="the case to print when the report or case store holds several (one PDF is one patient): its sample "
        "id, folder or folder name",
    )
    r.add_argument("--json", action="store_true", help=f"print what was written as JSON on stdout (schema {SCHEMA})")
    add_models_dir(
        r, "also read model cards from this folder (repeatable): the card of the report's model adds its facts"
    )
    r.add_argument("--force", action="store_true", help="replace --out even when the existing file is read-only")
    r.set_defaults(run=run)


def _store_report(
    path: Path,
) -> tuple[list[ReportRow], dict[str, str], dict[str, dict[str, str]], tuple[int, str]]:
    """The per-cell rows, the sample ids and the sign-offs per case root of a case store (CASE.leukoscan), and
    (rows, head) of its history chain."""
    from ..case.export import cell_rows, pdf_signoffs
    from ..case.store import CaseStore, StoreError

    try:
        store = CaseStore.open(path, create=False, read_only=True)
        try:
            refuse_broken(store)
            doc = store.load()
            record = store.head()
        finally:
            store.close()
    except StoreError as exc:
        raise CliError(f"cannot read the case store: {exc}") from None
    rows = cell_rows(doc) if doc.current is not None else []
    if not rows:
        raise CliError(f"{path}: the case store has no classified cells")
    return rows, {c.root: c.sample_id for c in doc.cases.values() if c.sample_id}, pdf_signoffs(doc), record


def _report_rows(path: Path):
    """The per-cell rows to print from ``path`` (a REPORT.csv or a case store), the sample ids and the
    sign-offs per case root (a store's or its summary's), and the (rows, head) of the record's history chain
    (None: not known); :class:`CliError` (exit 2) when it is neither."""
    from ..case.store import SQLITE_MAGIC
    from ..report import NotACellReport, read_cell_report

    if not path.is_file():
        raise CliError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    with open(path, "rb") as fh:
        if fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            return _store_report(path)
    try:
        rows = read_cell_report(path)
    except NotACellReport as exc:
        raise CliError(f"{path} is {exc}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise CliError(f"{path} has no cell rows: not a LeukoScan report, or an empty one")
    return (rows, *_summary_record(path))


def _summary_record(report: Path):
    """Sample ids and sign-offs per root from the summary written beside a per-cell report (``<stem>_summary.csv``,
    as the app and ``--summary`` name it), and the (rows, head) of the record's chain it printed; (None, None, None)
    when there is none: the PDF then says "unknown (not in
    this CSV)" instead of asserting "not signed off" or "not given"."""
    from ..report import read_csv

    summary = report.with_name(f"{report.stem}_summary.csv")
    try:
        rows = read_csv(summary) if summary.is_file() else None
    except (OSError, UnicodeDecodeError, csv.Error):
        rows = None
    if not rows or "signed_off_by" not in rows[0]:
        return None, None, None
    ids = {r.get("root", ""): r.get("sample_id", "") for r in rows if r.get("sample_id")}
    signed = {
        r.get("root", ""): {
            "signed_off_by": r["signed_off_by"],
            "signed_off_at": r.get("signed_off_at", ""),
            "comment": r.get("comment", ""),
            "basis": r.get("signoff_basis", ""),
        }
        for r in rows
        if r.get("signed_off_by")
    }
    heads = {(r.get("record_rows", ""), r.get("record_head", "")) for r in rows}
    record = None
    if len(heads) == 1:
        n, head = heads.pop()
        record = (int(n), head) if n.isdigit() and len(head) == 64 else None
    return ids, signed, record


def _one_case(rows: list[ReportRow], sample_ids: dict[str, str], wanted: str | None) -> list[ReportRow]:
    """The rows of the one case to print: one PDF is one patient.  ``--case`` picks it (its folder, folder name or
    sample id); rows of several cases without it are refused (exit 2), naming them."""
    from ..pdf_report import split_cases

    cases = split_cases(rows)
    if wanted is None and len(cases) == 1:
        return rows
    named = {root: (sample_ids.get(root) or "no sample id", root) for root in cases}
    if wanted is None:
        listed = "; ".join(f"{sid} ({root})" for sid, root in named.values())
        raise CliError(
            f"one PDF is one patient: {len(cases)} cases here ({listed}); give --case SAMPLE_ID or --case FOLDER "
            "and print each case alone"
        )
    key = " ".join(wanted.split()).casefold()
    hits = [
        root
        for root in cases
        if key in (named[root][0].casefold(), root.casefold(), Path(root).name.casefold())
        or Path(os.path.abspath(wanted)) == Path(root)
    ]
    if len(hits) != 1:
        listed = "; ".join(f"{sid} ({root})" for sid, root in named.values())
        raise CliError(f"--case {wanted}: {'no' if not hits else 'more than one'} case matches (cases: {listed})")
    return list(cases[hits[0]])


def run(args) -> int:
    from ..pdf_report import write_case_pdf

    src = Path(args.report).expanduser()
    rows, sample_ids, signoffs, record = _report_rows(src)
    rows = _one_case(rows, sample_ids or {}, args.case)
    if same_file(Path(args.pdf).expanduser(), src):
        raise CliError("--out must be another file than the report it prints")
    out = check_output(Path(args.pdf), "--out", set(), args.force)
    reg = registry(args.models_dir)
    cards = {name: reg.get(name) for name in {r.model.name for r in rows} if name in reg}
    where, ok = write_or_rescue(
        "PDF report",
        out,
        lambda p, rs: write_case_pdf(
            p,
            rs,
            card=cards,
            sample_ids=sample_ids,
            signoffs=signoffs,
            record_known=signoffs is not None,
            record=record,
        ),
        rows,
    )
    n_cases = len({r.root for r in rows})
    unknown = sorted({r.model.name for r in rows if r.ok} - set(cards))
    say(
        f"{len(rows)} cells in {n_cases} case(s); PDF report: {where}"
        + (f" (no model card found for {', '.join(unknown)}: card facts left out)" if unknown else "")
    )
    code = EXIT_OK if ok else EXIT_WRITE
    if args.json:
        emit_json(
            SCHEMA,
            {
                "exit_code": code,
                "source": str(src),
                "cases": n_cases,
                "cells": len(rows),
                "files": {"pdf": str(where)},
                "complete": ok,
                "cards_missing": unknown,
            },
        )
    return code
