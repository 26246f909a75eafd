"""Entry script of the LeukoScan bundle (``dist/LeukoScan/LeukoScan``); see build.spec.

    LeukoScan                 the desktop app (gui.app.main)
    LeukoScan --self-test     headless check of models + sample cells (engine.selftest); never loads Qt,
                              so it also runs on a server without a display or X libraries
    LeukoScan --version       prints the version

Before Qt is imported, a Linux pre-flight check turns the classic "could not find the Qt platform
plugin" crash (no display, or the X11 libraries Qt's xcb plugin needs are missing) into a message that
names what is missing; the message also goes to ``startup-error.log`` in the user log folder, because
a double-clicked app has no terminal.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

#: System libraries Qt 6's xcb platform plugin loads on X11 (Debian/Ubuntu package names in DEB_HINT).
XCB_LIBS = (
    "libxcb-cursor.so.0",
    "libxkbcommon-x11.so.0",
    "libxcb-icccm.so.4",
    "libxcb-image.so.0",
    "libxcb-keysyms.so.1",
    "libxcb-randr.so.0",
    "libxcb-render-util.so.0",
    "libxcb-shape.so.0",
    "libxcb-xkb.so.1",
    "libEGL.so.1",
    "libGL.so.1",
)
DEB_HINT = (
    "sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 "
    "libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libegl1 libgl1"
)


def _bundle_dir() -> Path | None:
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass) if meipass else None


def missing_libraries(names=XCB_LIBS, bundle_dir: Path | None = None) -> list[str]:
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
                + f". On Debian/Ubuntu: {DEB_HINT}"
            )
    return None


def _report_startup_error(message: str) -> None:
    text = f"LeukoScan cannot start: {message}"
    if sys.stderr is not None:
        print(text, file=sys.stderr)
    try:
        from platformdirs import user_log_dir

        log_dir = Path(user_log_dir("LeukoScan", appauthor=False))
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "startup-error.log").write_text(text + "\n", encoding="utf-8")
    except Exception:
        pass
    if sys.platform == "win32":  # windowed build: no console, so show a message box
        try:
            ctypes.windll.user32.MessageBoxW(None, text, "LeukoScan", 0x10)
        except Exception:
            pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:
        from engine.selftest import main as selftest_main

        return selftest_main(argv)
    if "--version" in argv:
        from engine.selftest import app_version

        print(f"LeukoScan {app_version()}")
        return 0
    if sys.platform.startswith("linux"):
        problem = linux_display_problem(bundle_dir=_bundle_dir())
        if problem:
            _report_startup_error(problem)
            return 2
    try:
        from gui.app import main as gui_main
    except ImportError as exc:  # e.g. libEGL/libGL missing: QtGui cannot load
        _report_startup_error(f"the user interface libraries failed to load: {exc}")
        return 2
    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
