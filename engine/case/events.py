"""What a :class:`~engine.case.document.CaseDocument` says after each change: one frozen dataclass per kind.

Listeners (the GUI bridge, the case store) dispatch on the event's *type* through a table; a test checks that
every type in :data:`EVENT_TYPES` has an entry in each table, so a new kind of change cannot be silently dropped
by one side (it was, with ``Event(kind: str, data: dict)`` and if/elif chains on strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kinds import SignOffAction

if TYPE_CHECKING:
    from .cell import Cell, Step
    from .values import ModelFacts, Result

__all__ = [
    "EVENT_TYPES",
    "CaseAdded",
    "CaseEvent",
    "CellsAdded",
    "Cleared",
    "Closed",
    "DecisionsChanged",
    "Exported",
    "ModelChanged",
    "PathOpened",
    "ResultsStored",
    "ReviewsChanged",
    "SignOffAction",
    "SignOffChanged",
    "StaleFound",
    "ThresholdChanged",
]


@dataclass(frozen=True)
class CaseEvent:
    """Base of every document event."""


@dataclass(frozen=True)
class CaseAdded(CaseEvent):
    """A case (an opened root) was created or its display name / sample id changed."""

    root: str


@dataclass(frozen=True)
class PathOpened(CaseEvent):
    """A folder or file was opened (what a restore re-scans)."""

    path: str


@dataclass(frozen=True)
class CellsAdded(CaseEvent):
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class ResultsStored(CaseEvent):
    """New classification results (``facts``: the model that produced them)."""

    cells: tuple[Cell, ...]
    facts: ModelFacts | None
    results: tuple[tuple[Cell, Result], ...]


@dataclass(frozen=True)
class DecisionsChanged(CaseEvent):
    """Every cell's class and flag were decided again (model or threshold change): derived, never stored."""

    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class ReviewsChanged(CaseEvent):
    """One undoable review step (review, undo or redo)."""

    cells: tuple[Cell, ...]
    step: Step


@dataclass(frozen=True)
class ThresholdChanged(CaseEvent):
    facts: ModelFacts
    value: float
    changed: bool  # False: back to the card's threshold


@dataclass(frozen=True)
class ModelChanged(CaseEvent):
    facts: ModelFacts


@dataclass(frozen=True)
class Cleared(CaseEvent):
    """Every case closed in the window (closing closes the view: the case store keeps the whole record)."""

    by: str = ""
    at: str = ""


@dataclass(frozen=True)
class StaleFound(CaseEvent):
    """Reviews of images whose content changed (``content_changed``) or that are gone."""

    cells: tuple[Cell, ...]
    content_changed: bool = False


@dataclass(frozen=True)
class Exported(CaseEvent):
    at: str


@dataclass(frozen=True)
class Closed(CaseEvent):
    at: str


@dataclass(frozen=True)
class SignOffChanged(CaseEvent):
    """A case was signed off or reopened; ``text``: the sign-off's comment or the reopening's reason."""

    root: str
    action: SignOffAction
    by: str
    at: str
    text: str = ""
    basis: str = ""


#: Every kind of event a document emits (the dispatch tables of the bridge and the store cover all of them).
EVENT_TYPES: tuple[type[CaseEvent], ...] = (
    CaseAdded,
    PathOpened,
    CellsAdded,
    ResultsStored,
    DecisionsChanged,
    ReviewsChanged,
    ThresholdChanged,
    ModelChanged,
    Cleared,
    StaleFound,
    Exported,
    Closed,
    SignOffChanged,
)
