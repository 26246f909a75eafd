"""``leukoscan-cli``: classify folders of cell images headless, list the models, export and print case files.

    leukoscan-cli classify PATH [PATH ...] --out REPORT.csv|- [--summary SUMMARY.csv] [--json] [--bom] ...
    leukoscan-cli models [--models-dir DIR] [--check] [--json]
    leukoscan-cli export CASE.leukoscan --out REPORT.csv|- [--summary SUMMARY.csv] [--reviews R.csv] [--json] ...
    leukoscan-cli report REPORT.csv|CASE.leukoscan --pdf CASE.pdf [--models-dir DIR] [--force]
    leukoscan-cli verify CASE.leukoscan
    leukoscan-cli summary STORE_OR_FOLDER [...] [-o SUMMARY.csv] [--json]
    leukoscan-cli fhir CASE.leukoscan -o REPORT.json [--case ID] [--preliminary]

One module per command (``classify`` with ``on_ray`` for ``--engine ray``, ``models``, ``export``, ``report``,
``verify``), each with ``add_parser(sub)`` and ``run(args) -> exit status``; :mod:`.common` holds what they
share.  Each command's ``--help`` ends with its exit statuses and examples.  stdout carries only data (a
report with ``--out -``, the models table, JSON with ``--json``); every message goes to stderr, errors as
one line without a traceback; ``-q``/``-v`` set how much.

Writers take the case file's lock (``CASE.leukoscan.lock``, the app's too): ``classify --store`` and ``export``
exit 2 naming the holder while another program writes it; ``export --no-bookkeeping``, ``report`` and
``verify`` only read.  Ctrl-C (130) or SIGTERM (143) stops a run and writes the cells done so far to
``<REPORT>.partial.csv``, never to REPORT.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import classify, export, fhir, models, report, summary, verify
from .common import (
    EXIT_BROKEN,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_SIGNED_OFF,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXIT_WRITE,
    PROG,
    CliError,
    Parser,
    add_verbosity,
    error,
    log,
    messages_on_stderr,
    verbosity,
)

COMMANDS = (classify, models, export, report, verify, summary, fhir)

__all__ = [
    "EXIT_BROKEN",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_SIGNED_OFF",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "EXIT_WRITE",
    "PROG",
    "CliError",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="LeukoScan headless: classify single-cell blood-smear images as ALL or HEM. "
        "`leukoscan-cli COMMAND --help` lists a command's options, exit statuses and examples.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbosity(p, 0)
    sub = p.add_subparsers(
        dest="command",
        metavar="{" + ",".join(c.__name__.rsplit(".", 1)[1] for c in COMMANDS) + "}",
        parser_class=Parser,
    )
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an unknown option after a command is that command's error, so its usage is printed (argparse
    leaves unknown options to the top-level parser, which printed the usage of ``leukoscan-cli`` itself)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second BrokenPipeError (Python's advice)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format=f"{PROG}: %(levelname)s: %(message)s")
    parser = build_parser()
    with messages_on_stderr() as set_level:
        try:
            args = parse(parser, argv)
            set_level(verbosity(args))
            return args.run(args)
        except CliError as exc:
            error(str(exc))
            return exc.code
        except KeyboardInterrupt:
            log.warning("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # e.g. `leukoscan-cli models | head`: 141, as Unix tools exit on SIGPIPE
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        except OSError as exc:  # any other I/O failure (e.g. a full disk): one line, never a traceback
            error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
            return EXIT_WRITE
