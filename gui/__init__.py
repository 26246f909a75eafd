"""LeukoScan desktop app (PySide6).

Only :mod:`gui.service` calls the engine; everything slow (scanning folders, loading models,
classifying, writing reports and autosaves, decoding thumbnails) runs off the GUI thread.
"""

from engine import __version__  # one version for the whole app

__all__ = ["__version__"]
