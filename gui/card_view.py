"""The model card view: the card's honest numbers as pictures, beside the plain-words summary.

Per-donor accuracy is where the models fail (healthy donors at 0.00-0.19 in the 2.0 cards), and a technician
reads a bar chart faster than a JSON tree.  Both charts are painted with QPainter from the card's own numbers
(``metrics.held_out.per_donor`` and the reliability table ``training.metrics`` writes): the app never needs
matplotlib.  The raw card JSON sits behind a "Details" toggle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from .service import donor_chart, plain_words, reliability_table
from .style import ALL_COLOR, HEM_COLOR, REVIEW_COLOR

__all__ = ["DonorChartView", "ReliabilityView", "ModelCardView"]


def _mix(c: QColor, alpha: int) -> QColor:
    c = QColor(c)
    c.setAlpha(alpha)
    return c


def _grid(p: QPainter, plot: QRectF, lh: int, fg: QColor) -> None:
    """The donor chart's grid: 0, one half (below it the whole case is called wrong), 1."""
    for v in (0.0, 0.5, 1.0):
        y = plot.bottom() - plot.height() * v
        p.setPen(
            QPen(
                _mix(fg, 70) if v != 0.5 else ALL_COLOR,
                1,
                Qt.PenStyle.DashLine if v == 0.5 else Qt.PenStyle.SolidLine,
            )
        )
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.setPen(fg)
        p.drawText(QRectF(0, y - lh / 2, 30, lh), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{v:g}")


def _donor_tip(b) -> str:
    """What hovering a donor's bar says."""
    seen = {
        True: "in the shipped model's training",
        False: "never seen by the shipped model",
        None: "not stated in the card",
    }[b.seen_in_training]
    if b.baseline is not None:
        seen += f"; cell size alone: {b.baseline:.2f}"
    what = "called HEM (normal)" if b.cls == "HEM" else "called ALL"
    return (
        f"{'Healthy donor' if b.cls == 'HEM' else 'Patient'} {b.donor}: "
        f"{b.share_right:.2f} of {b.n_cells} cells {what}; {seen}"
    )


@dataclass(frozen=True)
class _Bars:
    """How the donor chart's bars are laid out: the plot, each bar's width, whether the donor names stand upright."""

    plot: QRectF
    width: float
    rotate: bool
    label_h: float
    lh: int
    fg: QColor

    def draw(self, p: QPainter, b, x: float, color: QColor) -> tuple[QRectF, str]:
        """One donor's bar at ``x``: its share, its cell-size baseline, its name; returns its hover area and tip."""
        plot, bw, lh, fg = self.plot, self.width, self.lh, self.fg
        h = plot.height() * max(0.0, min(1.0, b.share_right))
        r = QRectF(x + bw * 0.12, plot.bottom() - h, bw * 0.76, h)
        p.fillRect(r, _mix(color, 110) if b.seen_in_training else color)
        if b.seen_in_training:
            p.fillRect(r, QBrush(color, Qt.BrushStyle.BDiagPattern))
        p.setPen(QPen(color.darker(130), 1))
        p.drawRect(r)
        if bw >= p.fontMetrics().horizontalAdvance("0.00") + 6:
            p.setPen(fg)
            p.drawText(QRectF(x, r.top() - lh - 1, bw, lh), Qt.AlignmentFlag.AlignCenter, f"{b.share_right:.2f}")
        if b.baseline is not None:  # cell size alone on this donor: the bar to beat
            yb = plot.bottom() - plot.height() * max(0.0, min(1.0, b.baseline))
            p.setPen(QPen(fg, 2.5))
            p.drawLine(QPointF(x + bw * 0.02, yb), QPointF(x + bw * 0.98, yb))
        if b.share_right < 0.01:  # a zero is a finding, not a missing bar
            p.setPen(QPen(color, 2))
            p.drawLine(QPointF(r.left(), plot.bottom() - 1), QPointF(r.right(), plot.bottom() - 1))
        p.setPen(fg)
        if self.rotate:
            p.save()
            p.translate(x + bw / 2 + lh / 3, plot.bottom() + 3)
            p.rotate(90)
            p.drawText(QPointF(0, 0), b.donor)
            p.restore()
        else:
            p.drawText(QRectF(x, plot.bottom() + 2, bw, lh), Qt.AlignmentFlag.AlignCenter, b.donor)
        return QRectF(x, plot.top(), bw, plot.height() + self.label_h), _donor_tip(b)


class DonorChartView(QWidget):
    """One bar per donor: the share of its cells called right; healthy donors and patients apart; hatched bars
    for donors the shipped model saw in training, solid for donors it never saw."""

    def __init__(self, chart=None, parent=None) -> None:
        super().__init__(parent)
        self.chart = chart
        self._hits: list[tuple[QRectF, str]] = []
        self.setMinimumSize(320, 210)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:
        n = len(self.chart.bars) if self.chart else 0
        return QSize(max(420, 60 + 20 * n), 240)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fg = self.palette().windowText().color()
        fm = p.fontMetrics()
        lh = fm.height()
        W, H = self.width(), self.height()
        self._hits = []
        if not self.chart:
            p.setPen(fg)
            p.drawText(
                QRectF(0, 0, W, H),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "This card has no per-donor numbers.",
            )
            p.end()
            return
        healthy, patients = self.chart.healthy, self.chart.patients
        gap = 1.5 if healthy and patients else 0.0
        n = len(healthy) + len(patients) + gap
        rotate = (W - 60) / max(n, 1) < fm.horizontalAdvance("H24") + 6
        label_h = (max(fm.horizontalAdvance(b.donor) for b in self.chart.bars) + 6) if rotate else lh + 4
        plot = QRectF(34, 4 * lh + 10, max(10, W - 34 - 8), max(10, H - 4 * lh - 10 - label_h - 4))
        bars = _Bars(plot, plot.width() / max(n, 1), rotate, label_h, lh, fg)
        # title and legend
        p.setPen(fg)
        p.drawText(QRectF(0, 0, W, lh + 2), Qt.AlignmentFlag.AlignCenter, "Share of each donor's cells called right")
        self._legend(p, QPointF(plot.left(), lh + 3), lh, fg)
        _grid(p, plot, lh, fg)
        x = plot.left()
        for group, color, name in ((healthy, HEM_COLOR, "healthy donors"), (patients, ALL_COLOR, "patients with ALL")):
            if not group:
                continue
            gx = x
            for b in group:
                self._hits.append(bars.draw(p, b, x, color))
                x += bars.width
            p.setPen(_mix(fg, 200))
            p.drawText(
                QRectF(gx, plot.top() - 2 * lh - 2, x - gx, lh),
                Qt.AlignmentFlag.AlignCenter,
                f"{name} ({len(group)})" if x - gx > fm.horizontalAdvance(name) else f"{len(group)}",
            )
            x += bars.width * gap
        p.end()

    def _legend(self, p: QPainter, at: QPointF, lh: int, fg: QColor) -> None:
        x, y = at.x(), at.y()
        for text, hatched in (("never seen by the shipped model", False), ("seen in its training", True)):
            if not any((b.seen_in_training is True) == hatched for b in self.chart.bars):
                continue
            r = QRectF(x, y + 2, lh - 4, lh - 4)
            p.fillRect(r, _mix(fg, 90) if hatched else _mix(fg, 160))
            if hatched:
                p.fillRect(r, QBrush(fg, Qt.BrushStyle.BDiagPattern))
            p.setPen(fg)
            p.drawText(QPointF(x + lh, y + lh - 4), text)
            x += lh + p.fontMetrics().horizontalAdvance(text) + 14
        p.setPen(QPen(ALL_COLOR, 1, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(x, y + lh / 2), QPointF(x + 16, y + lh / 2))
        p.setPen(fg)
        p.drawText(QPointF(x + 20, y + lh - 4), "below: whole case called wrong")
        if any(b.baseline is not None for b in self.chart.bars):
            x += 34 + p.fontMetrics().horizontalAdvance("below: whole case called wrong")
            p.setPen(QPen(fg, 2.5))
            p.drawLine(QPointF(x, y + lh / 2), QPointF(x + 16, y + lh / 2))
            p.setPen(fg)
            p.drawText(QPointF(x + 20, y + lh - 4), "cell size alone")

    def event(self, e) -> bool:
        if e.type() == e.Type.ToolTip:
            pos = e.position() if hasattr(e, "position") else QPointF(e.pos())
            tip = next((t for r, t in self._hits if r.contains(pos)), "")
            if tip:
                QToolTip.showText(e.globalPos(), tip, self)
            else:
                QToolTip.hideText()
                e.ignore()
            return True
        return super().event(e)

    def tip_at(self, pos: QPointF) -> str:
        """The tooltip of the bar under ``pos`` ('' between bars): what a hover shows."""
        return next((t for r, t in self._hits if r.contains(pos)), "")


class ReliabilityView(QWidget):
    """Reliability diagram: per bin of P(ALL), the observed share of ALL (dot size: cells in the bin) against the
    diagonal of perfect calibration; the ECE of the same bins in the title."""

    def __init__(self, table=None, ece: float | None = None, parent=None) -> None:
        super().__init__(parent)
        self.table, self.ece = table, ece
        self.setMinimumSize(210, 210)

    def sizeHint(self) -> QSize:
        return QSize(250, 250)

    def heightForWidth(self, w: int) -> int:
        return w

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fg = self.palette().windowText().color()
        lh = p.fontMetrics().height()
        W, H = self.width(), self.height()
        side = max(10, min(W - 60, H - 2 * lh - 30))
        plot = QRectF(54, lh + 6, side, side)
        t = self.table
        title = "Reliability"
        if t:
            title += f" ({t.get('bins', '?')} bins" + (f", ECE {self.ece:.3f})" if self.ece is not None else ")")
        p.setPen(fg)
        p.drawText(QRectF(0, 0, W, lh + 2), Qt.AlignmentFlag.AlignCenter, title)
        p.setPen(QPen(_mix(fg, 90), 1))
        p.drawRect(plot)
        p.setPen(QPen(_mix(fg, 140), 1, Qt.PenStyle.DotLine))
        p.drawLine(plot.bottomLeft(), plot.topRight())
        p.setPen(fg)
        for v in (0.0, 0.5, 1.0):
            p.drawText(
                QRectF(plot.left() + side * v - 20, plot.bottom() + 2, 40, lh), Qt.AlignmentFlag.AlignCenter, f"{v:g}"
            )
            p.drawText(
                QRectF(plot.left() - 34, plot.bottom() - side * v - lh / 2, 30, lh),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{v:g}",
            )
        p.drawText(
            QRectF(plot.left(), plot.bottom() + lh + 2, side, lh), Qt.AlignmentFlag.AlignCenter, "predicted P(ALL)"
        )
        p.save()
        p.translate(plot.left() - 34, plot.center().y())
        p.rotate(-90)
        p.drawText(QRectF(-side / 2, -lh, side, lh), Qt.AlignmentFlag.AlignCenter, "observed share ALL")
        p.restore()
        if not t:
            p.drawText(
                plot.adjusted(8, 8, -8, -8),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "This card has no reliability table (exported before it was recorded)"
                + (f"; its ECE is {self.ece:.3f}." if self.ece is not None else "."),
            )
            p.end()
            return
        pts = [
            QPointF(plot.left() + side * mp, plot.bottom() - side * fa)
            for mp, fa in zip(t["mean_p_all"], t["fraction_all"])
        ]
        path = QPainterPath(pts[0])
        for q in pts[1:]:
            path.lineTo(q)
        p.setPen(QPen(REVIEW_COLOR.darker(120), 1.5))
        p.drawPath(path)
        most = max(t.get("n_cells") or [1]) or 1
        for q, n in zip(pts, t.get("n_cells") or [most] * len(pts)):
            r = 2.5 + 4.5 * (n / most) ** 0.5
            p.setBrush(REVIEW_COLOR)
            p.drawEllipse(q, r, r)
        p.end()


class ModelCardView(QWidget):
    """The card view: facts and plain words on the left, the two charts on the right, raw JSON behind Details.
    ``member_cards``: the installed cards, so an ensemble's chart can tell which donors its members saw."""

    def __init__(self, card, summary_html: str, member_cards=(), parent=None) -> None:
        super().__init__(parent)
        self.card = card
        metrics = card.metrics or {}
        self.summary = QLabel(summary_html + self._words_html(metrics))
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setMinimumWidth(300)
        chart = donor_chart(card, member_cards)
        self.donors = DonorChartView(chart)
        self.reliability = ReliabilityView(reliability_table(card), metrics.get("ece"))
        self.caption = QLabel(chart.caption if chart else "")
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        self.caption.setWordWrap(True)
        charts = QVBoxLayout()
        charts.addWidget(self.donors, 3)
        charts.addWidget(self.caption)
        row = QHBoxLayout()
        row.addWidget(self.reliability, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        row.addStretch(1)
        charts.addLayout(row, 2)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.summary)
        top = QHBoxLayout()
        top.addWidget(scroll, 2)
        top.addLayout(charts, 3)
        self.toggle = QToolButton()
        self.toggle.setText("Details: the card as written (JSON)")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.details = QPlainTextEdit(json.dumps(card.raw or {}, indent=2, default=str))
        self.details.setReadOnly(True)
        self.details.setVisible(False)
        self.toggle.toggled.connect(self._show_details)
        lay = QVBoxLayout(self)
        lay.addLayout(top, 1)
        lay.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.details, 1)

    @staticmethod
    def _words_html(metrics: dict) -> str:
        words = plain_words(metrics.get("held_out"))
        if not words:
            return ""
        return "<h3>On donors it never saw</h3>" + "".join(f"<p>{escape(w)}</p>" for w in words)

    def _show_details(self, on: bool) -> None:
        self.details.setVisible(on)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
