"""Persistent user settings (QSettings, organisation "LeukoScan") and the user data folder.

The settings live in ``settings.ini`` inside the user data folder (one place, with ``sessions/``); the log goes to
the platform's log folder (:func:`user_log_dir`).
``LEUKOSCAN_DATA_DIR`` (honoured by :func:`engine.paths.user_data_dir` too) moves that folder, so tests,
benchmarks and screenshots never touch a real user's settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

ORG = "LeukoScan"
APP = "LeukoScan"
MAX_RECENT = 10
DEVICES = ("auto", "cpu", "cuda")
#: engine.card.PRECISIONS: int8 where the card says its int8 file passed the gate (auto), float32, or int8
PRECISIONS = ("auto", "fp32", "int8")


def user_data_dir() -> Path:
    """Where autosaved sessions live (engine.paths when present; platformdirs otherwise)."""
    try:
        from engine.paths import user_data_dir as engine_user_data_dir
    except ImportError:  # pragma: no cover - engine without paths module
        env = os.environ.get("LEUKOSCAN_DATA_DIR")
        if env:
            return Path(env)
        from platformdirs import user_data_dir as pd_user_data_dir

        return Path(pd_user_data_dir(APP, ORG))
    return Path(engine_user_data_dir())


def user_log_dir() -> Path:
    """Where the app's log goes (:func:`engine.paths.user_log_dir`: the platform's log folder)."""
    from engine.paths import user_log_dir as engine_user_log_dir

    return Path(engine_user_log_dir())


def log_path() -> Path:
    return user_log_dir() / "leukoscan.log"


def settings_path() -> Path:
    """The one place the settings live: ``settings.ini`` in the user data folder (beside ``sessions/``), as the
    user guide says; never the platform's own settings store."""
    return user_data_dir() / "settings.ini"


def _qsettings() -> QSettings:
    path = settings_path()
    if not path.exists() and not os.environ.get("LEUKOSCAN_DATA_DIR"):
        _adopt_native_settings(path)
    return QSettings(str(path), QSettings.Format.IniFormat)


def _adopt_native_settings(path: Path) -> None:
    """Settings written by an earlier LeukoScan to the platform store (~/.config/LeukoScan/LeukoScan.conf,
    the registry ...) are copied once into the INI file, so nothing the user set is lost."""
    old = QSettings(ORG, APP)
    keys = old.allKeys()
    if not keys:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    new = QSettings(str(path), QSettings.Format.IniFormat)
    for k in keys:
        new.setValue(k, old.value(k))
    new.sync()


class Settings:
    """Typed access to the few settings the app keeps."""

    def __init__(self) -> None:
        self._s = _qsettings()

    def _get(self, key: str, default, kind):
        v = self._s.value(key, default)
        try:
            if kind is bool:
                return v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
            return kind(v)
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value) -> None:
        self._s.setValue(key, value)
        self._s.sync()

    # reviewer name, written into reviewed rows of the report
    @property
    def reviewer(self) -> str:
        return self._get("review/reviewer", "", str).strip()

    @reviewer.setter
    def reviewer(self, v: str) -> None:
        self._set("review/reviewer", v.strip())

    @property
    def device(self) -> str:
        d = self._get("engine/device", "auto", str)
        return d if d in DEVICES else "auto"

    @device.setter
    def device(self, v: str) -> None:
        self._set("engine/device", v if v in DEVICES else "auto")

    @property
    def precision(self) -> str:
        p = self._get("engine/precision", "auto", str)
        return p if p in PRECISIONS else "auto"

    @precision.setter
    def precision(self, v: str) -> None:
        self._set("engine/precision", v if v in PRECISIONS else "auto")

    @property
    def batch_size(self) -> int:
        # 8: on a CPU as fast as 16-32, and the onnxruntime memory arena stays ~200 MB smaller
        return max(1, min(256, self._get("engine/batch_size", 8, int)))

    @batch_size.setter
    def batch_size(self, v: int) -> None:
        self._set("engine/batch_size", int(v))

    @property
    def thumb_size(self) -> int:
        return max(64, min(256, self._get("view/thumb_size", 112, int)))

    @thumb_size.setter
    def thumb_size(self, v: int) -> None:
        self._set("view/thumb_size", int(v))

    @property
    def model(self) -> str:
        return self._get("engine/model", "", str)

    @model.setter
    def model(self, v: str) -> None:
        self._set("engine/model", v)

    @property
    def auto_advance(self) -> bool:
        return self._get("review/auto_advance", True, bool)

    @auto_advance.setter
    def auto_advance(self, v: bool) -> None:
        self._set("review/auto_advance", bool(v))

    @property
    def csv_bom(self) -> bool:
        """CSV reports with a UTF-8 byte-order mark (Excel on Windows then shows non-ASCII names right); off by
        default, so the app writes the same bytes as ``leukoscan-cli`` and scripts read them as they expect."""
        return self._get("export/csv_bom", False, bool)

    @csv_bom.setter
    def csv_bom(self, v: bool) -> None:
        self._set("export/csv_bom", bool(v))

    @property
    def last_open_dir(self) -> str:
        return self._get("paths/last_open_dir", "", str)

    @last_open_dir.setter
    def last_open_dir(self, v: str) -> None:
        self._set("paths/last_open_dir", v)

    @property
    def last_export_dir(self) -> str:
        return self._get("paths/last_export_dir", "", str)

    @last_export_dir.setter
    def last_export_dir(self, v: str) -> None:
        self._set("paths/last_export_dir", v)

    @property
    def recent_folders(self) -> list[str]:
        v: Any = self._s.value("paths/recent", [])
        if isinstance(v, str):
            v = [v] if v else []
        return [str(x) for x in (v or [])][:MAX_RECENT]

    def add_recent(self, folder: str) -> None:
        items = [folder] + [f for f in self.recent_folders if f != folder]
        self._set("paths/recent", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self._set("paths/recent", [])
        self._set("paths/recent_stores", [])

    @property
    def recent_stores(self) -> list[str]:
        """Case stores (records) opened or closed lately, newest first."""
        v: Any = self._s.value("paths/recent_stores", [])
        if isinstance(v, str):
            v = [v] if v else []
        return [str(x) for x in (v or [])][:MAX_RECENT]

    def add_recent_store(self, path: str, replaces: str = "") -> None:
        items = [path] + [f for f in self.recent_stores if f not in (path, replaces)]
        self._set("paths/recent_stores", items[:MAX_RECENT])

    def value(self, key: str, default=None):
        return self._s.value(key, default)

    def set_value(self, key: str, value) -> None:
        self._set(key, value)

    def restore_layout(self, window, splitter) -> None:
        """The window's size and place and its splitter, as the last session left them."""
        if (geometry := self.value("window/geometry")) is not None:
            window.restoreGeometry(geometry)
        if (state := self.value("window/splitter")) is not None:
            splitter.restoreState(state)

    def save_layout(self, window, splitter) -> None:
        self.set_value("window/geometry", window.saveGeometry())
        self.set_value("window/splitter", splitter.saveState())
