"""ONNX export (tf2onnx), Keras-vs-ONNX parity, float16 weight storage, model cards (int8: training.quantize)."""

from __future__ import annotations

import datetime as _dt
import platform
import time
from pathlib import Path

import numpy as np

from engine.card import SCHEMA_VERSION, load_card, sha256_file, verify_onnx_file
from engine.preprocess import Preprocessing

from .files import saving, write_json

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logit"
CAM_OUTPUT = "cam"  # the class-activation map output (engine/cam.py)
#: Keras vs onnxruntime, max |P(ALL) difference| on real cells.  1e-4 until 4.0; a linear head on standard deviations
#: of early VGG19 features (4.0) amplifies the float32 summation-order differences of the two runtimes' convolutions
#: to 3e-4.  P(ALL) is shown with two decimals and float16 weight storage is allowed 5e-3: 1e-3 still catches any
#: export fault (a wrong layer, a missing normalisation, a transposed input moves P by far more).
PARITY_MAX_P_DIFF = 1e-3


def export_onnx(model, path: str | Path, opset: int = OPSET) -> Path:
    """Keras model (0-255 NHWC input, one logit) -> ONNX with a dynamic batch; input 'image', output 'logit'."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    if opset > 18:
        raise ValueError("opset 19+ is not supported by the engine's onnxruntime path; use <= 18")
    h, w, c = (int(d) for d in model.inputs[0].shape[1:])
    spec = (tf.TensorSpec((None, h, w, c), tf.float32, name=INPUT_NAME),)

    with_cam = len(model.outputs) == 2  # (logit, cam): a model that computes its own map (training/probe.py)

    @tf.function(input_signature=spec)
    def serve(image):
        if with_cam:
            z, cam = model(image, training=False)
            return {OUTPUT_NAME: tf.cast(z, tf.float32), CAM_OUTPUT: tf.cast(cam, tf.float32)}
        return {OUTPUT_NAME: tf.cast(model(image, training=False), tf.float32)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    # tf2onnx names the graph input after the signature; make the names exactly what the card says.
    if with_cam:
        _order_outputs(proto)
    else:
        _rename_io(proto)
    _name_batch_dim(proto)
    if not with_cam:
        _add_cam(proto)
    onnx.checker.check_model(proto)
    path = Path(path)
    with saving(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return path


def _order_outputs(proto) -> None:
    """``logit`` first, then ``cam`` (the engine reads output 0 as the logit), and the input named as the card says."""
    g = proto.graph
    names = [o.name for o in g.output]
    if set(names) != {OUTPUT_NAME, CAM_OUTPUT}:
        raise RuntimeError(f"expected outputs {OUTPUT_NAME!r} and {CAM_OUTPUT!r}, got {names}")
    outs = sorted(g.output, key=lambda o: o.name != OUTPUT_NAME)
    copies = [type(o)() for o in outs]
    for c, o in zip(copies, outs):
        c.CopyFrom(o)
    del g.output[:]
    g.output.extend(copies)
    if g.input[0].name != INPUT_NAME:
        old = g.input[0].name
        for node in g.node:
            node.input[:] = [INPUT_NAME if n == old else n for n in node.input]
        g.input[0].name = INPUT_NAME


def _rename_io(proto) -> None:
    g = proto.graph
    renames = {}
    if g.input[0].name != INPUT_NAME:
        renames[g.input[0].name] = INPUT_NAME
    if g.output[0].name != OUTPUT_NAME:
        renames[g.output[0].name] = OUTPUT_NAME
    if not renames:
        return
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for vi in list(g.input) + list(g.output):
        if vi.name in renames:
            vi.name = renames[vi.name]


def _add_cam(proto) -> None:
    """The class-activation map as a second output (training/cam.py), so the app's overlay keeps working after
    a retrain; a head CAM cannot be exact for is exported without it, with a warning."""
    import warnings

    from .cam import CamError, add_cam_graph

    try:
        add_cam_graph(proto, OUTPUT_NAME)
    except CamError as exc:
        warnings.warn(f"exported without the class-activation output: {exc}", stacklevel=3)


def _name_batch_dim(proto) -> None:
    for vi in list(proto.graph.input) + list(proto.graph.output):
        d0 = vi.type.tensor_type.shape.dim[0]
        if not d0.HasField("dim_value"):
            d0.dim_param = "batch"


def store_weights_fp16(src: str | Path, dst: str | Path, min_elements: int = 1024) -> Path:
    """Same graph, weights stored as float16: each float32 initializer of >= ``min_elements`` values becomes a
    float16 initializer followed by a Cast back to float32, so the model still computes in float32 and keeps
    its float32 input/output (onnxruntime folds the casts once at load time).  Halves the file (the bundle
    budget is 350 MB); the change in P(ALL) is measured by the caller (:func:`storage_parity`)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(src))
    g = proto.graph
    casts, keep = [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims, dtype=np.int64)) >= min_elements:
            arr = numpy_helper.to_array(init)
            if not np.all(np.abs(arr) < 65504):
                keep.append(init)  # would overflow float16
                continue
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            keep.append(half)
            casts.append(
                helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__to_fp32")
            )
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(proto)
    dst = Path(dst)
    with saving(dst) as tmp:
        onnx.save_model(proto, str(tmp))
    return dst


def storage_parity(
    fp32_path: str | Path, stored_path: str | Path, x: np.ndarray, temperature: float, threshold: float
) -> dict:
    """What float16 weight storage changes on real cells: max |dP(ALL)| and decision agreement vs the float32
    export (which itself passed the Keras parity check)."""
    from .metrics import sigmoid

    p32 = sigmoid(onnx_logits(fp32_path, x) / temperature)
    p16 = sigmoid(onnx_logits(stored_path, x) / temperature)
    return {
        "n_cells": int(len(x)),
        "max_abs_p_diff_vs_fp32": float(np.max(np.abs(p32 - p16))),
        "decision_agreement": float(np.mean((p32 >= threshold) == (p16 >= threshold))),
        "size_mb_fp32": round(Path(fp32_path).stat().st_size / 1e6, 1),
        "size_mb": round(Path(stored_path).stat().st_size / 1e6, 1),
    }


def onnx_logits(path: str | Path, x: np.ndarray, batch: int = 32, threads: int | None = None) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(x), batch):
        out.append(sess.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(x[i : i + batch], np.float32)})[0][:, 0])
    return np.concatenate(out)


def keras_logits(model, x: np.ndarray, batch: int = 32) -> np.ndarray:
    def logit(out):  # a model with a class-activation output returns (logit, cam)
        return out[0] if isinstance(out, (list, tuple)) else out

    return np.concatenate(
        [
            np.asarray(logit(model(np.asarray(x[i : i + batch], np.float32), training=False)))[:, 0]
            for i in range(0, len(x), batch)
        ]
    )


def parity(model, onnx_path: str | Path, x: np.ndarray, temperature: float) -> dict:
    """max |P(ALL) keras - P(ALL) onnx| (calibrated) and max |logit diff| on the given real cells."""
    from .metrics import sigmoid

    zk = keras_logits(model, x)
    zo = onnx_logits(onnx_path, x)
    return {
        "n_cells": int(len(x)),
        "max_abs_p_diff": float(np.max(np.abs(sigmoid(zk / temperature) - sigmoid(zo / temperature)))),
        "max_abs_logit_diff": float(np.max(np.abs(zk - zo))),
        "pass": bool(np.max(np.abs(sigmoid(zk / temperature) - sigmoid(zo / temperature))) < PARITY_MAX_P_DIFF),
    }


def time_onnx(path: str | Path, x: np.ndarray, threads: int = 2, repeats: int = 3) -> float:
    """Median cells/s of CPU onnxruntime over ``repeats`` passes on ``x`` (batch 32)."""
    onnx_logits(path, x[:32], threads=threads)  # warm-up
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        onnx_logits(path, x, threads=threads)
        rates.append(len(x) / (time.perf_counter() - t))
    return float(np.median(rates))


def versions() -> dict:
    import keras
    import onnx
    import onnxruntime
    import sklearn
    import tensorflow as tf
    import tf2onnx

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }


def write_card(
    out_dir: str | Path,
    name: str,
    display_name: str,
    architecture: str,
    onnx_path: str | Path,
    spec: Preprocessing,
    threshold: float,
    temperature: float,
    margin: float,
    metrics: dict,
    training: dict,
    notes: str,
    version: str = "1.0.0",
    tta_views: tuple[int, ...] = (0,),
    recommended: bool = False,
    provenance: dict | None = None,
) -> Path:
    """Write ``<name>.json`` beside the ONNX file and check that the engine accepts it (schema + sha256).
    ``tta_views``: dihedral views the engine averages per cell (the calibration must have been fitted on them);
    ``provenance``: what made it (training.provenance.card_block)."""
    out_dir = Path(out_dir)
    card = {
        "schema_version": SCHEMA_VERSION,
        "type": "onnx",
        "name": name,
        "display_name": display_name,
        "architecture": architecture,
        "version": version,
        "created": _dt.date.today().isoformat(),
        "onnx_file": Path(onnx_path).name,
        "sha256": sha256_file(onnx_path),
        "input": {
            "name": INPUT_NAME,
            "height": spec.height,
            "width": spec.width,
            "channels": 3,
            "layout": "NHWC",
            "dtype": "float32",
            "value_range": [0, 255],
        },
        "output": {"name": OUTPUT_NAME, "kind": "logit"},
        "preprocessing": spec.to_dict(),
        "classes": ["ALL", "HEM"],
        "positive_class": "ALL",
        "threshold": round(float(threshold), 4),
        "temperature": round(float(temperature), 6),
        "review_margin": round(float(margin), 4),
        **(
            {"test_time_augmentation": {"views": [int(v) for v in tta_views], "combine": "mean_logit"}}
            if tuple(tta_views) != (0,)
            else {}
        ),
        "metrics": metrics,
        "training": training,
        "notes": notes,
        **({"recommended": True} if recommended else {}),
        **({"provenance": provenance} if provenance else {}),
    }
    path = out_dir / f"{name}.json"
    write_json(path, card)
    verify_onnx_file(load_card(path))
    return path


def write_ensemble_card(
    out_dir: str | Path,
    members: list[str],
    threshold: float,
    margin: float,
    metrics: dict,
    training: dict,
    notes: str,
    version: str = "1.0.0",
    recommended: bool = False,
    provenance: dict | None = None,
) -> Path:
    out_dir = Path(out_dir)
    card = {
        "schema_version": SCHEMA_VERSION,
        "type": "ensemble",
        "name": "ensemble",
        "display_name": " + ".join(load_card(out_dir / f"{m}.json").display_name for m in members),
        "architecture": "ensemble",
        "version": version,
        **({"recommended": True} if recommended else {}),
        "created": _dt.date.today().isoformat(),
        "members": members,
        "classes": ["ALL", "HEM"],
        "positive_class": "ALL",
        "threshold": round(float(threshold), 4),
        "review_margin": round(float(margin), 4),
        "metrics": metrics,
        "training": training,
        "notes": notes,
        **({"provenance": provenance} if provenance else {}),
    }
    path = out_dir / "ensemble.json"
    write_json(path, card)
    load_card(path)
    return path
