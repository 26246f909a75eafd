"""The gallery tile: a cell whose image failed the engine's quality check carries a "QC" mark; the tile cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_helpers import RUN_TIMEOUT_MS  # noqa: F401  (sets QT_QPA_PLATFORM before Qt is used)
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap, QPixmapCache
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionViewItem

from engine.case.values import Review
from engine.pipeline import CellResult
from gui.cells import Cell
from gui.delegate import QC_COLOR, TileDelegate, qc_reason


def _cell(qc: str = "") -> Cell:
    path = Path("/case/c1.bmp")
    c = Cell(path, Path("/case"), ".", "case")
    c.result = CellResult(
        index=0,
        path=path,
        root=Path("/case"),
        folder=".",
        file="c1.bmp",
        sha256="ab" * 32,
        status="ok",
        error="",
        p_all=0.12,
        qc=qc,
    )
    c.prediction, c.flagged = "HEM", bool(qc)
    return c


def _qc_pixels(cell: Cell) -> int:
    d = TileDelegate(proxy=None, thumbs=None, thumb_size=96)
    img = QImage(120, 140, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    d._render(p, QRect(0, 0, 120, 140), cell, False, None, QApplication.palette())
    p.end()
    target = QC_COLOR.rgb()
    return sum(img.pixel(x, y) == target for x in range(img.width()) for y in range(40))


def test_qc_mark_only_on_cells_that_failed_the_check(qapp):
    failed = _cell("uniform image (no detail: not a cell)")
    assert qc_reason(failed) and not qc_reason(_cell())
    assert _qc_pixels(failed) > 50
    assert _qc_pixels(_cell()) == 0
    pending = Cell(Path("/case/c2.bmp"), Path("/case"), ".", "case")
    assert qc_reason(pending) == ""


# --- the tile cache (issue 29: a new tile starts as a copy of its cached chrome) ---------------------------------


class _Proxy:
    def __init__(self, cells):
        self.cells = cells

    def cell_for(self, index):
        return self.cells[index]


class _Thumbs:
    def __init__(self, images):
        self.images = images

    def get(self, key):
        return self.images.get(key)


def _tile_cell(i: int, p: float | None, status: str = "ok", qc: str = "", flagged=False, review=None) -> Cell:
    path = Path(f"/case/c{i}.bmp")
    c = Cell(path, Path("/case"), ".", "case")
    if p is not None or status == "error":
        c.result = CellResult(
            index=i,
            path=path,
            root=Path("/case"),
            folder=".",
            file=path.name,
            sha256="ab" * 32,
            status=status,
            error="unreadable" if status == "error" else "",
            p_all=p,
            qc=qc,
        )
        c.threshold = 0.5
        c.prediction = None if p is None else ("ALL" if p >= 0.5 else "HEM")
    c.flagged = flagged
    if review:
        c.review = Review(label=review, reviewer="ann", model_label=c.prediction)
    return c


def _thumbnail(seed: int) -> QImage:
    img = QImage(112, 90, QImage.Format.Format_ARGB32_Premultiplied)
    for y in range(90):
        for x in range(112):
            img.setPixel(x, y, 0xFF000000 | ((x * 2 + seed) & 0xFF) << 16 | (y * 2) << 8 | ((x + y) & 0xFF))
    return img


def _painted(d: TileDelegate, index: int, selected=False, size=(124, 148), dpr=1.0) -> QImage:
    """The tile as the gallery paints it (through the cache), on the gallery's background."""
    opt = QStyleOptionViewItem()
    opt.rect = QRect(3, 5, *size)
    opt.state = QStyle.StateFlag.State_Selected if selected else QStyle.StateFlag.State_None
    img = QImage(int((size[0] + 8) * dpr), int((size[1] + 10) * dpr), QImage.Format.Format_ARGB32_Premultiplied)
    img.setDevicePixelRatio(dpr)
    img.fill(QColor("#16181d"))
    p = QPainter(img)
    d.paint(p, opt, index)
    p.end()
    return img


def _one_pass(d: TileDelegate, cell: Cell, img, selected=False, size=(124, 148), dpr=1.0) -> QImage:
    """The same tile drawn in one pass (no cache, no chrome) into a transparent pixmap, then onto the background:
    how the gallery drew every tile before the chrome was cached."""
    pm = QPixmap(int(size[0] * dpr), int(size[1] * dpr))
    pm.setDevicePixelRatio(dpr)
    pm.fill(Qt.GlobalColor.transparent)
    q = QPainter(pm)
    d._render(q, QRect(0, 0, *size), cell, selected, img, QApplication.palette())
    q.end()
    out = QImage(int((size[0] + 8) * dpr), int((size[1] + 10) * dpr), QImage.Format.Format_ARGB32_Premultiplied)
    out.setDevicePixelRatio(dpr)
    out.fill(QColor("#16181d"))
    p = QPainter(out)
    p.drawPixmap(QPoint(3, 5), pm)
    p.end()
    return out


def _states() -> list[Cell]:
    return [
        _tile_cell(0, None),  # pending
        _tile_cell(1, None, status="error"),
        _tile_cell(2, 0.12),
        _tile_cell(3, 0.91, flagged=True),
        _tile_cell(4, 0.4978),
        _tile_cell(5, 0.3, qc="uniform image"),
        _tile_cell(6, 0.2, qc="too dark", flagged=True, review="ALL"),
        _tile_cell(7, 0.7, review="HEM"),
        _tile_cell(8, 0.3, review="EXCLUDED: artefact"),
    ]


@pytest.mark.parametrize("background", [None, QColor("#16181d")], ids=["transparent", "opaque"])
def test_a_cached_tile_is_pixel_for_pixel_the_tile_drawn_in_one_pass(qapp, background):
    """Chrome copy + thumbnail + badge text + marks, cached, equals the whole tile drawn at once: every state,
    with and without a thumbnail, selected or not, two sizes, a high-DPI screen; opaque tiles (made on the view's
    background) look on that background exactly as transparent ones do."""
    cells = _states()
    images = {c.key: _thumbnail(i) for i, c in enumerate(cells)}
    for thumb_size, size, dpr in ((112, (124, 148), 1.0), (96, (108, 132), 1.0), (112, (124, 148), 2.0)):
        for with_images in (False, True):
            d = TileDelegate(_Proxy(cells), _Thumbs(images if with_images else {}), thumb_size, background=background)
            for selected in (False, True):
                QPixmapCache.clear()
                for i, c in enumerate(cells):
                    img = images[c.key] if with_images and c.status != "error" else None
                    want = _one_pass(d, c, img, selected, size, dpr)
                    for _ in range(2):  # drawn, then from the cache
                        got = _painted(d, i, selected, size, dpr)
                        assert got == want, (c.key, thumb_size, dpr, with_images, selected)


def _badge_pixels(img: QImage) -> bytes:
    """The badge strip of a painted tile (where its text is)."""
    return bytes(img.copy(QRect(8, 5 + 148 - 26, 112, 18)).constBits())


def test_a_threshold_change_that_keeps_the_class_still_redraws_the_badge(qapp):
    """P(ALL) 0.4978 reads "0.498" at threshold 0.50 (so as not to read as ALL) and "0.50" at 0.51: still HEM,
    same review, same thumbnail, yet the badge must show the new text, not the cached tile."""
    cell = _tile_cell(0, 0.4978)
    d = TileDelegate(_Proxy([cell]), _Thumbs({}), 112)
    QPixmapCache.clear()
    assert cell.p_text(2) == "0.498"
    before = _painted(d, 0)
    cell.threshold = 0.51
    assert cell.prediction == "HEM" and cell.p_text(2) == "0.50"
    after = _painted(d, 0)
    QPixmapCache.clear()
    fresh = _painted(d, 0)
    assert after == fresh
    assert _badge_pixels(after) != _badge_pixels(before)


def test_a_review_or_a_thumbnail_arriving_redraws_the_tile(qapp):
    cell = _tile_cell(0, 0.7, flagged=True)
    thumbs = _Thumbs({})
    d = TileDelegate(_Proxy([cell]), thumbs, 112)
    QPixmapCache.clear()
    shown = [_painted(d, 0)]
    cell.review = Review(label="HEM", reviewer="ann", model_label="ALL")  # overridden: frame and badge change
    shown.append(_painted(d, 0))
    thumbs.images[cell.key] = _thumbnail(1)
    shown.append(_painted(d, 0))
    thumbs.images[cell.key] = _thumbnail(2)  # a new image of the same file (decoded again at another size)
    shown.append(_painted(d, 0))
    assert len({bytes(s.constBits()) for s in shown}) == 4
    QPixmapCache.clear()
    assert _painted(d, 0) == shown[-1]


def test_tiles_on_the_gallery_background_are_opaque(qapp):
    """Painting an opaque tile into the view is a copy, not a blend (the point of making them on the background)."""
    cell = _tile_cell(0, 0.12)
    d = TileDelegate(_Proxy([cell]), _Thumbs({}), 112, background=QColor("#16181d"))
    QPixmapCache.clear()
    _painted(d, 0)
    (pm,) = d._chromes.values()
    assert not pm.hasAlphaChannel()


def test_the_gallery_tiles_are_made_on_the_colour_the_gallery_is_filled_with(qapp):
    """An opaque tile on any other colour would show as a box around each rounded tile."""
    from gui.browser import CellBrowser
    from gui.cells import CellModel

    cell = _tile_cell(0, 0.12)
    model = CellModel()
    b = CellBrowser(model, _Thumbs({}), 112)
    b.resize(600, 400)
    b.show()
    model.add_cells([cell])
    qapp.processEvents()
    shot = b.gallery.viewport().grab().toImage()
    tile = b.gallery.visualRect(b.proxy.index(0, 0))
    corner = shot.pixelColor(tile.x(), tile.y())  # outside the rounded tile: the background shows
    far = shot.pixelColor(shot.width() - 5, shot.height() - 5)  # no tile there
    assert corner == far
    assert b.delegate._background == far
    b.close()
