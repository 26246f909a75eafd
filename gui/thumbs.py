"""Lazy, cached thumbnails decoded off the GUI thread.

The gallery asks for a thumbnail only when it paints a tile.  A miss queues the path (newest request
first, old requests beyond ``max_pending`` dropped, so scrolling quickly through 20,000 cells only
decodes what is on screen) for a couple of daemon threads that decode with Pillow into a ``QImage``
(safe outside the GUI thread).  Ready images sit in an LRU cache bounded in bytes and the ``ready``
signal tells the model to repaint that tile.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict, deque

from PIL import Image, ImageOps

from .service import load_rgb, read_regular_file
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

FAILED = object()  # cached marker: this file has no thumbnail (the tile shows the error)
FULL_SIZE_CAP = 2048  # the preview's longest side: cells (450 px) keep their own pixels, a huge scan is capped


def decode_thumbnail(path: str, size: int) -> QImage | None:
    """Decode ``path`` into an RGB QImage fitting ``size`` x ``size``; None if unreadable.

    Common 8-bit images take a fast Pillow path (JPEG decoded at reduced scale); anything else
    (16-bit, float, alpha, palette ...) goes through the engine's own RGB conversion, so the tile shows
    what the model sees."""
    try:
        with Image.open(io.BytesIO(read_regular_file(path))) as im:  # no FIFO/device can block the thread
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
    return QImage(data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ThumbnailLoader(QObject):
    ready = Signal(str)  # key (path) whose thumbnail is now cached; emitted on the GUI thread
    _posted = Signal(str)  # decoder threads -> GUI thread

    def __init__(self, size: int = 112, budget_mb: int = 40, threads: int = 2, max_pending: int = 400,
                 parent=None) -> None:
        super().__init__(parent)
        self._size = size
        self._budget = budget_mb * 1024 * 1024
        self._bytes = 0
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._max_pending = max_pending
        self._cv = threading.Condition()
        self._stop = False
        self._generation = 0
        self._posted.connect(self.ready.emit, Qt.ConnectionType.QueuedConnection)
        self._threads = [threading.Thread(target=self._run, name=f"thumbs-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    @property
    def size(self) -> int:
        return self._size

    def set_size(self, size: int) -> None:
        with self._cv:
            if size == self._size:
                return
            self._size = size
            self._generation += 1
            self._cache.clear()
            self._bytes = 0
            self._pending.clear()
            self._queued.clear()

    def get(self, key: str) -> QImage | None:
        """The cached thumbnail, or None (and a load is queued).  GUI thread."""
        with self._cv:
            img = self._cache.get(key)
            if img is not None:
                self._cache.move_to_end(key)
                return None if img is FAILED else img
            if key not in self._queued:
                self._queued.add(key)
                self._pending.append(key)
                while len(self._pending) > self._max_pending:
                    self._queued.discard(self._pending.popleft())
                self._cv.notify()
        return None

    def failed(self, key: str) -> bool:
        """True once ``key`` was tried and could not be decoded (vanished, unreadable, not an image)."""
        with self._cv:
            return self._cache.get(key) is FAILED

    def cached_count(self) -> int:
        with self._cv:
            return len(self._cache)

    def cached_bytes(self) -> int:
        with self._cv:
            return self._bytes

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._pending.clear()
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                key = self._pending.pop()  # newest first: what is on screen now
                size, gen = self._size, self._generation
            img = decode_thumbnail(key, size)
            with self._cv:
                self._queued.discard(key)
                if gen != self._generation or self._stop:
                    continue
                self._cache[key] = img if img is not None else FAILED
                self._bytes += img.sizeInBytes() if img is not None else 0
                while self._bytes > self._budget and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    if old is not FAILED:
                        self._bytes -= old.sizeInBytes()
            try:
                self._posted.emit(key)
            except RuntimeError:  # the loader was deleted while the app closes
                return


def full_size_loader(budget_mb: int = 48, threads: int = 1, max_pending: int = 4, parent=None) -> ThumbnailLoader:
    """A loader of images at their own resolution (up to :data:`FULL_SIZE_CAP`), for zooming to pixels.

    :func:`decode_thumbnail` only ever shrinks, so a "thumbnail" as large as the cap is the original
    image; the gallery's small loader is untouched.  Few pending requests: only the shown cells matter."""
    return ThumbnailLoader(size=FULL_SIZE_CAP, budget_mb=budget_mb, threads=threads, max_pending=max_pending,
                           parent=parent)
