"""Safe file I/O: atomic writes, and bounded reads of regular files only.

Writes go to a temp file in the target's folder, fsync, then rename over the target: a reader (or a
crash) never sees a half-written report or session file; on any error the temp file is removed and
the target is left as it was.

Reads (:func:`read_regular_file`) accept regular files only and never read more than a limit, so a
FIFO named ``cell.bmp`` cannot hang a run and a symlink to ``/dev/zero`` cannot exhaust memory.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: str | Path, *, public: bool = False, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a file for writing that replaces ``path`` only when the ``with`` block succeeds (:func:`atomic_path`).

    ``mode``: "w" (text) or "wb" (bytes, e.g. a PDF).  ``open_kwargs`` go to :func:`open` (encoding, errors,
    newline).  ``public=True`` gives the file the ordinary permissions of the umask (a report); otherwise it
    keeps mkstemp's owner-only 0600.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path, public=public) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh


def _public(path: str | Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_path(path: str | Path, *, public: bool = False) -> Iterator[Path]:
    """A temporary file name beside ``path`` that replaces ``path`` only when the ``with`` block succeeds.

    For writers that want a file name, not a handle (Keras' ``model.save``, h5py, ``onnx.save_model``), and under
    :func:`atomic_open`: the temp name ends like ``path`` (``.weights.h5``, ``.keras``, ``.onnx``), because such
    writers check the suffix.  The written file is fsynced before the rename; on any error it is removed and
    ``path`` is left as it was.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    ends = "".join(target.suffixes[-2:])
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{ends}", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows flushes only a writable handle
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if public:
            _public(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: str | Path, text: str, *, public: bool = False, encoding: str = "utf-8") -> Path:
    """``Path.write_text`` that a crash or a reader never sees half-written (:func:`atomic_open`)."""
    with atomic_open(path, public=public, encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, data, *, public: bool = False, indent: int | None = 2, **dumps_kwargs) -> Path:
    """``data`` as JSON (UTF-8, a final newline), written atomically; ``dumps_kwargs`` go to :func:`json.dumps`."""
    import json

    return write_text(path, json.dumps(data, indent=indent, **dumps_kwargs) + "\n", public=public)


#: Files larger than this are refused without reading them (a cell image is well under 1 MB).
MAX_FILE_BYTES = 512 * 1024 * 1024

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """A path that is deliberately not read (not a regular file, too large).  ``str()`` is a reason for a user."""


def _check_regular(st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        raise FileRefused(f"not a regular file: {kind}")
    if st.st_size > max_bytes:
        raise FileRefused(f"file too large ({st.st_size / 2**20:.0f} MB) for a cell image")


def read_regular_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed); never more than ``max_bytes``.

    The path is checked with ``stat`` (a clear reason for folders, FIFOs, devices), then opened
    non-blocking and checked again on the open descriptor, so a FIFO swapped in between still cannot
    block.  At most ``max_bytes + 1`` bytes are read, so a file that grows while it is read is caught
    too.  Raises :class:`FileRefused` with a reason, or ``OSError`` (missing, no permission, link loop).
    """
    _check_regular(os.stat(path), max_bytes)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        _check_regular(st, max_bytes)
        if nonblock:
            os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total, want = 0, st.st_size + 1  # one read for the whole file, one to see EOF
        while total <= max_bytes:
            chunk = os.read(fd, min(want, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            want = 1 << 20
    finally:
        os.close(fd)
    if total > max_bytes:
        raise FileRefused(f"file too large (more than {max_bytes / 2**20:.0f} MB) for a cell image")
    return b"".join(chunks)


def describe_os_error(exc: OSError) -> str:
    """A short reason for a file that could not be read ("symbolic link loop" for ELOOP)."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return exc.strerror or str(exc)
