"""Paints one gallery tile: thumbnail, class colour + P(ALL) badge, review marks, QC mark, error tiles."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QPixmap, QPixmapCache, QPolygon
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


def qc_reason(cell) -> str:
    """Why the cell's image failed the engine's quality check (engine.qc); "" when it passed or is not classified."""
    return getattr(cell.result, "qc", "") or ""


class TileDelegate(QStyledItemDelegate):
    """Reads cells and thumbnails directly from the proxy/loader (never ``index.data()``)."""

    def __init__(self, proxy, thumbs, thumb_size: int = 112, parent=None) -> None:
        super().__init__(parent)
        QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), 32 * 1024))  # KB: ~450 tiles (8 screens)
        self.proxy = proxy
        self.thumbs = thumbs
        self.thumb_size = thumb_size

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
        """Tiles are rendered once per visible state into a cached pixmap (QPixmapCache); a repaint
        of an unchanged tile is one drawPixmap, so streaming results never make the gallery slow."""
        cell = self.proxy.cell_for(index)
        if cell is None:
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        img = None if cell.status == ERROR else self.thumbs.get(cell.key)
        rv = cell.review
        size = option.rect.size()
        key = (
            f"tile|{cell.key}|{cell.status}|{cell.prediction}|{cell.p_all}|{cell.flagged}|"
            f"{bool(qc_reason(cell))}|{rv.label if rv else ''}|{img is not None}|{selected}|"
            f"{size.width()}x{size.height()}|{self.thumb_size}"
        )
        pm = QPixmapCache.find(key)  # type: ignore[call-overload]  # (PySide6's one-argument form: stubs lack it)
        if pm is None or pm.isNull():
            dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
            pm = QPixmap(int(size.width() * dpr), int(size.height() * dpr))
            pm.setDevicePixelRatio(dpr)
            pm.fill(Qt.GlobalColor.transparent)
            q = QPainter(pm)
            self._render(q, QRect(0, 0, size.width(), size.height()), cell, selected, img, option.palette)
            q.end()
            QPixmapCache.insert(key, pm)
        p.drawPixmap(option.rect.topLeft(), pm)

    def _render(self, p: QPainter, rect: QRect, cell, selected: bool, img, palette) -> None:
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        r = rect.adjusted(2, 2, -2, -2)
        frame = ERROR_COLOR if cell.status == ERROR else label_color(cell.final_label)
        _frame(p, rect, r, frame, selected)
        self._image(p, r, img, cell.status)
        self._badge(p, r, cell)
        self._marks(p, r, cell)
        p.restore()

    def _image(self, p: QPainter, r: QRect, img, status) -> None:
        """The thumbnail, centred; an error tile's "!"; a dotted square while it loads."""
        s = self.thumb_size
        img_rect = QRect(r.x() + (r.width() - s) // 2, r.y() + PAD, s, s)
        if img is not None and not img.isNull():
            tw, th = img.width(), img.height()
            target = QRect(img_rect.x() + (s - tw) // 2, img_rect.y() + (s - th) // 2, tw, th)
            p.drawImage(target, img)
        elif status == ERROR:
            p.setPen(QPen(ERROR_COLOR, 2))
            p.setBrush(QColor("#2c2f36"))
            p.drawRect(img_rect.adjusted(8, 8, -8, -8))
            f = QFont(p.font())
            f.setPointSizeF(max(14.0, s / 4))
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor("#ecf0f1"))
            p.drawText(img_rect, Qt.AlignmentFlag.AlignCenter, "!")
        else:
            p.setPen(QPen(QColor("#555"), 1, Qt.PenStyle.DotLine))
            p.drawRect(img_rect.adjusted(10, 10, -10, -10))

    def _badge(self, p: QPainter, r: QRect, cell) -> None:
        """The badge: class + P(ALL) / "error" / "…"."""
        status, label = cell.status, cell.final_label
        badge = QRect(r.x() + 3, r.bottom() - BADGE_H - 1, r.width() - 6, BADGE_H)
        if status == ERROR:
            text, bg = "error", ERROR_COLOR
        elif status == PENDING:
            text, bg = "…", QColor("#4d5360")
        else:
            text = f"{short_label(label)} {cell.p_text(2)}"
            if cell.review is not None and cell.overridden:
                text = f"{cell.prediction}→{label} {cell.p_text(2)}"  # model -> reviewer
            elif cell.excluded:
                text = "QC excl." if cell.review is None else "excluded"
            bg = label_color(label)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(bg)
        p.drawRoundedRect(badge, 3, 3)
        p.setFont(self._badge_font(p.font()))
        p.setPen(QColor("white"))
        p.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)

    def _marks(self, p: QPainter, r: QRect, cell) -> None:
        """Corner marks: review open (amber "?"), reviewed (green check), failed the quality check ("QC")."""
        mark = 18
        if cell.review_open:
            mr = QRect(r.right() - mark - 3, r.y() + 3, mark, mark)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(REVIEW_COLOR)
            p.drawEllipse(mr)
            p.setPen(QColor("black"))
            p.drawText(mr, Qt.AlignmentFlag.AlignCenter, "?")
        if cell.review is not None:
            mr = QRect(r.x() + 3, r.y() + 3, mark, mark)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(REVIEWED_COLOR)
            p.drawEllipse(mr)
            p.setPen(QPen(QColor("white"), 2.2))
            x, y = mr.x(), mr.y()
            p.drawPolyline(QPolygon([QPoint(x + 4, y + 9), QPoint(x + 8, y + 13), QPoint(x + 14, y + 5)]))
        if qc_reason(cell):  # "QC" pill beside the review check: the image may not be a usable cell
            left = r.x() + 3 + (mark + 3 if cell.review is not None else 0)
            qr = QRect(left, r.y() + 3, mark + 8, mark)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QC_COLOR)
            p.drawRoundedRect(qr, 4, 4)
            p.setFont(self._badge_font(p.font()))
            p.setPen(QColor("white"))
            p.drawText(qr, Qt.AlignmentFlag.AlignCenter, "QC")


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
