"""``leukoscan-train``'s log: the console as before, and ``RUN/train.log`` with dates (stdlib logging).

A run takes hours and is resumed across sessions and machines: the console scrolls away, ``RUN/train.log``
keeps every line of every attempt (appended, one header per start with the command line), each with its date,
time and UTC offset.  Recipes keep taking a plain ``log(msg)`` callable (tests pass ``list.append``);
:func:`setup` returns one that writes to both.  Progress lines (:mod:`training.progress`) go through the same
logger, ``training``: a record with ``file_only=True`` reaches the file but not the console (a terminal shows a
live bar instead).
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

LOGGER = "training"
LOG_NAME = "train.log"
CONSOLE_FORMAT = "[%(asctime)s] %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
FILE_DATES = "%Y-%m-%d %H:%M:%S%z"


class _ConsoleOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def setup(run_dir: str | Path | None, argv: list[str] | None = None, stream=None) -> Callable[[str], None]:
    """Log to the console (``stream``, default stderr: messages, never data, ``[HH:MM:SS] message``) and, given ``run_dir``,
    append to ``run_dir/train.log``.  Called again (tests, one process running two commands) it replaces the
    handlers it added before.  Returns ``log(msg)``."""
    logger = logging.getLogger(LOGGER)
    for h in [h for h in logger.handlers if getattr(h, "_leukoscan_train", False)]:
        logger.removeHandler(h)
        h.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the app's or a test's root handlers do not print every line twice
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT, "%H:%M:%S"))
    console.addFilter(_ConsoleOnly())
    handlers: list[logging.Handler] = [console]
    if run_dir is not None:
        path = Path(run_dir) / LOG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(path, mode="a", encoding="utf-8")
        file.setFormatter(logging.Formatter(FILE_FORMAT, FILE_DATES))
        handlers.append(file)
    for h in handlers:
        h._leukoscan_train = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    if run_dir is not None:
        cmd = " ".join(shlex.quote(a) for a in (["leukoscan-train"] + list(sys.argv[1:] if argv is None else argv)))
        logger.info("---- %s", cmd, extra={"file_only": True})
    return logger.info


def log_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOG_NAME
