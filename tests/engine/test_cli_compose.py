"""leukoscan-cli in pipelines (issue 19 §1): ``--out -`` on stdout with every message on stderr, ``--json``
summaries with a versioned schema, progress only on a terminal, ``-q``/``-v``, exit statuses and examples in
``--help``, ``--models-dir`` adding folders, and UTF-8 with a BOM for Excel (``--bom``)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tinymodels import make_tiny_model

from engine.case.export import export_store
from engine.cli import main
from engine.report import read_csv

REPO = Path(__file__).resolve().parents[2]
BOM = b"\xef\xbb\xbf"


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _common(models: Path) -> list[str]:
    return ["--model", "tiny_a", "--models-dir", str(models), "--no-progress"]


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_out_dash_writes_the_report_on_stdout_and_every_message_on_stderr(cells_dir, tiny_models_dir, tmp_path):
    """Run as a pipeline does: stdout a pipe, stderr a file (``2>err.txt``): no progress frames in the file."""
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "classify",
                str(cells_dir),
                "--model",
                "tiny_a",
                "--models-dir",
                str(tiny_models_dir),
                "--out",
                "-",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=120,
            check=False,
        )
    err_text = err_path.read_text()
    assert p.returncode == 0, err_text
    assert not (tmp_path / "-").exists()
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "r.csv"), *_common(tiny_models_dir)]) == 0
    assert p.stdout == (tmp_path / "r.csv").read_bytes()  # the same bytes as the file
    assert len(_rows(p.stdout)) == 8
    lines = err_text.splitlines()
    assert lines[0].startswith("leukoscan-cli: model tiny_a") and "report: stdout" in lines[-1]
    assert all(line.startswith("leukoscan-cli: ") for line in lines) and "\r" not in err_text  # no progress bar


def test_classify_json_summary(cells_dir, tiny_models_dir, tmp_path, capsys):
    out, summ = tmp_path / "r.csv", tmp_path / "s.csv"
    assert (
        main(
            ["classify", str(cells_dir), "--out", str(out), "--summary", str(summ), "--json", *_common(tiny_models_dir)]
        )
        == 0
    )
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    rows = read_csv(out)
    assert doc["schema"] == "leukoscan.classify/2" and doc["status"] == "completed" and doc["exit_code"] == 0
    assert doc["model"] == {"name": "tiny_a", "version": rows[0]["model_version"], "precision": "fp32"}
    assert doc["threshold"] == doc["default_threshold"] == float(rows[0]["threshold"])
    assert doc["engine"] == "local" and doc["provider"] == "CPUExecutionProvider" and doc["images"] == 8
    c = doc["counts"]
    assert c["cells"] == c["classified"] == 8 and c["all"] + c["hem"] == 8
    assert c["all"] == sum(r["prediction"] == "ALL" for r in rows)
    assert c["flagged"] == sum(r["flagged"] == "true" for r in rows) == c["review_open"]
    assert c["in_review_band"] == sum(r["in_review_band"] == "true" for r in rows)
    assert c["flag_reasons"] == {
        why: sum(why in r["flag_reasons"].split(";") for r in rows)
        for why in ("review_band", "qc", "model_disagreement")
    }
    assert doc["files"] == {"report": str(out), "summary": str(summ), "partial": None}
    assert doc["case_file"] is None  # top level, named as export names it (issue 28 item 6)
    assert doc["complete"] is True and doc["folders"] == 1
    assert "leukoscan-cli: model tiny_a" in captured.err  # messages stay on stderr


def test_json_and_out_dash_both_want_stdout(cells_dir, tiny_models_dir, capsys):
    assert main(["classify", str(cells_dir), "--out", "-", "--json", *_common(tiny_models_dir)]) == 2
    assert "--json and --out - both write to stdout" in capsys.readouterr().err


def test_models_json_is_complete(tiny_models_dir, tmp_path, capsys):
    card_path = tiny_models_dir / "tiny_a.json"
    card = json.loads(card_path.read_text())
    data = "cells of 9 held-out donors (H6, H7, H11, H12 and five ALL patients), C-NMC fold 1, deduplicated"
    card["metrics"] = {"weighted_f1": 0.8125, "auroc": 0.9, "data": data}
    card_path.write_text(json.dumps(card))
    assert main(["models", "--models-dir", str(tiny_models_dir)]) == 0
    assert "…" in capsys.readouterr().out  # the table cuts the data description
    assert main(["models", "--models-dir", str(tiny_models_dir), "--json", "--check"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "leukoscan.models/1" and doc["problems"] == []
    by = {m["name"]: m for m in doc["models"]}
    assert set(by) == {"tiny_a", "tiny_b", "tiny_ensemble"}
    a = by["tiny_a"]
    assert a["metrics"] == card["metrics"] and data in a["validation"] and "…" not in a["validation"]
    assert a["check"] == {"ok": True, "device": "CPU", "error": None}
    assert by["tiny_ensemble"]["members"] == ["tiny_a", "tiny_b"] and by["tiny_ensemble"]["type"] == "ensemble"
    assert doc["default"] == "tiny_ensemble" and by["tiny_ensemble"]["default"]
    assert doc["model_dirs"][-1] == str(tiny_models_dir)


def _store(cells_dir, models, tmp_path) -> Path:
    db = tmp_path / "case.leukoscan"
    assert (
        main(["classify", str(cells_dir), "--out", str(tmp_path / "first.csv"), "--store", str(db), *_common(models)])
        == 0
    )
    return db


def test_export_is_export_store_and_says_so_in_json(cells_dir, tiny_models_dir, tmp_path, capsys):
    db = _store(cells_dir, tiny_models_dir, tmp_path)
    capsys.readouterr()
    reference = export_store(db, tmp_path / "ref.csv", tmp_path / "ref_summary.csv", mark_exported=False)
    out, summ = tmp_path / "e.csv", tmp_path / "e_summary.csv"
    assert main(["export", str(db), "--out", str(out), "--summary", str(summ), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert summ.read_bytes() == (tmp_path / "ref_summary.csv").read_bytes()
    assert (tmp_path / "e_reviews.csv").read_bytes() == (tmp_path / "ref_reviews.csv").read_bytes()
    assert doc["schema"] == "leukoscan.export/2" and doc["exit_code"] == 0 and doc["recorded"] is True
    assert doc["files"] == {"report": str(out), "summary": str(summ), "reviews": str(tmp_path / "e_reviews.csv")}
    assert doc["counts"]["cells"] == len(reference.rows) == 8 and doc["review_events"] == 0
    assert doc["model"]["name"] == "tiny_a" and doc["case_file"] == str(db)

    assert main(["export", str(db), "--out", "-", "--no-bookkeeping"]) == 0  # stdout: the report alone
    captured = capsys.readouterr()
    assert captured.out.encode() == out.read_bytes()
    assert "review history (0 events) not written (give --reviews FILE)" in captured.err


def test_bom_for_excel_only_when_asked(cells_dir, tiny_models_dir, tmp_path, capsys):
    named = tmp_path / "Müller, Zoë"  # what Excel garbles without a BOM
    shutil.copytree(cells_dir, named)
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    db = tmp_path / "case.leukoscan"
    assert (
        main(
            [
                "classify",
                str(named),
                "--out",
                str(plain),
                "--summary",
                str(tmp_path / "plain_s.csv"),
                "--store",
                str(db),
                *_common(tiny_models_dir),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "classify",
                str(named),
                "--out",
                str(excel),
                "--summary",
                str(tmp_path / "excel_s.csv"),
                "--bom",
                *_common(tiny_models_dir),
            ]
        )
        == 0
    )
    for p in (plain, tmp_path / "plain_s.csv"):
        assert not p.read_bytes().startswith(BOM)
    assert excel.read_bytes().startswith(BOM + b"path,")
    assert (tmp_path / "excel_s.csv").read_bytes().startswith(BOM + b"folder,")
    assert excel.read_bytes() == BOM + plain.read_bytes()
    assert "Müller, Zoë".encode() in plain.read_bytes()
    assert read_csv(excel) == read_csv(plain)  # read back with or without the BOM

    assert (
        main(["export", str(db), "--out", str(tmp_path / "x.csv"), "--summary", str(tmp_path / "xs.csv"), "--excel"])
        == 0
    )
    for name, first in (("x.csv", b"path,"), ("xs.csv", b"folder,"), ("x_reviews.csv", b"cell,")):
        assert (tmp_path / name).read_bytes().startswith(BOM + first)
    capsys.readouterr()
    assert main(["export", str(db), "--out", "-", "--bom", "--no-bookkeeping"]) == 0
    assert capsys.readouterr().out.startswith("\ufeffpath,")


def test_quiet_and_verbose(cells_dir, tiny_models_dir, tmp_path, capsys):
    args = ["classify", str(cells_dir), "--out", str(tmp_path / "r.csv"), *_common(tiny_models_dir)]
    assert main(args) == 0
    normal = capsys.readouterr().err.splitlines()
    assert normal[0].startswith("leukoscan-cli: model tiny_a") and "model folders" not in "".join(normal)
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["-q", *args]) == 0  # before the command too
    assert capsys.readouterr().err == ""
    assert main([*args, "-v"]) == 0
    verbose = capsys.readouterr().err.splitlines()
    assert any(line.startswith("leukoscan-cli: model folders: ") and str(tiny_models_dir) in line for line in verbose)
    assert normal[0] in verbose and any(line.startswith("leukoscan-cli: 8 cells in 1 folder(s)") for line in verbose)
    assert main([*args[:-1], str(tmp_path / "missing"), "-q"]) == 2  # errors still show
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["classify", "models", "export", "report", "verify"])
def test_help_ends_with_exit_statuses_and_two_examples(command, capsys):
    with pytest.raises(SystemExit) as ex:
        main([command, "--help"])
    assert ex.value.code == 0
    text = capsys.readouterr().out
    codes, examples = text.split("exit status:\n")[1].split("\nexamples:\n")
    assert codes.lstrip().startswith("0 ") and "2 " in codes
    lines = examples.rstrip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"  leukoscan-cli {command} ") for line in lines)


def test_models_dir_adds_to_the_bundled_models(tmp_path, monkeypatch, capsys):
    bundled = tmp_path / "resources"
    make_tiny_model(bundled / "models", name="shipped")
    extra = tmp_path / "extra"
    make_tiny_model(extra, name="trial", seed=3)
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(bundled))
    assert main(["models", "--json"]) == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)["models"]] == ["shipped"]
    assert main(["models", "--json", "--models-dir", str(extra)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in doc["models"]] == ["shipped", "trial"]
    assert doc["model_dirs"] == [str(bundled / "models"), doc["user_models_dir"], str(extra)]


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_interrupted_run_to_stdout_writes_nothing_there(cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys):
    """A pipeline never receives a report that looks complete: stdout stays empty, the rows done go to the temp
    folder; the JSON summary (to a file report) says interrupted."""
    import signal
    import tempfile

    from engine.run import sinks

    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    real_row, done = sinks.cell_row, []

    def row_then_sigint(*a, **kw):
        done.append(1)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_row(*a, **kw)

    monkeypatch.setattr(sinks, "cell_row", row_then_sigint)  # the operator's CSV rows sink
    big = tmp_path / "big"
    big.mkdir()
    for i, src in enumerate(sorted(cells_dir.glob("*.bmp")) * 5):
        os.link(src, big / f"c{i:03d}.bmp")
    common = ["--model", "tiny_a", "--models-dir", str(tiny_models_dir), "--batch-size", "2"]
    assert main(["classify", str(big), "--out", "-", *common]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and "nothing was written to stdout" in captured.err
    (partial,) = spare.iterdir()
    assert partial.name.endswith("-stdout.partial.csv") and 0 < len(read_csv(partial)) < 40

    done.clear()
    assert main(["classify", str(big), "--out", str(tmp_path / "r.csv"), "--json", *common]) == 130
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "interrupted" and doc["exit_code"] == 130 and doc["complete"] is False
    assert doc["files"]["report"] is None and doc["files"]["partial"] == str(tmp_path / "r.partial.csv")
    assert 0 < doc["counts"]["cells"] < 40 and not (tmp_path / "r.csv").exists()


def test_json_is_utf8_whatever_the_console_encoding(tiny_models_dir, tmp_path):
    """A Windows console in cp1252 (here: ASCII) cannot encode every path; the JSON is UTF-8 bytes all the same."""
    models = tmp_path / "Modèles Zoë"
    shutil.copytree(tiny_models_dir, models)
    p = subprocess.run(
        [sys.executable, "-m", "engine.cli", "models", "--json", "--models-dir", str(models)],
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout.decode("utf-8"))
    assert doc["model_dirs"][-1] == str(models) and len(doc["models"]) == 3
