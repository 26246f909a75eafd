"""Reports from a case document or a case file, without the GUI.

- :func:`cell_rows`: the per-cell report rows (:func:`engine.report.cell_row`) of a document's classified
  cells under its current model and threshold, with the reviews: the same columns as ``leukoscan-cli
  classify --out`` and the app's export.
- :func:`review_history_rows` / :func:`write_reviews`: the audit trail of a case file as a CSV
  (``<report stem>_reviews.csv`` beside the report), columns :data:`REVIEW_COLUMNS`:
  ``cell`` (file name), ``old``/``new`` (label before/after, empty = none), ``who``, ``when`` (ISO 8601 UTC),
  ``model``, ``model_version``, ``action`` (review | undo | redo | stale), ``step``, ``path``.
- :func:`pdf_signoffs`: the document's sign-offs in the form :func:`engine.pdf_report.write_case_pdf` takes
  (the summary takes ``doc.signoffs`` as it is: ``report.summarize(rows, signoffs=doc.signoffs, sample_ids=doc.sample_ids)``).
- :func:`export_store`: all of them from a case file.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .. import report
from ..pipeline import CellResult
from .document import CaseDocument, Cell, ModelFacts
from .store import CaseStore

REVIEW_COLUMNS: tuple[str, ...] = ("cell", "old", "new", "who", "when", "model", "model_version", "action", "step",
                                   "path")


def reviews_path(report_path: str | Path) -> Path:
    """Where the review history of ``report_path`` goes: ``<stem>_reviews.csv`` beside it."""
    p = Path(report_path)
    return p.with_name(f"{p.stem}_reviews.csv")


def cell_result(cell: Cell, index: int = 0) -> CellResult | None:
    """The current model's result of ``cell`` as the engine's :class:`CellResult` (None: not classified)."""
    r = cell.result
    if r is None:
        return None
    return CellResult(index, cell.path, cell.root, cell.folder, cell.file, r.sha256, r.status, r.error, r.p_all,
                      dict(r.member_p), r.members_disagree, r.qc)


@dataclass(frozen=True)
class _CellView:
    path: Path
    root: Path
    folder: str
    file: str
    result: object
    review: object


@dataclass(frozen=True)
class Snapshot:
    """What a report needs from a document, copied at one moment (cheap: the records are immutable), so a
    report written off the GUI thread cannot mix two models or thresholds, or miss a later review
    without knowing it (``revision``)."""

    current: ModelFacts | None
    threshold: float | None
    cells: tuple
    signoffs: dict
    sample_ids: dict
    revision: int


def snapshot(doc: CaseDocument, cells: Iterable[Cell] | None = None) -> Snapshot:
    views = tuple(_CellView(c.path, c.root, c.folder, c.file, c.result, c.review)
                  for c in (doc.cells if cells is None else cells))
    return Snapshot(doc.current, doc.threshold, views, dict(doc.signoffs), dict(doc.sample_ids), doc.revision)


def cell_rows(doc: "CaseDocument | Snapshot", cells: Iterable[Cell] | None = None) -> list[dict[str, str]]:
    """One report row per cell (of ``cells``, default all, in document order) under the current model, its
    threshold in the document, and the cell's review; a cell the model has not classified (an interrupted run)
    is a ``pending`` row, so no report looks more complete than it is."""
    facts = doc.current
    if facts is None:
        return []
    threshold = doc.threshold
    rows = []
    for i, c in enumerate((doc.cells if cells is None else cells)):
        cr = cell_result(c, i) if c is not None else None
        if cr is None:
            if c is not None:
                rows.append(report.pending_row(c.path, c.root, c.folder, c.file, facts, threshold))
            continue
        rows.append(report.cell_row(cr, facts, threshold, c.review))
    return rows


def pdf_signoffs(doc: CaseDocument) -> dict[str, dict[str, str]]:
    """root -> ``{"signed_off_by", "signed_off_at", "comment"}`` of every signed-off case of ``doc``."""
    return {root: so.as_dict() for root, so in doc.signoffs.items()}


def _history(events: Sequence[Mapping]) -> list[dict[str, str]]:
    return [{"cell": Path(e["path"]).name, "old": e["old_label"] or "", "new": e["new_label"] or "",
             "who": e["reviewer"] or "", "when": e["at"] or "", "model": e["model"] or "",
             "model_version": e["model_version"] or "", "action": e["action"], "step": str(e["step"]),
             "path": e["path"]} for e in events]


def review_history_rows(source: CaseStore | str | Path) -> list[dict[str, str]]:
    """Every review event of a case file (a :class:`CaseStore` or its path), oldest first."""
    if isinstance(source, CaseStore):
        return _history(source.review_events())
    store = CaseStore.open(source, create=False, read_only=True)
    try:
        return _history(store.review_events())
    finally:
        store.close()


def write_reviews(path: str | Path, rows: Sequence[Mapping[str, str]]) -> Path:
    """Write review history rows atomically, formula-neutralised like every report.  Returns the path."""
    return report.write_csv(path, REVIEW_COLUMNS, rows)


def export_store(db_path: str | Path, out_csv: str | Path, summary_csv: str | Path | None = None,
                 reviews_csv: str | Path | None = None, mark_exported: bool = True) -> dict[str, Path]:
    """Write the per-cell report, optionally the summary, and the review history (default
    ``<out stem>_reviews.csv``) of a case file; then record the export in it.  Returns
    ``{"report": ..., "summary": ..., "reviews": ...}`` of the files written.  Raises
    :class:`~.store.StoreError` (unreadable case file) or ``OSError``."""
    store = CaseStore.open(db_path, create=False)
    try:
        doc = store.load()
        rows = cell_rows(doc)
        written = {"report": report.write_cell_report(out_csv, rows)}
        if summary_csv is not None:
            written["summary"] = report.write_summary(summary_csv, report.summarize(rows, signoffs=doc.signoffs, sample_ids=doc.sample_ids))
        written["reviews"] = write_reviews(reviews_csv or reviews_path(out_csv), review_history_rows(store))
        if mark_exported:
            store.attach(doc)
            doc.mark_exported()
    finally:
        store.close()
    return written
