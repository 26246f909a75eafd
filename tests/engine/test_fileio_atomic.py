"""engine.fileio's atomic writers for name-taking writers (Keras, h5py, onnx) and JSON/text: the target is
replaced only by a complete file, and a failed write leaves the old one and no temp file behind."""

from __future__ import annotations

import json
import os
import stat

import pytest

from engine.fileio import atomic_path, write_json, write_text


def test_atomic_path_keeps_the_suffixes_writers_check_and_replaces_on_success(tmp_path):
    target = tmp_path / "model.weights.h5"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        assert tmp.name.endswith(".tmp.weights.h5")  # Keras' save_weights refuses any other ending
        assert target.read_bytes() == b"old"  # nothing replaced while the writer works
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_atomic_path_failure_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "final.keras"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["final.keras"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_public_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.onnx", public=True) as tmp:
            tmp.write_bytes(b"x")
        write_json(tmp_path / "card.json", {"a": 1}, public=True)
        write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.onnx").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "card.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


def test_write_json_round_trips_with_a_final_newline_and_dumps_options(tmp_path):
    p = write_json(tmp_path / "m.json", {"x": 1.5, "name": "Zürich"}, default=float)
    text = p.read_text(encoding="utf-8")
    assert text.endswith("}\n") and json.loads(text) == {"x": 1.5, "name": "Zürich"}
    with pytest.raises(TypeError):
        write_json(tmp_path / "m.json", {"bad": object()})
    assert json.loads(p.read_text(encoding="utf-8")) == {"x": 1.5, "name": "Zürich"}  # the failed write changed nothing
