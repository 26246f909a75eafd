"""Lazy, cached images decoded off the GUI thread: the gallery's thumbnails and the preview's full-size
images (:func:`full_size_loader`).

A view asks for an image only when it paints it.  A miss queues the path (newest request first, old
requests beyond ``max_pending`` dropped, so scrolling quickly through 20,000 cells only decodes what is
on screen) for the loader's decode tasks (:mod:`gui.tasks`, at most ``threads`` at a time), which decode
with Pillow into a ``QImage`` (safe outside the GUI thread) and hand each image out as a partial result.
On the GUI thread it goes into an LRU cache bounded in bytes and ``ready`` tells the view to repaint it.
A size change or :meth:`ImageLoader.close` cancels the decode tasks: images of the old size never arrive.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict, deque

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from .service import load_rgb, read_regular_file
from .tasks import TaskRunner

FAILED = QImage()  # cached marker (compared by identity): this file has no thumbnail (the tile shows the error)
BATCH_SECONDS = 0.03  # decoded images reach the GUI thread at most this often per decode task
FULL_SIZE_CAP = 2048  # the preview's longest side: cells (450 px) keep their own pixels, a huge scan is capped


def decode_thumbnail(path: str, size: int) -> QImage | None:
    """Decode ``path`` into an RGB QImage fitting ``size`` x ``size``; None if unreadable.

    Common 8-bit images take a fast Pillow path (JPEG decoded at reduced scale); anything else
    (16-bit, float, alpha, palette ...) goes through the engine's own RGB conversion, so the tile shows
    what the model sees."""
    try:
        with Image.open(io.BytesIO(read_regular_file(path))) as opened:  # no FIFO/device can block the thread
            im: Image.Image = opened
            if im.mode in ("RGB", "L"):
                im.draft("RGB", (size, size))  # JPEG: decode at reduced scale
                im = ImageOps.exif_transpose(im).convert("RGB")
            else:
                im = Image.fromarray(load_rgb(path), "RGB")
            im.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            w, h = im.size
            data = im.tobytes()
    except Exception:  # any undecodable file: the tile shows the engine's error instead
        return None
    # converted here, off the GUI thread, to the format a tile's pixmap is painted in (no conversion per paint)
    return QImage(data, w, h, 3 * w, QImage.Format.Format_RGB888).convertToFormat(
        QImage.Format.Format_ARGB32_Premultiplied
    )


class ImageLoader(QObject):
    """Images of at most ``size`` x ``size`` pixels, decoded in the background and cached (see the module
    docstring).  Everything but the decode runs on the GUI thread.  One decode task by default: on 2 cores a
    second one took the CPU and the GIL from the GUI thread (gallery scroll stall p99 74-82 ms with two, 41-48
    with one; benchmarks/gui_throughput.py)."""

    ready = Signal(str)  # key (path) whose image is now cached

    def __init__(
        self, size: int = 112, budget_mb: int = 40, threads: int = 1, max_pending: int = 400, parent=None
    ) -> None:
        super().__init__(parent)
        self._size = size
        self._budget = budget_mb * 1024 * 1024
        self._bytes = 0
        self._cache: OrderedDict[str, QImage] = OrderedDict()  # GUI thread only
        self._lock = threading.Lock()  # the queue below: the GUI thread adds, the decode tasks take
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()  # pending or being decoded: not queued twice
        self._max_pending = max_pending
        self._threads = threads
        self._tasks: list = []  # decode tasks started for this size
        self._active = 0  # of them, those not yet out of work (under the lock: a task ends as work arrives)
        self._generation = 0  # the size's: a cancelled task of an earlier size does not count
        self.runner = TaskRunner(threads, "leukoscan-images", self)

    @property
    def size(self) -> int:
        return self._size

    def set_size(self, size: int) -> None:
        if size == self._size:
            return
        self._size = size
        for t in self._tasks:
            t.cancel()  # what they decode at the old size never arrives
        self._tasks = []
        self._cache.clear()
        self._bytes = 0
        with self._lock:
            self._pending.clear()
            self._queued.clear()
            self._generation += 1
            self._active = 0

    def has(self, key: str) -> bool:
        """The image is decoded and cached (what a tile or the preview draws now); queues nothing."""
        img = self._cache.get(key)
        return img is not None and img is not FAILED

    def get(self, key: str) -> QImage | None:
        """The cached image, or None (and a decode is queued).  GUI thread."""
        img = self._cache.get(key)
        if img is not None:
            self._cache.move_to_end(key)
            return None if img is FAILED else img
        with self._lock:
            if key in self._queued:
                return None
            self._queued.add(key)
            self._pending.append(key)
            while len(self._pending) > self._max_pending:
                self._queued.discard(self._pending.popleft())
            start = self._active < self._threads and not self.runner.closed
            if start:
                self._active += 1
        if start:
            self._tasks = [t for t in self._tasks if not t.done]
            self._tasks.append(self.runner.start(self._decode, self._size, self._generation, on_partial=self._decoded))
        return None

    def failed(self, key: str) -> bool:
        """True once ``key`` was tried and could not be decoded (vanished, unreadable, not an image)."""
        return self._cache.get(key) is FAILED

    def cached_count(self) -> int:
        return len(self._cache)

    def cached_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        """Cancel the decode tasks and end their threads (a decode under way finishes first)."""
        with self._lock:
            self._pending.clear()
        self.runner.shutdown(wait=True, timeout=2.0)

    def _decode(self, state, size: int, generation: int) -> None:
        """A decode task: the newest request first, until none is left (or the task is cancelled).  Images go
        to the GUI thread in batches, at most one every ``BATCH_SECONDS``: while a gallery of thousands of tiles
        scrolls, the event loop handles a few batches a second instead of an event per tile."""
        batch, last = [], time.monotonic()
        while True:
            with self._lock:
                if state.is_interruption_requested() or not self._pending:
                    if generation == self._generation:
                        self._active -= 1
                    break
                key = self._pending.pop()  # newest first: what is on screen now
            batch.append((key, decode_thumbnail(key, size)))
            if time.monotonic() - last >= BATCH_SECONDS:
                state.set_partial_result(batch)
                batch, last = [], time.monotonic()
        if batch:
            state.set_partial_result(batch)

    def _decoded(self, batch: list[tuple[str, QImage | None]]) -> None:
        with self._lock:
            self._queued.difference_update(key for key, _ in batch)
        for key, img in reversed(batch):  # the first decoded was the most wanted: it is the newest in the cache
            self._cache[key] = img if img is not None else FAILED
            self._bytes += img.sizeInBytes() if img is not None else 0
        while self._bytes > self._budget and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            if old is not FAILED:
                self._bytes -= old.sizeInBytes()
        for key, _ in batch:
            if key in self._cache:  # not already pushed out by the budget (a repaint would only queue it again)
                self.ready.emit(key)


def full_size_loader(budget_mb: int = 48, threads: int = 1, max_pending: int = 4, parent=None) -> ImageLoader:
    """A loader of images at their own resolution (up to :data:`FULL_SIZE_CAP`), for zooming to pixels.

    :func:`decode_thumbnail` only ever shrinks, so a "thumbnail" as large as the cap is the original
    image; the gallery's small loader is untouched.  Few pending requests: only the shown cells matter."""
    return ImageLoader(size=FULL_SIZE_CAP, budget_mb=budget_mb, threads=threads, max_pending=max_pending, parent=parent)
