"""Entry point: ``leukoscan [PATH ...]`` (gui-script), ``leukoscan --self-test``, ``leukoscan --version``.

``--self-test`` and ``--version`` are handled before Qt is touched, so they work headless and in the
packaged bundle on machines without a display.  Before Qt loads, :mod:`gui.preflight` checks the
display and the X11 libraries: a missing one is named with its ``apt-get install`` line (exit 2)
instead of Qt's abort.
"""

from __future__ import annotations

import argparse
import sys


def _self_test(rest: list[str]) -> int:
    try:
        from engine.selftest import main as st
    except ImportError as exc:
        print(f"LeukoScan self-test is not available in this build ({exc}).", file=sys.stderr)
        return 2
    return int(st(rest) or 0)


def configure_runtime() -> None:
    """Process-wide settings for a responsive GUI: a shorter GIL switch interval, so the GUI thread
    gets the interpreter back quickly while decoding/classification threads run Python code."""
    sys.setswitchinterval(0.002)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="leukoscan",
        description="LeukoScan desktop app: classify folders of single-cell images (ALL vs HEM), review, "
        "export a CSV report. Research tool, not a diagnostic device.",
    )
    ap.add_argument("paths", nargs="*", help="case folders (or images) to open and classify at start")
    ap.add_argument("--model", help="model name to use: one of the model menu's (leukoscan-cli models lists them)")
    ap.add_argument(
        "--models-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also read models from this folder, after the bundled and user model folders (repeatable; "
        "as in leukoscan-cli)",
    )
    ap.add_argument("--no-restore", action="store_true", help="do not offer to restore an autosaved session")
    ap.add_argument("--self-test", action="store_true", help="run the headless self-test and exit")
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:
        sys.exit(_self_test([a for a in argv if a != "--self-test"]))
    if "--version" in argv:
        from engine import __version__

        print(f"LeukoScan {__version__}")
        sys.exit(0)
    args = parse_args(argv)
    from .preflight import report_startup_error, startup_problem

    problem = startup_problem()
    if problem:
        report_startup_error(problem)
        return 2
    configure_runtime()
    try:
        from PySide6.QtCore import QCoreApplication, Qt
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:  # e.g. libEGL/libGL missing: QtGui cannot load
        report_startup_error(f"the user interface libraries failed to load: {exc}")
        return 2

    QCoreApplication.setOrganizationName("LeukoScan")
    QCoreApplication.setApplicationName("LeukoScan")
    app = QApplication.instance() or QApplication(sys.argv[:1])  # Qt options: QT_QPA_PLATFORM etc.
    app.setAttribute(Qt.ApplicationAttribute.AA_DontShowIconsInMenus, False)

    log_file = configure_logging()
    win = build_window(args)
    install_excepthook(win, log_file)
    win.show()
    install_stop_signals(app, win)  # (the timer is the app's child: it lives as long as the event loop)
    return app.exec()


def install_stop_signals(app, win):
    """SIGTERM (and Ctrl-C in a terminal) close the window as its close button would, without a question (a
    signal has no one to answer it; every change is in the case store already): the store is closed and its
    ``.lock`` released, where the default action left the lock behind.  Python runs a signal handler only
    between bytecodes, so a timer wakes the interpreter while Qt waits for events.  Returns that timer."""
    import signal

    from PySide6.QtCore import QTimer

    def stop(signum, _frame) -> None:
        QTimer.singleShot(0, win.close_unasked)  # no "export first?" question: nobody is there to answer it

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer


#: Libraries whose INFO lines are noise in a user's log: fpdf2 subsets the PDF report's font with fontTools, which
#: logs a dozen INFO lines per report ("maxp pruned", "glyf subsetted" ...).  Their warnings still come through.
QUIET_LOGGERS = ("fontTools",)


def configure_logging():
    """Messages, warnings and errors (with tracebacks) go to ``leukoscan.log`` in the platform's log folder
    (:func:`gui.settings.user_log_dir`, where ``startup-error.log`` goes too), rotated at 2 MB, three kept."""
    import logging
    from logging.handlers import RotatingFileHandler

    from .settings import log_path

    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return path


def install_excepthook(win, log_file) -> None:
    """An unexpected error (a bug) is logged and shown once; the app and the autosaved work stay."""
    import logging
    import traceback

    shown: list[bool] = []

    def hook(etype, value, tb):
        logging.getLogger("leukoscan").error(
            "unexpected error:\n%s", "".join(traceback.format_exception(etype, value, tb))
        )
        sys.__excepthook__(etype, value, tb)
        if not shown:
            shown.append(True)
            where = f"\n\nDetails were written to {log_file}." if log_file else ""
            win.prompts.show_message(
                "Unexpected error",
                f"LeukoScan hit an unexpected error: {etype.__name__}: {value}.{where}\n\n"
                "Your reviews are autosaved. Export your report, then restart LeukoScan.",
            )

    sys.excepthook = hook


def build_window(args: argparse.Namespace):
    """The main window for parsed command-line ``args`` (folders given are opened once it runs)."""
    from PySide6.QtCore import QTimer

    from .mainwindow import MainWindow
    from .service import EngineService, model_dirs
    from .settings import Settings

    settings = Settings()
    if args.model:
        settings.model = args.model
    # None without --models-dir: the registry then finds the default folders each time it reads them
    service = EngineService(model_dirs(args.models_dir) if args.models_dir else None)
    win = MainWindow(service, settings, check_orphans=not args.no_restore)
    if args.paths:
        QTimer.singleShot(0, lambda: win.opener.open_paths(args.paths))
    return win


if __name__ == "__main__":
    sys.exit(main())
