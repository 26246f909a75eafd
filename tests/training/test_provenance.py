"""A run folder and a model card record the command, the recipe and the commit that made them (issue 27 part 5),
and the engine's card exposes them."""

from __future__ import annotations

import json
import subprocess

import pytest

from engine.card import load_card
from engine.preprocess import Preprocessing
from training import cli, provenance


def _head() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=provenance.REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def test_a_run_record_has_the_command_line_the_recipe_and_the_checked_out_commit():
    provenance.set_command(["probe-fit", "--recipe", "vgg19 b2 gap+std cls", "--run", "runs/v"])
    rec = provenance.record("vgg19 b2 gap+std cls")
    assert rec["command"] == "leukoscan-train probe-fit --recipe 'vgg19 b2 gap+std cls' --run runs/v"
    assert rec["recipe"] == "vgg19 b2 gap+std cls"
    assert rec["commit"] == _head()
    assert isinstance(rec["uncommitted_changes"], list)
    assert all(f.startswith(provenance.CODE_PATHS) for f in rec["uncommitted_changes"])


def test_main_records_the_command_it_runs(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("training.tools._prepare", lambda *a: seen.setdefault("command", provenance.command()) and 0)
    assert cli.main(["prepare", "--data", str(tmp_path), "--folds", "3"]) == 0
    assert seen["command"] == f"leukoscan-train prepare --data {tmp_path} --folds 3"


def test_the_card_block_names_the_export_the_recipe_and_keeps_the_runs_record():
    run = {
        "command": "leukoscan-train e2e --run runs/x",
        "recipe": "e2e vgg19",
        "commit": "abc",
        "uncommitted_changes": [],
    }
    provenance.set_command(["export", "--run", "runs/x"])
    block = provenance.card_block({"provenance": run, "recipe": {"name": "ignored"}})
    assert block["command"] == "leukoscan-train export --run runs/x" and block["recipe"] == "e2e vgg19"
    assert block["run"] == run and block["commit"] == _head()
    # a run folder written before runs recorded it: the recipe's name from its recipe block, no run record
    old = provenance.card_block({"recipe": {"name": "vgg19 b2 gap+std cls"}})
    assert old["recipe"] == "vgg19 b2 gap+std cls" and "run" not in old


def test_an_exported_card_carries_the_block_and_the_engine_exposes_it(tmp_path):
    pytest.importorskip("onnx")
    from tinymodels import make_tiny_model

    from training.export import write_card

    make_tiny_model(tmp_path, "tiny", size=32)
    provenance.set_command(["export", "--run", "runs/t", "--name", "made"])
    block = provenance.card_block({"provenance": provenance.record("unit-test recipe")})
    spec = Preprocessing(32, 32, 1.0, "bilinear")
    card = write_card(
        tmp_path, "made", "Made", "tiny", tmp_path / "tiny.onnx", spec, 0.5, 1.0, 0.1, {}, {}, "", provenance=block
    )
    assert json.loads(card.read_text())["provenance"] == block
    got = load_card(card).provenance
    assert got["command"] == "leukoscan-train export --run runs/t --name made"
    assert got["recipe"] == "unit-test recipe" and got["commit"] == _head()
    assert load_card(tmp_path / "tiny.json").provenance == {}  # a card without one: empty, not an error
