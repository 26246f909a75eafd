"""The smaller items of issue 28 (item 8): --delimiter for decimal-comma locales, and no raw Pillow
DecompressionBombWarning on stderr (the refusal is already a clear row)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import png_bomb_bytes

from engine.cli import main
from engine.report import read_csv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _common(models: Path) -> list[str]:
    return ["--model", "tiny_a", "--models-dir", str(models), "--no-progress", "-q"]


@pytest.mark.parametrize("given, sep", [(";", b";"), ("semicolon", b";"), ("tab", b"\t"), (",", b",")])
def test_delimiter_writes_every_csv_with_it_and_reports_read_back(cells_dir, tiny_models_dir, tmp_path, given, sep):
    out, summ, db = tmp_path / "r.csv", tmp_path / "s.csv", tmp_path / "c.leukoscan"
    args = ["classify", str(cells_dir), "-o", str(out), "--summary", str(summ), "--delimiter", given]
    assert main([*args, "--store", str(db), *_common(tiny_models_dir)]) == 0
    for f in (out, summ):
        header = f.read_bytes().splitlines()[0]
        assert header.startswith(b"path" + sep) or header.startswith(b"folder" + sep)
        assert header.count(sep) > 5
    rows = read_csv(out)  # read back whatever the separator
    assert len(rows) == 8 and rows[0]["p_all"].count(".") == 1  # numbers keep their decimal point
    exp = tmp_path / "e.csv"
    assert main(["export", str(db), "-o", str(exp), "--delimiter", given, "--no-bookkeeping", "-q"]) == 0
    assert exp.read_bytes().splitlines()[0].count(sep) > 5
    assert (tmp_path / "e_reviews.csv").read_bytes().splitlines()[0].count(sep) > 5
    assert read_csv(exp) == rows
    assert main(["report", str(out), "-o", str(tmp_path / "r.pdf"), "-q"]) == 0  # the PDF reads it too
    assert main(["verify", str(db), "--report", str(summ)]) == 0  # the record check finds the summary's anchor
    assert main(["summary", str(db), "-o", str(tmp_path / "sum.csv"), "--delimiter", given, "-q"]) == 0
    assert (tmp_path / "sum.csv").read_bytes().splitlines()[0].count(sep) > 5


def test_delimiter_on_stdout(cells_dir, tiny_models_dir, capsysbinary):
    assert main(["classify", str(cells_dir), "-o", "-", "--delimiter", ";", *_common(tiny_models_dir)]) == 0
    assert capsysbinary.readouterr().out.splitlines()[0].startswith(b"path;folder;file;")


def test_a_decompression_bomb_warning_does_not_reach_stderr(tmp_path, tiny_models_dir):
    """100 M pixels: above Pillow's warning limit (89 M), below its error limit; LeukoScan refuses it (40 M)."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "big.png").write_bytes(png_bomb_bytes(10_000, 10_000))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "classify",
            str(d),
            "-o",
            str(tmp_path / "r.csv"),
            *_common(tiny_models_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "DecompressionBombWarning" not in p.stderr and "warnings.warn" not in p.stderr
    (row,) = read_csv(tmp_path / "r.csv")
    assert row["status"] == "error" and "decompression bomb" in row["error"]
