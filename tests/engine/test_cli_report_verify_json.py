"""CLI conventions (issue 28 item 6), the reading commands: report writes with --out (-o; --pdf kept) and has
--json; verify has --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _common(models: Path) -> list[str]:
    return ["--model", "tiny_a", "--models-dir", str(models), "--no-progress"]


def test_report_writes_with_out_keeps_pdf_and_has_json(cells_dir, tiny_models_dir, tmp_path, capsys):
    csv = tmp_path / "r.csv"
    assert main(["classify", str(cells_dir), "-o", str(csv), "-q", *_common(tiny_models_dir)]) == 0
    for flag, name in (("--out", "a.pdf"), ("-o", "b.pdf"), ("--pdf", "c.pdf")):
        assert main(["report", str(csv), flag, str(tmp_path / name), "-q"]) == 0
        assert (tmp_path / name).read_bytes().startswith(b"%PDF")
    capsys.readouterr()
    assert main(["report", str(csv), "--out", str(tmp_path / "d.pdf"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "leukoscan.report/1" and doc["exit_code"] == 0 and doc["complete"] is True
    assert doc["files"] == {"pdf": str(tmp_path / "d.pdf")} and doc["cells"] == 8 and doc["cases"] == 1


def test_verify_json(cells_dir, tiny_models_dir, tmp_path, capsys):
    import sqlite3

    db = tmp_path / "case.leukoscan"
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "-o",
                str(tmp_path / "r.csv"),
                "--store",
                str(db),
                "-q",
                *_common(tiny_models_dir),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["verify", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "leukoscan.verify/1" and doc["intact"] is True and doc["problem"] is None
    assert doc["case_file"] == str(db) and len(doc["chain_head"]) == 64 and doc["chain_rows"] >= 1
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER case_events_no_replace")
    con.commit()
    con.close()
    assert main(["verify", str(db), "--json"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["intact"] is False and doc["exit_code"] == 4 and "case_events_no_replace" in doc["problem"]
