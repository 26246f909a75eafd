"""Atomic file writes: a temp file in the target's folder, fsync, then rename over the target.

A reader (or a crash) never sees a half-written report or session file; on any error the temp file is
removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_open(path: str | Path, *, public: bool = False, **open_kwargs) -> Iterator[IO]:
    """Open a text file for writing that replaces ``path`` only when the ``with`` block succeeds.

    ``open_kwargs`` go to :func:`open` (encoding, errors, newline).  ``public=True`` gives the file the
    ordinary permissions of the umask (a report); otherwise it keeps mkstemp's owner-only 0600.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if public:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
