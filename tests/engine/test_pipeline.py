"""scan(), classify() and decide(): order, errors as rows, progress, bounded prefetch, cancellation."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine import pipeline as pipeline_mod
from engine.pipeline import classify, scan
from engine.registry import Registry


def _touch(p: Path, data: bytes = b"x") -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


# ------------------------------------------------------------------------------------------ scan


def test_scan_recursive_sorted_hidden_and_non_images_skipped(tmp_path):
    root = tmp_path / "case"
    for rel in [
        "cell 10.bmp",
        "cell 2.BMP",
        "Cell 1.png",
        "b/x.tif",
        "a/z.jpg",
        "a/y/w.webp",
        "notes.txt",
        ".hidden.bmp",
        ".thumbs/t.bmp",
        "a/.DS_Store",
        "a/._z.jpg",
        "README",
    ]:
        _touch(root / rel)
    items = scan([root])
    got = [(it.folder, it.file) for it in items]
    assert got == [
        (".", "Cell 1.png"),
        (".", "cell 2.BMP"),
        (".", "cell 10.bmp"),
        ("a", "z.jpg"),
        ("a/y", "w.webp"),
        ("b", "x.tif"),
    ]
    assert all(it.root == root and it.path.is_absolute() and it.path.parent.name for it in items)


def test_scan_file_argument_and_missing_path(tmp_path):
    _touch(tmp_path / "one.bmp")
    _touch(tmp_path / "odd.txt")
    items = scan([tmp_path / "one.bmp", tmp_path / "odd.txt"])
    assert [(it.file, it.folder, it.root) for it in items] == [("one.bmp", ".", tmp_path), ("odd.txt", ".", tmp_path)]
    with pytest.raises(FileNotFoundError, match="nope: no such file or folder"):
        scan([tmp_path / "nope"])


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_scan_symlink_loops_and_duplicates(tmp_path):
    root = tmp_path / "r"
    _touch(root / "sub" / "a.bmp")
    _touch(root / "b.bmp")
    os.symlink(root, root / "sub" / "loop")  # sub/loop -> r  (a cycle)
    os.symlink(tmp_path / "missing", root / "dangling.bmp")
    os.symlink(tmp_path / "missing", root / "dangling-notes.txt")  # not named like an image: no row
    items = scan([root])
    assert sorted(it.file for it in items) == ["a.bmp", "b.bmp", "dangling.bmp"]  # dangling: an error row
    # the same files reached through two PATHs are listed once
    assert len(scan([root, root / "sub", root / "b.bmp"])) == 3


def test_scan_unlistable_folder_is_reported(tmp_path, locked_folders):
    _touch(tmp_path / "ok.bmp")
    _touch(tmp_path / "locked" / "x.bmp")
    warns: list[str] = []
    items = scan([tmp_path], warnings=warns)
    assert [(it.folder, it.file) for it in items] == [(".", "ok.bmp"), ("locked", "locked")]
    assert len(warns) == 1 and "locked: folder cannot be listed (Permission denied)" in warns[0]
    assert "cannot be listed (Permission denied)" in items[1].problem


def test_unlistable_folder_is_an_error_row_never_read(
    tmp_path, cells_dir, tiny_models_dir, monkeypatch, locked_folders
):
    """A report of a case with a locked sub-folder must not look complete: the folder is a row."""
    (cells_dir / "locked").mkdir()
    loads = []
    real_load = pipeline_mod.load_item
    monkeypatch.setattr(pipeline_mod, "load_item", lambda p, s: (loads.append(p), real_load(p, s))[1])
    clf = Registry([tiny_models_dir]).load("tiny_a")
    res = list(classify(scan([cells_dir]), clf, batch_size=3))
    assert len(res) == 9 and sum(r.ok for r in res) == 8
    bad = res[-1]
    assert (bad.folder, bad.status, bad.p_all) == ("locked", "error", None)
    assert "folder cannot be listed (Permission denied)" in bad.error
    assert cells_dir / "locked" not in loads


def _fifo_unblock(path: Path) -> None:
    """Give a reader blocked on the FIFO (code before the fix) its EOF, so a failing test cannot hang."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _classify_within(items, clf, seconds=30):
    out: list = []
    t = threading.Thread(target=lambda: out.extend(classify(items, clf)), daemon=True)
    t.start()
    t.join(seconds)
    return out, not t.is_alive()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_hostile_paths_are_error_rows_and_never_hang(tmp_path, cells_dir, tiny_models_dir, monkeypatch):
    fifo = tmp_path / "pipe.bmp"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    os.symlink("/dev/zero", zero)
    monkeypatch.setattr(pipeline_mod, "MAX_FILE_BYTES", 4 * 2**20)  # a regression reads 4 MB, not all RAM
    good = next(cells_dir.glob("*.bmp"))
    clf = Registry([tiny_models_dir]).load("tiny_a")
    try:
        res, finished = _classify_within(scan([fifo, zero, good]), clf)
    finally:
        _fifo_unblock(fifo)
    assert finished, "classify() hung on a FIFO"
    by = {r.file: r for r in res}
    assert by[good.name].ok
    assert by["pipe.bmp"].status == "error" and by["pipe.bmp"].error == "not a regular file: a named pipe (FIFO)"
    assert by["zero.png"].status == "error" and by["zero.png"].error == "not a regular file: a character device"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_odd_entries_inside_folders_are_error_rows(tmp_path, cells_dir, tiny_models_dir):
    case = cells_dir
    os.mkfifo(case / "fifo.bmp")
    (case / "folder.bmp").mkdir()
    os.symlink(tmp_path / "missing.bmp", case / "broken.bmp")
    os.symlink(case / "loop.png", case / "loop.png")  # a link to itself
    os.symlink("/dev/zero", case / "zero.tif")
    clf = Registry([tiny_models_dir]).load("tiny_a")
    try:
        res, finished = _classify_within(scan([case]), clf)
    finally:
        _fifo_unblock(case / "fifo.bmp")
    assert finished
    errors = {r.file: r.error for r in res if not r.ok}
    assert errors == {
        "fifo.bmp": "not a regular file: a named pipe (FIFO)",
        "folder.bmp": "not a regular file: a folder",
        "broken.bmp": "broken symbolic link (its target does not exist)",
        "loop.png": "cannot read file: symbolic link loop",
        "zero.tif": "not a regular file: a character device",
    }
    assert sum(r.ok for r in res) == 8


def test_file_size_limit_is_checked_while_reading(tmp_path, monkeypatch):
    """At most MAX_FILE_BYTES + 1 bytes are read, even when the file was small when it was checked."""
    from engine import fileio

    p = tmp_path / "grows.bmp"
    p.write_bytes(b"x" * 100)
    monkeypatch.setattr(fileio, "_check_regular", lambda st, max_bytes: None)  # as if it grew after the checks
    with pytest.raises(fileio.FileRefused, match="file too large"):
        fileio.read_regular_file(p, max_bytes=50)
    assert fileio.read_regular_file(p, max_bytes=100) == b"x" * 100
