"""The one way the GUI runs work off its thread and gets the outcome back (modelled on Orange3's
``TaskState`` + ``FutureWatcher``).

- :class:`TaskRunner` owns a thread pool.  ``runner.start(fn, *args, on_result=, on_error=, on_partial=)``
  calls ``fn(state, *args)`` on a worker and returns a :class:`Task`.
- The worker sees a :class:`TaskState`: ``is_interruption_requested()`` / ``interrupt`` (a
  ``threading.Event``, what :func:`engine.pipeline.classify` takes as ``cancel``) and
  ``set_partial_result(value)`` for results handed out while it runs (a batch of a run, a thumbnail).
- Every callback runs on the GUI thread, reached through one queued signal (:class:`Relay`; the case store's
  writer thread reports its errors through one too).  Nothing else crosses threads: no worker emits a public
  signal, touches a widget or a model.
- ``task.request_interrupt()`` asks the worker to stop and still hears how it ended;
  ``task.cancel()`` (GUI thread) asks the worker to stop *and disconnects the task*: whatever it hands out
  after that, even a result already queued, is dropped on arrival.  A cancelled or superseded job can
  therefore never reach the window, and callers need no job ids to filter stale results.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from enum import Enum
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, Qt, Signal

log = logging.getLogger("leukoscan.gui")
_ids = itertools.count(1)


T = TypeVar("T")  # what a task's function returns


class Outcome(Enum):
    """What a task hands to the GUI thread."""

    PARTIAL = "partial"  # state.set_partial_result(value) -> on_partial
    RESULT = "result"  # the function returned -> on_result
    ERROR = "error"  # the function raised -> on_error (else logged)


class TaskState:
    """The worker's side of a task: whether to stop, and where partial results go."""

    def __init__(self, task: Task[Any]) -> None:
        self._task = task
        self.interrupt = threading.Event()

    def is_interruption_requested(self) -> bool:
        return self.interrupt.is_set()

    def set_partial_result(self, value: Any) -> None:
        """Hand ``value`` to the task's ``on_partial`` on the GUI thread (dropped if the task is cancelled)."""
        self._task._post(Outcome.PARTIAL, value)


class Task(Generic[T]):
    """The GUI thread's handle of one job: its callbacks, its future, and :meth:`cancel`.  ``T``: what the job
    returns (what ``on_result`` gets), as superqt types its workers."""

    def __init__(
        self,
        runner: TaskRunner,
        name: str,
        on_result: Callable[[T], object] | None,
        on_error: Callable[[BaseException], object] | None,
        on_partial: Callable[[Any], object] | None,
    ) -> None:
        self.name = name
        self._runner = runner
        self._callbacks: dict[Outcome, Callable[[Any], object] | None] = {
            Outcome.RESULT: on_result,
            Outcome.ERROR: on_error,
            Outcome.PARTIAL: on_partial,
        }
        self.state = TaskState(self)
        self.future: Future | None = None
        self.cancelled = False
        self.delivered = False  # its result or error reached the GUI thread

    def request_interrupt(self) -> None:
        """Ask the worker to stop at its next check; unlike :meth:`cancel`, what it hands out until it
        returns still arrives (a cancelled run reports how far it got)."""
        self.state.interrupt.set()

    def cancel(self) -> None:
        """GUI thread: stop the worker (it checks ``state``) and drop everything it still hands out."""
        self.cancelled = True
        self._callbacks = {}
        self.state.interrupt.set()
        if self.future is not None:
            self.future.cancel()  # not started yet: never starts

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker function has returned (or ``timeout``); True when it has."""
        if self.future is None:
            return True
        return not wait_futures([self.future], timeout).not_done

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def when_settled(self, fn: Callable[[], object]) -> None:
        """``fn()`` on the GUI thread once the worker has returned and everything it handed out has been delivered,
        or dropped if the task was cancelled (the runner's relay is one queue, in order): a test waits for this
        where it would otherwise sleep to see that nothing late arrives."""
        relay = self._runner._relay
        if self.future is None:
            relay.call(fn)
        else:
            self.future.add_done_callback(lambda _f: relay.call(fn))

    def _post(self, kind: Outcome, value: Any) -> None:
        self._runner._post(self, kind, value)

    def _deliver(self, kind: Outcome, value: Any) -> None:
        if self.cancelled:
            return
        if kind != Outcome.PARTIAL:
            self.delivered = True
        fn = self._callbacks.get(kind)
        if fn is not None:
            fn(value)
        elif kind == Outcome.ERROR:
            log.error("background task %s failed: %r", self.name, value)


class Relay(QObject):
    """Runs ``fn(*args)`` on the GUI thread, called from any thread: the one queued path into the GUI
    thread (tasks use it; so does the case store's writer thread for its errors)."""

    _posted = Signal(object)  # (fn, args)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def call(self, fn: Callable, *args) -> None:
        try:
            self._posted.emit((fn, args))
        except RuntimeError:  # the relay was deleted while the app closes: nobody is left to tell
            pass

    def _run(self, item) -> None:
        fn, args = item
        fn(*args)


class TaskRunner(QObject):
    """A thread pool whose jobs report back on the GUI thread (see the module docstring)."""

    def __init__(self, workers: int, name: str, parent=None) -> None:
        super().__init__(parent)
        self.name = f"{name}-{next(_ids)}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.name)
        self._relay = Relay(self)
        self._live: set[Task[Any]] = set()
        self._lock = threading.Lock()  # _live: a future's done-callback runs on its worker
        self.closed = False

    def start(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_result: Callable[[T], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        on_partial: Callable[[Any], object] | None = None,
    ) -> Task[T]:
        """Run ``fn(state, *args)`` on a worker.  Its return value goes to ``on_result``, an exception to
        ``on_error`` (else it is logged), ``state.set_partial_result(v)`` to ``on_partial``; all on the GUI
        thread, none after ``task.cancel()``.  After :meth:`shutdown` the task is cancelled at once."""
        task: Task[T] = Task(self, getattr(fn, "__name__", "task"), on_result, on_error, on_partial)
        if self.closed:
            task.cancel()
            return task
        with self._lock:
            self._live.add(task)

        def run():
            if task.cancelled:
                return
            try:
                value = fn(task.state, *args)
            except BaseException as exc:
                task._post(Outcome.ERROR, exc)
                return
            task._post(Outcome.RESULT, value)

        task.future = self._pool.submit(run)
        task.future.add_done_callback(lambda _f: self._forget(task))
        return task

    def _forget(self, task: Task[Any]) -> None:
        with self._lock:
            self._live.discard(task)

    def threads(self) -> list[threading.Thread]:
        """The pool's worker threads still alive (tests: none after :meth:`shutdown`)."""
        return [t for t in threading.enumerate() if t.name.startswith(self.name + "_")]

    def shutdown(self, wait: bool = True, timeout: float | None = None, cancel: bool = True) -> None:
        """No new tasks; with ``cancel``, every task is cancelled (nothing more is delivered; queued ones
        never start), else the queued ones still run (closing stores).  With ``wait``, join the workers
        (each stops at its next interruption check), for at most ``timeout`` seconds if given."""
        if self.closed:
            return
        self.closed = True
        with self._lock:
            tasks = list(self._live)
        for t in tasks if cancel else ():
            t.cancel()
        self._pool.shutdown(wait=False, cancel_futures=cancel)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for thread in self.threads():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _post(self, task: Task[Any], kind: Outcome, value: Any) -> None:
        if not task.cancelled:  # a cheap early drop; the GUI thread checks again on arrival
            self._relay.call(task._deliver, kind, value)
