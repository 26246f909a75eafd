"""Issue 26 item 7: the lock is the real file's, and the case file is left as it was by what only reads it.

Before: a symlink or a hard link to a store got past the writer's lock (the lock was ``<name given>.lock``);
``export`` made a store of a 0-byte ``.leukoscan``; an export that could not write the file said the app "offers to
move a damaged case file aside"; every read-only open (verify, report, export --no-bookkeeping, Find case record)
left a ``-wal`` and ``-shm`` beside a closed store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.case import CaseDocument
from engine.case.lock import StoreLock, StoreLocked, lock_path
from engine.case.records import find_records
from engine.case.schema import StoreError
from engine.case.store import CaseStore
from engine.cli import main


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "case.leukoscan"
    store = CaseStore.open(db)
    store.attach(CaseDocument())
    store.close()
    return db


def test_a_symlink_or_hard_link_does_not_get_past_the_lock(tmp_path):
    db = _store(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    sym = other / "alias.leukoscan"
    sym.symlink_to(db)
    assert lock_path(sym) == lock_path(db)
    with StoreLock(db, "app"):
        with pytest.raises(StoreLocked, match="is being written by app"):
            StoreLock(sym, "cli").acquire()
    hard = other / "hard.leukoscan"
    os.link(db, hard)
    for name in (hard, db):  # two names of one file would have two lock files: refused by either name
        with pytest.raises(StoreLocked, match="2 names \\(hard links\\)"):
            StoreLock(name, "cli").acquire()
    assert main(["export", str(hard), "--out", str(tmp_path / "r.csv")]) == 2


def test_export_does_not_make_a_store_of_an_empty_file(tmp_path, capsys):
    empty = tmp_path / "new.leukoscan"
    empty.touch()
    assert main(["export", str(empty), "--out", str(tmp_path / "r.csv")]) == 2
    assert "is empty (0 bytes)" in capsys.readouterr().err
    assert empty.stat().st_size == 0 and not (tmp_path / "r.csv").exists()
    with pytest.raises(StoreError, match="empty"):
        CaseStore.open(empty, create=False)
    CaseStore.open(empty).close()  # a command that creates a store may still use it


def test_an_export_that_cannot_write_the_file_does_not_hint_at_damage(tmp_path, capsys, monkeypatch):
    db = _store(tmp_path)

    def read_only_file(*a, **kw):
        raise StoreError(f"{db} cannot be used (attempt to write a readonly database)", "io")

    monkeypatch.setattr(CaseStore, "open", read_only_file)
    assert main(["export", str(db), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "damaged" not in err and "--no-bookkeeping exports it" in err


def test_reading_commands_leave_nothing_beside_a_closed_store(tmp_path, capsys):
    db = _store(tmp_path)
    beside = lambda: sorted(p.name for p in tmp_path.iterdir())  # noqa: E731
    assert beside() == ["case.leukoscan"]
    assert main(["verify", str(db)]) == 0
    assert main(["export", str(db), "--out", str(tmp_path / "r.csv"), "--no-bookkeeping"]) == 2  # (no cells)
    CaseStore.open(db, create=False, read_only=True).close()
    CaseStore.peek(db)
    find_records([db], folder=tmp_path)
    assert beside() == ["case.leukoscan"]
    writer = CaseStore.open(db)  # a store being written keeps its -wal/-shm whatever a reader does
    with StoreLock(db, "app"):
        CaseStore.open(db, create=False, read_only=True).close()
        assert {"case.leukoscan-wal", "case.leukoscan-shm"} <= set(beside())
    writer.close()
