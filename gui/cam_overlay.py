"""The preview's class-activation overlay: what the model looked at, for the cell on screen only.

The models learned cell size (docs/models.md), so a technician should be able to see whether a call rests on the
cell's nucleus or on its outline and the empty frame.  The map comes from the model's second ONNX output
(``engine.cam``), computed by a :mod:`gui.tasks` task for the previewed cell when the toggle is on (a newer cell
cancels it: a late map never lands on another cell): batch classification never computes it.  Red: regions that pushed the call towards ALL; blue: towards HEM.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from .cells import ERROR, PENDING
from .service import cam_available, cell_cam
from .style import ALL_COLOR, HEM_COLOR
from .tasks import Task, TaskRunner

__all__ = ["CamOverlay", "cam_image", "cam_legend"]

#: Largest overlay opacity (0-255): the cell stays visible under the strongest evidence.
MAX_ALPHA = 170
CACHE = 32


def cam_image(values: np.ndarray, scale: float) -> QImage:
    """RGBA overlay of a map in decision units: red where > 0 (towards ALL), blue where < 0 (towards HEM), opacity
    in proportion to |value| / ``scale``; transparent outside the model's window (NaN)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float32) / max(float(scale), 1e-6), nan=0.0)
    v = np.clip(v, -1.0, 1.0)
    rgba = np.zeros(v.shape + (4,), np.uint8)
    pos = v > 0
    for mask, c in ((pos, ALL_COLOR), (~pos, HEM_COLOR)):
        rgba[mask, 0], rgba[mask, 1], rgba[mask, 2] = c.red(), c.green(), c.blue()
    rgba[..., 3] = (np.abs(v) * MAX_ALPHA).astype(np.uint8)
    h, w = v.shape
    return QImage(rgba.tobytes(), w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def cam_legend(result) -> str:
    """What the colours mean and how coarse the map is, from the model's own output shape: "map resolution 5×5 of
    the model input, each square = 90 image pixels"."""
    h, w = result.resolution
    square = f", each square = {result.square_px:.0f} image pixels" if result.square_px else ""
    return (
        f"Red: pushed towards ALL, blue: towards HEM ({result.model}). Map resolution {h}×{w} of the model input"
        f"{square}{' (coarse: a guide, not an outline)' if h * w < 100 else ''}; drawn on the cell only."
    )


class CamOverlay(QObject):
    """Owns the toggle's state for one :class:`gui.imageview.ImageView`: requests the map of the shown cell off the
    GUI thread, keeps the last few, and sets ``view.overlay``.  ``classifier``: returns the loaded model (or None).
    ``status`` is emitted with a line for the panel (legend, or why there is no overlay)."""

    status = Signal(str)

    def __init__(self, view, classifier: Callable[[], Any], parent=None) -> None:
        super().__init__(parent)
        self.view = view
        self.classifier = classifier
        self.enabled = False
        self._cell = None
        self._task: Task | None = None  # the map being computed
        self._shown: tuple[str, str] | None = None  # (model, cell key) on screen or being computed
        self._cache: OrderedDict[tuple[str, str], tuple[QImage, str]] = OrderedDict()
        self._runner = TaskRunner(1, "leukoscan-cam", self)

    def unavailable(self) -> str:
        """Why the toggle cannot work now ('' when it can)."""
        clf = self.classifier()
        if clf is None:
            return "No model is loaded."
        return cam_available(clf)

    def set_enabled(self, on: bool) -> None:
        self.enabled = on
        self._shown = None
        self.show(self._cell)

    def show(self, cell) -> None:
        """The cell now in the preview (None: nothing shown); called on every refresh: the same cell and model
        keep their overlay (or the computation under way)."""
        self._cell = cell
        clf = self.classifier() if self.enabled and cell is not None else None
        if clf is not None and cell.status not in (PENDING, ERROR) and self._shown == (clf.name, cell.key):
            return
        self._shown = None
        if self._task is not None:
            self._task.cancel()  # its map is for another cell (or model): it never arrives
            self._task = None
        self.view.overlay = None
        self.view.update()
        if not self.enabled:
            self.status.emit("")
            return
        if cell is None or cell.status in (PENDING, ERROR):
            self.status.emit("What the model looked at: shown for a classified cell.")
            return
        why = self.unavailable()
        if why or clf is None:  # (no model: unavailable() says so)
            self.status.emit(why)
            return
        key = (clf.name, cell.key)
        self._shown = key
        if key in self._cache:
            self._cache.move_to_end(key)
            self.view.overlay, legend = self._cache[key]
            self.view.update()
            self.status.emit(legend)
            return
        self.status.emit("Computing what the model looked at…")
        path = cell.path
        self._task = self._runner.start(
            lambda _state: cell_cam(clf, path), on_result=partial(self._deliver, cell.key), on_error=self._failed
        )

    def _failed(self, exc: BaseException) -> None:
        """A file gone or unreadable, a model without the output: say why."""
        self._task, self._shown = None, None
        self.status.emit(f"No overlay: {str(exc) or type(exc).__name__}")

    def _deliver(self, key: str, result) -> None:
        self._task = None
        img = cam_image(result.on_cell, result.cell_scale)  # the cell only: the black background is never coloured
        legend = cam_legend(result)
        self._cache[(result.model, key)] = (img, legend)
        while len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        self.view.overlay = img
        self.view.update()
        self.status.emit(legend)

    def close(self) -> None:
        self._runner.shutdown(wait=False)  # a map under way is dropped
