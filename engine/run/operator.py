"""The one loop of a classification run: a batch source driven into sinks (:func:`run`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..model import Classifier
from ..pipeline import CellResult, classify_batches
from ..report import ReportedModel
from .spec import ResultBatch, RunSpec

if TYPE_CHECKING:
    from ..distributed.ray_engine import ClassifierPool

log = logging.getLogger(__name__)

#: A batch source: the spec and the cancel event in, each batch's results and the model that scored them out
#: (:func:`local`, :func:`on_ray`).  It stops early, without an error, when cancelled.
Source = Callable[[RunSpec, threading.Event], Iterable[tuple[Sequence[CellResult], ReportedModel]]]


class Sink(Protocol):
    """What consumes a run: :meth:`add` gets every batch in order; :meth:`finish` is called once at the end, even
    after an error (``complete``: every item of the spec has a result; False when cancelled or failed)."""

    def add(self, batch: ResultBatch) -> None: ...

    def finish(self, complete: bool) -> None: ...


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``done`` of ``total`` cells in ``seconds``; ``cancelled``: stopped before the end."""

    done: int
    total: int
    seconds: float

    @property
    def cancelled(self) -> bool:
        return self.done < self.total


def local(classifier: Classifier) -> Source:
    """The batch source of this machine: :func:`engine.pipeline.classify_batches` with a loaded model."""

    def batches(spec: RunSpec, cancel: threading.Event) -> Iterator[tuple[Sequence[CellResult], ReportedModel]]:
        source = classify_batches(
            spec.items, classifier, batch_size=spec.batch_size, threads=spec.workers, cancel=cancel
        )
        with closing(source):
            for results in source:
                yield results, classifier

    return batches


def on_ray(pool: ClassifierPool) -> Source:
    """The batch source of a Ray cluster: :func:`engine.distributed.ray_engine.classify_batches` on ``pool``'s
    actors (each batch with the model as the actor that scored it ran it).  Imports Ray: call it only when a pool
    exists (``leukoscan-cli classify --engine ray``)."""
    from ..distributed import ray_engine

    def batches(spec: RunSpec, cancel: threading.Event) -> Iterator[tuple[Sequence[CellResult], ReportedModel]]:
        return ray_engine.classify_batches(spec.items, pool, batch_size=spec.batch_size, cancel=cancel)

    return batches


def run(spec: RunSpec, source: Source, sinks: Sequence[Sink], cancel: threading.Event | None = None) -> RunOutcome:
    """Classify ``spec``'s items with ``source``, handing every batch to each sink in turn, then finish them.

    ``cancel``: set it (from any thread, a signal handler) to stop; the run then ends within a second with the
    cells done so far, and the sinks are told it is not complete.  A failing model's :class:`ModelError` is
    raised after the sinks are finished (what was classified before it is kept)."""
    cancel = cancel if cancel is not None else threading.Event()
    total, done, t0 = spec.total, 0, time.perf_counter()
    batches = iter(source(spec, cancel))
    try:
        for results, model in batches:
            done += len(results)
            batch = ResultBatch(tuple(results), model, done, total)
            for sink in sinks:
                sink.add(batch)
    except BaseException:
        _close(batches)
        _finish(sinks, False, quiet=True)  # the model's error is the one to tell, not a sink's after it
        raise
    _close(batches)
    _finish(sinks, done == total)
    return RunOutcome(done, total, time.perf_counter() - t0)


def _close(batches: Iterator[object]) -> None:
    """A generator's pool and pending work go now, not when it is collected."""
    close = getattr(batches, "close", None)
    if close is not None:
        close()


def _finish(sinks: Sequence[Sink], complete: bool, quiet: bool = False) -> None:
    """Finish every sink, even when one fails (a case file is closed and its lock released whatever a CSV
    sink does); the first failure is raised after, or only logged when ``quiet`` (an error is on its way)."""
    failure: BaseException | None = None
    for sink in sinks:
        try:
            sink.finish(complete)
        except BaseException as exc:  # re-raised below, after the other sinks are finished
            failure = failure or exc
            if quiet:
                log.warning("finishing %s after a failed run failed too: %s", type(sink).__name__, exc)
    if failure is not None and not quiet:
        raise failure
