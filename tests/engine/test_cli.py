"""leukoscan-cli end to end: the bad-input folder, exit codes, one-line errors, Ctrl-C."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import report as report_mod
from engine.cli import main
from engine.report import CELL_COLUMNS, SUMMARY_COLUMNS

CLI = [sys.executable, "-m", "engine.cli"]


@pytest.fixture(autouse=True)
def _no_bundled_models(monkeypatch, tmp_path_factory):
    """The CLI tests run on the tiny models only (the shipped ones are tested in test_bundled_models)."""
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path_factory.mktemp("no-bundled-resources")))


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _rel(row) -> str:
    return row["file"] if row["folder"] == "." else f"{row['folder']}/{row['file']}"


def test_classify_bad_input_folder(bad_input, tiny_models_dir, tmp_path, capsys):
    before = {p: p.read_bytes() for p in bad_input.path.rglob("*") if p.is_file()}
    out, summ = tmp_path / "report.csv", tmp_path / "summary.csv"
    rc = main(
        [
            "classify",
            str(bad_input.path),
            "--model",
            "tiny_ensemble",
            "--out",
            str(out),
            "--summary",
            str(summ),
            "--models-dir",
            str(tiny_models_dir),
            "--batch-size",
            "4",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    rows = _read(out)
    assert list(rows[0])[: len(CELL_COLUMNS)] == list(CELL_COLUMNS)
    assert list(rows[0])[len(CELL_COLUMNS) :] == ["p_all_tiny_a", "p_all_tiny_b"]
    by = {_rel(r): r for r in rows}
    assert len(rows) == len(by) == len(bad_input.rows) and set(by) == bad_input.rows
    for rel in bad_input.ok:
        r = by[rel]
        assert r["status"] == "ok" and r["error"] == "" and r["prediction"] in ("ALL", "HEM")
        assert 0 <= float(r["p_all"]) <= 1 and len(r["p_all"].split(".")[1]) == 4
        assert r["flagged"] in ("true", "false") and r["model"] == "tiny_ensemble"
        assert Path(r["path"]).is_absolute() and Path(r["path"]).is_file()
    for rel, word in bad_input.errors.items():
        r = by[rel]
        assert r["status"] == "error" and word in r["error"] and r["prediction"] == "" and r["p_all"] == ""
    summary = _read(summ)
    assert list(summary[0]) == list(SUMMARY_COLUMNS)
    assert sum(int(s["cells"]) for s in summary) == len(rows)
    assert sum(int(s["errors"]) for s in summary) == len(bad_input.errors)
    # the real folder of each summary row (issue 26 item 13: "." for every case told no one which folder)
    assert {os.path.relpath(s["folder"], s["root"]) for s in summary} == {".", "broken", "formats", "sub folder/deeper"}
    assert all(Path(s["folder"]).is_absolute() for s in summary)
    # inputs untouched, nothing written next to them
    after = {p: p.read_bytes() for p in bad_input.path.rglob("*") if p.is_file()}
    assert after == before
    assert f"{len(rows)} cells in 4 folder(s): {len(bad_input.ok)} classified" in err


def test_cli_matches_engine_and_threshold_option(cells_dir, tiny_models_dir, tmp_path):
    out1, out2 = tmp_path / "a.csv", tmp_path / "b.csv"
    common = ["--model", "tiny_a", "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(["classify", str(cells_dir), "--out", str(out1), *common]) == 0
    assert main(["classify", str(cells_dir), "--out", str(out2), "--threshold", "0.2", *common]) == 0
    a, b = _read(out1), _read(out2)
    assert [r["p_all"] for r in a] == [r["p_all"] for r in b]
    assert all(r["threshold"] == "0.2000" and r["default_threshold"] == "0.5000" for r in b)
    assert sum(r["prediction"] == "ALL" for r in b) > sum(r["prediction"] == "ALL" for r in a)
    for r in b:
        assert r["prediction"] == ("ALL" if float(r["p_all"]) >= 0.2 else "HEM")


@pytest.mark.parametrize(
    "args,code,msg",
    [
        (["--model", "nope"], 3, "unknown model 'nope'"),
        (["--model", "tiny_a", "--threshold", "1.5"], 2, "must be between 0 and 1"),
        (["--model", "tiny_a", "--batch-size", "0"], 2, "must be at least 1"),
        (["--model", "tiny_a", "--device", "tpu"], 2, "invalid choice"),
    ],
)
def test_usage_and_model_errors(cells_dir, tiny_models_dir, tmp_path, capsys, args, code, msg):
    rc = main(
        ["classify", str(cells_dir), "--out", str(tmp_path / "r.csv"), "--models-dir", str(tiny_models_dir), *args]
    )
    err = capsys.readouterr().err
    assert rc == code
    assert msg in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_output_path_checks(cells_dir, tiny_models_dir, tmp_path, capsys):
    common = ["--model", "tiny_a", "--models-dir", str(tiny_models_dir)]
    img = next(cells_dir.glob("*.bmp"))
    before = img.read_bytes()
    assert main(["classify", str(cells_dir), "--out", str(img), *common]) == 2
    assert "refusing to overwrite an input image" in capsys.readouterr().err
    assert img.read_bytes() == before
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "no" / "r.csv"), *common]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["classify", str(cells_dir), "--out", str(tmp_path), *common]) == 2
    assert "is a folder" in capsys.readouterr().err
    same = str(tmp_path / "r.csv")
    assert main(["classify", str(cells_dir), "--out", same, "--summary", same, *common]) == 2
    assert "different files" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    assert main(["classify", str(empty), "--out", same, *common]) == 2
    assert "no image files found" in capsys.readouterr().err
    assert main(["classify", str(tmp_path / "missing"), "--out", same, *common]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_models_command(tiny_models_dir, capsys):
    (tiny_models_dir / "broken.json").write_text("{")
    assert main(["models", "--models-dir", str(tiny_models_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["NAME", "VERSION", "ARCHITECTURE", "INPUT", "THRESHOLD"]
    assert any(line.startswith("tiny_b ") and "48x48 crop 0.8" in line for line in lines)
    assert any(line.startswith("tiny_ensemble ") and "mean of tiny_a+tiny_b" in line for line in lines)
    assert "Invalid model cards" in out and "broken.json: invalid JSON" in out
    assert "Default model (the app opens it; classify uses it without --model): tiny_ensemble" in out


def test_console_script_one_line_error(cells_dir, tmp_path):
    exe = shutil.which("leukoscan-cli", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else CLI
    p = subprocess.run(
        [*cmd, "classify", str(cells_dir), "--model", "no_such_model", "--out", str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 3
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("leukoscan-cli: error: unknown model 'no_such_model'")


@pytest.mark.skipif(os.name == "nt", reason="SIGINT/SIGTERM delivery differs on Windows")
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_write_only_a_partial_report(cells_dir, tiny_models_dir, tmp_path, sig, code):
    big = tmp_path / "big"
    big.mkdir()
    srcs = sorted(cells_dir.glob("*.bmp"))
    for i in range(4000):
        os.link(srcs[i % len(srcs)], big / f"c{i:05d}.bmp")
    out = tmp_path / "r.csv"
    for delay in (1.0, 3.0, 8.0):  # a loaded machine may not finish a cell within the first second
        p = subprocess.Popen(
            [
                *CLI,
                "classify",
                str(big),
                "--model",
                "tiny_a",
                "--models-dir",
                str(tiny_models_dir),
                "--out",
                str(out),
                "--batch-size",
                "1",
                "--workers",
                "1",
                "--no-progress",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        line = p.stderr.readline()  # "model tiny_a ... on CPU" once the run starts
        assert "model tiny_a" in line
        time.sleep(delay)
        p.send_signal(sig)
        err = p.communicate(timeout=60)[1]
        if "before any cell was classified" not in err:
            break
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert not out.exists()
    partial = tmp_path / "r.partial.csv"
    assert partial.exists() and "interrupted after" in err
    rows = _read(partial)
    assert 0 < len(rows) < 4000 and all(r["status"] == "ok" for r in rows)


def test_models_check_loads_every_model(tiny_models_dir, capsys):
    assert main(["models", "--check", "--models-dir", str(tiny_models_dir)]) == 0
    out = capsys.readouterr().out
    assert "check tiny_ensemble: loads and runs (CPU)" in out
    # a card whose input size disagrees with its ONNX graph passes the listing but fails the check
    import json

    card = tiny_models_dir / "tiny_a.json"
    d = json.loads(card.read_text())
    d["input"]["height"] = d["input"]["width"] = 40
    card.write_text(json.dumps(d))
    assert main(["models", "--models-dir", str(tiny_models_dir)]) == 0
    assert main(["models", "--check", "--models-dir", str(tiny_models_dir)]) == 3
    assert "disagrees with the card tiny_a.json" in capsys.readouterr().out


def _common(tiny_models_dir):
    return ["--model", "tiny_a", "--models-dir", str(tiny_models_dir), "--no-progress"]


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_summary_through_a_symlink_to_the_report_is_refused(cells_dir, tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("earlier report\n")
    os.symlink(out, tmp_path / "link.csv")
    rc = main(
        [
            "classify",
            str(cells_dir),
            "--out",
            str(out),
            "--summary",
            str(tmp_path / "link.csv"),
            *_common(tiny_models_dir),
        ]
    )
    assert rc == 2 and "different files" in capsys.readouterr().err
    assert out.read_text() == "earlier report\n" and (tmp_path / "link.csv").is_symlink()
    os.link(out, tmp_path / "hard.csv")  # a hard link is the same file too
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(out),
                "--summary",
                str(tmp_path / "hard.csv"),
                *_common(tiny_models_dir),
            ]
        )
        == 2
    )


def test_read_only_report_is_replaced_only_with_force(cells_dir, tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("signed-off report\n")
    out.chmod(0o444)
    rc = main(["classify", str(cells_dir), "--out", str(out), *_common(tiny_models_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and out.read_text() == "signed-off report\n"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "exists and is read-only" in lines[0] and "--force" in lines[0]
    assert main(["classify", str(cells_dir), "--out", str(out), "--force", *_common(tiny_models_dir)]) == 0
    assert len(_read(out)) == 8


def test_disk_and_temp_folder_full_is_one_line_exit_1(cells_dir, tiny_models_dir, tmp_path, capsys, monkeypatch):
    import tempfile

    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))

    class Full(csv.DictWriter):
        def writerow(self, row):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_mod.csv, "DictWriter", Full)
    out = tmp_path / "r.csv"
    rc = main(["classify", str(cells_dir), "--out", str(out), *_common(tiny_models_dir)])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 2  # the "model ..." line, then the one error line
    assert lines[1].startswith("leukoscan-cli: error: cannot write report") and "No space left on device" in lines[1]
    assert not out.exists() and os.listdir(spare) == [] and os.listdir(tmp_path) == ["tmp"]


def test_report_saved_in_temp_folder_when_target_fails(cells_dir, tiny_models_dir, tmp_path, capsys, monkeypatch):
    import tempfile

    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    real = report_mod.write_cell_report
    out = tmp_path / "r.csv"

    def full_target(path, rows, **kw):
        if Path(path) == out:
            raise OSError(28, "No space left on device")
        return real(path, rows, **kw)

    monkeypatch.setattr("engine.cli.run_end.write_cell_report", full_target)
    assert main(["classify", str(cells_dir), "--out", str(out), *_common(tiny_models_dir)]) == 1
    err = capsys.readouterr().err
    assert "cannot write report" in err and "saved instead to" in err and "Traceback" not in err
    assert [len(_read(p)) for p in spare.iterdir()] == [8]


def test_unlistable_folder_is_in_the_report_and_summary(cells_dir, tiny_models_dir, tmp_path, capsys, locked_folders):
    (cells_dir / "locked").mkdir()
    out, summ = tmp_path / "r.csv", tmp_path / "s.csv"
    assert main(["classify", str(cells_dir), "--out", str(out), "--summary", str(summ), *_common(tiny_models_dir)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "locked: folder cannot be listed (Permission denied)" in err
    rows = _read(out)
    assert len(rows) == 9 and rows[-1]["status"] == "error" and rows[-1]["folder"] == "locked"
    by = {os.path.relpath(s["folder"], s["root"]): s for s in _read(summ)}
    assert by["locked"]["errors"] == "1" and "cannot be listed (Permission denied)" in by["locked"]["error_reasons"]
    assert by["."]["errors"] == "0" and by["."]["error_reasons"] == ""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_given_as_path_does_not_hang_the_cli(cells_dir, tiny_models_dir, tmp_path):
    fifo = tmp_path / "cell.bmp"
    os.mkfifo(fifo)
    out = tmp_path / "r.csv"
    p = subprocess.Popen(
        [
            *CLI,
            "classify",
            str(fifo),
            str(cells_dir),
            "--out",
            str(out),
            "--no-progress",
            "--model",
            "tiny_a",
            "--models-dir",
            str(tiny_models_dir),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        err = p.communicate(timeout=60)[1]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    rows = {r["file"]: r for r in _read(out)}
    assert rows["cell.bmp"]["status"] == "error" and "named pipe" in rows["cell.bmp"]["error"]
    assert sum(r["status"] == "ok" for r in rows.values()) == 8


def test_without_model_the_cli_uses_the_apps_default(cells_dir, tiny_models_dir, tmp_path, capsys):
    import json

    out = tmp_path / "r.csv"
    args = ["classify", str(cells_dir), "--out", str(out), "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    assert {r["model"] for r in _read(out)} == {"tiny_ensemble"}  # no card recommended: the ensemble
    marked = tmp_path / "marked"
    shutil.copytree(tiny_models_dir, marked)
    card = json.loads((marked / "tiny_b.json").read_text())
    card["recommended"] = True
    (marked / "tiny_b.json").write_text(json.dumps(card))
    args[5] = str(marked)
    out.unlink()
    assert main(args) == 0, capsys.readouterr().err
    assert {r["model"] for r in _read(out)} == {"tiny_b"}  # the recommended card, as the app opens it


def test_default_model_rule():
    from types import SimpleNamespace as C

    from engine.registry import default_model

    a, b, e = (
        C(name="a", recommended=False, is_ensemble=False),
        C(name="b", recommended=True, is_ensemble=False),
        C(name="e", recommended=False, is_ensemble=True),
    )
    assert default_model([a, b, e]) == "b" and default_model([a, e]) == "e" and default_model([a]) == "a"
    assert default_model([]) is None


def test_ctrl_c_while_the_cli_starts_is_one_line_and_exit_130(monkeypatch, capsys):
    """Case-record issue, item 5: Ctrl-C in the first 0.3 s printed a Python traceback (exit -2)."""
    import importlib

    from engine import cli_entry

    def interrupted(name, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert cli_entry.main(["models"]) == 130
    assert capsys.readouterr().err == "leukoscan-cli: interrupted\n"


def test_progress_bar_takes_whether_it_is_wanted_not_the_options():
    """Issue 27: the argparse Namespace stops at the CLI's parsing; the bar gets a bool."""
    from engine.cli.run_end import progress_bar

    with progress_bar(3, False) as bar:
        assert bar.disable is True
    with progress_bar(3, True) as bar:  # on a terminal only: pytest's stderr is not one
        bar.update(3)
        assert bar.total == 3


def test_classify_batches_eight_cells_by_default():
    """The default batch is the measured one (docs/speed.md: VGG19 4.0 at 32 peaked at 3.3 GB and ran slower), and
    the help says it; --batch-size still sets any other."""
    from engine.cli import build_parser

    p = build_parser()
    assert p.parse_args(["classify", "x", "-o", "r.csv"]).batch_size == 8
    assert p.parse_args(["classify", "x", "-o", "r.csv", "--batch-size", "32"]).batch_size == 32
    sub = next(a for a in p._actions if getattr(a, "choices", None) and "classify" in a.choices).choices["classify"]
    assert "default 8" in sub.format_help()
