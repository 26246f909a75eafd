"""Start-up pre-flight of the desktop app, run by :func:`gui.app.main` before Qt is imported (so by the
``leukoscan`` entry point and the bundle's launcher alike).

Why: without a display, or without one of the X11 libraries Qt's xcb platform plugin loads, Qt
aborts with "could not load the Qt platform plugin xcb" (core dumped) and names nothing useful.  This
module turns that into one sentence naming what is missing and the ``apt-get install`` line that
fixes it; the message also goes to ``startup-error.log`` in the user log folder, because a
double-clicked app has no terminal.  No Qt import here: it must run where Qt cannot load.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

#: System libraries Qt 6's xcb platform plugin loads on X11 -> the Debian/Ubuntu package providing each.
XCB_LIBS = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
}


def bundle_dir() -> Path | None:
    """The PyInstaller bundle's library folder when frozen (it may carry some of the libraries)."""
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass) if meipass else None


def missing_libraries(names=tuple(XCB_LIBS), bundle_dir: Path | None = None) -> list[str]:
    """Shared libraries from ``names`` that neither the system loader nor the bundle can provide."""
    missing = []
    for name in names:
        if bundle_dir is not None and (bundle_dir / name).exists():
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def install_hint(libraries: list[str]) -> str:
    """The Debian/Ubuntu command that installs the packages providing ``libraries``."""
    packages = dict.fromkeys(XCB_LIBS.get(lib, lib) for lib in libraries)
    return "sudo apt-get install " + " ".join(packages)


def linux_display_problem(env=os.environ, bundle_dir: Path | None = None) -> str | None:
    """A sentence explaining why Qt will not be able to open a window, or None if it should.

    Only checks what can be checked cheaply before Qt loads: a display to connect to, and the
    libraries of the xcb plugin when X11 will be used.
    """
    platform = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if platform in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return None
    has_x = bool(env.get("DISPLAY"))
    has_wayland = bool(env.get("WAYLAND_DISPLAY"))
    if platform == "wayland":
        return None if has_wayland else "QT_QPA_PLATFORM=wayland but WAYLAND_DISPLAY is not set"
    if not has_x and not has_wayland:
        return (
            "no graphical display found (neither DISPLAY nor WAYLAND_DISPLAY is set). Start LeukoScan from "
            "the desktop session, or run 'LeukoScan --self-test' for a headless check."
        )
    if platform in ("", "xcb") and has_x and not (has_wayland and platform == ""):
        missing = missing_libraries(bundle_dir=bundle_dir)
        if missing:
            return (
                "Qt's X11 (xcb) platform plugin cannot load; missing system libraries: "
                + ", ".join(missing)
                + f". On Debian/Ubuntu: {install_hint(missing)}"
            )
    return None


def startup_problem() -> str | None:
    """What will keep the app's window from opening on this machine, or None (checked on Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    return linux_display_problem(bundle_dir=bundle_dir())


def report_startup_error(message: str) -> None:
    """Tell the user why the app cannot start: stderr, ``startup-error.log``, a message box on Windows."""
    text = f"LeukoScan cannot start: {message}"
    if sys.stderr is not None:
        print(text, file=sys.stderr)
    try:
        from engine.paths import user_log_dir  # the app log's folder: LEUKOSCAN_LOG_DIR and LEUKOSCAN_DATA_DIR apply

        log_dir = user_log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "startup-error.log").write_text(text + "\n", encoding="utf-8")
    except Exception:
        pass
    if sys.platform == "win32":  # windowed build: no console, so show a message box
        try:
            ctypes.windll.user32.MessageBoxW(None, text, "LeukoScan", 0x10)
        except Exception:
            pass
