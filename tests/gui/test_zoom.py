"""Zoom and pan of the preview (ZoomState alone, then ImageView, PreviewPanel and CompareDialog on real cells)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import shiboken6
from conftest import REPO_ROOT, real_cell_sources, rgb_of

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # not via gui_helpers: no main window needed here

from gui.zoom import MAX_PIXEL_SCALE, ZoomState

# ----------------------------------------------------------------------------------------------------
# ZoomState: no Qt
# ----------------------------------------------------------------------------------------------------


def _state(image=(450, 450), view=(400, 400)) -> ZoomState:
    z = ZoomState()
    z.set_view(*view)
    z.set_image(*image)
    return z


def test_zoom_state_module_needs_no_qt():
    code = "import sys, gui.zoom; print(any(m.split('.')[0] == 'PySide6' for m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"


def test_scale_is_clamped_between_fit_and_four_image_pixels():
    z = _state()
    assert z.at_fit and z.scale == pytest.approx(400 / 450) and z.zoom == pytest.approx(1.0)
    z.zoom_at(200, 200, 1000.0)
    assert z.scale == MAX_PIXEL_SCALE == 4.0  # 4 screen pixels per image pixel, whatever the fit
    assert z.zoom == pytest.approx(4.0 * 450 / 400)
    assert not z.can_zoom_in
    z.zoom_at(200, 200, 1e-6)
    assert z.at_fit and z.scale == pytest.approx(400 / 450)
    for _ in range(3):  # out and back in by whole steps lands exactly on fit again
        z.zoom_by(1.25)
    for _ in range(5):
        z.zoom_by(1 / 1.25)
    assert z.at_fit


def test_small_image_in_a_big_view_cannot_zoom_past_fit():
    z = _state(image=(100, 100), view=(800, 800))  # fit is already 8 px per pixel
    z.zoom_at(400, 400, 2.0)
    assert z.scale == pytest.approx(8.0) and z.at_fit and not z.can_zoom_in


@pytest.mark.parametrize("point", [(150.0, 250.0), (330.0, 60.0), (200.0, 200.0)])
def test_zoom_at_keeps_the_image_point_under_the_cursor(point):
    z = _state()
    x, y = point
    for factor in (1.6, 1.5, 0.8):
        ix, iy = z.to_image(x, y)
        z.zoom_at(x, y, factor)
        assert z.to_view(ix, iy) == pytest.approx((x, y), abs=1e-6)
    assert not z.at_fit


def test_zoom_around_a_point_is_not_zoom_around_the_centre():
    a, b = _state(), _state()
    a.zoom_at(60, 60, 2.0)
    b.zoom_by(2.0)
    assert a.scale == pytest.approx(b.scale)
    assert (a.cx, a.cy) != pytest.approx((b.cx, b.cy))


def test_pan_is_clamped_so_the_image_never_leaves_the_view():
    z = _state()
    z.pan(100, 100)  # at fit there is nothing to pan
    assert (z.cx, z.cy) == (225, 225)
    z.zoom_by(2.0)
    cx = z.cx
    z.pan(-30, 0)  # drag left: the image follows, so the centre moves right in the image
    assert z.cx == pytest.approx(cx + 30 / z.scale)
    z.pan(10_000, 10_000)
    x, y, w, h = z.image_rect()
    assert (x, y) == pytest.approx((0, 0))  # the image's top-left corner stops at the view's
    z.pan(-10_000, -10_000)
    x, y, w, h = z.image_rect()
    assert (x + w, y + h) == pytest.approx((400, 400))


def test_pan_centres_a_dimension_that_fits():
    z = _state(image=(450, 200))  # wide image: at 1.2x zoom its height still fits the view
    z.zoom_by(1.2)
    z.pan(0, 500)
    assert z.cy == 100
    x, y, w, h = z.image_rect()
    assert y == pytest.approx((400 - h) / 2)


def test_fit_resets_and_a_new_image_starts_at_fit():
    z = _state()
    z.zoom_at(100, 300, 3.0)
    z.pan(40, -20)
    z.fit()
    assert z.at_fit and (z.cx, z.cy) == (225, 225)
    z.zoom_by(2.0)
    z.set_image(300, 450)
    assert z.at_fit and (z.cx, z.cy) == (150, 225) and z.scale == pytest.approx(400 / 450)


def test_resizing_the_view_keeps_the_magnification_and_listeners_hear_every_change():
    z = _state()
    calls = []
    z.subscribe(lambda: calls.append(z.zoom))
    z.zoom_by(2.0)
    z.set_view(600, 600)
    assert z.zoom == pytest.approx(2.0) and z.scale == pytest.approx(2.0 * 600 / 450)
    z.pan(5, 5)
    z.fit()
    assert len(calls) == 4
    z.set_view(600, 600)  # no change: no call
    assert len(calls) == 4


# ----------------------------------------------------------------------------------------------------
# ImageView
# ----------------------------------------------------------------------------------------------------

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from gui.cells import Cell
from gui.imageview import ImageView
from gui.thumbs import FULL_SIZE_CAP, decode_thumbnail


def _cell_image(i: int = 0) -> QImage:
    img = decode_thumbnail(str(real_cell_sources()[i]), FULL_SIZE_CAP)
    assert img is not None and (img.width(), img.height()) == (450, 450)
    return img


def wheel(widget, pos: QPointF, notches: float) -> QWheelEvent:
    ev = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, int(120 * notches)),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, ev)
    return ev


def mouse(widget, kind: QEvent.Type, pos: QPointF, buttons=Qt.MouseButton.LeftButton) -> None:
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget, start: QPointF, end: QPointF) -> None:
    mouse(widget, QEvent.Type.MouseButtonPress, start)
    mid = (start + end) / 2
    mouse(widget, QEvent.Type.MouseMove, mid)
    mouse(widget, QEvent.Type.MouseMove, end)
    mouse(widget, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def image_point_at(view: ImageView, pos: QPointF) -> tuple[float, float]:
    return view.zoom.to_image(*view._to_state(pos))


@pytest.fixture
def view(qtbot):
    v = ImageView()
    qtbot.addWidget(v)
    v.resize(408, 408)  # viewport 400 x 400 inside the 4 px frame
    v.set_image(_cell_image())
    v.show()
    qtbot.waitExposed(v)
    return v


def test_wheel_zooms_around_the_cursor(view):
    assert view.zoom.at_fit and view.zoom_text() == ""
    pos = QPointF(120, 300)
    before = image_point_at(view, pos)
    ev = wheel(view, pos, 2)
    assert ev.isAccepted()
    assert view.zoom.zoom == pytest.approx(1.25**2) and view.zoom_text() == "1.6x"
    assert image_point_at(view, pos) == pytest.approx(before, abs=1e-6)
    wheel(view, pos, -1)
    assert view.zoom.zoom == pytest.approx(1.25)
    wheel(view, pos, 50)
    assert view.zoom.scale == 4.0  # the top: 4 screen pixels per image pixel


def test_high_zoom_shows_the_image_pixels_unsmoothed(view):
    img = view.image
    wheel(view, QPointF(204, 204), 50)
    z, vp = view.zoom, view.viewport()
    assert z.scale == 4.0
    shot = view.grab().toImage()
    assert shot.width() == view.width()  # device pixel ratio 1
    c = vp.center()
    mismatches, checked = 0, 0
    for ix in range(int(z.cx) - 6, int(z.cx) + 6):
        for iy in range(int(z.cy) - 6, int(z.cy) + 6):
            left = c.x() + (ix - z.cx) * 4.0
            top = c.y() + (iy - z.cy) * 4.0
            want = img.pixelColor(ix, iy).rgb()
            for dx in (1, 2):  # the inner 2x2 of the 4x4 block: independent of sub-pixel offsets
                for dy in (1, 2):
                    checked += 1
                    mismatches += shot.pixelColor(int(left) + dx, int(top) + dy).rgb() != want
    assert checked == 576 and mismatches == 0


def test_double_click_goes_back_to_fit(view, qtbot):
    wheel(view, QPointF(150, 150), 3)
    assert not view.zoom.at_fit and view.zoom_text()
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    assert view.zoom.at_fit and view.zoom_text() == ""


def test_drag_pans_and_stops_at_the_image_edge(view):
    drag(view, QPointF(200, 200), QPointF(260, 240))  # at fit: nothing moves
    assert (view.zoom.cx, view.zoom.cy) == (225, 225)
    wheel(view, QPointF(204, 204), 4)
    start, end = QPointF(200, 200), QPointF(170, 180)
    grabbed = image_point_at(view, start)
    drag(view, start, end)
    assert image_point_at(view, end) == pytest.approx(grabbed, abs=1e-6)  # the image follows the pointer
    drag(view, QPointF(10, 10), QPointF(400, 400))
    drag(view, QPointF(10, 10), QPointF(400, 400))
    x, y, _w, _h = view.zoom.image_rect()
    assert (x, y) == pytest.approx((0, 0))  # clamped: the image's corner stays at the view's corner


def test_keys_zoom_only_their_own_keys(view, qtbot):
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.zoom.zoom == pytest.approx(1.25)
    qtbot.keyClick(view, Qt.Key.Key_Equal)
    assert view.zoom.zoom == pytest.approx(1.25**2)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.zoom.zoom == pytest.approx(1.25)
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert view.zoom.at_fit
    # review keys are not the view's: they stay with the window's actions (A, H, Space, N ...)
    for key, text in ((Qt.Key.Key_A, "a"), (Qt.Key.Key_Space, " "), (Qt.Key.Key_N, "n")):
        ev = QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text)
        QApplication.sendEvent(view, ev)
        assert not ev.isAccepted(), text
        override = QKeyEvent(QEvent.Type.ShortcutOverride, key, Qt.KeyboardModifier.NoModifier, text)
        QApplication.sendEvent(view, override)
        assert not override.isAccepted(), text
    override = QKeyEvent(QEvent.Type.ShortcutOverride, Qt.Key.Key_Plus, Qt.KeyboardModifier.NoModifier, "+")
    QApplication.sendEvent(view, override)
    assert override.isAccepted()  # while focused, + is the view's even if a window shortcut used it
    assert view.focusPolicy() & Qt.FocusPolicy.ClickFocus


def test_no_image_no_zoom(qtbot):
    v = ImageView()
    qtbot.addWidget(v)
    v.resize(300, 300)
    assert not wheel(v, QPointF(100, 100), 2).isAccepted()  # the wheel goes on to the parent
    qtbot.keyClick(v, Qt.Key.Key_Plus)
    assert v.zoom_text() == ""


# ----------------------------------------------------------------------------------------------------
# PreviewPanel: the file's own pixels, fit for every new cell
# ----------------------------------------------------------------------------------------------------


def _cell(path: Path, p_all: float = 0.873, review: str | None = None) -> Cell:
    """A classified cell; result and review are plain records with the fields the views read."""
    c = Cell(path, path.parent, ".", "case")
    c.result = SimpleNamespace(
        status="ok", error="", p_all=p_all, qc="", sha256="ab" * 32, member_p={}, members_disagree=False
    )
    c.threshold = 0.5
    c.prediction = "ALL" if p_all >= 0.5 else "HEM"
    if review:
        c.review = SimpleNamespace(
            label=review,
            reviewer="tech1",
            reviewed_at="2026-11-26T10:00:00Z",
            sha256="ab" * 32,
            model_label=c.prediction,
            p_all=p_all,
        )
    return c


def test_preview_shows_the_original_pixels_and_resets_to_fit_for_a_new_cell(qtbot, cells_dir):
    from gui.preview import PreviewPanel

    panel = PreviewPanel(lambda: None, lambda cell: False)
    qtbot.addWidget(panel)
    panel.resize(420, 700)
    panel.show()
    qtbot.waitExposed(panel)
    try:
        bmps = sorted(cells_dir.iterdir())
        first, second = _cell(bmps[0]), _cell(bmps[1], 0.2)
        panel.show_cell(first)
        qtbot.waitUntil(lambda: panel.view.image is not None, timeout=10_000)
        img = panel.view.image
        assert (img.width(), img.height()) == (450, 450)  # not the old 400 px downscale
        src = rgb_of(bmps[0])
        for x, y in ((0, 0), (225, 225), (101, 333), (449, 449)):
            r, g, b = src.getpixel((x, y))
            assert img.pixelColor(x, y).getRgb()[:3] == (r, g, b)
        v = panel.view
        wheel(v, QPointF(v.width() / 2, v.height() / 2), 3)
        zoom = v.zoom.zoom
        assert zoom > 1.5
        panel.refresh()  # a review of the same cell repaints it: the zoom stays
        assert v.zoom.zoom == pytest.approx(zoom)
        panel.show_cell(second)
        qtbot.waitUntil(lambda: panel.view.image is not None and panel.cell is second, timeout=10_000)
        assert v.zoom.at_fit
        wheel(v, QPointF(v.width() / 2, v.height() / 2), 2)
        panel.show_cell(first)  # cached: shown at once, and at fit
        assert v.image is not None and v.zoom.at_fit
    finally:
        panel.close_loader()


# ----------------------------------------------------------------------------------------------------
# CompareDialog
# ----------------------------------------------------------------------------------------------------


@pytest.fixture
def three_cells(cells_dir):
    bmps = sorted(cells_dir.iterdir())
    return [_cell(bmps[0], 0.873), _cell(bmps[4], 0.12, review="ALL"), _cell(bmps[6], 0.64)]


def _open(qtbot, cells):
    from gui.compare import CompareDialog

    dlg = CompareDialog(cells)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    qtbot.waitUntil(lambda: all(v.image is not None for v in dlg.views), timeout=10_000)
    return dlg


def test_compare_shows_each_cell_with_its_name_class_and_p(qtbot, three_cells):
    dlg = _open(qtbot, three_cells)
    assert not dlg.isModal()
    assert len(dlg.views) == 3 and all(v.isVisible() for v in dlg.views)
    texts = [c.text() for c in dlg.captions]
    for cell, text in zip(three_cells, texts):
        assert cell.file in text and cell.prediction in text and f"P(ALL) = <b>{cell.p_text(3)}</b>" in text
    assert "Reviewed: ALL" in texts[1] and "overridden" in texts[1]
    assert [(v.image.width(), v.image.height()) for v in dlg.views] == [(450, 450)] * 3
    sizes = {(v.width(), v.height()) for v in dlg.views}
    assert len(sizes) == 1  # side by side at one size


def test_compare_views_share_one_zoom(qtbot, three_cells):
    dlg = _open(qtbot, three_cells)
    a, b, c = dlg.views
    assert a.zoom is b.zoom is c.zoom
    before = [v.grab().toImage() for v in dlg.views]
    wheel(b, QPointF(b.width() * 0.3, b.height() * 0.6), 3)
    assert b.zoom_text() and a.zoom_text() == b.zoom_text() == c.zoom_text()
    after = [v.grab().toImage() for v in dlg.views]
    assert all(x != y for x, y in zip(before, after))  # every view was repainted zoomed, not just b
    centre = (a.zoom.cx, a.zoom.cy)
    drag(c, QPointF(150, 150), QPointF(120, 130))
    assert (a.zoom.cx, a.zoom.cy) != centre
    qtbot.mouseDClick(a, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    assert b.zoom.at_fit and c.zoom_text() == ""


def test_compare_refuses_fewer_than_two_or_more_than_four(qtbot, cells_dir):
    from gui.compare import CompareDialog

    cells = [_cell(p) for p in sorted(cells_dir.iterdir())]
    for n in (0, 1, 5):
        with pytest.raises(ValueError, match=f"2 to 4 cells.*{n} selected"):
            CompareDialog(cells[:n])
    assert not [w for w in QApplication.topLevelWidgets() if type(w).__name__ == "CompareDialog"]


def test_escape_closes_the_compare_dialog(qtbot, cells_dir):
    from gui.compare import CompareDialog

    cells = [_cell(p) for p in sorted(cells_dir.iterdir())[:4]]
    dlg = CompareDialog(cells)
    dlg.show()
    qtbot.waitExposed(dlg)
    assert len(dlg.views) == 4
    runner = dlg.loader.runner
    assert runner.threads()  # decoding the cells shown
    dlg.views[0].setFocus()
    with qtbot.waitSignal(dlg.finished, timeout=5_000):
        qtbot.keyClick(dlg.views[0], Qt.Key.Key_Escape)
    assert not shiboken6.isValid(dlg) or not dlg.isVisible()  # closed (and deleted once the loop runs)
    assert runner.closed and not runner.threads()  # its decoder thread ended with it
