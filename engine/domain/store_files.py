"""What lies beside a case file: the one rule for its side files.

SQLite keeps ``<store>-wal`` and ``<store>-shm`` beside a database in WAL mode (a read-only connection makes them
too) and ``<store>-journal`` in rollback mode; LeukoScan's write lock is ``<store>.lock`` (beside a symlink's target: :func:`engine.case.lock.lock_path`).  Whoever moves, names,
checks or removes a store asks here, so no caller forgets one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LOCK", "SQLITE_FILES", "WAL_FILES", "store_paths"]

LOCK = ".lock"
#: What SQLite keeps beside a store in WAL mode (and makes for a read-only connection).
WAL_FILES = ("-wal", "-shm")
#: Every file SQLite may keep beside a store.
SQLITE_FILES = (*WAL_FILES, "-journal")


def store_paths(store: str | os.PathLike[str], *, lock: bool = False) -> list[Path]:
    """The store and every SQLite file beside it (``lock``: and its lock file), the store first."""
    base = os.fspath(store)
    return [Path(base), *(Path(base + s) for s in SQLITE_FILES), *([Path(base + LOCK)] if lock else [])]
