"""The one replay of the review log: what the history leads to, and the undo/redo stacks it leaves.

The store restores a document's undo/redo history with it (:meth:`.store.CaseStore.load`) and the audit checks
the live ``reviews`` table against its ``current`` (:func:`.audit.derived_reviews`).  They were two copies that
differed in two ways (an ``import`` row was ignored by one, an undo of a partly stale step restored every change
by one): a reloaded undo could then write a review the check called broken.  One rule now, the document's: an
undo or redo changes only the cells it logged a row for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .cell import Cell, ReviewChange, Step
from .kinds import ReviewAction
from .rules import is_review_label
from .values import Review


class CellsByPath(Protocol):
    """What :func:`document_steps` needs of a document (the replay stays below :mod:`.document`)."""

    def cell(self, key: str) -> Cell | None: ...


__all__ = ["COLUMNS", "History", "LoggedStep", "document_steps", "replay", "review_of"]

#: The ``review_events`` columns :func:`replay` reads, in this order.
COLUMNS = (
    "step",
    "action",
    "path",
    "old_label",
    "new_label",
    "reviewer",
    "at",
    "model",
    "model_version",
    "model_label",
    "p_all",
    "sha256",
    "shown_in",  # (schema version 5; read as NULL from an older file: :func:`.audit.select_list`)
)

Row = Sequence[Any]  # one review_events row with the COLUMNS (SQLite values: untyped; shown_in may be left off)
Change = tuple[str, "Review | None", "Review | None"]  # (path, old, new)


def review_of(
    label: Any,
    reviewer: Any = "",
    at: Any = "",
    sha256: Any = "",
    model: Any = "",
    version: Any = "",
    model_label: Any = None,
    p_all: Any = None,
    shown_in: Any = "",
) -> Review | None:
    """The review a log row names (None when ``label`` is no review label: a clear, or nothing)."""
    if not isinstance(label, str) or not is_review_label(label):
        return None
    return Review(
        label,
        str(reviewer or ""),
        str(at or ""),
        str(sha256 or ""),
        str(model or ""),
        str(version or ""),
        None if model_label is None else str(model_label),
        None if p_all is None else float(p_all),
        str(shown_in or ""),
    )


@dataclass
class LoggedStep:
    """One undoable step as the log has it: its number, who and when (its first row's), and its changes."""

    number: int
    reviewer: str
    at: str
    changes: list[Change]


@dataclass
class History:
    """What replaying the log leaves: path -> its review (None: none), and the undo and redo stacks."""

    current: dict[str, Review | None] = field(default_factory=dict)
    undo: list[LoggedStep] = field(default_factory=list)
    redo: list[LoggedStep] = field(default_factory=list)


def replay(rows: Iterable[Row]) -> History:
    """Replay ``review_events`` rows (:data:`COLUMNS`, in id order, from the last ``closed`` marker on) as the
    document built them: a review step is pushed on the undo stack (and clears the redo stack), an undo/redo moves
    the last step across and puts back the old/new review of each cell it logged a row for, ``stale`` removes a
    review, ``import`` sets one written whole.  Markers (``closed``, ``upgrade``) change nothing."""
    h = History()
    current = h.current
    for (number, action), grouped in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
        group = list(grouped)
        if action == ReviewAction.REVIEW:
            changes: list[Change] = []
            for _n, _a, path, old_label, new_label, who, at, model, version, mlabel, p_all, sha, *seen in group:
                key = str(path)
                old = current.get(key)
                if (old.label if old else None) != old_label:  # the log began mid-way (a document written whole)
                    old = review_of(old_label)
                new = review_of(new_label, who, at, sha, model, version, mlabel, p_all, *seen[:1])
                current[key] = new
                changes.append((key, old, new))
            first = group[0]
            h.undo.append(LoggedStep(int(number), str(first[5] or ""), str(first[6] or ""), changes))
            h.redo.clear()
        elif action in (ReviewAction.UNDO, ReviewAction.REDO):
            stack, other = (h.undo, h.redo) if action == ReviewAction.UNDO else (h.redo, h.undo)
            if stack:
                s = stack.pop()
                other.append(s)
                back = {p: (old if action == ReviewAction.UNDO else new) for p, old, new in s.changes}
                for r in group:
                    if r[2] in back:
                        current[str(r[2])] = back[str(r[2])]
        elif action == ReviewAction.STALE:
            for r in group:
                current[str(r[2])] = None
        elif action == ReviewAction.IMPORT:
            for _n, _a, path, _old, new_label, who, at, model, version, mlabel, p_all, sha, *seen in group:
                current[str(path)] = review_of(new_label, who, at, sha, model, version, mlabel, p_all, *seen[:1])
    return h


def document_steps(doc: CellsByPath, h: History) -> tuple[list[Step], list[Step]]:
    """The undo and redo stacks of ``h`` as the document's :class:`Step` objects (changes of cells no longer in
    ``doc`` left out; a step left with none is dropped)."""

    def step(s: LoggedStep) -> Step | None:
        chs = tuple(
            ReviewChange(cell, old, new) for path, old, new in s.changes if (cell := doc.cell(path)) is not None
        )
        return Step(s.number, ReviewAction.REVIEW, chs, s.reviewer, s.at) if chs else None

    return ([x for x in map(step, h.undo) if x is not None], [x for x in map(step, h.redo) if x is not None])
