"""CSV reports: one row per cell, and one summary row per folder (case).  The CLI and the GUI both
write through this module, so their files have the same columns.

A cell's row is typed (:class:`engine.report_row.ReportRow`, made by :func:`cell_row`): the summary, the counts, the
PDF and FHIR read it; the CSV writer formats it at the edge, and :func:`read_cell_report` parses a file back into
typed rows in one place.

Per-cell columns, in order (:data:`CELL_COLUMNS`), then one ``p_all_<member>`` column per ensemble
member.  Values are strings: ``p_all`` with 4 decimals, booleans ``true``/``false``, empty when not
applicable; ``flagged``: the model flagged the cell for review (reviews of it may exist; reports written
before 3.0 call this column ``needs_review`` and are still read), ``flag_reasons`` says why (``review_band``,
``qc``, ``model_disagreement``, joined by ``;``: :func:`engine.pipeline.flag_reasons`, the one rule) and
``in_review_band`` whether P(ALL) is inside the card's review band, flagged or not; ``qc`` is the input quality check's reason
(:mod:`engine.qc`), empty when the image passed.
Summary rows are counted by :func:`count_rows` (the one case rule, :class:`engine.case.rules.CaseCounts`):
labels follow ``final_label`` (the reviewer's label when there is one, else the prediction); ``flagged`` =
every flagged cell, ``review_open`` = flagged and not reviewed yet;
``pct_all`` = % blasts (:func:`engine.case.rules.pct_blasts`) with 1 decimal, ``pct_all_ci_low``/``pct_all_ci_high`` its Wilson 95 %
interval (:mod:`engine.stats`; percent, 1 decimal, empty when nothing was classified); ``error_reasons`` lists
the distinct reasons of the folder's error rows (e.g. a sub-folder that could not be listed);
``signed_off_by``, ``signed_off_at``, ``comment``: the case's sign-off (empty when not signed off, and
always from a plain ``classify``).

Formula injection: a file, folder, reviewer or error text starting with ``=``, ``+``, ``-``, ``@``, tab
or CR would be evaluated by Excel or LibreOffice (``=cmd|' /C calc'!A0.bmp``).  The CSV writer
prefixes such text cells with ``'`` (OWASP), so they open as text; plain numbers (``p_all``, counts,
thresholds) are never prefixed and stay numbers.  :func:`read_cell_report` removes the prefix again,
so a report read back gives the original values.

Files are UTF-8, without a byte-order mark unless ``bom=True`` (Excel on Windows reads a BOM-less file as
the ANSI code page and garbles non-ASCII names; scripts and ``csv`` readers expect no BOM, so none is the
default), and written atomically: a temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash or a full disk never leaves a half-written report.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from .case.values import Review
from .decision import Decision
from .domain import rules as case_rules
from .domain.kinds import CellStatus
from .domain.rules import CaseCounts
from .fileio import atomic_open
from .pipeline import FLAG_REASONS, CellResult
from .report_row import (
    CELL_COLUMNS,
    FLAG_SEPARATOR,
    NOT_REACHED,
    ReportedModel,
    ReportRow,
    RowModel,
    cell_id,
    fmt_p,
    fmt_threshold,
)

__all__ = [
    "CELL_COLUMNS",
    "DELIMITERS",
    "FLAG_SEPARATOR",
    "SUMMARY_COLUMNS",
    "ReportRow",
    "ReportedModel",
    "Review",
    "RowModel",
    "case_figures",
    "case_folder",
    "cell_columns",
    "cell_id",
    "cell_row",
    "count_row",
    "count_rows",
    "exclusions_text",
    "flag_counts",
    "fmt_p",
    "fmt_threshold",
    "pending_row",
    "read_cell_report",
    "csv_rows",
    "read_csv",
    "real_folder",
    "signoff_check",
    "summarize",
    "write_cell_report",
    "write_cell_report_stream",
    "write_csv",
    "write_summary",
]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "folder",
    "cells",
    "classified",
    "errors",
    "all",
    "hem",
    "pct_all",
    "pct_all_ci_low",
    "pct_all_ci_high",
    "review_open",
    "reviewed",
    "root",
    "error_reasons",
    "flagged",
    "overridden",
    "qc",
    "signed_off_by",
    "signed_off_at",
    "comment",
    "sample_id",
    "excluded",
    "excluded_reasons",
    "signoff_check",
    "not_classified",
    "record_rows",
    "record_head",
    "signoff_basis",
)
PENDING_STATUS = CellStatus.PENDING  # a row of an image found but not classified (an interrupted run)

_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")  # also an already-quoted value, so reading back is exact
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_MAX_REASONS = 3  # per summary row; then "(+N more)"


def cell_row(
    result: CellResult,
    classifier: ReportedModel,
    threshold: float | None = None,
    review: Review | None = None,
    decision: Decision | None = None,
) -> ReportRow:
    """The report row of one result.  ``threshold`` defaults to the model's card threshold; ``decision``: the one
    already made for this result under that threshold (a case document's cell keeps it), else it is made here
    (:meth:`Decision.of`, once).  A file that could not be classified carries no review."""
    model = RowModel.of(classifier, threshold)
    if decision is None:
        ok = result.status == CellStatus.OK
        thr = float(model.threshold or 0.0)
        qc = result.qc if ok else ""
        decision = Decision.of(result.p_all if ok else None, thr, classifier.review_margin, result.members_disagree, qc)
    return ReportRow.made(result, decision, model, review)


def pending_row(
    path: str | Path,
    root: str | Path,
    folder: str,
    file: str,
    classifier: ReportedModel,
    threshold: float | None = None,
) -> ReportRow:
    """The report row of an image that was found but not classified (the run stopped before it)."""
    thr = case_rules.threshold_in_use(classifier.threshold, threshold)
    result = CellResult(0, Path(path), Path(root), folder, file, "", PENDING_STATUS, NOT_REACHED, None)
    model = RowModel(classifier.name, classifier.version, thr, float(classifier.threshold))
    return ReportRow.made(result, Decision(), model, None)


def cell_columns(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """:data:`CELL_COLUMNS` then any extra keys of the rows' CSV cells (``p_all_<member>``) in first-seen order."""
    cols = list(CELL_COLUMNS)
    seen = set(cols)
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols


def _signoff_basis(so) -> str:
    if so is None:
        return ""
    if isinstance(so, Mapping):
        return str(so.get("basis") or "")
    return str(getattr(so, "basis", "") or "")


def signoff_check(so, rows: Iterable[ReportRow]) -> str:
    """ "" when a case's sign-off covered exactly the images of ``rows`` (all rows of that root), else what
    differs (:func:`engine.case.rules.signoff_mismatch`)."""
    return case_rules.signoff_mismatch(_signoff_basis(so), (r.sha256 for r in rows)) if so else ""


def _signoff_fields(so) -> tuple[str, str, str]:
    """(by, at, comment) of a sign-off: an object with ``by``/``at``/``comment`` (:class:`engine.case.SignOff`)
    or a mapping with those keys or ``signed_off_by``/``signed_off_at``/``comment``; empty for None."""
    if so is None:
        return "", "", ""
    if isinstance(so, Mapping):
        get = so.get
        return (
            str(get("by", get("signed_off_by")) or ""),
            str(get("at", get("signed_off_at")) or ""),
            str(get("comment") or ""),
        )
    return str(getattr(so, "by", "") or ""), str(getattr(so, "at", "") or ""), str(getattr(so, "comment", "") or "")


def real_folder(root: str, folder: str) -> str:
    """The folder a summary row counts, as a path: the case folder itself for ".", else the sub-folder in it (a
    summary of several cases said "." for each)."""
    if not root:
        return folder
    return root if folder in ("", ".") else str(Path(root) / folder)


def flag_counts(rows: Iterable[ReportRow]) -> dict[str, int]:
    """How many classified rows are inside the review band (``in_review_band``) and how many are flagged for each
    reason (:data:`engine.pipeline.FLAG_REASONS`; a cell flagged for two reasons counts under both)."""
    counts = dict.fromkeys(("in_review_band", *FLAG_REASONS), 0)
    for r in rows:
        if not r.ok:
            continue
        counts["in_review_band"] += r.decision.in_review_band
        for why in r.decision.reasons:
            if why in counts and why != "in_review_band":
                counts[why] += 1
    return counts


def count_row(cc: CaseCounts, r: ReportRow) -> None:
    """Count one per-cell report row into ``cc`` by the case rule (the same as the window's cells)."""
    if r.status == PENDING_STATUS:
        cc.add(None, None, False, False)
        return
    cc.add(
        CellStatus.OK if r.ok else CellStatus.ERROR,
        r.final_label or None,
        r.flagged,
        r.review is not None,
        bool(r.qc),
        r.overridden,
    )


def count_rows(rows: Iterable[ReportRow], name: str = ".") -> CaseCounts:
    """The counts of per-cell report rows (one case or one folder), by :func:`count_row`."""
    cc = CaseCounts(name)
    for r in rows:
        count_row(cc, r)
    return cc


def case_folder(r: ReportRow) -> str:
    """The folder a row's image is in, as an absolute path (``root`` joined with ``folder``): the same whether the
    folder was given itself or its parent was (one folder = one case/slide)."""
    return os.path.normpath(os.path.join(r.root, r.folder))


def case_figures(rows: Iterable[ReportRow]) -> list[dict[str, object]]:
    """One entry per case folder (:func:`case_folder`), in first-seen order, counted by the one case rule:
    ``folder``, ``cells``, ``classified``, ``included`` (ALL + HEM: what % blasts counts), ``all``, ``hem``,
    ``excluded``, ``unreadable``, ``not_classified``, ``flagged``, ``review_open``, ``pct_all`` and
    ``pct_all_ci`` ([low, high], percent; null when no cell counts)."""
    groups: dict[str, CaseCounts] = {}
    for r in rows:
        key = case_folder(r)
        count_row(groups.setdefault(key, CaseCounts(key)), r)
    out: list[dict[str, object]] = []
    for folder, g in groups.items():
        pct, ci = g.pct_blasts, g.pct_interval
        out.append(
            {
                "folder": folder,
                "cells": g.cells,
                "classified": g.classified,
                "included": g.all + g.hem,
                "all": g.all,
                "hem": g.hem,
                "excluded": g.excluded,
                "unreadable": g.errors,
                "not_classified": g.pending,
                "flagged": g.flagged,
                "review_open": g.review_open,
                "pct_all": None if pct is None else round(pct, 2),
                "pct_all_ci": None if ci is None else [round(ci[0], 2), round(ci[1], 2)],
            }
        )
    return out


def exclusions_text(rows: Iterable[ReportRow]) -> str:
    """``"2 excluded from % blasts (not a cell: 1; duplicate: 1)"``, or ``""`` when every cell counts."""
    counts = Counter(r.excluded_reason for r in rows if r.excluded_reason)
    n = sum(counts.values())
    return f"{n} excluded from % blasts ({reasons_text(counts)})" if n else ""


def reasons_text(counts: Counter[str]) -> str:
    """``"not a cell: 2; duplicate: 1"``, most frequent first."""
    return "; ".join(f"{why}: {n}" for why, n in counts.most_common())


def summarize(
    rows: Iterable[ReportRow],
    signoffs: Mapping[str, object] | None = None,
    sample_ids: Mapping[str, str] | None = None,
    record: tuple[int, str] | None = None,
) -> list[dict[str, str]]:
    """One row per (root, folder) in first-seen order, counted by the one case rule
    (:func:`count_row`): labels follow ``final_label``; ``review_open`` = flagged and
    not reviewed yet (what the window shows), ``flagged`` = every flagged cell; ``overridden`` = the
    reviewer set another class than the model gave when the review was made.  ``signoffs``: root -> sign-off
    (see :func:`_signoff_fields`), filling ``signed_off_by``/``signed_off_at``/``comment`` of every folder row
    of that root; ``sample_ids``: root -> the sample/case id typed by the technician (``sample_id``); ``record``:
    (rows, head) of the case record's hash chain the rows come from (``record_rows``/``record_head``: what
    ``leukoscan-cli verify STORE --report SUMMARY.csv`` checks the record against)."""
    signoffs = {str(k): v for k, v in (signoffs or {}).items()}
    sample_ids = {str(k): v for k, v in (sample_ids or {}).items()}
    groups: dict[tuple[str, str], CaseCounts] = {}
    reasons: dict[tuple[str, str], list[str]] = {}
    excluded: dict[tuple[str, str], Counter[str]] = {}
    by_root: dict[str, list[ReportRow]] = {}
    for r in rows:
        key = (r.root, r.folder)
        g = groups.get(key)
        if g is None:
            g = groups[key] = CaseCounts(key[1])
        if r.status not in (CellStatus.OK, PENDING_STATUS):
            seen = reasons.setdefault(key, [])
            if r.result.error and r.result.error not in seen:
                seen.append(r.result.error)
        count_row(g, r)
        by_root.setdefault(key[0], []).append(r)
        if r.excluded_reason:
            excluded.setdefault(key, Counter())[r.excluded_reason] += 1
    return [
        _summary_row(root, folder, g, reasons, excluded, by_root, signoffs.get(root), sample_ids, record)
        for (root, folder), g in groups.items()
    ]


def _summary_row(root, folder, g: CaseCounts, reasons, excluded, by_root, so, sample_ids, record) -> dict[str, str]:
    """The summary row of one (root, folder) group (:func:`summarize`)."""
    pct, ci = g.pct_blasts, g.pct_interval
    by, at, comment = _signoff_fields(so)
    return {
        "folder": folder,
        "cells": str(g.cells),
        "classified": str(g.classified),
        "errors": str(g.errors),
        "all": str(g.all),
        "hem": str(g.hem),
        "pct_all": "" if pct is None else f"{pct:.1f}",
        "pct_all_ci_low": f"{ci[0]:.1f}" if ci else "",
        "pct_all_ci_high": f"{ci[1]:.1f}" if ci else "",
        "review_open": str(g.review_open),
        "reviewed": str(g.reviewed),
        "root": root,
        "error_reasons": _join_reasons(reasons.get((root, folder), [])),
        "flagged": str(g.flagged),
        "overridden": str(g.overridden),
        "qc": str(g.qc),
        "signed_off_by": by,
        "signed_off_at": at,
        "comment": comment,
        "sample_id": sample_ids.get(root, ""),
        "excluded": str(g.excluded),
        "excluded_reasons": reasons_text(excluded.get((root, folder), Counter())),
        "signoff_check": signoff_check(so, by_root.get(root, [])),
        "not_classified": str(g.pending),
        "signoff_basis": _signoff_basis(so),
        "record_rows": str(record[0]) if record else "",
        "record_head": record[1] if record else "",
    }


def _join_reasons(reasons: list[str]) -> str:
    shown = "; ".join(reasons[:_MAX_REASONS])
    return shown + (f" (+{len(reasons) - _MAX_REASONS} more)" if len(reasons) > _MAX_REASONS else "")


def neutralise(value):
    """A text cell a spreadsheet would run as a formula, prefixed with ``'``; anything else unchanged."""
    if isinstance(value, str) and _NEEDS_QUOTE.match(value) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def restore(value: str) -> str:
    """Undo :func:`neutralise` (for a value read back from a report)."""
    if value.startswith("'") and _NEEDS_QUOTE.match(value[1:]) and not _PLAIN_NUMBER.fullmatch(value[1:]):
        return value[1:]
    return value


def csv_encoding(bom: bool = False) -> str:
    """The codec of every report: UTF-8, with a byte-order mark when ``bom`` (for Excel on Windows)."""
    return "utf-8-sig" if bom else "utf-8"


#: ``--delimiter`` values: the character between fields.  ``;`` is what Excel and LibreOffice expect in locales whose
#: decimal separator is a comma (de, fr, nl, ...); numbers keep their decimal point either way.
DELIMITERS: Mapping[str, str] = {",": ",", "comma": ",", ";": ";", "semicolon": ";", "tab": "\t", "\t": "\t"}


def _write_rows(fh, columns: Sequence[str], rows: Iterable[Mapping[str, str]], delimiter: str = ",") -> None:
    w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", restval="", delimiter=delimiter)
    w.writeheader()
    for r in rows:
        w.writerow({k: neutralise(v) for k, v in r.items()})


def write_csv(
    path: str | Path,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, str]],
    *,
    bom: bool = False,
    delimiter: str = ",",
) -> Path:
    """The atomic, formula-neutralising CSV writer every report goes through (also the review history of
    :mod:`engine.case.export`).  Returns the path."""
    # backslashreplace: a file name that is not valid UTF-8 (possible on Linux) is written as
    # e.g. "cell\udcff.bmp" instead of making the whole report fail at the end of a run
    with atomic_open(path, public=True, encoding=csv_encoding(bom), errors="backslashreplace", newline="") as fh:
        _write_rows(fh, columns, rows, delimiter)
    return Path(path)


def write_cell_report(path: str | Path, rows: Iterable[ReportRow], *, bom: bool = False, delimiter: str = ",") -> Path:
    """Write per-cell rows (from :func:`cell_row`) to ``path``, atomically, each formatted by
    :meth:`ReportRow.csv`.  Returns the path."""
    cells = [r.csv() for r in rows]
    return write_csv(path, cell_columns(cells), cells, bom=bom, delimiter=delimiter)


def write_cell_report_stream(
    stream: BinaryIO, rows: Iterable[ReportRow], *, bom: bool = False, delimiter: str = ","
) -> None:
    """The per-cell report as bytes on ``stream`` (``leukoscan-cli --out -``: stdout), the same bytes as the
    file :func:`write_cell_report` writes, whatever the console's own encoding is."""
    cells = [r.csv() for r in rows]
    write_csv_stream(stream, cell_columns(cells), cells, bom=bom, delimiter=delimiter)


def write_csv_stream(
    stream: BinaryIO,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, str]],
    *,
    bom: bool = False,
    delimiter: str = ",",
) -> None:
    """A report as bytes on ``stream``, the same bytes as :func:`write_csv` writes to a file."""
    text = io.TextIOWrapper(
        stream, encoding=csv_encoding(bom), errors="backslashreplace", newline="", write_through=True
    )
    try:
        _write_rows(text, columns, rows, delimiter)
        text.flush()
    finally:
        text.detach()  # the caller's stream stays open


def write_summary(
    path: str | Path, rows: Sequence[Mapping[str, str]], *, bom: bool = False, delimiter: str = ","
) -> Path:
    """Write summary rows (from :func:`summarize`) to ``path``, atomically, each ``folder`` as the real folder
    (:func:`real_folder`: a reader of the file sees which folder, not "." for every case).  Returns the path."""
    rows = [{**r, "folder": real_folder(r.get("root", ""), r.get("folder", "."))} for r in rows]
    return write_csv(path, SUMMARY_COLUMNS, rows, bom=bom, delimiter=delimiter)


def sniff_delimiter(header: str) -> str:
    """The delimiter of a report from its header line: ``;`` or a tab when the header has more of it than commas
    (a report written with ``--delimiter``), else ``,``."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


#: The columns without which a file is not a per-cell report (``flagged`` may be ``needs_review``: before 3.0).
REPORT_NEEDS = ("path", "file", "status", "prediction", "p_all", "model", "threshold")


class NotACellReport(ValueError):
    """The file is not a LeukoScan per-cell report: the message names the missing columns."""


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Read any report back as text (a summary, the review history), with the formula neutralisation undone; with
    or without a byte-order mark, comma-, semicolon- or tab-separated."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return csv_rows(fh.read())


def csv_rows(text: str) -> list[dict[str, str]]:
    """The rows of a report's text (:func:`read_csv` once the file is decoded): the delimiter sniffed from the
    header, the formula neutralisation undone.  The one reader of every report's text (the record check's anchor
    in a summary too: :func:`engine.case.anchor.read_anchor`)."""
    text = text.removeprefix("\ufeff")
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [{k: restore(v) if isinstance(v, str) else v for k, v in r.items()} for r in reader]


def read_cell_report(path: str | Path) -> list[ReportRow]:
    """A per-cell report read back into typed rows (:meth:`ReportRow.from_csv`, the one parser), e.g. to print
    it.  Raises :class:`NotACellReport` for a file without the report's columns, or with a review label that is
    not one (the message says which)."""
    text = read_csv(path)
    if not text:
        return []
    missing = [c for c in REPORT_NEEDS if c not in text[0]]
    if "flagged" not in text[0] and "needs_review" not in text[0]:
        missing.append("flagged")
    if missing:
        raise NotACellReport(f"not a LeukoScan per-cell report (missing columns: {', '.join(missing)})")
    try:
        return [ReportRow.from_csv(r, i) for i, r in enumerate(text)]
    except ValueError as exc:
        raise NotACellReport(f"not a LeukoScan per-cell report: {exc}") from None
