"""The engine's sinks of a classification run (:class:`engine.run.Sink`): the CSV report's rows and a case file.
The app's sink (chunks of results to the GUI thread, where the case document takes them) is ``gui.service``'s."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..report import cell_row
from .spec import ResultBatch, RunSpec

if TYPE_CHECKING:
    from ..case.headless import HeadlessRun


class Rows:
    """The rows of the per-cell CSV report (:func:`engine.report.cell_row`), decided at the spec's threshold (None:
    the card's) with the model that scored each batch."""

    def __init__(self, spec: RunSpec) -> None:
        self.threshold = spec.threshold
        self.rows: list = []  # what engine.report.cell_row makes, for write_cell_report and summarize

    def add(self, batch: ResultBatch) -> None:
        self.rows.extend(cell_row(res, batch.model, self.threshold) for res in batch.results)

    def finish(self, complete: bool) -> None:
        """Nothing to do: the front end writes the rows (a whole report, or ``.partial.csv`` when not complete)."""


class Store:
    """A headless run into a case file (:class:`engine.case.headless.HeadlessRun`: ``leukoscan-cli classify
    --store``): each result is stored as it arrives (chained into the record in chunks); :meth:`finish` stores
    the rest and closes the case file, complete or not (what was done is kept for the next run)."""

    def __init__(self, headless: HeadlessRun) -> None:
        self.headless = headless
        self.errors: list[str] = []  # the case file's write errors, once finished

    def add(self, batch: ResultBatch) -> None:
        for res in batch.results:
            self.headless.add(res)

    def finish(self, complete: bool) -> None:
        """Store the rest and close the case file (again: nothing more; the CLI also calls it after an error)."""
        self.errors = self.headless.finish()


class Progress:
    """A progress display as a sink: ``advance(n)`` with the cells of each batch (``leukoscan-cli``'s bar:
    tqdm's ``update``)."""

    def __init__(self, advance: Callable[[int], object]) -> None:
        self.advance = advance

    def add(self, batch: ResultBatch) -> None:
        self.advance(len(batch.results))

    def finish(self, complete: bool) -> None:
        """Nothing to do: the display is closed by whoever opened it."""
