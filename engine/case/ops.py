"""What the case store writes, as typed operations: one frozen dataclass per kind of write.

A document event becomes operations on the caller's thread (:data:`OPS_OF`, :func:`ops_of`; plain values only:
cells mutate later, so what is needed is copied now); the writer thread runs them through its own table
(:data:`engine.case.writer.WRITES`).  Both tables are checked by tests to cover every type (:data:`EVENT_TYPES
<engine.case.events.EVENT_TYPES>`, :data:`OP_TYPES`), so a new kind of change or write cannot be dropped
silently: an unknown one raises.  (They were ``("name", *args)`` tuples run with ``getattr(store, "_w_" + name)``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import events
from .kinds import ReviewAction, SignOffAction
from .values import ModelFacts, Result, Review, utc_now

if TYPE_CHECKING:
    from .document import CaseDocument

__all__ = [
    "OPS_OF",
    "OP_TYPES",
    "ArchiveCase",
    "ClearCases",
    "LogReviews",
    "LogSignOff",
    "PutCases",
    "PutCells",
    "PutModels",
    "PutOpened",
    "PutResults",
    "PutStats",
    "SetMeta",
    "SetReviews",
    "SetSignOffs",
    "SetStale",
    "SetThreshold",
    "SetThresholds",
    "StoreOp",
    "facts_row",
    "ops_of",
    "snapshot",
]

ModelRow = tuple[str, str, str, float, float, str, str, str]  # a `models` row
SignOffRow = tuple[str, str, str, str, str]  # (root, by, at, comment, basis)


@dataclass(frozen=True)
class StoreOp:
    """Base of every store write (one runs inside the transaction of its batch, in the writer thread)."""


@dataclass(frozen=True)
class SetMeta(StoreOp):
    values: Mapping[str, str]


@dataclass(frozen=True)
class PutCases(StoreOp):
    rows: tuple[tuple[str, str, str], ...]  # (root, name, sample_id); a known root is updated


@dataclass(frozen=True)
class PutOpened(StoreOp):
    rows: tuple[tuple[str, int], ...]  # (path, is_dir)


@dataclass(frozen=True)
class PutCells(StoreOp):
    rows: tuple[tuple[str, str, str], ...]  # (path, root, folder); a known path is kept


@dataclass(frozen=True)
class PutModels(StoreOp):
    rows: tuple[ModelRow, ...]
    replace: bool  # True: this row becomes the newest of its name (the current model)


@dataclass(frozen=True)
class PutResults(StoreOp):
    pairs: tuple[tuple[str, Result], ...]  # (path, result)
    stat: bool  # also record each file's size and mtime now (a fresh classification)


@dataclass(frozen=True)
class PutStats(StoreOp):
    rows: tuple[tuple[str, int | None, int | None], ...]  # (path, size, mtime_ns) already known


@dataclass(frozen=True)
class SetThreshold(StoreOp):
    model: str
    value: float | None  # None: back to the card's


@dataclass(frozen=True)
class SetThresholds(StoreOp):
    values: Mapping[str, float]  # every threshold the user set (the rest are dropped)


@dataclass(frozen=True)
class SetReviews(StoreOp):
    """A snapshot of live reviews (a document written whole): each one that differs is logged as ``import``."""

    rows: tuple[tuple[str, Review], ...]


@dataclass(frozen=True)
class LogReviews(StoreOp):
    """One review step (review, undo, redo): the live table changed and one log row per cell."""

    number: int
    action: ReviewAction
    actor: str
    at: str
    changes: tuple[tuple[str, Review | None, Review | None], ...]  # (path, old, new)


@dataclass(frozen=True)
class SetStale(StoreOp):
    keys: tuple[str, ...]
    content_changed: bool  # the results are dropped too (classified again)
    at: str


@dataclass(frozen=True)
class SetSignOffs(StoreOp):
    """A snapshot of live sign-offs (a document written whole): each one that differs is logged."""

    rows: tuple[SignOffRow, ...]


@dataclass(frozen=True)
class LogSignOff(StoreOp):
    root: str
    action: SignOffAction
    by: str
    at: str
    text: str
    basis: str = ""


@dataclass(frozen=True)
class ClearCases(StoreOp):
    """The cases were closed in the window (a view closed): logged; nothing in the record is removed."""

    by: str = ""
    at: str = ""


@dataclass(frozen=True)
class ArchiveCase(StoreOp):
    """A case archived (kept whole, never removed): who, when, why."""

    root: str
    by: str
    at: str
    reason: str = ""


#: Every kind of write (the writer's table, :data:`engine.case.writer.WRITES`, covers all of them).
OP_TYPES: tuple[type[StoreOp], ...] = (
    SetMeta,
    PutCases,
    PutOpened,
    PutCells,
    PutModels,
    PutResults,
    PutStats,
    SetThreshold,
    SetThresholds,
    SetReviews,
    LogReviews,
    SetStale,
    SetSignOffs,
    LogSignOff,
    ClearCases,
    ArchiveCase,
)


def facts_row(f: ModelFacts) -> ModelRow:
    return (
        f.name,
        f.card_sha256,
        f.version,
        float(f.threshold),
        float(f.review_margin),
        json.dumps(list(f.member_names)),
        f.active_provider,
        f.display_name,
    )


# ------------------------------------------------------------------------------------------ events -> writes


def ops_of(doc: CaseDocument, e: events.CaseEvent) -> list[StoreOp]:
    """The writes of one event, as plain values (Result and Review are frozen; Cells are not).  KeyError for an
    event type without an entry in :data:`OPS_OF`."""
    return OPS_OF[type(e)](doc, e)


def _case_ops(doc: CaseDocument, e: events.CaseAdded) -> list[StoreOp]:
    case = doc.cases.get(e.root)
    return [PutCases(((case.root, case.name, case.sample_id),))] if case is not None else []


def _results_ops(doc: CaseDocument, e: events.ResultsStored) -> list[StoreOp]:
    ops: list[StoreOp] = []
    if e.facts is not None:
        ops.append(PutModels((facts_row(e.facts),), False))
    ops.append(PutResults(tuple((c.key, r) for c, r in e.results), True))
    return ops


def _reviews_ops(doc: CaseDocument, e: events.ReviewsChanged) -> list[StoreOp]:
    st = e.step
    return [
        LogReviews(
            st.number,
            st.action,
            st.reviewer,
            st.at or utc_now(),
            tuple((ch.cell.key, ch.old, ch.new) for ch in st.changes),
        )
    ]


def _signoff_ops(doc: CaseDocument, e: events.SignOffChanged) -> list[StoreOp]:
    return [LogSignOff(e.root, e.action, e.by, e.at or utc_now(), e.text, e.basis)]


def _threshold_ops(doc: CaseDocument, e: events.ThresholdChanged) -> list[StoreOp]:
    return [SetThreshold(e.facts.name, doc.thresholds.get(e.facts.name))]


def _model_ops(doc: CaseDocument, e: events.ModelChanged) -> list[StoreOp]:
    return [PutModels((facts_row(e.facts),), True), SetMeta({"model": e.facts.name})]


def _opened_ops(doc: CaseDocument, e: events.PathOpened) -> list[StoreOp]:
    return [PutOpened(((e.path, int(bool(doc.opened.get(e.path, False)))),))]


def _exported_ops(doc: CaseDocument, e: events.Exported) -> list[StoreOp]:
    return [SetMeta({"exported_at": e.at, "unexported": "1" if doc.unexported else "0"})]


#: Every document event type -> the store writes it causes (tests/engine: every type has an entry).
OPS_OF: dict[type[events.CaseEvent], Callable[[CaseDocument, Any], list[StoreOp]]] = {
    events.CaseAdded: _case_ops,
    events.CellsAdded: lambda doc, e: [PutCells(tuple((c.key, str(c.root), c.folder) for c in e.cells))],
    events.ResultsStored: _results_ops,
    events.ReviewsChanged: _reviews_ops,
    events.ThresholdChanged: _threshold_ops,
    events.ModelChanged: _model_ops,
    events.Cleared: lambda doc, e: [ClearCases(e.by, e.at or utc_now())],
    events.SignOffChanged: _signoff_ops,
    events.StaleFound: lambda doc, e: [SetStale(tuple(c.key for c in e.cells), e.content_changed, utc_now())],
    events.PathOpened: _opened_ops,
    events.Closed: lambda doc, e: [SetMeta({"closed_at": e.at})],
    events.Exported: _exported_ops,
    events.DecisionsChanged: lambda doc, e: [],  # derived, never stored
}


def snapshot(doc: CaseDocument) -> list[StoreOp]:
    """The whole document as writes (a document that did not come from this store)."""
    ops: list[StoreOp] = [
        SetMeta(
            {
                "session_id": doc.session_id,
                "started": doc.started,
                "model": doc.model_name or "",
                "exported_at": doc.exported_at,
                "unexported": "1" if doc.unexported else "0",
            }
        ),
        PutCases(tuple((c.root, c.name, c.sample_id) for c in doc.cases.values())),
        PutOpened(tuple((p, int(d)) for p, d in doc.opened.items())),
        PutCells(tuple((c.key, str(c.root), c.folder) for c in doc.cells)),
        PutModels(tuple(facts_row(f) for f in doc.facts.values() if f.name != doc.model_name), True),
    ]
    if doc.current is not None:
        ops.append(PutModels((facts_row(doc.current),), True))  # the newest row: the current model
    ops.append(PutResults(tuple((c.key, r) for c in doc.cells for r in c.results.values()), False))
    ops.append(PutStats(tuple((c.key, c.size, c.mtime_ns) for c in doc.cells if c.size is not None)))
    ops.append(SetThresholds(dict(doc.thresholds)))
    ops.append(SetReviews(tuple((c.key, c.review) for c in doc.cells if c.review is not None)))
    signed = tuple(
        (c.root, c.signoff.by, c.signoff.at, c.signoff.comment, c.signoff.basis)
        for c in doc.cases.values()
        if c.signoff is not None
    )
    if signed:
        ops.append(SetSignOffs(signed))
    return ops
