"""The driver side of a Ray run: connect, start a pool of classifier actors, stream results in order.

Why Ray Core (tasks + actors) and not Ray Data: Ray Data reserves a CPU for every read task, so on a
2-core node with two 1-CPU actors its read stage never starts (measured with Ray 2.60: the dataset sat
"backpressured: ResourceBudget" for over a minute); it also needs pyarrow and converts every batch of
images to Arrow tensors.  Here the driver keeps a bounded window of batches in flight (a few per
actor); each batch is a read task (:func:`engine.distributed.workers.load_batch`, scheduled on its
actor's node, so its arrays move through shared memory, not the network) feeding one actor call.
Results are consumed strictly in submission order, so the report has the local engine's row order.

Fault tolerance: a read task whose worker dies is re-run by Ray (``max_retries``; its output is
rebuilt from lineage if a node loses it).  An actor that dies is replaced by the pool, which re-sends
the batches that were queued on it (their inputs are still in the object store) — up to
:data:`MAX_RESTARTS` replacements per actor, then the run stops with :class:`ClusterError`.  (Ray's own
``max_restarts`` would do the same, but with the model in the object store it logs an error-level
warning on every run, ray-project/ray#53727.)  A bad file is never a retry: it is an error row.
Cancellation (a ``threading.Event``, set by the CLI's signal handler) is checked every 0.1 s; the
pending calls are then cancelled.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..card import ModelError
from ..pipeline import CellResult, ScanItem, _result
from .payload import ModelPayload, ReportModel
from .workers import ActorInfo, BatchScores, Cell, ClassifierActor, load_batch

#: Replacements of a dead actor (per actor slot) before the run gives up.
MAX_RESTARTS = 3


class ClusterError(ModelError):
    """The cluster lost work it could not redo (an actor died more than ``MAX_RESTARTS`` times, a
    node vanished with the only copy of a batch ...).  A ModelError: the run cannot go on."""


@contextmanager
def connect(address: str | None = None) -> Iterator[None]:
    """Be connected to Ray for the ``with`` block.

    Already connected (a test, a notebook): that connection is used and left open.  Else ``address``
    None starts a private local Ray instance (stopped at the end) and an address (``auto``,
    ``HOST:6379``, ``ray://HOST:10001``) joins that existing cluster (only disconnected at the end).
    Raises ConnectionError when the cluster cannot be reached.  Ray's usage statistics stay off."""
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the site unasked
    if address is not None:
        _check_reachable(address)
    kwargs: dict[str, Any] = dict(include_dashboard=False) if address is None else {}
    # A new local instance gets Ray's token authentication, with a notice on stderr on every run: muted.
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        # configure_logging=False: Ray's notices go through the caller's logging set-up (the CLI: errors only)
        ray.init(address=address or "local", log_to_driver=False, configure_logging=False, **kwargs)
    except (RuntimeError, ValueError) as exc:  # a missing auth token, a malformed address ...
        raise ConnectionError(_first_line(exc)) from None
    finally:
        notice.setLevel(level)
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` nobody listens on: ``ray.init`` would retry for minutes, logging
    a line every few seconds.  ``auto`` and ``ray://`` addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc})") from None


def default_actors(gpus_per_actor: float = 0.0, threads: int | None = None) -> int:
    """Actors that fill the cluster as it is now: one per ``threads`` CPUs, or per ``gpus_per_actor`` GPUs."""
    res = ray.cluster_resources()
    if gpus_per_actor:
        return max(1, int(res.get("GPU", 0) // gpus_per_actor))
    return max(1, int(res.get("CPU", 1) // (threads or 1)))


@dataclass
class Batch:
    """One batch in flight: the read task's output and the actor call scoring it."""

    start: int  # index of its first item
    loaded: ray.ObjectRef  # list[_Loaded], from load_batch
    slot: int = -1  # the pool's actor slot it was sent to
    generation: int = 0  # which actor of that slot (a replaced actor is a new generation)
    scores: ray.ObjectRef | None = None  # BatchScores, from ClassifierActor.classify


class ClassifierPool:
    """``actors`` Ray actors, each holding the model of ``payload``; use it as a context manager.

    CPU actors reserve ``threads`` CPUs (default 1) and run onnxruntime with as many threads; GPU
    actors (``gpus_per_actor`` > 0, fractions share a GPU) reserve that much GPU and one CPU and ask
    for CUDA (a fallback to the CPU is reported in :attr:`warnings`).  Actors are spread over the
    nodes.  Construction waits until every actor has loaded the model; raises ModelError if it cannot."""

    def __init__(self, payload: ModelPayload, actors: int, gpus_per_actor: float = 0.0, threads: int | None = None):
        if actors < 1:
            raise ValueError("actors must be >= 1")
        self.payload = payload
        self.specs = payload.preprocessings
        self.gpus_per_actor = float(gpus_per_actor)
        self._device, cpus = ("cuda", 1) if gpus_per_actor else ("cpu", threads or 1)
        self._threads = threads or cpus
        self._options = dict(num_cpus=cpus, num_gpus=self.gpus_per_actor, max_restarts=0, scheduling_strategy="SPREAD")
        self._payload_ref = ray.put(payload)  # the ONNX bytes travel once per node, not once per actor
        self.actors = [self._spawn() for _ in range(actors)]
        self._generation = [0] * actors
        self.restarts = [0] * actors
        self._inflight = [0] * actors
        self._models: dict[str, ReportModel] = {}
        try:
            self.infos: list[ActorInfo] = _describe(self.actors)
        except BaseException:
            self.close()
            raise

    def _spawn(self):
        return ClassifierActor.options(**self._options).remote(self._payload_ref, self._device, self._threads)

    def __enter__(self) -> ClassifierPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill the actors now (on a shared cluster their CPUs/GPUs are free at once)."""
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:
                pass

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(w for info in self.infos for w in info.warnings))

    @property
    def active_provider(self) -> str:
        return "+".join(dict.fromkeys(info.active_provider for info in self.infos))

    @property
    def device_label(self) -> str:
        return "+".join(dict.fromkeys(info.device_label for info in self.infos))

    def report_model(self, active_provider: str) -> ReportModel:
        if active_provider not in self._models:
            self._models[active_provider] = self.payload.report_model(active_provider)
        return self._models[active_provider]

    def _least_busy(self) -> int:
        return min(range(len(self.actors)), key=self._inflight.__getitem__)

    def submit(self, start: int, cells: list[Cell]) -> Batch:
        """Read ``cells`` in a task on the node of the least busy actor, and queue that actor's call on it."""
        k = self._least_busy()
        near = NodeAffinitySchedulingStrategy(self.infos[k].node_id, soft=True)
        batch = Batch(start, load_batch.options(scheduling_strategy=near).remote(cells, self.specs))
        self._send(batch, k)
        return batch

    def _send(self, batch: Batch, k: int) -> None:
        batch.slot, batch.generation = k, self._generation[k]
        batch.scores = self.actors[k].classify.remote(batch.loaded)
        self._inflight[k] += 1

    def collected(self, batch: Batch) -> None:
        self._inflight[batch.slot] -= 1

    def resend(self, batch: Batch, others: Iterable[Batch]) -> None:
        """``batch``'s actor died: replace it (once per death) and re-send ``batch`` and every batch of
        ``others`` that was queued on the same dead actor.  Raises ClusterError when out of restarts."""
        k = batch.slot
        if self._generation[k] == batch.generation:  # first news of this death
            if self.restarts[k] >= MAX_RESTARTS:
                raise ClusterError(
                    f"a Ray actor of model '{self.payload.card.name}' died {self.restarts[k] + 1} times; giving up"
                )
            self.restarts[k] += 1
            try:
                ray.kill(self.actors[k])  # maybe only unreachable: make sure it is gone
            except Exception:
                pass
            self.actors[k] = self._spawn()
            self._generation[k] += 1
            self._inflight[k] = 0
            self.infos[k] = _describe([self.actors[k]])[0]
        for b in (batch, *others):
            if b.slot == k and b.generation != self._generation[k]:
                self._send(b, k)


def _get(refs):
    """``ray.get`` that turns a remote ModelError back into a plain one and other task failures into
    ClusterError.  A dead actor's RayActorError passes through (the caller replaces the actor)."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, ModelError):
            raise (ClusterError if isinstance(cause, ClusterError) else ModelError)(str(cause)) from None
        raise ClusterError(f"a Ray task failed: {_first_line(cause or exc)}") from None
    except ray.exceptions.RayActorError:
        raise
    except ray.exceptions.RayError as exc:
        raise ClusterError(f"Ray lost work it could not redo: {_first_line(exc)}") from None


def _describe(actors) -> list[ActorInfo]:
    """Wait until ``actors`` have loaded the model.  Raises ModelError, or ClusterError when one died."""
    try:
        return _get([a.describe.remote() for a in actors])
    except ray.exceptions.RayActorError as exc:
        raise ClusterError(f"a Ray actor died while loading the model: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else exc.__class__.__name__


def classify_batches(
    items: Iterable[ScanItem],
    pool: ClassifierPool,
    *,
    batch_size: int = 32,
    cancel: threading.Event | None = None,
    inflight_per_actor: int | None = None,
) -> Generator[tuple[list[CellResult], ReportModel], None, None]:
    """Classify ``items`` on ``pool``; yield ``(results, model)`` per batch, in item order, ``model`` being
    what :func:`engine.report.cell_row` needs (with the provider of the actor that scored the batch): the batch
    source of a Ray run for the classification operator (:mod:`engine.run`).

    ``inflight_per_actor``: batches read ahead per actor (default 2 on CPU, 8 on GPU, where decoding
    is the bottleneck).  ``cancel``: set it to stop; the iterator then ends without further results.
    Raises ModelError (the model failed on a batch) or ClusterError."""
    items = list(items)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    cancel = cancel if cancel is not None else threading.Event()
    window = (inflight_per_actor or (8 if pool.gpus_per_actor else 2)) * len(pool.actors)
    starts = iter(range(0, len(items), batch_size))
    pending: deque[Batch] = deque()

    def fill() -> None:
        for start in starts:
            cells = [(str(it.path), it.problem) for it in items[start : start + batch_size]]
            pending.append(pool.submit(start, cells))
            if len(pending) >= window:
                return

    try:
        fill()
        while pending:
            head = pending[0]
            scores = _scores(pool, head, pending, cancel)
            if scores is None:
                if cancel.is_set():
                    return
                continue  # the actor died: its batches were re-sent
            pending.popleft()
            pool.collected(head)
            fill()  # keep the window full while this batch's rows are built
            pos = {k: r for r, k in enumerate(scores.good)}
            results = [
                _result(head.start + k, items[head.start + k], ld, scores.pred, pos.get(k))
                for k, ld in enumerate(scores.loaded)
            ]
            yield results, pool.report_model(scores.active_provider)
    finally:
        for b in pending:
            try:
                ray.cancel(b.scores)
            except Exception:
                pass


def _scores(pool: ClassifierPool, head: Batch, pending: deque[Batch], cancel: threading.Event) -> BatchScores | None:
    """The scores of the oldest batch once they are in; None when cancelled meanwhile or when its actor died
    (then the batches queued on it are re-sent to its replacement)."""
    while not ray.wait([head.scores], timeout=0.1)[0]:
        if cancel.is_set():
            return None
    if cancel.is_set():
        return None
    try:
        return _get(head.scores)
    except ray.exceptions.RayActorError:
        pool.resend(head, list(pending)[1:])
        return None


def classify(
    items: Iterable[ScanItem],
    pool: ClassifierPool,
    *,
    batch_size: int = 32,
    cancel: threading.Event | None = None,
    inflight_per_actor: int | None = None,
) -> Iterator[tuple[CellResult, ReportModel]]:
    """:func:`classify_batches` one cell at a time: ``(result, model)`` per item, in item order (scripts and
    benchmarks; a ``leukoscan-cli`` run goes through :mod:`engine.run`)."""
    cancel = cancel if cancel is not None else threading.Event()
    batches = classify_batches(items, pool, batch_size=batch_size, cancel=cancel, inflight_per_actor=inflight_per_actor)
    with closing(batches):
        for results, model in batches:
            for result in results:
                if cancel.is_set():
                    return
                yield result, model
