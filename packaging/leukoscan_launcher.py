"""Entry script of the LeukoScan bundle (``dist/LeukoScan/LeukoScan``); see build.spec.

    LeukoScan                 the desktop app (gui.app.main)
    LeukoScan --self-test     headless check of models + sample cells (engine.selftest); never loads Qt,
                              so it also runs on a server without a display or X libraries
    LeukoScan --version       prints the version

The desktop app's start-up pre-flight (no display, missing X11 libraries: a message naming what is
missing instead of Qt's "could not find the Qt platform plugin" crash) lives in :mod:`gui.preflight`
and runs in ``gui.app.main``, so the bundle and the ``leukoscan`` entry point behave alike.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:
        from engine.selftest import main as selftest_main

        return selftest_main(argv)
    if "--version" in argv:
        from engine.selftest import app_version

        print(f"LeukoScan {app_version()}")
        return 0
    from gui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
