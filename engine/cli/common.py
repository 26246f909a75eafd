"""What every ``leukoscan-cli`` command shares: exit statuses, errors, messages (logging on stderr), output-path
checks, the rescue of a report that cannot be written, ``--out -`` (stdout), the JSON summaries."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..preprocess import is_supported
from ..registry import Registry, model_dirs

if TYPE_CHECKING:
    from ..report import ReportRow

PROG = "leukoscan-cli"
EXIT_OK, EXIT_WRITE, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
EXIT_BROKEN = 4  # the case file's record is broken (leukoscan-cli verify says where)
EXIT_SIGNED_OFF = 5  # classify --store would change a signed-off case and no --reopen REASON was given
EXIT_NOT_THE_CASE = 6  # classify --store: the folder's images are another sample's than the case stored for it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`leukoscan-cli ... | head`), as Unix tools do
#: Signals that stop a run cleanly (partial report), and the exit status each gives.
STOP_SIGNALS: dict[int, int] = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}
#: ``--out -``: the report goes to stdout (compared by ``is_stdout``: a checked path is absolute, never "-").
STDOUT = Path("-")

log = logging.getLogger("engine.cli")


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's usage block is still printed first)
        self.print_usage(sys.stderr)
        raise CliError(message, EXIT_USAGE)


def epilog(codes: Sequence[str], *examples: str) -> str:
    """The end of a command's ``--help``: its exit statuses ("N meaning" each) and examples
    (RawDescriptionHelpFormatter keeps the lines)."""
    lines = [textwrap.fill(c, width=100, initial_indent="  ", subsequent_indent="       ") for c in codes]
    return "exit status:\n" + "\n".join(lines) + "\n\nexamples:\n" + "\n".join(f"  {e}" for e in examples)


def add_command(sub, name: str, help: str, codes: Sequence[str], *examples: str) -> argparse.ArgumentParser:
    """A sub-command's parser with the options every command has (``-q``/``-v``) and its epilog."""
    p = sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=epilog(codes, *examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbosity(p, argparse.SUPPRESS)  # SUPPRESS: not given here keeps the value given before the command
    return p


def add_models_dir(
    p: argparse.ArgumentParser,
    help: str = "also read model cards from this folder, after the bundled and user ones (repeatable)",
) -> None:
    """--models-dir: folders added after the bundled and user ones (:func:`engine.registry.model_dirs`), as in
    the app."""
    p.add_argument("--models-dir", action="append", default=[], metavar="DIR", help=help)


def add_report_options(p: argparse.ArgumentParser) -> None:
    """-o/--out, --summary, --bom and --delimiter: the reports every command that writes them writes alike."""
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="REPORT.csv",
        help="per-cell CSV report to write; - writes it to stdout (messages stay on stderr)",
    )
    p.add_argument("--summary", metavar="SUMMARY.csv", help="also write a per-folder summary CSV")
    p.add_argument(
        "--bom",
        "--excel",
        action="store_true",
        dest="bom",
        help="write the CSV files with a UTF-8 byte-order mark, so that Excel on Windows shows "
        "non-ASCII names right (default: none, as scripts expect)",
    )
    add_delimiter(p)


def add_delimiter(p: argparse.ArgumentParser) -> None:
    """--delimiter: the CSV field separator (``;`` for Excel in decimal-comma locales)."""
    from ..report import DELIMITERS

    p.add_argument(
        "--delimiter",
        default=",",
        choices=sorted(DELIMITERS, key=len),
        metavar="{',',';',tab}",
        help="CSV field separator: , (default), ; (semicolon: what Excel and LibreOffice expect where the decimal "
        "separator is a comma, e.g. de, fr, nl) or tab; numbers keep their decimal point",
    )


def delimiter(args) -> str:
    from ..report import DELIMITERS

    return DELIMITERS[getattr(args, "delimiter", ",") or ","]


def add_verbosity(p: argparse.ArgumentParser, default) -> None:
    p.add_argument(
        "-q", "--quiet", action="count", default=default, help="only warnings and errors on stderr (no progress bar)"
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="also the details (model folders, settings) and the engine's log messages; -vv: the engine's debug "
        "lines too (e.g. each batch's decoding and inference time)",
    )


def verbosity(args) -> int:
    return int(getattr(args, "verbose", 0) or 0) - int(getattr(args, "quiet", 0) or 0)


class _Stderr(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (a caller or a test may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _set_level(level: int) -> None:
    """-1 (``-q``): warnings and errors; 0: the run's account too; 1 (``-v``): the CLI's details (model folders,
    settings) and the engine's INFO lines; 2 (``-vv``): the engine's DEBUG lines too."""
    logging.getLogger("engine").setLevel(logging.ERROR if level <= 0 else logging.INFO if level == 1 else logging.DEBUG)
    log.setLevel(logging.WARNING if level < 0 else logging.INFO if level == 0 else logging.DEBUG)


@contextmanager
def messages_on_stderr():
    """Every message of the CLI (logger ``engine.cli``) and, with ``-v``, the engine's own log lines go to
    stderr as ``leukoscan-cli: ...``; stdout carries only data (a report, a table, JSON).  Yields the
    function that sets the level (:func:`_set_level`); everything is as before on leaving."""
    engine_log = logging.getLogger("engine")
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    saved = engine_log.level, engine_log.propagate, log.level
    engine_log.addHandler(handler)
    engine_log.propagate = False  # the root handler prints the other libraries' errors, not these twice
    _set_level(0)
    try:
        yield _set_level
    finally:
        engine_log.removeHandler(handler)
        engine_log.setLevel(saved[0])
        engine_log.propagate = saved[1]
        log.setLevel(saved[2])


def say(msg: str) -> None:
    log.info(msg)


def warn(msg: str) -> None:
    log.warning(f"warning: {msg}")


def error(msg: str) -> None:
    log.error(f"error: {msg}")


def emit_json(schema: str, data: dict) -> None:
    """One JSON document on stdout: ``{"schema": "leukoscan.<command>/<major>", "leukoscan_version": ..., ...}``
    (docs/cli.md "JSON output"; a new field keeps the major number, a changed or removed one bumps it).  UTF-8
    bytes whatever the console's code page (JSON's encoding; a cp1252 console could not print every path)."""
    text = json.dumps({"schema": schema, "leukoscan_version": __version__, **data}, indent=2, ensure_ascii=False)
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")
    sys.stdout.buffer.flush()


def registry(extra: Sequence[str]) -> Registry:
    """``--models-dir`` adds folders after the bundled and user ones (the app's option means the same)."""
    dirs = model_dirs(extra)
    log.debug("model folders: " + ", ".join(map(str, dirs)))
    return Registry(dirs)


def take_lock(path: Path, program: str):
    """The case file's write lock (one protocol with the app); exit 2 naming the holder when it is taken."""
    from ..case.lock import StoreLock, StoreLocked

    lock = StoreLock(path, program)
    try:
        lock.acquire()
    except StoreLocked as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot lock the case file {path} ({exc.strerror or exc})") from None
    if lock.took_over:
        warn(lock.took_over)
    return lock


def refuse_broken(store) -> None:
    """Exit 4 (nothing written, nothing changed) when the case file's record is broken."""
    problem = store.verify()
    if problem is not None:
        raise broken(store.path, problem)


def broken(path, problem) -> CliError:
    return CliError(
        f"{path}: the case record is broken: {problem}; nothing was written and nothing in "
        f"it was changed (leukoscan-cli verify {path})",
        EXIT_BROKEN,
    )


# -------------------------------------------------------------------------------------- output files


def real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def same_file(a: Path, b: Path) -> bool:
    """Same file by real path (symlinks resolved) or by inode (hard links)."""
    if is_stdout(a) or is_stdout(b):
        return False
    if real(a) == real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def is_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == "-"


def _read_only(path: Path) -> bool:
    """An existing file the user cannot write, or that is marked read-only (root may write a 0444 one)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not os.access(path, os.W_OK) or not st.st_mode & 0o222


def check_output(path: Path, label: str, inputs: set[str], force: bool = False, stdout: bool = False) -> Path:
    """The absolute output path, checked before any work (exit 2 when unusable); ``-`` is :data:`STDOUT`
    where ``stdout`` allows it."""
    if str(path) == "-":
        if stdout:
            return STDOUT
        raise CliError(f"{label} cannot be - (only --out writes to stdout)")
    path = Path(os.path.abspath(path.expanduser()))
    if path.is_dir():
        raise CliError(f"{label} {path} is a folder; give a file name such as report.csv")
    if is_supported(path) or real(path) in inputs:
        raise CliError(f"{label} {path} is an image file; refusing to overwrite an input image (use a .csv name)")
    folder = path.parent
    if not folder.is_dir():
        raise CliError(f"{label}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".leukoscan-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CliError(f"{label}: cannot write in {folder} ({exc.strerror or exc})") from None
    if not force and _read_only(path):
        raise CliError(f"{label} {path} exists and is read-only; refusing to replace it (use --force to replace it)")
    return path


def write_stdout(rows: Iterable[ReportRow], bom: bool, delimiter: str = ",") -> None:
    from ..report import write_cell_report_stream

    sys.stdout.flush()
    write_cell_report_stream(sys.stdout.buffer, rows, bom=bom, delimiter=delimiter)
    sys.stdout.buffer.flush()


def write_or_rescue(kind: str, path: Path, writer, rows) -> tuple[Path, bool]:
    """Write; if the target fails (disk full, permissions changed mid-run), save in the temp folder.
    ``path`` :data:`STDOUT`: the per-cell rows go to stdout (``writer`` then only says the BOM: ``writer.keywords``).

    Raises :class:`CliError` (exit 1, one line) when the temp folder fails too (both disks full)."""
    if is_stdout(path):
        keywords = getattr(writer, "keywords", {})
        write_stdout(rows, bool(keywords.get("bom")), keywords.get("delimiter", ","))
        return STDOUT, True
    try:
        return writer(path, rows), True
    except OSError as exc:
        first = exc.strerror or str(exc)
    rescue = Path(f"leukoscan-{time.strftime('%Y%m%d-%H%M%S')}-{path.name}")
    try:
        rescue = Path(tempfile.gettempdir()) / rescue  # raises when no temp folder is writable
        writer(rescue, rows)
    except OSError as exc:
        raise CliError(
            f"cannot write {kind} {path} ({first}), nor a copy in the temp folder "
            f"({exc.strerror or exc}); nothing was saved",
            EXIT_WRITE,
        ) from None
    warn(f"cannot write {kind} {path} ({first}); {kind} saved instead to {rescue}")
    return rescue, False


def shown(path: Path | None) -> str | None:
    """A written file as the JSON summaries name it: the path, ``-`` for stdout, null for none."""
    return None if path is None else str(path)


def counts_json(rows: Iterable[ReportRow]) -> dict:
    """The counts of a run's per-cell rows (the one case rule, :class:`engine.case.rules.CaseCounts`), with
    ``in_review_band`` and ``flag_reasons`` (reason -> cells; :func:`engine.report.flag_counts`)."""
    from ..report import count_rows, flag_counts

    rows = list(rows)
    cc = count_rows(rows)
    flags = flag_counts(rows)
    return {
        "cells": cc.cells,
        "classified": cc.classified,
        "all": cc.all,
        "hem": cc.hem,
        "flagged": cc.flagged,
        "in_review_band": flags.pop("in_review_band"),
        "flag_reasons": flags,
        "reviewed": cc.reviewed,
        "review_open": cc.review_open,
        "qc_failed": cc.qc,
        "excluded": cc.excluded,
        "unreadable": cc.errors,
        "not_classified": cc.pending,
    }
