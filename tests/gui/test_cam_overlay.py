"""The preview's class-activation overlay (issue 19): computed for the cell on screen, off the GUI thread."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("onnx")

from conftest import CELLS_SRC
from gui_helpers import settled
from tinymodels import make_tiny_model

from engine.case.kinds import CellStatus
from engine.registry import Registry
from training.cam import add_cam_output, update_card_sha256

CELL = sorted(CELLS_SRC.glob("*.webp"))[0]


@dataclass
class _Cell:  # what the overlay reads of a gui.cells.Cell
    path: Path
    status: CellStatus = CellStatus.OK

    @property
    def key(self) -> str:
        return str(self.path)


@pytest.fixture
def models(tmp_path):
    card = make_tiny_model(tmp_path, name="with_cam", size=32)
    add_cam_output(card.with_suffix(".onnx"))
    update_card_sha256(card)
    make_tiny_model(tmp_path, name="without", size=32)
    reg = Registry([tmp_path])
    return {n: reg.load(n, device="cpu") for n in ("with_cam", "without")}


def _overlay(qtbot, models, name):
    from gui.cam_overlay import CamOverlay
    from gui.imageview import ImageView

    view = ImageView()
    qtbot.addWidget(view)
    current = {"clf": models[name]}
    cam = CamOverlay(view, lambda: current["clf"])
    lines = []
    cam.status.connect(lines.append)
    return view, cam, lines, current


def test_overlay_of_the_shown_cell_red_towards_all_blue_towards_hem(qtbot, models):
    view, cam, lines, _ = _overlay(qtbot, models, "with_cam")
    cam.show(_Cell(CELL))
    assert view.overlay is None and lines[-1] == ""  # off until the toggle: nothing computed
    cam.set_enabled(True)
    qtbot.waitUntil(lambda: view.overlay is not None, timeout=10_000)
    img = view.overlay
    assert (img.width(), img.height()) == (128, 128)
    # the tiny model's map is brightness: the bright cell pushes towards ALL (red); the black frame (which it would
    # paint blue) is never coloured: the overlay is the cell's only (issue 26 item 12)
    centre, corner = img.pixelColor(64, 64), img.pixelColor(1, 1)
    assert centre.red() > centre.blue() and centre.alpha() > 0 and corner.alpha() == 0
    assert lines[-1].startswith("Red: pushed towards ALL, blue: towards HEM (with_cam). Map resolution 32×32")
    assert "each square = 14 image pixels" in lines[-1]  # 450 px / 32: read from the model's output shape
    cam.set_enabled(False)
    assert view.overlay is None
    cam.set_enabled(True)  # the same cell again: from the cache, at once
    assert view.overlay is not None
    cam.close()


def test_a_model_without_the_output_or_a_pending_cell_says_why(qtbot, models, tmp_path):
    view, cam, lines, current = _overlay(qtbot, models, "without")
    cam.set_enabled(True)
    cam.show(_Cell(CELL))
    assert view.overlay is None and "without has no class-activation output" in lines[-1]
    current["clf"] = None
    cam.show(_Cell(CELL))
    assert lines[-1] == "No model is loaded."
    current["clf"] = models["with_cam"]
    cam.show(_Cell(CELL, CellStatus.PENDING))
    assert view.overlay is None and "classified cell" in lines[-1]
    cam.show(_Cell(tmp_path / "gone.png"))
    qtbot.waitUntil(lambda: lines[-1].startswith("No overlay:"), timeout=10_000)
    assert view.overlay is None
    cam.close()


def test_a_late_map_of_the_previous_cell_is_dropped(qtbot, models, tmp_path):
    view, cam, lines, _ = _overlay(qtbot, models, "with_cam")
    cam.set_enabled(True)
    other = sorted(CELLS_SRC.glob("*.webp"))[-1]
    cam.show(_Cell(CELL))
    first = cam._task
    assert first is not None
    cam.show(_Cell(other))  # before the first map arrived
    qtbot.waitUntil(lambda: lines[-1].startswith("Red"), timeout=10_000)
    settled(qtbot, first)  # the first cell's map would have arrived by now
    assert cam._shown == ("with_cam", str(other)) and list(cam._cache) == [("with_cam", str(other))]
    cam.close()


def test_preview_panel_has_the_toggle(qtbot):
    from gui.preview import PreviewPanel

    panel = PreviewPanel(lambda: None, lambda cell: False)
    qtbot.addWidget(panel)
    assert panel.btn_cam.isCheckable() and not panel.cam.enabled
    panel.btn_cam.setChecked(True)
    assert panel.cam.enabled
    panel.close_loader()


def test_the_overlay_never_paints_the_black_background_and_says_how_coarse_it_is(qtbot, models):
    """Issue 26 item 12: InceptionV3's 4x4 map painted the black background, its strongest red in an empty corner."""
    import numpy as np
    from PIL import Image

    from engine.cam import FOREGROUND_MIN, cell_cam
    from gui.cam_overlay import cam_image, cam_legend

    r = cell_cam(models["with_cam"], CELL)
    gh, gw = r.values.shape
    background = np.asarray(Image.open(CELL).convert("RGB").resize((gw, gh), Image.Resampling.BOX)).max(axis=2)
    img = cam_image(r.on_cell, r.cell_scale)
    alpha = np.array([[img.pixelColor(x, y).alpha() for x in range(gw)] for y in range(gh)])
    assert (background <= FOREGROUND_MIN).any() and (alpha[background <= FOREGROUND_MIN] == 0).all()
    assert (alpha[background > 4 * FOREGROUND_MIN] > 0).mean() > 0.9  # the cell itself is coloured
    assert r.resolution == (32, 32) and r.square_px == 450 / 32
    assert "Map resolution 32×32 of the model input, each square = 14 image pixels" in cam_legend(r)
