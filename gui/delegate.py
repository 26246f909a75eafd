"""Paints one gallery tile: thumbnail, class colour + P(ALL) badge, review marks, QC mark, error tiles.

A tile is drawn once per look into a cached pixmap (QPixmapCache), keyed on what it shows (badge text and
colours, marks, the thumbnail, selection, size), so any change that alters a tile (a review, a threshold that
changes its P(ALL) text) misses the cache.  A tile's frame, badge background and placeholder (its "chrome") are
the same for every cell of one class and state: they are drawn once per look into a small pixmap that a new tile
starts as a copy of, so scrolling through thousands of new tiles draws only the thumbnail, the badge text and the
marks (issue 29: the gallery's stall while scrolling 20,000 tiles)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QPixmapCache, QPolygon
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from .cells import ERROR, PENDING
from .style import (
    ERROR_COLOR,
    REVIEW_COLOR,
    REVIEWED_COLOR,
    SELECTION_COLOR,
    SELECTION_OVERLAY,
    label_color,
    short_label,
)

BADGE_H = 20
PAD = 4
QC_COLOR = QColor("#8e44ad")  # failed the input quality check: purple, unlike any class or review colour
PENDING_BADGE = QColor("#4d5360")
MAX_CHROMES = 64  # distinct chromes kept (class colours x selected x placeholder x sizes in use): a few dozen


def qc_reason(cell) -> str:
    """Why the cell's image failed the engine's quality check (engine.qc); "" when it passed or is not classified."""
    return getattr(cell.result, "qc", "") or ""


def badge(cell, status) -> tuple[str, QColor, QColor]:
    """The badge's text and colour and the frame's colour: class + P(ALL) / "error" / "…"."""
    label = cell.final_label
    if status == ERROR:
        return "error", ERROR_COLOR, ERROR_COLOR
    if status == PENDING:
        return "…", PENDING_BADGE, label_color(label)
    text = f"{short_label(label)} {cell.p_text(2)}"
    if cell.review is not None and cell.overridden:
        text = f"{cell.prediction}→{label} {cell.p_text(2)}"  # model -> reviewer
    elif cell.excluded:
        text = "QC excl." if cell.review is None else "excluded"
    colour = label_color(label)
    return text, colour, colour


class TileDelegate(QStyledItemDelegate):
    """Reads cells and thumbnails directly from the proxy/loader (never ``index.data()``).

    ``background``: the colour the view fills behind its tiles, if it is one colour.  Tiles are then made opaque,
    composited onto it once when drawn: painting one into the view is a copy, not a blend of every pixel (about
    40-90 us a tile on the offscreen platform's backing store).  None: tiles with transparent corners."""

    def __init__(self, proxy, thumbs, thumb_size: int = 112, parent=None, background: QColor | None = None) -> None:
        super().__init__(parent)
        QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), 32 * 1024))  # KB: ~450 tiles (8 screens)
        self.proxy = proxy
        self.thumbs = thumbs
        self.thumb_size = thumb_size
        self._chromes: dict[tuple, QPixmap] = {}
        self._background = QColor(background) if background is not None else None
        self._background_key = background.rgba() if background is not None else "none"

    def _badge_font(self, base: QFont) -> QFont:
        f = getattr(self, "_bf", None)
        if f is None:
            f = self._bf = QFont(base)
            f.setPointSizeF(8.5)
            f.setBold(True)
        return f

    def sizeHint(self, option, index) -> QSize:
        return QSize(self.thumb_size + 2 * PAD + 4, self.thumb_size + BADGE_H + 2 * PAD + 4)

    def paint(self, p: QPainter, option, index) -> None:
        """A repaint of an unchanged tile is one drawPixmap, so streaming results never make the gallery slow; a new
        tile is a copy of its chrome plus the thumbnail, the badge text and the marks."""
        cell = self.proxy.cell_for(index)
        if cell is None:
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        status = cell.status
        img = None if status == ERROR else self.thumbs.get(cell.key)
        if img is not None and img.isNull():
            img = None
        text, bg, frame = badge(cell, status)
        marks = (cell.review_open, cell.review is not None, bool(qc_reason(cell)))
        rect = option.rect
        w, h = rect.width(), rect.height()
        key = (
            f"tile|{status}|{text}|{bg.rgba()}|{frame.rgba()}|{marks}|{img.cacheKey() if img is not None else 0}|"
            f"{selected}|{w}x{h}|{self.thumb_size}|{self._background_key}"
        )
        pm = QPixmapCache.find(key)  # type: ignore[call-overload]  # (PySide6's one-argument form: stubs lack it)
        if pm is None or pm.isNull():
            pm = self._chrome(p, w, h, frame, bg, selected, status, img is not None).copy()
            q = QPainter(pm)
            q.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            r = QRect(2, 2, w - 4, h - 4)
            if img is not None:
                self._thumbnail(q, r, img)
            self._badge_text(q, r, text)
            self._marks(q, r, *marks)
            q.end()
            QPixmapCache.insert(key, pm)
        p.drawPixmap(rect.topLeft(), pm)

    def _chrome(self, p: QPainter, w: int, h: int, frame, bg, selected: bool, status, has_image: bool) -> QPixmap:
        """The tile without its thumbnail, badge text and marks (cached per look): background, selection, frame, the
        badge's background, and where there is no thumbnail the error's "!" or the loading square; composited onto
        the view's background where there is one."""
        dev = p.device()
        dpr = dev.devicePixelRatioF() if dev is not None else 1.0
        ck = (w, h, dpr, frame.rgba(), bg.rgba(), selected, status == ERROR, has_image, self.thumb_size)
        pm = self._chromes.get(ck)
        if pm is None:
            if len(self._chromes) >= MAX_CHROMES:
                self._chromes.clear()
            pm = QPixmap(int(w * dpr), int(h * dpr))
            pm.setDevicePixelRatio(dpr)
            pm.fill(Qt.GlobalColor.transparent)
            q = QPainter(pm)
            q.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            rect = QRect(0, 0, w, h)
            r = rect.adjusted(2, 2, -2, -2)
            _frame(q, rect, r, frame, selected)
            if not has_image:
                self._placeholder(q, r, status)
            _badge_background(q, r, bg)
            q.end()
            if self._background is not None:
                pm = _onto(pm, self._background)
            self._chromes[ck] = pm
        return pm

    def _render(self, p: QPainter, rect: QRect, cell, selected: bool, img, palette) -> None:
        """The whole tile in one pass, in the order it is layered (what a cached tile must equal pixel for pixel)."""
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        r = rect.adjusted(2, 2, -2, -2)
        status = cell.status
        text, bg, frame = badge(cell, status)
        _frame(p, rect, r, frame, selected)
        if img is not None and not img.isNull():
            self._thumbnail(p, r, img)
        else:
            self._placeholder(p, r, status)
        _badge_background(p, r, bg)
        self._badge_text(p, r, text)
        self._marks(p, r, cell.review_open, cell.review is not None, bool(qc_reason(cell)))
        p.restore()

    def _image_rect(self, r: QRect) -> QRect:
        s = self.thumb_size
        return QRect(r.x() + (r.width() - s) // 2, r.y() + PAD, s, s)

    def _thumbnail(self, p: QPainter, r: QRect, img: QImage) -> None:
        """The thumbnail, centred."""
        s, img_rect = self.thumb_size, self._image_rect(r)
        tw, th = img.width(), img.height()
        p.drawImage(QRect(img_rect.x() + (s - tw) // 2, img_rect.y() + (s - th) // 2, tw, th), img)

    def _placeholder(self, p: QPainter, r: QRect, status) -> None:
        """Where there is no thumbnail: an error tile's "!"; a dotted square while it loads."""
        img_rect = self._image_rect(r)
        if status == ERROR:
            p.setPen(QPen(ERROR_COLOR, 2))
            p.setBrush(QColor("#2c2f36"))
            p.drawRect(img_rect.adjusted(8, 8, -8, -8))
            f = QFont(p.font())
            f.setPointSizeF(max(14.0, self.thumb_size / 4))
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor("#ecf0f1"))
            p.drawText(img_rect, Qt.AlignmentFlag.AlignCenter, "!")
        else:
            p.setPen(QPen(QColor("#555"), 1, Qt.PenStyle.DotLine))
            p.drawRect(img_rect.adjusted(10, 10, -10, -10))

    def _badge_text(self, p: QPainter, r: QRect, text: str) -> None:
        p.setFont(self._badge_font(p.font()))
        p.setPen(QColor("white"))
        p.drawText(_badge_rect(r), Qt.AlignmentFlag.AlignCenter, text)

    def _marks(self, p: QPainter, r: QRect, review_open: bool, reviewed: bool, qc: bool) -> None:
        """Corner marks: review open (amber "?"), reviewed (green check), failed the quality check ("QC")."""
        mark = 18
        if review_open:
            mr = QRect(r.right() - mark - 3, r.y() + 3, mark, mark)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(REVIEW_COLOR)
            p.drawEllipse(mr)
            p.setPen(QColor("black"))
            p.drawText(mr, Qt.AlignmentFlag.AlignCenter, "?")
        if reviewed:
            mr = QRect(r.x() + 3, r.y() + 3, mark, mark)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(REVIEWED_COLOR)
            p.drawEllipse(mr)
            p.setPen(QPen(QColor("white"), 2.2))
            x, y = mr.x(), mr.y()
            p.drawPolyline(QPolygon([QPoint(x + 4, y + 9), QPoint(x + 8, y + 13), QPoint(x + 14, y + 5)]))
        if qc:  # "QC" pill beside the review check: the image may not be a usable cell
            left = r.x() + 3 + (mark + 3 if reviewed else 0)
            qr = QRect(left, r.y() + 3, mark + 8, mark)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QC_COLOR)
            p.drawRoundedRect(qr, 4, 4)
            p.setFont(self._badge_font(p.font()))
            p.setPen(QColor("white"))
            p.drawText(qr, Qt.AlignmentFlag.AlignCenter, "QC")


def _onto(pm: QPixmap, background: QColor) -> QPixmap:
    """``pm`` drawn onto ``background``, as the view would draw it: an opaque pixmap of the same size."""
    out = QPixmap(pm.size())
    out.setDevicePixelRatio(pm.devicePixelRatio())
    out.fill(background)
    q = QPainter(out)
    q.drawPixmap(0, 0, pm)
    q.end()
    return out


def _badge_rect(r: QRect) -> QRect:
    return QRect(r.x() + 3, r.bottom() - BADGE_H - 1, r.width() - 6, BADGE_H)


def _badge_background(p: QPainter, r: QRect, bg: QColor) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(bg)
    p.drawRoundedRect(_badge_rect(r), 3, 3)


def _frame(p: QPainter, rect: QRect, r: QRect, frame: QColor, selected: bool) -> None:
    """Tile background (lightened, never tinted, when selected) + class-coloured frame."""
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(QColor("#20232a")))
    p.drawRoundedRect(r, 5, 5)
    if selected:
        p.setBrush(SELECTION_OVERLAY)
        p.drawRoundedRect(r, 5, 5)
    p.setPen(QPen(frame, 3))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRoundedRect(r.adjusted(1, 1, -1, -1), 5, 5)
    if selected:  # unmistakable neutral ring outside the class frame (no class or review hue)
        p.setPen(QPen(SELECTION_COLOR, 2, Qt.PenStyle.SolidLine))
        p.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 6, 6)
