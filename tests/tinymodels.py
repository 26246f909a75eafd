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
) -> Path:
    """Write ``<dest_dir>/<name>.onnx`` and its card ``<name>.json``; return the card path."""
    import onnx

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    onnx_path = dest / f"{name}.onnx"
    onnx.save(build_tiny_onnx(size, seed, input_name, output_name, nonfinite, nonfinite_above), str(onnx_path))
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
