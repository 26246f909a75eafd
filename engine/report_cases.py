"""The facts of one case (one ``root`` of a report) that a printed case report shows.

A case is everything classified from one PATH (``root``): one sample.  Its numbers come from the per-cell
rows of :mod:`engine.report` and from :func:`engine.report.summarize`, so the printed page and the CSV files
never disagree.  Different cases are never pooled: every figure here is about one root.  Sub-folders of
one root are listed one by one and as a case total (the same sample).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .domain.kinds import CellStatus
from .domain.labels import ALL
from .domain.rules import CaseCounts, label_class, overridden
from .report import count_rows, excluded_reason_of, row_final_label, row_flagged, summarize


@dataclass(frozen=True)
class ModelUse:
    """One model/threshold combination that produced rows of a case (normally there is exactly one)."""

    model: str
    version: str
    threshold: str
    default_threshold: str
    provider: str
    cells: int


@dataclass
class CaseReport:
    """One case of a printed report (one root), from its report rows; a case of the document itself is
    :class:`engine.case.values.Case`."""

    root: str
    rows: list[dict[str, str]]
    folders: list[dict[str, str]]  # summarize() rows of this root, one per folder
    total: dict[str, str]  # summarize() of the whole root as one folder
    counts: CaseCounts  # the whole root, by the case rule (engine.report.count_rows)
    folder_counts: dict[str, CaseCounts]  # per folder of the root, same rule
    reviewers: list[str]
    last_review: str
    uses: list[ModelUse]
    p_all: list[float] = field(repr=False)
    overridden: list[dict[str, str]] = field(repr=False)  # reviewer label differs from the prediction
    flagged: list[dict[str, str]] = field(repr=False)  # every cell the model flagged (as counts.flagged counts them)
    blasts: list[dict[str, str]] = field(repr=False, default_factory=list)  # every cell counted as ALL
    excluded: list[dict[str, str]] = field(repr=False, default_factory=list)  # not counted, with a reason

    @property
    def open_reviews(self) -> int:
        return self.counts.review_open

    @property
    def qc_flagged(self) -> int:
        return self.counts.qc

    @property
    def unreadable(self) -> int:
        return self.counts.errors


def is_overridden(r: Mapping[str, str]) -> bool:
    """The reviewer set another class than the model gave *when the review was made* (the case rule;
    reports written before ``review_model_label`` existed fall back to the prediction)."""
    return r.get("status") == CellStatus.OK and overridden(
        r.get("reviewed_label"), r.get("review_model_label") or r.get("prediction")
    )


def _p(r: Mapping[str, str]) -> float | None:
    try:
        return float(r.get("p_all", ""))
    except ValueError:
        return None


def case_of(root: str, rows: list[dict[str, str]]) -> CaseReport:
    ok = [r for r in rows if r.get("status") == CellStatus.OK]
    by_folder: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_folder.setdefault(r.get("folder", "."), []).append(r)
    uses = Counter(
        (
            r.get("model", ""),
            r.get("model_version", ""),
            r.get("threshold", ""),
            r.get("default_threshold", ""),
            r.get("provider", ""),
        )
        for r in ok
    )
    overridden = [r for r in ok if is_overridden(r)]
    return CaseReport(
        root=root,
        rows=rows,
        folders=summarize(rows),
        total=summarize({**r, "folder": "."} for r in rows)[0],
        counts=count_rows(rows),
        folder_counts={f: count_rows(rs, f) for f, rs in by_folder.items()},
        reviewers=sorted({r["reviewer"] for r in ok if r.get("reviewer")}),
        last_review=max((r.get("reviewed_at", "") for r in ok), default=""),
        uses=[ModelUse(*k, cells=n) for k, n in uses.most_common()],
        p_all=[p for p in map(_p, ok) if p is not None],
        overridden=overridden,
        flagged=[r for r in ok if row_flagged(r)],  # the count of the verdict table: one rule, one number
        blasts=[r for r in ok if label_class(row_final_label(r)) == ALL],
        excluded=[r for r in ok if excluded_reason_of(r)],
    )


def cases_of(rows: Iterable[Mapping[str, str]]) -> list[CaseReport]:
    """One :class:`CaseReport` per ``root``, in first-seen order."""
    by_root: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_root.setdefault(r.get("root", ""), []).append(dict(r))
    return [case_of(root, rs) for root, rs in by_root.items()]
