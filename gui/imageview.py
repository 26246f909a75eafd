"""One cell image in a class-coloured frame, with wheel zoom, drag pan, double-click fit and +/-/0 keys.

The zoom arithmetic lives in :class:`gui.zoom.ZoomState`; a view either owns its state (the preview) or
shares one with other views (the compare dialog), which then sets the state's image size itself.
Only visible source pixels are drawn, and without smoothing once zoomed in to at least one device pixel
per image pixel, so a technician sees the file's own pixels rather than an interpolation.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .zoom import STEP, ZoomState

FRAME = 4  # width of the class-colour frame around the image
ZOOM_IN_KEYS = (Qt.Key.Key_Plus, Qt.Key.Key_Equal)
ZOOM_OUT_KEYS = (Qt.Key.Key_Minus,)
FIT_KEYS = (Qt.Key.Key_0,)
_ZOOM_KEYS = ZOOM_IN_KEYS + ZOOM_OUT_KEYS + FIT_KEYS


class ImageView(QWidget):
    def __init__(self, parent=None, zoom: ZoomState | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        #: Drawn over the whole image, scaled smoothly (the class-activation overlay, gui.cam_overlay); None: none.
        self.overlay: QImage | None = None
        self.frame = QColor("#555")
        self.text = "No cell selected"
        self.owns_zoom = zoom is None
        self.zoom = zoom if zoom is not None else ZoomState()
        self.zoom.subscribe(self._zoom_changed)
        self._drag: QPointF | None = None
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # +/-/0 only when the view has focus
        self.setToolTip("Wheel: zoom · drag: pan · double-click or 0: fit · +/−: zoom in/out")

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, w: int) -> int:
        return w

    # ------------------------------------------------------------------ state
    def set_image(self, image: QImage | None, reset: bool = True) -> None:
        """Show ``image`` (None: show :attr:`text`).  An owned zoom goes back to fit for a new image
        (``reset``) or a first/different-sized one; ``reset=False`` keeps the zoom of a re-shown cell."""
        prev = self.image
        self.image = image if image is not None and not image.isNull() else None
        if self.owns_zoom and self.image is not None:
            w, h = self.image.width(), self.image.height()
            if reset or prev is None or (prev.width(), prev.height()) != (w, h):
                self.zoom.set_image(w, h)
        self._update_cursor()
        self.update()

    def zoom_text(self) -> str:
        """The corner label: "2.0x" (magnification relative to fit), "" at fit or without an image."""
        if self.image is None or not self.zoom.has_image or self.zoom.at_fit:
            return ""
        return f"{self.zoom.zoom:.1f}x"

    def viewport(self) -> QRectF:
        """The square inside the frame where the image is drawn (widget coordinates)."""
        side = min(self.width(), self.height())
        x, y = (self.width() - side) / 2, (self.height() - side) / 2
        return QRectF(x + FRAME, y + FRAME, max(1, side - 2 * FRAME), max(1, side - 2 * FRAME))

    def _zoom_changed(self) -> None:
        self._update_cursor()
        self.update()

    def _update_cursor(self) -> None:
        pannable = self.image is not None and self.zoom.has_image and not self.zoom.at_fit
        if self._drag is not None and pannable:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif pannable:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.unsetCursor()

    def _to_state(self, pos: QPointF) -> tuple[float, float]:
        """Widget point -> the zoom state's viewport coordinates (shared views may differ by a pixel)."""
        c = self.viewport().center()
        return pos.x() - c.x() + self.zoom.view_w / 2, pos.y() - c.y() + self.zoom.view_h / 2

    # ------------------------------------------------------------------ painting
    def resizeEvent(self, e) -> None:
        vp = self.viewport()
        self.zoom.set_view(vp.width(), vp.height())
        super().resizeEvent(e)

    def paintEvent(self, _e) -> None:
        p = QPainter(self)
        vp = self.viewport()
        outer = vp.adjusted(-FRAME, -FRAME, FRAME, FRAME)
        p.fillRect(outer, QColor("black"))
        if self.image is not None:
            self._paint_image(p, vp, self.image)
        else:
            p.setPen(QColor("#aaa"))
            p.drawText(
                vp.adjusted(12, 12, -12, -12), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.text
            )
        p.setPen(QPen(self.frame, FRAME))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(outer.adjusted(FRAME / 2, FRAME / 2, -FRAME / 2, -FRAME / 2))
        if self.hasFocus():  # keyboard zoom goes here: say so
            p.setPen(QPen(QColor(255, 255, 255, 210), 2, Qt.PenStyle.DashLine))
            p.drawRect(vp.adjusted(2, 2, -2, -2))
        label = self.zoom_text()
        if label:
            self._paint_label(p, vp, label)
        p.end()

    def _paint_image(self, p: QPainter, vp: QRectF, img: QImage) -> None:
        z = self.zoom
        if z.has_image:
            scale, cx, cy = z.scale, z.cx, z.cy
            ox, oy = (z.image_w - img.width()) / 2, (z.image_h - img.height()) / 2  # smaller than the shared frame
        else:  # shared state not sized yet: plain fit
            scale = min(vp.width() / img.width(), vp.height() / img.height())
            cx, cy, ox, oy = img.width() / 2, img.height() / 2, 0.0, 0.0
        c = vp.center()

        def to_widget(ix: float, iy: float) -> QPointF:
            return QPointF(c.x() + (ix + ox - cx) * scale, c.y() + (iy + oy - cy) * scale)

        # visible source pixels only, on whole-pixel bounds (an 8192 px target is never rasterised whole)
        x0 = max(0, math.floor((vp.left() - c.x()) / scale + cx - ox))
        y0 = max(0, math.floor((vp.top() - c.y()) / scale + cy - oy))
        x1 = min(img.width(), math.ceil((vp.right() - c.x()) / scale + cx - ox))
        y1 = min(img.height(), math.ceil((vp.bottom() - c.y()) / scale + cy - oy))
        if x1 <= x0 or y1 <= y0:
            return
        source = QRectF(x0, y0, x1 - x0, y1 - y0)
        target = QRectF(to_widget(x0, y0), to_widget(x1, y1))
        crisp = z.has_image and not z.at_fit and scale * self.devicePixelRatioF() >= 1.0
        p.save()
        p.setClipRect(vp)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not crisp)
        p.drawImage(target, img, source)
        if self.overlay is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(QRectF(to_widget(0, 0), to_widget(img.width(), img.height())), self.overlay)
        p.restore()

    def _paint_label(self, p: QPainter, vp: QRectF, label: str) -> None:
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        w = p.fontMetrics().horizontalAdvance(label) + 12
        h = p.fontMetrics().height() + 4
        box = QRectF(vp.right() - w - 6, vp.top() + 6, w, h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 170))
        p.drawRoundedRect(box, 4, 4)
        p.setPen(QColor("white"))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, label)

    # ------------------------------------------------------------------ input
    def _zoomable(self) -> bool:
        return self.image is not None and self.zoom.has_image

    def wheelEvent(self, e) -> None:
        dy = e.angleDelta().y()
        if not self._zoomable() or dy == 0:
            e.ignore()
            return
        x, y = self._to_state(e.position())
        self.zoom.zoom_at(x, y, STEP ** (dy / 120))
        e.accept()

    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton and self._zoomable():
            self._drag = e.position()
            self._update_cursor()
            e.accept()
            return
        super().mousePressEvent(e)

    def mouseMoveEvent(self, e) -> None:
        if self._drag is not None and e.buttons() & Qt.MouseButton.LeftButton:
            d = e.position() - self._drag
            self._drag = e.position()
            self.zoom.pan(d.x(), d.y())
            e.accept()
            return
        super().mouseMoveEvent(e)

    def mouseReleaseEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton and self._drag is not None:
            self._drag = None
            self._update_cursor()
            e.accept()
            return
        super().mouseReleaseEvent(e)

    def mouseDoubleClickEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton and self._zoomable():
            self.zoom.fit()
            e.accept()
            return
        super().mouseDoubleClickEvent(e)

    def event(self, e) -> bool:
        # while the view has focus its zoom keys win over any window shortcut on the same key
        if e.type() == QEvent.Type.ShortcutOverride and _is_zoom_key(e):
            e.accept()
            return True
        return super().event(e)

    def keyPressEvent(self, e) -> None:
        if not _is_zoom_key(e):
            super().keyPressEvent(e)  # A/H/Space/N... stay the window's, Esc closes a dialog
            return
        if self._zoomable():
            if e.key() in ZOOM_IN_KEYS:
                self.zoom.zoom_by(STEP)
            elif e.key() in ZOOM_OUT_KEYS:
                self.zoom.zoom_by(1 / STEP)
            else:
                self.zoom.fit()
        e.accept()

    def focusInEvent(self, e) -> None:
        self.update()
        super().focusInEvent(e)

    def focusOutEvent(self, e) -> None:
        self.update()
        super().focusOutEvent(e)


def _is_zoom_key(e) -> bool:
    mods = e.modifiers() & ~(Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier)
    return e.key() in _ZOOM_KEYS and mods == Qt.KeyboardModifier.NoModifier
