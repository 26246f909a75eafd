"""engine.paths: source tree, PyInstaller bundle, environment overrides."""

from __future__ import annotations

import sys
from pathlib import Path

from engine import paths


def test_source_tree_resources():
    assert paths.resources_dir() == Path(__file__).resolve().parents[2] / "resources"
    assert paths.models_dir() == paths.resources_dir() / "models"


def test_frozen_bundle_uses_meipass(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.is_frozen()
    assert paths.resources_dir() == tmp_path.resolve() / "resources"
    assert paths.models_dir() == tmp_path.resolve() / "resources" / "models"


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("LEUKOSCAN_DATA_DIR", str(tmp_path / "ud"))
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "res"))
    assert paths.user_data_dir() == (tmp_path / "ud").resolve()
    assert paths.user_models_dir() == (tmp_path / "ud" / "models").resolve()
    assert paths.resources_dir() == (tmp_path / "res").resolve()
    assert not (tmp_path / "ud").exists()  # nothing is created by asking


def test_platformdirs_default(monkeypatch):
    monkeypatch.delenv("LEUKOSCAN_DATA_DIR", raising=False)
    d = paths.user_data_dir()
    assert d.is_absolute() and "LeukoScan" in d.parts
