"""What runs on the Ray workers: a task that reads and preprocesses a batch of files, and an actor
that holds the model's onnxruntime session(s) and scores batches.

Both call the very functions the local pipeline uses (:func:`engine.pipeline.load_item`: read through
:func:`engine.fileio.read_regular_file`, sha256, decode, QC, one input per spec;
:func:`engine.pipeline.batch_inputs`; :meth:`Classifier.predict`), so a cell gets the same bytes, the
same error text and the same score on a cluster as on a workstation.

A file that cannot be read or decoded is an error row (``load_item`` never raises): it is never a
retry.  Retries are for processes that die: Ray re-runs a read task (``max_retries``), and
:class:`engine.distributed.ray_engine.ClassifierPool` replaces a dead actor and re-sends its batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import ray

from ..card import ModelError
from ..model import Prediction
from ..pipeline import _Loaded, batch_inputs, load_item
from ..preprocess import Preprocessing
from .payload import ModelPayload

#: One cell sent to a read task: (absolute path, scan problem).  A non-empty problem (a folder that
#: could not be listed) is the cell's error; the path is then not read.
Cell = tuple[str, str]


@ray.remote(num_cpus=0, max_retries=3)
def load_batch(cells: list[Cell], specs: tuple[Preprocessing, ...]) -> list[_Loaded]:
    """Read, hash, decode, quality-check and preprocess ``cells``, in order.  Never raises for a bad file.

    It reserves no logical CPU: the driver bounds how many run at once (a few batches per actor), and
    a 1-CPU read task would wait forever behind actors that hold every CPU of a small node."""
    return [_Loaded(error=problem) if problem else load_item(Path(path), specs) for path, problem in cells]


@dataclass(frozen=True)
class ActorInfo:
    pid: int
    node_id: str
    active_provider: str  # e.g. "CPUExecutionProvider", "CUDAExecutionProvider+CPUExecutionProvider"
    device_label: str  # "CPU", "CUDA"
    warnings: tuple[str, ...] = ()


@dataclass
class BatchScores:
    """An actor's answer for one batch: per cell its load outcome (without the arrays), the model's
    prediction for the readable cells in order (None when there is none), and the provider used."""

    loaded: list[_Loaded]
    pred: Prediction | None
    active_provider: str
    good: list[int] = field(default_factory=list)  # positions in the batch of the cells in ``pred``


@ray.remote
class ClassifierActor:
    """One model, loaded once from the object store, scoring batches one after the other."""

    def __init__(self, payload: ModelPayload, device: str, threads: int | None):
        self._error = ""
        self._clf = None
        try:
            self._clf = payload.build(device, threads)
        except ModelError as exc:  # reported by describe(): a restart would fail the same way
            self._error = str(exc)

    def describe(self) -> ActorInfo:
        """Who and where this actor is.  Raises the ModelError its model failed to load with."""
        if self._clf is None:
            raise ModelError(self._error)
        clf = self._clf
        return ActorInfo(
            os.getpid(),
            ray.get_runtime_context().get_node_id(),
            clf.active_provider,
            clf.device_label,
            tuple(clf.warnings),
        )

    def classify(self, loaded: list[_Loaded]) -> BatchScores:
        """Score a batch produced by :func:`load_batch` (Ray resolves the reference before the call)."""
        if self._clf is None:
            raise ModelError(self._error)
        clf = self._clf
        good, inputs = batch_inputs(loaded, clf.preprocessings)
        pred = None
        if inputs is not None:
            try:
                pred = clf.predict(inputs)
            except ModelError:
                raise
            except Exception as exc:
                raise ModelError(f"model '{clf.name}' failed on a batch: {exc}") from None
        return BatchScores(loaded, pred, clf.active_provider, good)
