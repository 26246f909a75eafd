"""The facts of one case (one ``root`` of a report) that a printed case report shows.

A case is everything classified from one PATH (``root``): one sample.  Its numbers come from the per-cell
rows of :mod:`engine.report` and from :func:`engine.report.summarize`, so the printed page and the CSV files
never disagree.  Different cases are never pooled: every figure here is about one root.  Sub-folders of
one root are listed one by one and as a case total (the same sample).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .domain.labels import Call
from .domain.rules import CaseCounts
from .report import count_rows, fmt_threshold, summarize
from .report_row import ReportRow


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
    rows: list[ReportRow]
    folders: list[dict[str, str]]  # summarize() rows of this root, one per folder
    total: dict[str, str]  # summarize() of the whole root as one folder
    counts: CaseCounts  # the whole root, by the case rule (engine.report.count_rows)
    folder_counts: dict[str, CaseCounts]  # per folder of the root, same rule
    reviewers: list[str]
    last_review: str
    uses: list[ModelUse]
    p_all: list[float] = field(repr=False)
    overridden: list[ReportRow] = field(repr=False)  # reviewer label differs from the prediction
    flagged: list[ReportRow] = field(repr=False)  # every cell the model flagged (as counts.flagged counts them)
    blasts: list[ReportRow] = field(repr=False, default_factory=list)  # every cell counted as ALL
    excluded: list[ReportRow] = field(repr=False, default_factory=list)  # not counted, with a reason

    @property
    def open_reviews(self) -> int:
        return self.counts.review_open

    @property
    def qc_flagged(self) -> int:
        return self.counts.qc

    @property
    def unreadable(self) -> int:
        return self.counts.errors


def case_of(root: str, rows: list[ReportRow]) -> CaseReport:
    ok = [r for r in rows if r.ok]
    by_folder: dict[str, list[ReportRow]] = {}
    for r in rows:
        by_folder.setdefault(r.folder, []).append(r)
    uses = Counter(
        (
            r.model.name,
            r.model.version,
            fmt_threshold(r.model.threshold),
            fmt_threshold(r.model.default_threshold),
            r.model.provider,
        )
        for r in ok
    )
    return CaseReport(
        root=root,
        rows=rows,
        folders=summarize(rows),
        total=summarize(replace(r, result=replace(r.result, folder=".")) for r in rows)[0],
        counts=count_rows(rows),
        folder_counts={f: count_rows(rs, f) for f, rs in by_folder.items()},
        reviewers=sorted({r.review.reviewer for r in ok if r.review and r.review.reviewer}),
        last_review=max((r.review.reviewed_at for r in ok if r.review), default=""),
        uses=[ModelUse(*k, cells=n) for k, n in uses.most_common()],
        p_all=[p for p in (r.p_all for r in ok) if p is not None],
        overridden=[r for r in ok if r.overridden],
        flagged=[r for r in ok if r.flagged],  # the count of the verdict table: one rule, one number
        blasts=[r for r in ok if r.final == Call.ALL],
        excluded=[r for r in ok if r.excluded_reason],
    )


def cases_of(rows: Iterable[ReportRow]) -> list[CaseReport]:
    """One :class:`CaseReport` per ``root``, in first-seen order."""
    by_root: dict[str, list[ReportRow]] = {}
    for r in rows:
        by_root.setdefault(r.root, []).append(r)
    return [case_of(root, rs) for root, rs in by_root.items()]
