"""Issue 17 item 4: one lock protocol for every writer of a case store (the app, ``classify --store``,
``export``'s bookkeeping); a second writer is told who holds it and the CLI exits 2; a stale lock is taken
over with a log line; reading commands work while the store is held."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts
from engine.case.lock import StoreLock, StoreLocked, is_locked, lock_path, read_holder
from engine.case.store import CaseStore
from engine.cli import main
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")


@pytest.fixture
def _no_bundled_models(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path_factory.mktemp("no-bundled-resources")))


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "case.db"
    store = CaseStore.open(db)
    doc = CaseDocument()
    store.attach(doc)
    root = tmp_path / "slide"
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(3)])
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, c.root, ".", c.file, f"s{i}", "ok", "", 0.2, {}, False, ""))
            for i, c in enumerate(cells)
        ],
    )
    store.close()
    return db


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_writer_is_told_who_holds_the_store(tmp_path):
    db = _store(tmp_path)
    with StoreLock(db, "LeukoScan") as app:
        assert app.held and is_locked(db)
        with pytest.raises(StoreLocked) as info:
            StoreLock(db, "leukoscan-cli export").acquire()
        msg = str(info.value)
        assert f"pid {os.getpid()}" in msg and socket.gethostname() in msg and "since 20" in msg
        assert "LeukoScan" in msg and read_holder(db).pid == os.getpid()
    assert not is_locked(db) and not lock_path(db).exists()
    StoreLock(db).acquire().release()  # free again


def test_the_cli_refuses_to_write_a_store_the_app_holds(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    db = tmp_path / "case.db"
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "a.csv"), "--store", str(db), *common]) == 0
    capsys.readouterr()
    before = db.read_bytes()
    with StoreLock(db, "LeukoScan"):
        assert main(["classify", str(cells_dir), "--out", str(tmp_path / "b.csv"), "--store", str(db), *common]) == 2
        err = capsys.readouterr().err
        assert "is being written by LeukoScan" in err and f"pid {os.getpid()}" in err and "since" in err
        assert main(["export", str(db), "--out", str(tmp_path / "e.csv")]) == 2
        err = capsys.readouterr().err
        assert "is being written by LeukoScan" in err and "--no-bookkeeping" in err
        assert not (tmp_path / "e.csv").exists()
        # reading commands work meanwhile
        assert main(["export", str(db), "--out", str(tmp_path / "r.csv"), "--no-bookkeeping"]) == 0
        assert (tmp_path / "r.csv").exists()
        assert main(["verify", str(db)]) == 0
        assert main(["report", str(db), "--pdf", str(tmp_path / "r.pdf"), "--models-dir", str(tiny_models_dir)]) == 0
        store = CaseStore.open(db, create=False)
        try:
            assert store.meta()["exported_at"] == ""  # --no-bookkeeping recorded nothing
        finally:
            store.close()
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv")]) == 0
    assert not lock_path(db).exists()
    del before


def test_a_stale_lock_is_taken_over_with_a_log_line(tmp_path, caplog, capsys):
    db = _store(tmp_path)
    dead = _dead_pid()
    lock_path(db).write_text(f"{dead}\nLeukoScan\n{socket.gethostname()}\n2024-01-01T00:00:00Z\n")
    assert not is_locked(db)
    with caplog.at_level(logging.WARNING):
        lock = StoreLock(db, "leukoscan-cli export").acquire()
    try:
        assert f"pid {dead}" in lock.took_over and "no longer running" in lock.took_over
        assert any(f"pid {dead}" in r.getMessage() for r in caplog.records)
        assert read_holder(db).pid == os.getpid() and read_holder(db).program == "leukoscan-cli export"
    finally:
        lock.release()
    # the CLI takes it over too, and says so
    lock_path(db).write_text(f"{dead}\nLeukoScan\n{socket.gethostname()}\n2024-01-01T00:00:00Z\n")
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv")]) == 0
    assert f"pid {dead}" in capsys.readouterr().err


def test_a_lock_of_another_host_or_a_live_process_is_respected(tmp_path):
    db = _store(tmp_path)
    lock_path(db).write_text("4242\nLeukoScan\nsome-other-host\n2024-01-01T00:00:00Z\n")
    with pytest.raises(StoreLocked, match="some-other-host.*delete case.db.lock"):
        StoreLock(db).acquire()
    assert is_locked(db)
    parent = os.getppid()  # alive, on this host, but holding no OS lock (a file system without locks)
    lock_path(db).write_text(f"{parent}\nLeukoScan\n{socket.gethostname()}\n2024-01-01T00:00:00Z\n")
    with pytest.raises(StoreLocked, match=f"pid {parent}"):
        StoreLock(db).acquire()


def test_a_lock_held_by_another_process_is_seen(tmp_path):
    db = _store(tmp_path)
    code = (
        "import sys, time; from engine.case.lock import StoreLock; l = StoreLock(sys.argv[1], 'LeukoScan')."
        "acquire(); print('locked', flush=True); sys.stdin.read()"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert p.stdout.readline().strip() == "locked"
        assert is_locked(db)
        with pytest.raises(StoreLocked, match=f"pid {p.pid}"):
            StoreLock(db).acquire()
    finally:
        p.stdin.close()
        p.wait(30)
    # the process is gone: its OS lock went with it (the file it left names a dead pid: stale)
    lock = StoreLock(db).acquire()
    lock.release()
