"""One cell's decision under a model and a threshold, made once and carried: the class, the flag, why it is flagged
and whether P(ALL) is inside the review band.

The case document decides each cell when the model or the threshold changes (:class:`engine.case.cell.Cell`
keeps it), and a report row (:class:`engine.report_row.ReportRow`) carries the decision it was given, so an export
does not decide every cell a second time.  The rules themselves are :func:`engine.pipeline.decide` and
:func:`engine.pipeline.flag_reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import pipeline

__all__ = ["NO_DECISION", "Decision"]


@dataclass(frozen=True)
class Decision:
    """``prediction``: "ALL" | "HEM", "" without a score (an error row, a cell not classified); ``flagged``: the
    model flagged the cell for review, ``reasons`` why (:data:`engine.pipeline.FLAG_REASONS` order)."""

    prediction: str = ""
    flagged: bool = False
    reasons: tuple[str, ...] = ()
    in_review_band: bool = False

    @classmethod
    def of(
        cls, p_all: float | None, threshold: float, review_margin: float, members_disagree: bool = False, qc: str = ""
    ) -> Decision:
        """The decision of one score (:func:`engine.pipeline.decide`, called once)."""
        prediction, flagged = pipeline.decide(p_all, threshold, review_margin, members_disagree, qc)
        reasons = pipeline.flag_reasons(p_all, threshold, review_margin, members_disagree, qc) if flagged else ()
        return cls(prediction, flagged, reasons, pipeline.in_review_band(p_all, threshold, review_margin))


#: The decision of a cell without a score (an error, not classified yet).
NO_DECISION = Decision()
