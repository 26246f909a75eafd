"""The ``leukoscan`` entry point (gui.app.main) names a missing X11 library with its apt-get line and
exits 2, instead of Qt's "could not load the Qt platform plugin xcb" abort (core dumped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui import preflight

REPO = Path(__file__).resolve().parents[2]

# libxcb-icccm.so.4 "not installed": the loader refuses it, as on a machine without libxcb-icccm4.
START_WITHOUT_ICCCM = """
import ctypes, sys
real = ctypes.CDLL
def cdll(name, *args, **kwargs):
    if name == "libxcb-icccm.so.4":
        raise OSError(name + ": cannot open shared object file: No such file or directory")
    return real(name, *args, **kwargs)
ctypes.CDLL = cdll
from gui.app import main
rc = main([])
print("Qt loaded" if "PySide6.QtWidgets" in sys.modules else "Qt not loaded")
sys.exit(rc)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 pre-flight")
def test_entry_point_names_a_missing_xcb_library_instead_of_aborting(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY") and not k.startswith("XDG_")
    }
    env.update(DISPLAY=":93", HOME=str(tmp_path), LEUKOSCAN_DATA_DIR=str(tmp_path / "data"))
    r = subprocess.run(
        [sys.executable, "-c", START_WITHOUT_ICCCM], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "LeukoScan cannot start: Qt's X11 (xcb) platform plugin cannot load" in r.stderr
    assert "libxcb-icccm.so.4" in r.stderr and "sudo apt-get install libxcb-icccm4" in r.stderr
    assert r.stdout.strip() == "Qt not loaded"
    (log,) = tmp_path.rglob("startup-error.log")
    assert "libxcb-icccm4" in log.read_text()


def test_startup_error_log_goes_to_leukoscan_log_dir(tmp_path, monkeypatch, capsys):
    """Issue 28 item 8: startup-error.log ignored LEUKOSCAN_LOG_DIR (the app's own log honoured it)."""
    monkeypatch.setenv("LEUKOSCAN_LOG_DIR", str(tmp_path / "logs"))
    preflight.report_startup_error("no display")
    assert (tmp_path / "logs" / "startup-error.log").read_text() == "LeukoScan cannot start: no display\n"
    assert "LeukoScan cannot start: no display" in capsys.readouterr().err


def test_install_hint_names_each_package_once():
    assert preflight.install_hint(["libEGL.so.1", "libGL.so.1", "libEGL.so.1"]) == "sudo apt-get install libegl1 libgl1"


def test_offscreen_and_other_systems_need_no_display(monkeypatch):
    assert preflight.linux_display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    monkeypatch.setattr(sys, "platform", "win32")
    assert preflight.startup_problem() is None
