"""CLI conventions (issue 28 item 6): -o for --out, report writes with --out (--pdf kept), --json on report and
verify, -vv adds detail, a broken pipe exits 141, an unknown option prints the subcommand's usage, and classify and
export JSON name the case file the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _common(models: Path) -> list[str]:
    return ["--model", "tiny_a", "--models-dir", str(models), "--no-progress"]


def test_o_is_out_and_classify_and_export_json_name_the_case_file_alike(cells_dir, tiny_models_dir, tmp_path, capsys):
    db, out = tmp_path / "case.leukoscan", tmp_path / "r.csv"
    assert (
        main(["classify", str(cells_dir), "-o", str(out), "--store", str(db), "--json", *_common(tiny_models_dir)]) == 0
    )
    classified = json.loads(capsys.readouterr().out)
    assert out.is_file() and classified["files"]["report"] == str(out)
    assert main(["export", str(db), "-o", str(tmp_path / "e.csv"), "--json", "--no-bookkeeping"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert classified["case_file"] == exported["case_file"] == str(db)
    assert "case_file" not in classified["files"]


def test_vv_adds_the_engine_detail(cells_dir, tiny_models_dir, tmp_path, capsys):
    args = ["classify", str(cells_dir), "-o", str(tmp_path / "r.csv"), *_common(tiny_models_dir)]
    assert main([*args, "-v"]) == 0
    v = capsys.readouterr().err
    assert main([*args, "-vv"]) == 0
    vv = capsys.readouterr().err
    assert "batch size 8" in v and "batch of 8 cells" not in v
    assert "batch of 8 cells (8 decoded):" in vv and "inference" in vv


def test_unknown_option_prints_the_subcommand_usage(capsys):
    assert main(["classify", "somewhere", "-o", "r.csv", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "usage: leukoscan-cli classify" in err and "unrecognized arguments: --bogus" in err
    assert main(["verify", "x.leukoscan", "--nope"]) == 2
    assert "usage: leukoscan-cli verify" in capsys.readouterr().err


def test_a_broken_pipe_exits_141(cells_dir, tiny_models_dir, tmp_path):
    """``leukoscan-cli classify ... -o - | head -0``: the reader is gone before the report is written."""
    p = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "classify", str(cells_dir), "-o", "-", *_common(tiny_models_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()  # the reader goes away at once
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err


def test_help_examples_name_only_models_that_are_bundled(monkeypatch, capsys):
    """Issue 28 item 5: `classify --help` showed `--model ensemble` (no ensemble is bundled: exit 3), as did the
    app's --help."""
    import re

    from engine.registry import Registry, default_dirs
    from gui.app import parse_args

    monkeypatch.delenv("LEUKOSCAN_RESOURCES_DIR", raising=False)
    bundled = {c.name for c in Registry(default_dirs()).cards()}
    texts = []
    for argv in (["classify", "--help"], ["report", "--help"], ["models", "--help"], ["--help"]):
        with pytest.raises(SystemExit) as ex:
            main(argv)
        assert ex.value.code == 0, argv  # (`leukoscan-cli --help` once crashed on a "%" in a command's help)
        texts.append(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    texts.append(capsys.readouterr().out)
    named = {m for t in texts for m in re.findall(r"--model[ =]([a-z][\w.-]*)", t)}  # (not the MODEL metavar)
    assert named <= bundled, named - bundled
    assert not any(re.search(r"e\.g\. ensemble", t) for t in texts)
