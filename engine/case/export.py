"""Reports from a case document or a case file, without the GUI.

- :func:`cell_rows`: the per-cell report rows (:func:`engine.report.cell_row`) of a document's classified
  cells under its current model and threshold, with the reviews: the same columns as ``leukoscan-cli
  classify --out`` and the app's export.
- :func:`review_history_rows` / :func:`write_reviews`: the audit trail of a case file as a CSV
  (``<report stem>_reviews.csv`` beside the report), columns :data:`REVIEW_COLUMNS`:
  ``cell`` (file name), ``old``/``new`` (label before/after, empty = none), ``who``, ``when`` (ISO 8601 UTC),
  ``model``, ``model_version``, ``action`` (review | undo | redo | stale), ``step``, ``path``, ``shown_in``
  (where the person saw the cell before the review: walk | preview | gallery page; empty = not recorded).
- :func:`pdf_signoffs`: the document's sign-offs in the form :func:`engine.pdf_report.write_case_pdf` takes
  (the summary takes ``doc.signoffs`` as it is: ``report.summarize(rows, signoffs=doc.signoffs, sample_ids=doc.sample_ids)``).
- :func:`export_store`: all of them from a case file (``leukoscan-cli export`` runs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .. import report
from ..decision import Decision
from ..pipeline import CellResult
from .cell import Cell
from .document import CaseDocument
from .rules import CaseCounts
from .store import CaseStore
from .values import ModelFacts, Result, Review, SignOff

REVIEW_COLUMNS: tuple[str, ...] = (
    "cell",
    "old",
    "new",
    "who",
    "when",
    "model",
    "model_version",
    "action",
    "step",
    "path",
    "shown_in",
)


def reviews_path(report_path: str | Path) -> Path:
    """Where the review history of ``report_path`` goes: ``<stem>_reviews.csv`` beside it."""
    p = Path(report_path)
    return p.with_name(f"{p.stem}_reviews.csv")


def cell_result(cell: Cell | _CellView, index: int = 0) -> CellResult | None:
    """The current model's result of ``cell`` as the engine's :class:`CellResult` (None: not classified)."""
    r = cell.result
    if r is None:
        return None
    return CellResult(
        index,
        cell.path,
        cell.root,
        cell.folder,
        cell.file,
        r.sha256,
        r.status,
        r.error,
        r.p_all,
        dict(r.member_p),
        r.members_disagree,
        r.qc,
    )


@dataclass(frozen=True)
class _CellView:
    path: Path
    root: Path
    folder: str
    file: str
    result: Result | None
    review: Review | None
    decision: Decision | None = None  # the document's, under its current model and threshold


@dataclass(frozen=True)
class Snapshot:
    """What a report needs from a document, copied at one moment (cheap: the records are immutable), so a
    report written off the GUI thread cannot mix two models or thresholds, or miss a later review
    without knowing it (``revision``)."""

    current: ModelFacts | None
    threshold: float | None
    cells: tuple[_CellView, ...]
    signoffs: dict[str, SignOff]
    sample_ids: dict[str, str]
    revision: int


def snapshot(doc: CaseDocument, cells: Iterable[Cell] | None = None) -> Snapshot:
    views = tuple(
        _CellView(c.path, c.root, c.folder, c.file, c.result, c.review, c.decision)
        for c in (doc.cells if cells is None else cells)
    )
    return Snapshot(doc.current, doc.threshold, views, dict(doc.signoffs), dict(doc.sample_ids), doc.revision)


def cell_rows(doc: CaseDocument | Snapshot, cells: Iterable[Cell | None] | None = None) -> list[report.ReportRow]:
    """One report row per cell (of ``cells``, default all, in document order) under the current model, its
    threshold in the document, the decision the document made for the cell (not made again) and the cell's
    review; a cell the model has not classified (an interrupted run) is a ``pending`` row, so no report looks
    more complete than it is."""
    facts = doc.current
    if facts is None:
        return []
    threshold = doc.threshold
    model = report.RowModel.of(facts, threshold)  # the same for every row
    rows: list[report.ReportRow] = []
    chosen: Iterable[Cell | _CellView | None] = doc.cells if cells is None else cells
    for i, c in enumerate(chosen):
        if c is None:
            continue
        cr = cell_result(c, i)
        if cr is None:
            rows.append(report.pending_row(c.path, c.root, c.folder, c.file, facts, threshold))
            continue
        if c.decision is None:  # (a snapshot's view of a cell the document has not decided)
            rows.append(report.cell_row(cr, facts, threshold, c.review))
        else:
            rows.append(report.ReportRow.made(cr, c.decision, model, c.review))
    return rows


def pdf_signoffs(doc: CaseDocument) -> dict[str, dict[str, str]]:
    """root -> ``{"signed_off_by", "signed_off_at", "comment"}`` of every signed-off case of ``doc``."""
    return {root: so.as_dict() for root, so in doc.signoffs.items()}


def _history(events: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "cell": Path(e["path"]).name,
            "old": e["old_label"] or "",
            "new": e["new_label"] or "",
            "who": e["reviewer"] or "",
            "when": e["at"] or "",
            "model": e["model"] or "",
            "model_version": e["model_version"] or "",
            "action": e["action"],
            "step": str(e["step"]),
            "path": e["path"],
            "shown_in": e.get("shown_in") or "",
        }
        for e in events
    ]


def review_history_rows(source: CaseStore | str | Path) -> list[dict[str, str]]:
    """Every review event of a case file (a :class:`CaseStore` or its path), oldest first."""
    if isinstance(source, CaseStore):
        return _history(source.review_events())
    store = CaseStore.open(source, create=False, read_only=True)
    try:
        return _history(store.review_events())
    finally:
        store.close()


def write_reviews(
    path: str | Path, rows: Sequence[Mapping[str, str]], *, bom: bool = False, delimiter: str = ","
) -> Path:
    """Write review history rows atomically, formula-neutralised like every report.  Returns the path."""
    return report.write_csv(path, REVIEW_COLUMNS, rows, bom=bom, delimiter=delimiter)


class ExportRefused(Exception):
    """The case file was not exported: nothing was written and nothing in it changed."""


class RecordBroken(ExportRefused):
    """The case file's history fails :meth:`CaseStore.verify` (the message says where)."""


class NothingToExport(ExportRefused):
    """The case file holds no classified cell."""


#: ``write(kind, path, writer, rows) -> (where, ok)``: how each file is written.  The default writes to
#: ``path`` and lets ``OSError`` through; the CLI's saves a failed file in the temp folder instead.
Writer = Callable[[Path, Any], Path]
Write = Callable[[str, Path, Writer, Any], tuple[Path, bool]]


def _write(kind: str, path: Path, writer: Writer, rows: Any) -> tuple[Path, bool]:
    return writer(path, rows), True


@dataclass
class StoreExport:
    """What :func:`export_store` read and wrote."""

    doc: CaseDocument
    model: ModelFacts  # the document's current model, whose results were exported
    rows: list[report.ReportRow]
    summary: list[dict[str, str]]
    history: list[dict[str, str]]
    written: dict[str, Path] = field(default_factory=dict)  # kind ("report", "summary", "reviews") -> where
    complete: bool = True  # every file was written where asked
    recorded: bool = False  # the export was recorded in the case file
    record_errors: list[str] = field(default_factory=list)  # why recording it failed
    record: tuple[int, str] = (0, "")  # (rows, head) of the history chain the reports were written from

    @property
    def counts(self) -> CaseCounts:
        return report.count_rows(self.rows)


def export_store(
    db_path: str | Path,
    out_csv: str | Path,
    summary_csv: str | Path | None = None,
    reviews_csv: str | Path | None = None,
    mark_exported: bool = True,
    *,
    history: bool = True,
    bom: bool = False,
    delimiter: str = ",",
    write: Write = _write,
) -> StoreExport:
    """Write the per-cell report, optionally the summary, and (``history``) the review history (default
    ``<out stem>_reviews.csv``) of a case file; then, when every file was written where asked and
    ``mark_exported``, record the export in it (a closed record stays closed).  Without ``mark_exported``
    the file is only read (the app may hold it meanwhile).

    Raises :class:`~.store.StoreError` (unreadable), :class:`RecordBroken`, :class:`NothingToExport`
    (both before anything is written) or, with the default ``write``, ``OSError``."""
    store = CaseStore.open(db_path, create=False, read_only=not mark_exported)
    try:
        problem = store.verify()
        if problem is not None:
            raise RecordBroken(str(problem))
        doc = store.load()
        events = review_history_rows(store)
        rows = cell_rows(doc)
        if doc.current is None or not rows:
            raise NothingToExport("holds no classified cells" + ("" if doc.current else " (no model has run on it)"))
        record = store.head()
        sums = report.summarize(rows, signoffs=doc.signoffs, sample_ids=doc.sample_ids, record=record)
        result = StoreExport(doc, doc.current, rows, sums, events, record=record)
        jobs: list[tuple[str, str | Path, Writer, Any]] = [
            ("report", out_csv, partial(report.write_cell_report, bom=bom, delimiter=delimiter), rows)
        ]
        if summary_csv is not None:
            jobs.append(("summary", summary_csv, partial(report.write_summary, bom=bom, delimiter=delimiter), sums))
        if history:
            jobs.append(
                (
                    "reviews",
                    reviews_csv or reviews_path(out_csv),
                    partial(write_reviews, bom=bom, delimiter=delimiter),
                    events,
                )
            )
        for kind, path, writer, data in jobs:
            result.written[kind], ok = write(kind, Path(path), writer, data)
            result.complete = result.complete and ok
        if mark_exported and result.complete:
            closed_at = store.meta().get("closed_at", "")
            store.attach(doc)
            doc.mark_exported()
            if closed_at:  # a normally closed record stays closed (the app must not offer it for restore)
                doc.note_closed(closed_at)
            result.recorded = True
    finally:
        store.close()
    result.record_errors = list(store.errors)
    result.recorded = result.recorded and not store.errors
    return result
