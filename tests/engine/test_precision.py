"""Model precision (issue 29): a card's optional int8 file, ``--precision fp32|int8|auto`` and the app's setting."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from tinymodels import add_tiny_int8, make_tiny_model, reference_p_all

from engine.card import ModelError, for_precision, load_card
from engine.cli import main
from engine.registry import Registry


@pytest.fixture
def models(tmp_path):
    """``passed``: a model whose int8 copy passed the gate; ``failed``: one whose gate failed; ``plain``: no int8."""
    d = tmp_path / "models"
    calib = np.random.default_rng(0).uniform(0, 60, (16, 32, 32, 3)).astype(np.float32)
    add_tiny_int8(make_tiny_model(d, "passed", seed=0), passed=True, calib=calib)
    add_tiny_int8(make_tiny_model(d, "failed", seed=1), passed=False, calib=calib)
    make_tiny_model(d, "plain", seed=2)
    return d


def test_card_reads_the_int8_file_and_its_sha256(models):
    card = load_card(models / "passed.json")
    assert card.int8_file == models / "passed.int8.onnx" and card.int8_passed and card.precision == "fp32"
    assert not load_card(models / "failed.json").int8_passed and load_card(models / "plain.json").int8_file is None


@pytest.mark.parametrize(
    "block, why",
    [
        ({"onnx_file": "passed.int8.onnx", "sha256": "xyz"}, "int8 sha256 must be 64 hex digits"),
        ({"sha256": "0" * 64}, "missing field 'onnx_file'"),
        ({"onnx_file": "passed.onnx", "sha256": "0" * 64}, "must not be the float32 file"),
        ("passed.int8.onnx", "int8 must be an object"),
    ],
)
def test_a_bad_int8_entry_is_refused_with_its_reason(models, block, why):
    raw = json.loads((models / "passed.json").read_text())
    raw["int8"] = block
    (models / "passed.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=why):
        load_card(models / "passed.json")


def test_auto_takes_int8_only_where_the_card_says_it_passed(models):
    assert for_precision(load_card(models / "passed.json"), "auto").precision == "int8"
    assert for_precision(load_card(models / "failed.json"), "auto").precision == "fp32"
    assert for_precision(load_card(models / "plain.json"), "auto").precision == "fp32"
    (models / "passed.int8.onnx").unlink()
    assert for_precision(load_card(models / "passed.json"), "auto").precision == "fp32"  # the file is gone


@pytest.mark.parametrize(
    "name, why",
    [
        ("plain", "has no int8 file"),
        ("failed", "does not say its int8 file passed the gate"),
    ],
)
def test_explicit_int8_without_a_passed_int8_file_says_why(models, name, why):
    with pytest.raises(ModelError, match=why):
        Registry([models]).load(name, device="cpu", precision="int8")


def test_int8_runs_the_int8_file_and_fp32_the_float_one(models):
    reg = Registry([models])
    c8 = reg.load("passed", device="cpu", precision="int8")
    c32 = reg.load("passed", device="cpu", precision="fp32")
    assert (c8.precision, c32.precision) == ("int8", "fp32")
    assert c8.members[0].card.onnx_file.name == "passed.int8.onnx"
    ops8 = {n.op_type for n in __import__("onnx").load(str(models / "passed.int8.onnx")).graph.node}
    assert "QuantizeLinear" in ops8
    x = np.random.default_rng(3).uniform(0, 60, (32, 32, 32, 3)).astype(np.float32)
    p8, p32 = c8.predict_batch(x).p_all, c32.predict_batch(x).p_all
    np.testing.assert_allclose(p32, reference_p_all(x, seed=0), atol=1e-5)
    assert not np.array_equal(p8, p32) and np.max(np.abs(p8 - p32)) < 0.05  # quantised: close, not the same


def test_an_int8_file_that_changed_is_refused(models):
    (models / "passed.int8.onnx").write_bytes((models / "passed.int8.onnx").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        Registry([models]).load("passed", device="cpu", precision="auto")


def test_cli_precision(models, cells_dir, tmp_path, capsys):
    common = ["--models-dir", str(models), "--no-progress", "--json", "--device", "cpu"]
    out = tmp_path / "r.csv"
    assert main(["classify", str(cells_dir), "--model", "passed", "--out", str(out), *common]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["precision"] == "int8"  # auto is the default
    assert (
        main(["classify", str(cells_dir), "--model", "passed", "--precision", "fp32", "--out", str(out), *common]) == 0
    )
    assert json.loads(capsys.readouterr().out)["model"]["precision"] == "fp32"
    bad = ["classify", str(cells_dir), "--model", "plain", "--precision", "int8", "--out", str(tmp_path / "x.csv")]
    rc = main([*bad, *common])
    assert rc == 3 and "has no int8 file" in capsys.readouterr().err
