"""Entry script of the LeukoScan bundle (``dist/LeukoScan/LeukoScan``); see build.spec.

    LeukoScan                 the desktop app (gui.app.main)
    LeukoScan --self-test     headless check of models + sample cells (engine.selftest); never loads Qt,
                              so it also runs on a server without a display or X libraries
    LeukoScan --version       prints the version
    LeukoScan cli ARGS...     the headless ``leukoscan-cli`` (engine.cli), never loads Qt
    leukoscan-cli ARGS...     the same: the bundle's second executable (build.spec; a console program on
                              Windows, where LeukoScan.exe has no console to print to)

The desktop app's start-up pre-flight (no display, missing X11 libraries: a message naming what is
missing instead of Qt's "could not find the Qt platform plugin" crash) lives in :mod:`gui.preflight`
and runs in ``gui.app.main``, so the bundle and the ``leukoscan`` entry point behave alike.
"""

from __future__ import annotations

import os
import sys

#: The name of the bundle's console executable: started under it, the launcher is ``leukoscan-cli``.
CLI_NAME = "leukoscan-cli"


def cli_args(argv: list[str], executable: str) -> list[str] | None:
    """The ``leukoscan-cli`` arguments when this start is the CLI (``leukoscan-cli ...`` or ``LeukoScan cli
    ...``), else None."""
    name = os.path.splitext(executable.replace("\\", "/").rsplit("/", 1)[-1])[0].lower()
    if name == CLI_NAME:
        return argv
    if argv[:1] == ["cli"]:
        return argv[1:]
    return None


def main(argv: list[str] | None = None, executable: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = cli_args(argv, sys.executable if executable is None else executable)
    if cli is not None:
        from engine.cli_entry import main as cli_main

        return cli_main(cli)
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
