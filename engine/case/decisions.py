"""The decisions part of the case document: the models that ran, the threshold of each, the current model, and
every cell's result and decision under it (:class:`Decisions`).

A cell holds one result per model; the current model's result and its :class:`~engine.decision.Decision` (class,
flag, why) are set on the cell here, made again when the model or the threshold changes, never stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..decision import NO_DECISION, Decision
from ..pipeline import CellResult
from . import events as ev
from .cell import Cell
from .core import DocumentCore
from .kinds import CellStatus
from .rules import threshold_in_use
from .values import ModelFacts, Result

__all__ = ["Decisions"]


class Decisions:
    """``facts``: model name -> the facts of its latest card; ``thresholds``: model -> the threshold the user set
    (absent: the card's); ``model_name``: the current model (its facts: :attr:`current`)."""

    def __init__(self, core: DocumentCore) -> None:
        self.core = core
        self.facts: dict[str, ModelFacts] = {}
        self.model_name: str | None = None
        self.thresholds: dict[str, float] = {}

    @property
    def current(self) -> ModelFacts | None:
        return self.facts.get(self.model_name) if self.model_name else None

    @property
    def threshold(self) -> float | None:
        f = self.current
        return None if f is None else threshold_in_use(f.threshold, self.thresholds.get(f.name))

    def threshold_for(self, name: str) -> float | None:
        f = self.facts.get(name)
        return None if f is None else threshold_in_use(f.threshold, self.thresholds.get(name))

    def set_model(self, facts: ModelFacts) -> list[Cell]:
        """Make ``facts`` the current model.  Returns the cells it has no valid result for (to classify):
        none yet, or one from another version of the card (its card sha256 differs)."""
        self.facts[facts.name] = facts
        self.model_name = facts.name
        self.core.emit(ev.ModelChanged(facts))
        self.redecide()
        return self.unclassified()

    def unclassified(self) -> list[Cell]:
        return [c for c in self.core.cells if c.result is None]

    def set_threshold(self, value: float) -> None:
        f = self.current
        if f is None:
            return
        value = float(value)
        if abs(value - self.thresholds.get(f.name, f.threshold)) < 1e-9:
            return
        if abs(value - f.threshold) < 1e-9:
            self.thresholds.pop(f.name, None)
        else:
            self.thresholds[f.name] = value
        self.core.unexported = True
        self.core.emit(ev.ThresholdChanged(f, value, f.name in self.thresholds))
        self.redecide()

    def apply_model(self, c: Cell) -> None:
        """Set the current model's result of ``c`` (a result of an earlier card version does not count) and decide."""
        f = self.current
        r = c.results.get(f.name) if f is not None else None
        if r is not None and f is not None and r.card_sha256 != f.card_sha256:
            r = None  # a result of an earlier card version: classified again
        c.result = r
        self._decide(c, f)

    def _decide(self, c: Cell, f: ModelFacts | None) -> None:
        r = c.result
        if r is None or r.status != CellStatus.OK or f is None:
            c.prediction, c.threshold, c.flagged = None, None, False
            c.decision = None if r is None or f is None else NO_DECISION
            return
        thr = self.thresholds.get(f.name, f.threshold)
        c.decision = d = Decision.of(r.p_all, thr, f.review_margin, r.members_disagree, r.qc)
        c.prediction, c.flagged = d.prediction, d.flagged
        c.threshold = thr

    def redecide(self) -> None:
        for c in self.core.cells:
            self.apply_model(c)
        self.core.emit(ev.DecisionsChanged(tuple(self.core.cells)))

    def add_results(self, facts: ModelFacts, pairs: Sequence[tuple[Cell, CellResult]]) -> list[Cell]:
        """Results of ``facts``'s model for these cells.  A review of an image whose content changed
        (another sha256) is set aside as stale, not applied; returns those cells."""
        self.facts.setdefault(facts.name, facts)
        stored, stale = [], []
        for c, cr in pairs:
            r = Result.of(cr, facts)
            if cr.status == CellStatus.OK and not (cr.p_all is not None and math.isfinite(cr.p_all)):
                r = Result(facts.name, facts.card_sha256, cr.sha256, CellStatus.ERROR, "model output not finite")
            c.results[facts.name] = r
            stored.append((c, r))
            if facts.name == self.model_name:
                self.apply_model(c)
            rv = c.review
            if rv is not None and r.status == CellStatus.OK and r.sha256 and rv.sha256 != r.sha256:
                c.stale, c.review = rv, None
                stale.append(c)
        self.core.emit(ev.ResultsStored(tuple(c for c, _ in stored), facts, tuple(stored)))
        if stale:
            self.core.emit(ev.StaleFound(tuple(stale)))
        return stale

    def content_changed(self, cells: Iterable[Cell]) -> list[Cell]:
        """These images changed on disk since they were classified (another sha256): their results are
        dropped (classified again) and their reviews set aside as stale, not applied.  Returns those cells."""
        changed = []
        for c in cells:
            if not c.results and c.review is None:
                continue
            c.results.clear()
            if c.review is not None:
                c.stale, c.review = c.review, None
            self.apply_model(c)
            changed.append(c)
        if changed:
            self.core.emit(ev.StaleFound(tuple(changed), content_changed=True))
        return changed
