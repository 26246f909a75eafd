"""Model cards and the registry: validation with clear messages, discovery, no silent fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from tinymodels import build_tiny_onnx, make_tiny_ensemble, make_tiny_model

from engine.card import ModelError, load_card, verify_onnx_file
from engine.registry import Registry, describe_metrics


def _edit(card_path: Path, **changes) -> None:
    d = json.loads(card_path.read_text())
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    card_path.write_text(json.dumps(d))


def test_tiny_card_is_valid(tmp_path):
    cp = make_tiny_model(tmp_path, "m1", size=40, threshold=0.3, temperature=1.5, review_margin=0.05, crop_fraction=0.9)
    c = load_card(cp)
    assert (c.name, c.type, c.threshold, c.temperature, c.review_margin) == ("m1", "onnx", 0.3, 1.5, 0.05)
    assert c.input_size == (40, 40) and c.preprocessing.crop_fraction == 0.9
    assert c.onnx_file == tmp_path / "m1.onnx" and c.input_name == "image" and c.output_name == "logit"
    verify_onnx_file(c)


@pytest.mark.parametrize(
    "changes,word",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": None}, "missing field 'threshold'"),
        ({"sha256": "abc"}, "64 hex"),
        ({"onnx_file": None}, "onnx_file"),
        ({"schema_version": 99}, "schema_version"),
        ({"classes": ["HEM", "ALL"]}, "classes"),
        ({"temperature": 0}, "temperature"),
        ({"review_margin": 0.7}, "review_margin"),
        ({"type": "pytorch"}, "unknown model type"),
        ({"name": "Bad Name!"}, "invalid model name"),
        ({"preprocessing": {"crop_fraction": 3}}, "preprocessing"),
        ({"output": {"kind": "softmax"}}, "output kind"),
        ({"test_time_augmentation": {"views": [0, 8]}}, "views must be distinct integers 0-7"),
        ({"test_time_augmentation": {"views": [0, 0]}}, "views must be distinct integers 0-7"),
        ({"test_time_augmentation": {"views": []}}, "views must be distinct integers 0-7"),
        ({"test_time_augmentation": {"views": [0, 1], "combine": "max"}}, "combine"),
        ({"test_time_augmentation": [0, 1]}, "test_time_augmentation must be an object"),
        ({"recommended": "yes"}, "recommended must be true or false"),
    ],
)
def test_invalid_cards_name_file_and_problem(tmp_path, changes, word):
    cp = make_tiny_model(tmp_path, "m")
    _edit(cp, **changes)
    with pytest.raises(ModelError, match=word) as ei:
        load_card(cp)
    assert str(cp) in str(ei.value)


def test_bad_input_spec_in_card(tmp_path):
    cp = make_tiny_model(tmp_path, "m")
    d = json.loads(cp.read_text())
    d["input"]["layout"] = "NCHW"
    cp.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="NHWC"):
        load_card(cp)
    d["input"]["layout"] = "NHWC"
    d["input"]["value_range"] = [0, 1]
    cp.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="value_range"):
        load_card(cp)


def test_ensemble_card_validation(tmp_path):
    for members, word in ((["a"], "at least two"), (["a", "a"], "distinct"), ("a,b", "wrong type")):
        p = make_tiny_ensemble(tmp_path, ["a", "b"], name="e")
        _edit(p, members=members)
        with pytest.raises(ModelError, match=word):
            load_card(p)


def test_bad_json_names_line(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"name": "x",\n  "threshold": }')
    with pytest.raises(ModelError, match=r"x\.json: invalid JSON at line 2"):
        load_card(p)


def test_registry_lists_valid_cards_and_problems(tiny_models_dir):
    d = tiny_models_dir
    make_tiny_model(d, "corrupt")
    with open(d / "corrupt.onnx", "ab") as fh:
        fh.write(b"\0")
    make_tiny_model(d, "gone")
    (d / "gone.onnx").unlink()
    (d / "notjson.json").write_text("{")
    make_tiny_ensemble(d, ["tiny_a", "gone"], name="bad_ens")
    (d / ".hidden.json").write_text("{")
    reg = Registry([d])
    assert reg.names() == ["tiny_a", "tiny_b", "tiny_ensemble"]
    probs = "\n".join(reg.problems)
    assert len(reg.problems) == 4, probs
    assert "corrupt.onnx: sha256 mismatch" in probs
    assert "gone.onnx: ONNX file named by gone.json is missing" in probs
    assert "notjson.json: invalid JSON" in probs
    assert "ensemble 'bad_ens' unusable: member 'gone'" in probs
    with pytest.raises(ModelError, match="sha256 mismatch"):
        reg.load("corrupt")
    with pytest.raises(ModelError, match=r"unknown model 'nope' \(available: tiny_a, tiny_b, tiny_ensemble"):
        reg.get("nope")


def test_first_folder_wins_on_duplicate_names(tmp_path):
    a = make_tiny_model(tmp_path / "bundled", "dup", version="1.0")
    make_tiny_model(tmp_path / "user", "dup", version="9.9")
    reg = Registry([tmp_path / "bundled", tmp_path / "user"])
    assert reg.get("dup").version == "1.0" and reg.get("dup").path == a
    assert any("already defined" in p for p in reg.problems)


def test_default_folders_include_user_models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEUKOSCAN_DATA_DIR", str(tmp_path / "ud"))
    make_tiny_model(tmp_path / "ud" / "models", "usermodel")
    reg = Registry()
    assert "usermodel" in reg.names()
    assert reg.dirs[-1] == (tmp_path / "ud" / "models").resolve()


def test_input_shape_disagreeing_with_card_is_refused_on_load(tmp_path):
    cp = make_tiny_model(tmp_path, "m", size=32)
    d = json.loads(cp.read_text())
    d["input"]["height"] = d["input"]["width"] = 48
    cp.write_text(json.dumps(d))
    reg = Registry([tmp_path])
    with pytest.raises(ModelError, match=r"m\.onnx: input shape .* disagrees with the card m\.json"):
        reg.load("m")


def test_input_name_disagreeing_with_card_is_refused(tmp_path):
    cp = make_tiny_model(tmp_path, "m")
    d = json.loads(cp.read_text())
    d["input"]["name"] = "input_1"
    cp.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="input tensor is named 'image'"):
        Registry([tmp_path]).load("m")


def test_two_column_output_is_refused(tmp_path):
    cp = make_tiny_model(tmp_path, "m")
    model = build_tiny_onnx(32, 0)
    w = next(i for i in model.graph.initializer if i.name == "w")
    w.CopyFrom(onnx.numpy_helper.from_array(np.ones((3, 2), np.float32), "w"))
    b = next(i for i in model.graph.initializer if i.name == "b")
    b.CopyFrom(onnx.numpy_helper.from_array(np.zeros((2,), np.float32), "b"))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2
    onnx.save(model, str(tmp_path / "m.onnx"))
    import hashlib

    _edit(cp, sha256=hashlib.sha256((tmp_path / "m.onnx").read_bytes()).hexdigest())
    with pytest.raises(ModelError, match="2 values per cell"):
        Registry([tmp_path]).load("m")


def test_garbage_onnx_with_matching_sha_is_a_model_error(tmp_path):
    cp = make_tiny_model(tmp_path, "m")
    (tmp_path / "m.onnx").write_bytes(b"definitely not protobuf" * 10)
    import hashlib

    _edit(cp, sha256=hashlib.sha256((tmp_path / "m.onnx").read_bytes()).hexdigest())
    with pytest.raises(ModelError, match="m.onnx: onnxruntime cannot load the model"):
        Registry([tmp_path]).load("m")


def test_sessions_are_shared_between_model_and_ensemble(tiny_models_dir):
    reg = Registry([tiny_models_dir])
    a = reg.load("tiny_a")
    ens = reg.load("tiny_ensemble")
    assert ens.members[0].session is a.members[0].session
    assert ens.member_names == ("tiny_a", "tiny_b") and a.member_names == ()
    assert reg.load("tiny_a", threads=1).members[0].session is not a.members[0].session


def test_describe_metrics():
    from engine.card import parse_card

    c = parse_card(
        {
            "name": "e",
            "type": "ensemble",
            "members": ["a", "b"],
            "threshold": 0.5,
            "metrics": {"weighted_f1": 0.8712, "auroc": 0.93, "data": {"split": "test", "subjects": 9, "cells": 1200}},
        },
        Path("e.json"),
    )
    assert describe_metrics(c) == "weighted_f1=0.871 auroc=0.930 on split=test subjects=9 cells=1200"


def test_describe_metrics_nested_and_prioritised():
    from engine.card import parse_card

    c = parse_card(
        {
            "name": "e",
            "type": "ensemble",
            "members": ["a", "b"],
            "threshold": 0.5,
            "metrics": {
                "test": {"accuracy": 0.8, "auroc": 0.91, "weighted_f1": 0.85, "data": {"subjects": 7, "cells": 900}}
            },
        },
        Path("e.json"),
    )
    assert describe_metrics(c) == "test.weighted_f1=0.850 test.auroc=0.910 test.accuracy=0.800 on subjects=7 cells=900"
    top = parse_card(
        {
            "name": "t",
            "type": "ensemble",
            "members": ["a", "b"],
            "threshold": 0.5,
            "metrics": {
                "data": "out-of-fold predictions of a 5-fold cross-validation grouped by subject, 5946 cells",
                "auroc": 0.886,
                "target_weighted_f1": 0.88,
                "weighted_f1": 0.856,
                "meets_targets": False,
                "detail": {"macro_f1": 0.83},
            },
        },
        Path("t.json"),
    )
    assert describe_metrics(top) == (
        "weighted_f1=0.856 auroc=0.886 on out-of-fold predictions of a 5-fold cross-validation groupe…"
    )
    empty = parse_card({"name": "x", "type": "ensemble", "members": ["a", "b"], "threshold": 0.5}, Path("x.json"))
    assert describe_metrics(empty) == "no validation metrics in the card"


@pytest.mark.parametrize("fixed", [1, 2])
def test_fixed_batch_graph_is_run_in_chunks(tmp_path, fixed):
    """Some exporters freeze the batch dimension to 1: the engine still scores any batch size."""
    import hashlib

    from conftest import real_cell_sources
    from tinymodels import reference_p_all

    from engine.preprocess import preprocess_file

    cp = make_tiny_model(tmp_path, "fixed", size=32)
    model = build_tiny_onnx(32, 0)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = fixed
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = fixed
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    _edit(cp, sha256=hashlib.sha256((tmp_path / "fixed.onnx").read_bytes()).hexdigest())
    clf = Registry([tmp_path]).load("fixed")
    assert clf.members[0].fixed_batch == fixed
    x = np.stack([preprocess_file(p, clf.preprocessings[0]) for p in real_cell_sources()[:3]])
    np.testing.assert_allclose(clf.predict_batch(x).p_all, reference_p_all(x, 0), rtol=1e-5)
