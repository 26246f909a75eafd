"""Where LeukoScan finds its bundled resources and the per-user folder.

- ``resources_dir()``: ``resources/`` of the source tree, or of the PyInstaller bundle when frozen
  (``sys._MEIPASS``).  ``LEUKOSCAN_RESOURCES_DIR`` overrides it (tests, unusual installs).
- ``models_dir()``: ``resources/models`` — the models shipped with the app (read-only).
- ``user_data_dir()``: the per-user LeukoScan folder (platformdirs; e.g. ``~/.local/share/LeukoScan``,
  ``%LOCALAPPDATA%\\LeukoScan\\LeukoScan``, ``~/Library/Application Support/LeukoScan``).
  ``LEUKOSCAN_DATA_DIR`` overrides it.
- ``user_models_dir()``: ``<user_data_dir>/models`` — where a lab drops extra models (ONNX + card).
- ``user_cache_dir()``: the per-user cache folder (``LEUKOSCAN_CACHE_DIR`` overrides it): training caches.
- ``user_log_dir()``: the platform's per-user log folder (platformdirs; ``~/.local/state/LeukoScan/log``,
  ``%LOCALAPPDATA%\\LeukoScan\\Logs``, ``~/Library/Logs/LeukoScan``).  ``LEUKOSCAN_LOG_DIR`` overrides it;
  with ``LEUKOSCAN_DATA_DIR`` set it is ``<user_data_dir>/logs``.

None of these functions creates a folder; callers that write create what they need.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "LeukoScan"
APP_AUTHOR = "LeukoScan"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resources_dir() -> Path:
    env = os.environ.get("LEUKOSCAN_RESOURCES_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if is_frozen():
        return Path(sys._MEIPASS).resolve() / "resources"  # type: ignore[attr-defined]
    return Path(__file__).resolve().parent.parent / "resources"


def models_dir() -> Path:
    return resources_dir() / "models"


def user_data_dir() -> Path:
    env = os.environ.get("LEUKOSCAN_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_data_dir as _pd_user_data_dir

    return Path(_pd_user_data_dir(APP_NAME, APP_AUTHOR))


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def user_cache_dir() -> Path:
    """The per-user cache folder (platformdirs; e.g. ``~/.cache/LeukoScan``): ``leukoscan-train``'s manifests and
    pixel and feature caches (``<cache>/training``), never the working directory.  ``LEUKOSCAN_CACHE_DIR``
    overrides it."""
    env = os.environ.get("LEUKOSCAN_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_cache_dir as _pd_user_cache_dir

    return Path(_pd_user_cache_dir(APP_NAME, APP_AUTHOR))


def user_log_dir() -> Path:
    """Where the app's log lives: the platform's log folder, where ``startup-error.log`` goes too (one place to
    look).  A moved data folder (``LEUKOSCAN_DATA_DIR``: tests, benchmarks, screenshots) takes the log with it, so
    those never write into a real user's log."""
    env = os.environ.get("LEUKOSCAN_LOG_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if os.environ.get("LEUKOSCAN_DATA_DIR"):
        return user_data_dir() / "logs"
    from platformdirs import user_log_dir as _pd_user_log_dir

    return Path(_pd_user_log_dir(APP_NAME, appauthor=False))
