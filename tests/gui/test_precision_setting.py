"""The app's model precision setting (issue 29): auto runs a card's int8 file when its gate passed, and a change in
Settings reloads the model at the new precision."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from gui_helpers import RUN_TIMEOUT_MS, make_window  # noqa: F401  (fixture)
from tinymodels import add_tiny_int8, make_tiny_model

from gui.dialogs import SettingsDialog
from gui.settings import Settings


@pytest.fixture
def int8_models(tmp_path):
    d = tmp_path / "models"
    calib = np.random.default_rng(0).uniform(0, 60, (16, 32, 32, 3)).astype(np.float32)
    add_tiny_int8(make_tiny_model(d, "quick", seed=0), passed=True, calib=calib)
    return d


def test_auto_loads_int8_and_settings_switch_to_float32(qtbot, make_window, int8_models, monkeypatch):
    w = make_window(models_dir=int8_models)
    chooser = w.model_chooser
    assert w.settings.precision == "auto"
    assert chooser.classifier.precision == "int8" and "int8" in chooser.device_label.text()

    def choose_fp32(dlg):
        dlg.precision.setCurrentIndex(1)
        return True

    monkeypatch.setattr(SettingsDialog, "exec", choose_fp32)
    w.settings_dialog()
    qtbot.waitUntil(lambda: chooser.classifier.precision == "fp32", timeout=RUN_TIMEOUT_MS)
    assert "int8" not in chooser.device_label.text()
    assert Settings().precision == "fp32"  # kept for the next start


def test_explicit_int8_for_a_model_without_one_says_why(qtbot, make_window, monkeypatch):
    from gui.prompts import Prompts

    shown = []
    monkeypatch.setattr(Prompts, "show_message", lambda self, title, text: shown.append(text))
    make_window(precision="int8", wait_model=False)
    qtbot.waitUntil(lambda: bool(shown), timeout=RUN_TIMEOUT_MS)
    assert "has no int8 file" in shown[0] and "use fp32 or auto" in shown[0]
