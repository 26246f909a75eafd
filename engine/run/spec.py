"""What a classification run is (:class:`RunSpec`, resolved once by the front end) and what it hands its sinks
(:class:`ResultBatch`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..pipeline import CellResult, ScanItem
from ..report import ReportedModel


@dataclass(frozen=True)
class RunSpec:
    """One run, decided before it starts: every option is resolved here once (the threshold in use is the case
    file's, ``--threshold`` or the card's), so nothing below the front end reads its options again."""

    items: tuple[ScanItem, ...]  # what is classified (with a case file: the cells it lacks)
    #: the decision threshold in use, which the report's rows are decided with; None in the app, whose case
    #: document decides every cell at the threshold shown at any moment (the user may move it during a run)
    threshold: float | None
    batch_size: int = 32  # cells per inference batch
    workers: int | None = None  # decoding threads of the local engine (None: engine.pipeline.default_workers)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")

    @classmethod
    def of(
        cls, items: Sequence[ScanItem], threshold: float | None, batch_size: int = 32, workers: int | None = None
    ) -> RunSpec:
        return cls(tuple(items), None if threshold is None else float(threshold), batch_size, workers)

    @property
    def total(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class ResultBatch:
    """One batch of a run, as every sink gets it: the results (in item order; ``index`` is into the spec's
    items), the model that scored them (on Ray: with the provider of the actor that did), and how far the run
    is (``done`` of ``total`` cells, this batch included)."""

    results: tuple[CellResult, ...]
    model: ReportedModel
    done: int
    total: int
