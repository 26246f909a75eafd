"""The frozen values a case document holds: the model behind a result, a result, a review, a sign-off, a case.

They are plain data (no document, no store), so the reports, the store and the GUI share them: one ``Review``
type for the case record and the CSV reports, one ``Case`` for a case of the document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..pipeline import CellResult
from . import rules
from .kinds import CellStatus
from .rules import LABELS

if TYPE_CHECKING:
    from ..card import ModelCard
    from ..model import Classifier

__all__ = ["Case", "ModelFacts", "Result", "Review", "SignOff", "card_sha256", "cards_digest", "utc_now"]


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class ModelFacts:
    """What a report needs to know about the model behind a result, without loading the model."""

    name: str
    version: str
    card_sha256: str  # of the card(s) and ONNX file(s): a changed card is another model
    threshold: float  # the card's
    review_margin: float
    member_names: tuple[str, ...] = ()
    active_provider: str = ""
    display_name: str = ""

    @classmethod
    def of(cls, classifier: Classifier) -> ModelFacts:
        return cls(
            classifier.name,
            classifier.version,
            card_sha256(classifier),
            float(classifier.threshold),
            float(classifier.review_margin),
            tuple(classifier.member_names),
            classifier.active_provider,
            getattr(classifier, "display_name", classifier.name),
        )


def card_sha256(classifier: Classifier) -> str:
    """One digest of a classifier's card and its members' cards (each names its ONNX file's sha256)."""
    members = [m.card for m in getattr(classifier, "members", []) if m.card is not classifier.card]
    return cards_digest(classifier.card, members)


def cards_digest(card: ModelCard, member_cards: Iterable[ModelCard] = ()) -> str:
    """The digest :func:`card_sha256` gives, from the cards alone (before the model is loaded)."""
    blob = json.dumps([c.raw for c in [card, *member_cards]], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Result:
    """One model's output for one cell (engine's :class:`CellResult` without the scan position)."""

    model: str
    card_sha256: str
    sha256: str  # of the image bytes that were classified
    status: CellStatus  # OK | ERROR
    error: str = ""
    p_all: float | None = None
    member_p: dict[str, float] = field(default_factory=dict)
    members_disagree: bool = False
    qc: str = ""

    @classmethod
    def of(cls, r: CellResult, facts: ModelFacts) -> Result:
        return cls(
            facts.name,
            facts.card_sha256,
            r.sha256,
            r.status,
            r.error or "",
            r.p_all,
            dict(r.member_p),
            bool(r.members_disagree),
            r.qc or "",
        )


@dataclass(frozen=True)
class Review:
    """What a person set for one image (ALL, HEM or an exclusion), who, when, and what the model said at that
    moment.  One type for the case record and the CSV reports (:func:`engine.report.cell_row`): a review made
    outside a case record (a report written from a plain run) leaves the image and model fields empty."""

    label: str  # "ALL" | "HEM" | "EXCLUDED: <reason>"
    reviewer: str = ""
    reviewed_at: str = ""  # ISO 8601 (UTC in a case record)
    sha256: str = ""  # of the image reviewed
    model: str = ""  # what the model said at that moment:
    model_version: str = ""
    model_label: str | None = None
    p_all: float | None = None
    shown_in: str = ""  # where the person saw the cell (:data:`.rules.SHOWN_IN`); "" = not recorded

    def __post_init__(self) -> None:
        if not rules.is_review_label(self.label):
            raise ValueError(f"review label must be one of {LABELS} or an exclusion, got {self.label!r}")
        when: object = self.reviewed_at
        if isinstance(when, datetime):  # a caller's datetime: held as the text every report writes
            object.__setattr__(self, "reviewed_at", when.isoformat(timespec="seconds"))


@dataclass(frozen=True)
class SignOff:
    """Who signed a case off, when (ISO 8601 UTC), their comment, and what the verdict rested on (``basis``:
    the model, its version and the threshold at that moment; a later change does not rewrite it)."""

    by: str
    at: str
    comment: str = ""
    basis: str = ""  # e.g. "vgg19 2.0.0, threshold 0.500"

    def as_dict(self) -> dict[str, str]:
        """The form :func:`engine.pdf_report.write_case_pdf` takes (``signoffs={root: ...}``)."""
        return {"signed_off_by": self.by, "signed_off_at": self.at, "comment": self.comment, "basis": self.basis}


@dataclass
class Case:
    root: str  # absolute path: the folder (or a file's parent) that was opened
    name: str  # display name, unique in the document
    sample_id: str = ""  # typed by the technician; the display name when empty
    signoff: SignOff | None = None  # None: not signed off (or reopened)

    @property
    def label(self) -> str:
        return self.sample_id or self.name
