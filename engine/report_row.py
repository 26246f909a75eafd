"""The typed row of a per-cell report: what every writer (CSV, summary, PDF, FHIR, the CLI's counts) consumes.

A :class:`ReportRow` holds the cell's result, the model's :class:`~engine.decision.Decision` (made once), the
person's review, the final label and the facts of the model; the CSV writer formats it at the edge
(:meth:`ReportRow.csv`) and a report read back is parsed into one in one place (:meth:`ReportRow.from_csv`), so
no reader takes a number or a flag back out of its text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .case.values import Review
from .decision import NO_DECISION, Decision
from .domain import rules
from .domain.kinds import CellStatus
from .domain.labels import Label, parse_label
from .pipeline import FLAG_DISAGREEMENT, CellResult

__all__ = [
    "CELL_COLUMNS",
    "FLAG_SEPARATOR",
    "NOT_REACHED",
    "ReportRow",
    "ReportedModel",
    "RowModel",
    "cell_id",
    "fmt_p",
    "fmt_threshold",
]

CELL_COLUMNS: tuple[str, ...] = (
    "path",
    "folder",
    "file",
    "sha256",
    "status",
    "error",
    "prediction",
    "p_all",
    "flagged",
    "model",
    "model_version",
    "threshold",
    "reviewed_label",
    "reviewer",
    "reviewed_at",
    # extras
    "final_label",
    "default_threshold",
    "provider",
    "root",
    "qc",
    "review_model_label",
    "cell_id",
    "in_review_band",
    "flag_reasons",
    "device_fallback",
)
FLAG_SEPARATOR = ";"  # between the words of a row's flag_reasons ("review_band;qc")
NOT_REACHED = "not classified (the run stopped before this image)"  # the error text of a pending row
_MEMBER = "p_all_"  # the column of one ensemble member's P(ALL): p_all_<member>
_UNKNOWN = Path()  # a root a report does not name (scan's roots are absolute)


class ReportedModel(Protocol):
    """What a report row reads of the model behind a result: a live :class:`engine.model.Classifier`, the
    :class:`engine.case.values.ModelFacts` a case record stores, or the
    :class:`engine.distributed.payload.ReportModel` a Ray driver holds (it has no onnxruntime session)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def review_margin(self) -> float: ...
    @property
    def member_names(self) -> Sequence[str]: ...
    @property
    def active_provider(self) -> str: ...


if TYPE_CHECKING:  # mypy (`make typecheck`) checks that the three models a row is made from fit the protocol
    from .case.values import ModelFacts
    from .distributed.payload import ReportModel
    from .model import Classifier

    def _reported(models: tuple[Classifier, ModelFacts, ReportModel]) -> tuple[ReportedModel, ...]:
        return models


def cell_id(sha256: str) -> str:
    """The short id a person can read off a printed thumbnail and find in the CSV: the first 10 hex digits of
    the image's sha256 (the same image in two files has the same id)."""
    return (sha256 or "")[:10]


def fmt_p(p: float | None) -> str:
    return "" if p is None else f"{p:.4f}"


def fmt_threshold(t: float | None) -> str:
    return "" if t is None else f"{float(t):.4f}"


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RowModel:
    """The facts of the model a row states: its name and version, the threshold in use and the card's, the
    provider that ran it, the ensemble's members (one ``p_all_<member>`` column each) and why ``--device auto``
    fell back to the CPU ("" when it did not)."""

    name: str
    version: str
    threshold: float | None
    default_threshold: float | None
    provider: str = ""
    member_names: tuple[str, ...] = ()
    device_fallback: str = ""

    @classmethod
    def of(cls, model: ReportedModel, threshold: float | None = None) -> RowModel:
        """``threshold`` None: the card's (:func:`engine.domain.rules.threshold_in_use`)."""
        return cls(
            model.name,
            model.version,
            rules.threshold_in_use(model.threshold, threshold),
            float(model.threshold),
            model.active_provider,
            tuple(model.member_names),
            # why --device auto ran on the CPU although onnxruntime offered CUDA (a live classifier's; "" otherwise)
            getattr(model, "device_fallback", ""),
        )


@dataclass(frozen=True)
class ReportRow:
    """One cell of a report.  ``result.status`` is OK, ERROR or PENDING (found, not classified: an interrupted
    run); ``final`` the label that counts (:func:`engine.domain.rules.final_label`), None without a score."""

    result: CellResult
    decision: Decision
    model: RowModel
    review: Review | None = None
    final: Label | None = None

    # --- what the readers ask ---------------------------------------------------------------------------
    @property
    def status(self) -> CellStatus:
        return self.result.status

    @property
    def ok(self) -> bool:
        return self.result.status == CellStatus.OK

    @property
    def root(self) -> str:
        """The PATH given ("" in a report written before the column existed: one case, folder unknown)."""
        return "" if self.result.root == _UNKNOWN else str(self.result.root)

    @property
    def folder(self) -> str:
        return self.result.folder

    @property
    def path(self) -> str:
        return str(self.result.path)

    @property
    def sha256(self) -> str:
        return self.result.sha256

    @property
    def p_all(self) -> float | None:
        return self.result.p_all if self.ok else None

    @property
    def qc(self) -> str:
        return self.result.qc if self.ok else ""

    @property
    def prediction(self) -> str:
        return self.decision.prediction

    @property
    def flagged(self) -> bool:
        return self.decision.flagged

    @property
    def reviewed_label(self) -> str:
        return self.review.label if self.review else ""

    @property
    def final_label(self) -> str:
        return "" if self.final is None else str(self.final)

    @property
    def overridden(self) -> bool:
        """The reviewer set another class than the model gave *when the review was made* (the case rule;
        reports written before ``review_model_label`` existed fall back to the prediction)."""
        rv = self.review
        return self.ok and rv is not None and rules.overridden(rv.label, rv.model_label or self.prediction or None)

    @property
    def excluded_reason(self) -> str:
        """Why the cell does not count ("" when it counts): a reviewer's exclusion or a failed QC."""
        return rules.exclusion_reason(self.final_label) if self.ok else ""

    @property
    def cell_id(self) -> str:
        return cell_id(self.sha256)

    # --- the edge: CSV text -------------------------------------------------------------------------------
    def csv(self) -> dict[str, str]:
        """The row's CSV cells (:data:`CELL_COLUMNS`, then ``p_all_<member>`` per ensemble member)."""
        r, d, m, rv, ok = self.result, self.decision, self.model, self.review, self.ok
        row = {
            "path": self.path,
            "folder": r.folder,
            "file": r.file,
            "sha256": r.sha256,
            "status": str(r.status),
            "error": r.error,
            "prediction": d.prediction,
            "p_all": fmt_p(self.p_all),
            "flagged": _bool(d.flagged),
            "model": m.name,
            "model_version": m.version,
            "threshold": fmt_threshold(m.threshold),
            "reviewed_label": rv.label if rv else "",
            "reviewer": rv.reviewer if rv else "",
            "reviewed_at": rv.reviewed_at if rv else "",
            "final_label": self.final_label,
            "default_threshold": fmt_threshold(m.default_threshold),
            "provider": m.provider,
            "root": self.root,
            "qc": self.qc,
            "review_model_label": (rv.model_label or "") if rv else "",
            "cell_id": self.cell_id,
            "in_review_band": _bool(d.in_review_band),
            "flag_reasons": FLAG_SEPARATOR.join(d.reasons),
            "device_fallback": m.device_fallback if ok else "",
        }
        for name in m.member_names:
            row[_MEMBER + name] = fmt_p(r.member_p.get(name)) if ok else ""
        return row

    @classmethod
    def from_csv(cls, row: Mapping[str, str], index: int = 0) -> ReportRow:
        """A row read back from a per-cell CSV (the one parser of its text): the decision as it was written (the
        card's review margin is not in the file), ``flagged`` from ``needs_review`` in reports written before 3.0,
        the final label by the rule.  ValueError for a review label that is not ALL, HEM or an exclusion."""
        get = row.get
        status = _status(get("status"))
        members = tuple(k[len(_MEMBER) :] for k in row if k.startswith(_MEMBER) and len(k) > len(_MEMBER))
        reasons = tuple(w for w in (get("flag_reasons") or "").split(FLAG_SEPARATOR) if w)
        flagged = get("flagged")
        qc = get("qc") or ""
        p = _float(get("p_all"))
        result = CellResult(
            index,
            Path(get("path") or ""),
            Path(get("root") or ""),
            get("folder") or ".",
            get("file") or "",
            get("sha256") or "",
            status,
            get("error") or "",
            p,
            {m: v for m in members if (v := _float(get(_MEMBER + m))) is not None},
            FLAG_DISAGREEMENT in reasons,
            qc,
        )
        decision = Decision(
            get("prediction") or "",
            (get("needs_review") if flagged is None else flagged) == "true",
            reasons,
            get("in_review_band") == "true",
        )
        model = RowModel(
            get("model") or "",
            get("model_version") or "",
            _float(get("threshold")),
            _float(get("default_threshold")),
            get("provider") or "",
            members,
            get("device_fallback") or "",
        )
        label = get("reviewed_label") or ""
        if label and not rules.is_review_label(label):
            raise ValueError(f"reviewed_label {label!r} of {get('file')!r} is not ALL, HEM or an exclusion")
        review = (
            Review(
                label, get("reviewer") or "", get("reviewed_at") or "", model_label=get("review_model_label") or None
            )
            if label
            else None
        )
        return cls.made(result, decision, model, review)

    @classmethod
    def made(cls, result: CellResult, decision: Decision, model: RowModel, review: Review | None) -> ReportRow:
        """A row with its final label by the one rule (a cell without a score has none and carries no review)."""
        if result.status != CellStatus.OK:
            return cls(result, NO_DECISION if result.status == CellStatus.PENDING else decision, model)
        final = rules.final_label(decision.prediction or None, review.label if review else None, result.qc)
        return cls(result, decision, model, review, parse_label(final))


def _status(text: str | None) -> CellStatus:
    try:
        return CellStatus(text or "")
    except ValueError:
        return CellStatus.ERROR
