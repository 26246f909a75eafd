"""Lazy, cached images decoded off the GUI thread: the gallery's thumbnails and the preview's full-size
images (:func:`full_size_loader`).

A view asks for an image only when it paints it.  A miss notes the key (the newest asked last; beyond
``max_pending`` the oldest are forgotten, so scrolling quickly through 20,000 cells only decodes what is on
screen).  Decoding is a :mod:`gui.tasks` task of the loader's runner (the window passes one runner for all its
images: one pool, one worker), one at a time, each of the newest ``CHUNK`` keys, newest first: Pillow decodes into a
``QImage`` (safe outside the GUI thread), handed out as partial results.  On the GUI thread each image goes into an
LRU cache bounded in bytes and ``ready`` tells the view to repaint it.  A size change or :meth:`ImageLoader.close`
cancels the task under way, and a cancelled task delivers nothing: no image of the old size ever arrives.
"""

from __future__ import annotations

import io
import logging
import time
from collections import OrderedDict

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from .service import load_rgb, read_regular_file
from .tasks import Task, TaskRunner

log = logging.getLogger("leukoscan.gui")
FAILED = QImage()  # cached marker (compared by identity): this file has no thumbnail (the tile shows the error)
BATCH_SECONDS = 0.03  # decoded images reach the GUI thread at most this often per decode task
CHUNK = 32  # keys per decode task: a newer request waits for at most this many decodes (about 0.1 s)
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
    docstring).  Everything but the decode runs on the GUI thread.  ``runner``: the task runner to decode on (the
    window's one for images; None: one of its own, closed with the loader).  One worker: on 2 cores a second
    decode thread took the CPU and the GIL from the GUI thread (gallery scroll stall p99 74-82 ms with two, 41-48
    with one; benchmarks/gui_throughput.py)."""

    ready = Signal(str)  # key (path) whose image is now cached

    def __init__(
        self,
        size: int = 112,
        budget_mb: int = 40,
        max_pending: int = 400,
        runner: TaskRunner | None = None,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self._size = size
        self._budget = budget_mb * 1024 * 1024
        self._bytes = 0
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._wanted: OrderedDict[str, None] = OrderedDict()  # asked for, not decoding yet: newest last
        self._max_pending = max_pending
        self._decoding: frozenset[str] = frozenset()  # the keys of the task under way (not asked again)
        self._task: Task | None = None
        self._own_runner = runner is None
        self.runner = runner if runner is not None else TaskRunner(1, "leukoscan-images", self)

    @property
    def size(self) -> int:
        return self._size

    def set_size(self, size: int) -> None:
        if size == self._size:
            return
        self._size = size
        self._cancel()  # what it decodes at the old size never arrives
        self._cache.clear()
        self._bytes = 0

    def has(self, key: str) -> bool:
        """The image is decoded and cached (what a tile or the preview draws now); asks for nothing."""
        img = self._cache.get(key)
        return img is not None and img is not FAILED

    def get(self, key: str) -> QImage | None:
        """The cached image, or None (and its decode is asked for).  GUI thread."""
        img = self._cache.get(key)
        if img is not None:
            self._cache.move_to_end(key)
            return None if img is FAILED else img
        if key not in self._decoding:
            self._wanted[key] = None
            self._wanted.move_to_end(key)  # asked again: wanted now (it is on screen)
            while len(self._wanted) > self._max_pending:
                self._wanted.popitem(last=False)
            self._next()
        return None

    def failed(self, key: str) -> bool:
        """True once ``key`` was tried and could not be decoded (vanished, unreadable, not an image)."""
        return self._cache.get(key) is FAILED

    def cached_count(self) -> int:
        return len(self._cache)

    def cached_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        """Cancel the decode under way; a runner of its own ends its thread (a decode under way finishes first)."""
        self._cancel()
        if self._own_runner:
            self.runner.shutdown(wait=True, timeout=2.0)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task, self._decoding = None, frozenset()
        self._wanted.clear()

    def _next(self) -> None:
        """Start a decode task of the newest keys asked for, unless one is under way."""
        if self._task is not None or not self._wanted or self.runner.closed:
            return
        keys: list[str] = []
        while self._wanted and len(keys) < CHUNK:
            keys.append(self._wanted.popitem(last=True)[0])  # newest first: what is on screen now
        self._decoding = frozenset(keys)
        self._task = self.runner.start(
            decode_all, keys, self._size, on_partial=self._decoded, on_result=self._done, on_error=self._done
        )

    def _decoded(self, batch: list[tuple[str, QImage | None]]) -> None:
        for key, img in reversed(batch):  # the first decoded was the most wanted: it is the newest in the cache
            self._cache[key] = img if img is not None else FAILED
            self._bytes += img.sizeInBytes() if img is not None else 0
        while self._bytes > self._budget and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            if old is not FAILED:
                self._bytes -= old.sizeInBytes()
        for key, _ in batch:
            if key in self._cache:  # not already pushed out by the budget (a repaint would only ask for it again)
                self.ready.emit(key)

    def _done(self, outcome: object) -> None:
        """The task ended (its last images arrived before this): the next keys asked for meanwhile, if any."""
        if isinstance(outcome, BaseException):
            log.error("image decoding failed: %r", outcome)
        self._task, self._decoding = None, frozenset()
        self._next()


def decode_all(state, keys: list[str], size: int) -> None:
    """A decode task: ``keys`` in order until done (or cancelled).  Images go to the GUI thread in batches, at most
    one every ``BATCH_SECONDS``: while a gallery of thousands of tiles scrolls, the event loop handles a few batches a
    second instead of an event per tile."""
    batch: list[tuple[str, QImage | None]] = []
    last = time.monotonic()
    for key in keys:
        if state.is_interruption_requested():
            return
        batch.append((key, decode_thumbnail(key, size)))
        if time.monotonic() - last >= BATCH_SECONDS:
            state.set_partial_result(batch)
            batch, last = [], time.monotonic()
    if batch:
        state.set_partial_result(batch)


def full_size_loader(
    budget_mb: int = 48, max_pending: int = 4, runner: TaskRunner | None = None, parent=None
) -> ImageLoader:
    """A loader of images at their own resolution (up to :data:`FULL_SIZE_CAP`), for zooming to pixels.

    :func:`decode_thumbnail` only ever shrinks, so a "thumbnail" as large as the cap is the original
    image; the gallery's small loader is untouched.  Few pending requests: only the shown cells matter."""
    return ImageLoader(size=FULL_SIZE_CAP, budget_mb=budget_mb, max_pending=max_pending, runner=runner, parent=parent)
