"""Finding and naming case records (case stores).

A case store is one SQLite file (:mod:`.store`); its extension is ``.leukoscan`` (:data:`STORE_SUFFIX`).
Stores named ``*.db`` (written before, or by a ``classify --store CASE.db``) are still found and opened.

* :func:`find_records` finds the records of a folder (a case *is* its root folder) or of a sample id, by
  reading each candidate store read-only (no lock, no migration, nothing written);
* :func:`store_name` / :func:`rename_store` name a store after its sample id (or folder): the rename takes
  both stores' locks (:mod:`.lock`, the protocol of every writer), so a store that anyone writes is never
  renamed under them.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.store_files import store_paths
from .lock import StoreLock, reader_files, remove_reader_files

STORE_SUFFIX = ".leukoscan"  # what the app and the docs create
STORE_SUFFIXES = (".leukoscan", ".db")  # what is found and opened
# file-dialog filters: the one extension first (the default filter); stores named .db before, as a second choice
STORE_FILTER = "LeukoScan case store (*.leukoscan);;Older LeukoScan case store (*.db)"


def is_store_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in STORE_SUFFIXES


@dataclass
class Record:
    """What a case store holds, read without opening it for writing."""

    path: Path
    roots: list[str] = field(default_factory=list)  # its cases' root folders, in opening order
    sample_ids: dict[str, str] = field(default_factory=dict)  # root -> sample id (those given)
    signed: set[str] = field(default_factory=set)  # roots signed off
    archived: set[str] = field(default_factory=set)  # roots archived (kept whole, no longer worked on)
    cells: int = 0
    reviews: int = 0
    saved: str = ""  # when it was last written (meta saved/closed_at/started)

    @property
    def label(self) -> str:
        """Sample id of its first case, else that case's folder name, else the file name."""
        for r in self.roots:
            if self.sample_ids.get(r):
                return self.sample_ids[r]
        return Path(self.roots[0]).name if self.roots else self.path.stem

    def describe(self) -> str:
        signed = "signed off" if self.roots and set(self.roots) <= self.signed else "not signed off"
        return (
            f"{self.label} — {self.cells} cells, {self.reviews} reviewed, {signed}"
            + (f", saved {self.saved[:16].replace('T', ' ')}" if self.saved else "")
            + f" ({self.path.name})"
        )


def read_record(path: str | Path) -> Record | None:
    """The record of the store at ``path``; None when it is no readable case store."""
    path = Path(path)
    made = reader_files(path.resolve())
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        rows = conn.execute("SELECT id, root, sample_id FROM cases ORDER BY id").fetchall()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        signed_ids = set()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='signoffs'").fetchone():
            signed_ids = {r[0] for r in conn.execute("SELECT case_id FROM signoffs")}
        archived = set()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='record_events'").fetchone():
            archived = {r[0] for r in conn.execute("SELECT target FROM record_events WHERE action='archive'")}
        cells = conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        reviews = conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
        remove_reader_files(path.resolve(), made)
    return Record(
        path,
        [r for _i, r, _s in rows],
        {r: s for _i, r, s in rows if s},
        {r for i, r, _s in rows if i in signed_ids},
        archived,
        cells,
        reviews,
        meta.get("saved") or meta.get("closed_at") or meta.get("started") or "",
    )


def _norm(root: str | Path) -> str:
    return os.path.normcase(os.path.abspath(os.path.expanduser(str(root))))


def candidates(dirs: Iterable[str | Path] = (), stores: Iterable[str | Path] = ()) -> list[Path]:
    """The case stores in ``dirs`` (not their sub-folders) and the ``stores`` named, once each."""
    found: dict[str, Path] = {}
    for d in dirs:
        try:
            entries = sorted(Path(d).iterdir())
        except OSError:
            continue
        for p in entries:
            if is_store_name(p) and p.is_file():
                found.setdefault(_norm(p), p)
    for given in stores:
        p = Path(given)
        if p.is_file():
            found.setdefault(_norm(p), p)
    return list(found.values())


def find_records(
    paths: Iterable[str | Path], folder: str | Path | None = None, sample_id: str | None = None
) -> list[Record]:
    """The records among the stores ``paths`` that hold the case of ``folder`` (same root folder) or a case
    with the sample id ``sample_id`` (case and spacing ignored), most recently saved first."""
    want_root = _norm(folder) if folder else None
    want_id = " ".join(sample_id.split()).casefold() if sample_id and sample_id.strip() else None
    out = []
    for p in paths:
        rec = read_record(p)
        if rec is None:
            continue
        if (want_root and any(_norm(r) == want_root for r in rec.roots)) or (
            want_id and any(s.casefold() == want_id for s in rec.sample_ids.values())
        ):
            out.append(rec)
    return sorted(out, key=lambda r: r.saved, reverse=True)


_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def store_name(label: str) -> str:
    """A file name stem for a store of ``label`` (sample id or folder name): letters, digits, ``._- ``."""
    stem = _UNSAFE.sub("_", " ".join(str(label).split())).strip(" ._")[:80]
    return stem or "case"


def free_path(folder: Path, label: str, current: Path | None = None) -> Path:
    """``<folder>/<label>.leukoscan``, or ``<label> (2).leukoscan``, ... when taken (``current`` may keep its
    own name)."""
    stem = store_name(label)
    n = 1
    while True:
        p = folder / (f"{stem}{STORE_SUFFIX}" if n == 1 else f"{stem} ({n}){STORE_SUFFIX}")
        if current is not None and _norm(p) == _norm(current):
            return p
        if not any(q.exists() for q in store_paths(p, lock=True)):
            return p
        n += 1


def rename_store(old: Path, new: Path, program: str = "LeukoScan") -> Path:
    """Rename the closed store ``old`` to ``new`` under both locks (:class:`.lock.StoreLock`); returns the
    path it has afterwards.  Raises OSError (or :class:`.lock.StoreLocked`) and leaves it as it was when it
    is in use, still has a ``-wal`` (not closed), or ``new`` exists."""
    old, new = Path(old), Path(new)
    if old == new:
        return old
    with StoreLock(old, program), StoreLock(new, program):
        if Path(str(old) + "-wal").exists():
            raise OSError(f"{old.name} is still open (its -wal file is there)")
        if new.exists():
            raise FileExistsError(f"{new} exists")
        os.rename(old, new)
        for s in ("-shm",):
            try:
                os.unlink(str(old) + s)
            except OSError:
                pass
    return new
