"""Zoom and pan of one image in a viewport, without Qt (so its arithmetic is unit-tested alone).

``scale`` is screen pixels per image pixel; it is clamped to [fit, ``max_pixel_scale``]: fit shows the
whole image, the top shows each image pixel as a 4x4 block (never less than fit, so a small image in a
big viewport simply cannot zoom).  ``cx, cy`` is the image point (image pixels) drawn at the viewport's
centre; it is clamped so the image never leaves the viewport (a dimension that fits is centred).
Several views may share one state (the compare dialog): each listener is called after every change.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_PIXEL_SCALE = 4.0  # at most 4 screen pixels per image pixel
STEP = 1.25  # one wheel notch / one key press
_EPS = 1e-9


class ZoomState:
    def __init__(self, max_pixel_scale: float = MAX_PIXEL_SCALE) -> None:
        self.max_pixel_scale = max_pixel_scale
        self.image_w = self.image_h = 0.0
        self.view_w = self.view_h = 0.0
        self.scale = 1.0
        self.cx = self.cy = 0.0
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ listeners
    def subscribe(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def unsubscribe(self, fn: Callable[[], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn()

    # ------------------------------------------------------------------ geometry
    @property
    def has_image(self) -> bool:
        return self.image_w > 0 and self.image_h > 0 and self.view_w > 0 and self.view_h > 0

    @property
    def fit_scale(self) -> float:
        if not self.has_image:
            return 1.0
        return min(self.view_w / self.image_w, self.view_h / self.image_h)

    @property
    def max_scale(self) -> float:
        return max(self.fit_scale, self.max_pixel_scale)

    @property
    def zoom(self) -> float:
        """Magnification relative to fit (1.0 = the whole image fits): what the view shows as "2.0x"."""
        return self.scale / self.fit_scale

    @property
    def at_fit(self) -> bool:
        return abs(self.scale - self.fit_scale) <= _EPS * max(1.0, self.fit_scale)

    @property
    def can_zoom_in(self) -> bool:
        return self.has_image and self.scale < self.max_scale - _EPS

    def set_image(self, w: float, h: float) -> None:
        """A new image: back to fit."""
        self.image_w, self.image_h = float(w), float(h)
        self._fit()
        self._changed()

    def set_view(self, w: float, h: float) -> None:
        """The viewport was resized: keep the magnification relative to fit and the centre."""
        if (float(w), float(h)) == (self.view_w, self.view_h):
            return
        zoom = self.zoom if self.has_image else 1.0
        self.view_w, self.view_h = float(w), float(h)
        if self.has_image:
            self.scale = self.fit_scale * zoom
            self.clamp()
        self._changed()

    # ------------------------------------------------------------------ changes
    def _fit(self) -> None:
        self.scale = self.fit_scale
        self.cx, self.cy = self.image_w / 2, self.image_h / 2

    def fit(self) -> None:
        self._fit()
        self._changed()

    def clamp(self) -> None:
        """Scale into [fit, max]; centre so that no part of the viewport shows beyond an image edge
        along a dimension the image overflows (and the image centred along one it fits)."""
        if not self.has_image:
            return
        lo, hi = self.fit_scale, self.max_scale
        self.scale = min(max(self.scale, lo), hi)
        if abs(self.scale - lo) <= _EPS * max(1.0, lo):
            self.scale = lo  # snap: repeated factors must land exactly on fit
        self.cx = _clamp_axis(self.cx, self.image_w, self.view_w / self.scale)
        self.cy = _clamp_axis(self.cy, self.image_h, self.view_h / self.scale)

    def zoom_at(self, x: float, y: float, factor: float) -> None:
        """Multiply the scale by ``factor`` keeping the image point under viewport point (x, y) there
        (unless the pan clamp has to move it, at an image edge)."""
        if not self.has_image:
            return
        ix, iy = self.to_image(x, y)
        self.scale *= factor
        self.clamp()
        self.cx = ix - (x - self.view_w / 2) / self.scale
        self.cy = iy - (y - self.view_h / 2) / self.scale
        self.clamp()
        self._changed()

    def zoom_by(self, factor: float) -> None:
        """Zoom around the viewport's centre (keyboard)."""
        self.zoom_at(self.view_w / 2, self.view_h / 2, factor)

    def pan(self, dx: float, dy: float) -> None:
        """Drag by (dx, dy) viewport pixels: the image follows the pointer."""
        if not self.has_image:
            return
        self.cx -= dx / self.scale
        self.cy -= dy / self.scale
        self.clamp()
        self._changed()

    # ------------------------------------------------------------------ mapping
    def to_view(self, ix: float, iy: float) -> tuple[float, float]:
        return (self.view_w / 2 + (ix - self.cx) * self.scale, self.view_h / 2 + (iy - self.cy) * self.scale)

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + (x - self.view_w / 2) / self.scale, self.cy + (y - self.view_h / 2) / self.scale)

    def image_rect(self) -> tuple[float, float, float, float]:
        """Where the whole image lies in the viewport: (x, y, w, h), possibly far beyond its edges."""
        x, y = self.to_view(0.0, 0.0)
        return x, y, self.image_w * self.scale, self.image_h * self.scale


def _clamp_axis(c: float, image: float, visible: float) -> float:
    if image <= visible:
        return image / 2
    half = visible / 2
    return min(max(c, half), image - half)
