"""Tiny but real ONNX classifiers with valid model cards, for tests and benchmarks.

The trained InceptionV3 / VGG19 are large and slow on CPU; these are a few-hundred-byte ONNX graphs
(built with ``onnx.helper``) that obey the exact contract of a real LeukoScan model:

- input ``image``: float32 NHWC ``[batch, size, size, 3]``, values 0-255, dynamic batch;
- normalisation inside the graph (``x / 255``);
- output ``logit``: ``[batch, 1]``, the logit of P(ALL).

The function they compute is simple and known, so tests can assert exact numbers::

    m      = mean over H, W of (image / 255)        # per-channel means, shape [batch, 3]
    logit  = m @ w + b                               # w shape [3, 1], b shape [1]

``w`` and ``b`` come from :func:`tiny_weights` (deterministic in ``seed``).  With seed 0 the model is
essentially "brightness = cell size": C-NMC ALL blasts are larger than normal cells, so it already
separates real cells a little (it is still a toy — never ship it).  Use :func:`reference_logits` to get
the expected output of a model in numpy.

``make_tiny_model`` writes ``<name>.onnx`` + ``<name>.json`` (a schema-valid card whose sha256 matches)
and returns the card path; ``make_tiny_ensemble`` writes an ensemble card over existing members.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: Scale of the seed-0 model: logit = SCALE * (mean brightness - PIVOT).
SCALE = 150.0
PIVOT = 0.04


def tiny_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(w [3, 1] float32, b [1] float32) of the tiny model for ``seed``."""
    w = np.full((3, 1), SCALE / 3.0, dtype=np.float64)
    b = np.array([-SCALE * PIVOT], dtype=np.float64)
    if seed:
        rng = np.random.default_rng(seed)
        w = w * (1.0 + rng.normal(0.0, 0.25, size=(3, 1)))
        b = b + rng.normal(0.0, 0.5, size=(1,))
    return w.astype(np.float32), b.astype(np.float32)


def reference_logits(batch: np.ndarray, seed: int = 0) -> np.ndarray:
    """What the tiny model of ``seed`` outputs for a float32 NHWC 0-255 batch, computed in numpy."""
    w, b = tiny_weights(seed)
    m = (batch.astype(np.float32) / np.float32(255.0)).mean(axis=(1, 2))
    return (m @ w + b).astype(np.float32)


def reference_p_all(batch: np.ndarray, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    z = reference_logits(batch, seed)[:, 0].astype(np.float64) / temperature
    return 1.0 / (1.0 + np.exp(-z))


#: Images brighter than this (mean of ``image / 255``) overflow a ``nonfinite`` model.
NONFINITE_ABOVE = 0.02


def build_tiny_onnx(
    size: int = 32,
    seed: int = 0,
    input_name: str = "image",
    output_name: str = "logit",
    nonfinite: str = "",
    nonfinite_above: float = NONFINITE_ABOVE,
):
    """The ``onnx.ModelProto`` of a tiny model (static H, W = ``size``; dynamic batch).

    ``nonfinite`` "inf" or "nan": a broken model, whose output is +Inf (NaN) for images brighter than
    about ``nonfinite_above`` (mean of ``image / 255``; a float32 ``exp`` overflow) and the normal logit
    for darker ones: a black image (the load-time probe) still gives a finite output.  A negative
    ``nonfinite_above`` spoils every output.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = tiny_weights(seed)
    inp = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", size, size, 3])
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", 1])
    inits = [
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "hw_axes"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(b, "b"),
    ]
    nodes = [
        helper.make_node("Div", [input_name, "scale"], ["x01"]),  # normalisation lives in the graph
        helper.make_node("ReduceMean", ["x01", "hw_axes"], ["chan_mean"], keepdims=0),
        helper.make_node("MatMul", ["chan_mean", "w"], ["z"]),
        helper.make_node("Add", ["z", "b"], [output_name if not nonfinite else "logit_ok"]),
    ]
    if nonfinite:
        if nonfinite not in ("inf", "nan"):
            raise ValueError(f"nonfinite must be 'inf' or 'nan', got {nonfinite!r}")
        inits += [
            numpy_helper.from_array(np.array(nonfinite_above, dtype=np.float32), "nf_above"),
            numpy_helper.from_array(np.array(1e4, dtype=np.float32), "nf_gain"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "nf_axis"),
        ]
        nodes += [
            helper.make_node("ReduceMean", ["chan_mean", "nf_axis"], ["nf_m"], keepdims=1),
            helper.make_node("Sub", ["nf_m", "nf_above"], ["nf_d"]),
            helper.make_node("Mul", ["nf_d", "nf_gain"], ["nf_x"]),
            helper.make_node("Exp", ["nf_x"], ["nf_e"]),  # 0 below the limit, +Inf above it
        ]
        if nonfinite == "nan":
            nodes.append(helper.make_node("Sub", ["nf_e", "nf_e"], ["nf_e2"]))  # 0, or Inf - Inf = NaN
        nodes.append(helper.make_node("Add", ["logit_ok", "nf_e2" if nonfinite == "nan" else "nf_e"], [output_name]))
    graph = helper.make_graph(nodes, f"tiny_{size}_{seed}", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="leukoscan-tests")
    model.ir_version = 8  # readable by any onnxruntime >= 1.14
    onnx.checker.check_model(model)
    return model


def build_tiny_conv_onnx(size: int = 16, seed: int = 0, fp16_weights: bool = True):
    """A small convolutional model with the two outputs of the new models: ``logit`` [batch, 1] and ``cam``
    [batch, size, size] (a class-activation map), for the int8 tooling.  Its convolution weights are stored as
    float16 + Cast like ``training.export.store_weights_fp16`` writes them (``fp16_weights``).  The logit grows with
    the image's brightness (non-negative weights), so it orders real cells like :func:`build_tiny_onnx` does."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = np.abs(rng.normal(0.0, 0.5, (8, 3, 3, 3))).astype(np.float32)
    w2 = rng.normal(0.0, 0.3, (8, 8, 3, 3)).astype(np.float32) + 0.2
    head = np.abs(rng.normal(1.0, 0.3, (8, 1))).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(255.0, np.float32), "scale"),
        numpy_helper.from_array(np.zeros(8, np.float32) - 0.1, "b1"),
        numpy_helper.from_array(np.zeros(8, np.float32), "b2"),
        numpy_helper.from_array(head, "head_w"),
        numpy_helper.from_array(np.array([-2.0], np.float32), "head_b"),
        numpy_helper.from_array(np.array([1], np.int64), "c_axis"),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Div", ["nchw", "scale"], ["x01"], name="normalise"),
    ]
    for name, w in (("w1", w1), ("w2", w2)):
        if fp16_weights:
            inits.append(numpy_helper.from_array(w.astype(np.float16), name + "__fp16"))
            nodes.append(helper.make_node("Cast", [name + "__fp16"], [name], to=TensorProto.FLOAT, name=name + "_cast"))
        else:
            inits.append(numpy_helper.from_array(w, name))
    nodes += [
        helper.make_node("Conv", ["x01", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("ReduceMean", ["r2", "c_axis"], ["cam"], keepdims=0, name="cam_mean"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["feat"], name="flatten"),
        helper.make_node("MatMul", ["feat", "head_w"], ["z"], name="head"),
        helper.make_node("Add", ["z", "head_b"], ["logit"], name="head_bias"),
    ]
    graph = helper.make_graph(
        nodes,
        f"tiny_conv_{size}_{seed}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", size, size, 3])],
        [
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["batch", size, size]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="leukoscan-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def add_tiny_int8(card_path: str | Path, passed: bool = True, calib: np.ndarray | None = None) -> Path:
    """Quantise the card's model (static QDQ int8, onnxruntime.quantization) to ``<name>.int8.onnx`` and name it in the
    card with its sha256, the gate's verdict ``passed`` under ``metrics.int8_quantization``; the int8 file's path."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    card_path = Path(card_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    h, w = card["input"]["height"], card["input"]["width"]
    x = calib if calib is not None else np.random.default_rng(0).uniform(0, 255, (8, h, w, 3)).astype(np.float32)

    class Reader:
        def __init__(self):
            self.left = [x[i : i + 4] for i in range(0, len(x), 4)]

        def get_next(self):
            return {"image": self.left.pop(0)} if self.left else None

    src = card_path.parent / card["onnx_file"]
    dst = card_path.parent / f"{card['name']}.int8.onnx"
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    card["int8"] = {"onnx_file": dst.name, "sha256": _sha256(dst)}
    card["metrics"]["int8_quantization"] = {"pass": passed, "call_agreement": 1.0 if passed else 0.9}
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return dst


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_tiny_model(
    dest_dir: str | Path,
    name: str = "tiny",
    size: int = 32,
    seed: int = 0,
    threshold: float = 0.5,
    temperature: float = 1.0,
    review_margin: float = 0.1,
    crop_fraction: float = 1.0,
    version: str = "0.0-test",
    resize_filter: str = "bilinear",
    input_name: str = "image",
    output_name: str = "logit",
    nonfinite: str = "",
    nonfinite_above: float = NONFINITE_ABOVE,
    conv: bool = False,
) -> Path:
    """Write ``<dest_dir>/<name>.onnx`` and its card ``<name>.json``; return the card path.  ``conv``: the model of
    :func:`build_tiny_conv_onnx` (outputs ``logit`` and ``cam``) instead of the mean-colour one."""
    import onnx

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    onnx_path = dest / f"{name}.onnx"
    proto = (
        build_tiny_conv_onnx(size, seed)
        if conv
        else build_tiny_onnx(size, seed, input_name, output_name, nonfinite, nonfinite_above)
    )
    onnx.save(proto, str(onnx_path))
    card = {
        "schema_version": 1,
        "type": "onnx",
        "name": name,
        "display_name": f"Tiny test model {name}",
        "architecture": "TinyMeanColour (onnx.helper, tests only)",
        "version": version,
        "created": "2026-11-26",
        "onnx_file": onnx_path.name,
        "sha256": _sha256(onnx_path),
        "input": {
            "name": input_name,
            "height": size,
            "width": size,
            "channels": 3,
            "layout": "NHWC",
            "dtype": "float32",
            "value_range": [0, 255],
        },
        "output": {"name": output_name, "kind": "logit"},
        "preprocessing": {"crop_fraction": crop_fraction, "resize_filter": resize_filter},
        "classes": ["ALL", "HEM"],
        "positive_class": "ALL",
        "threshold": threshold,
        "temperature": temperature,
        "review_margin": review_margin,
        "metrics": {
            "note": "synthetic test model, not validated on any data",
            "data": {"subjects": 0, "cells": 0},
        },
        "training": {"data": "none", "initial_weights": f"tiny_weights(seed={seed})", "epochs": 0},
        "notes": "Built by tests/tinymodels.py. For tests and benchmarks only.",
    }
    card_path = dest / f"{name}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path


def make_tiny_ensemble(
    dest_dir: str | Path,
    members: Iterable[str],
    name: str = "ensemble",
    threshold: float = 0.5,
    review_margin: float = 0.1,
    version: str = "0.0-test",
) -> Path:
    """Write an ensemble card ``<dest_dir>/<name>.json`` over the named members; return its path."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    card = {
        "schema_version": 1,
        "type": "ensemble",
        "name": name,
        "display_name": f"Tiny test ensemble {name}",
        "architecture": "ensemble",
        "version": version,
        "created": "2026-11-26",
        "members": list(members),
        "classes": ["ALL", "HEM"],
        "positive_class": "ALL",
        "threshold": threshold,
        "review_margin": review_margin,
        "metrics": {"note": "synthetic test ensemble, not validated"},
        "notes": "Built by tests/tinymodels.py. For tests and benchmarks only.",
    }
    card_path = dest / f"{name}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path
