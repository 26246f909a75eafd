"""Class-activation map (CAM) as a second ONNX output, so the app can show what the model looked at without
TensorFlow.

The shipped networks end in ``last convolution -> global average pooling -> [dropout] -> Dense(1)``.  A linear
head after average pooling makes CAM exact: with F the last convolution's map (C x H x W) and w, b the head's
weights and bias, ``logit = mean_hw(F . w) + b``, so the map ``cam[h, w] = F[:, h, w] . w + b`` averages to the
very logit the model outputs.  :func:`add_cam_output` finds that pattern in an exported graph and adds the map as
output ``cam`` (N x H x W, float32), by graph surgery only: the existing nodes, weights and the ``logit`` output
are untouched, so a run that requests ``logit`` alone gives bit-identical results (checked by
:func:`check_logits_unchanged`).  ``training.export.export_onnx`` calls it, so every new export carries the
map; the engine (``engine.cam``) requests ``cam`` only for the cell on screen.

A head that is not linear after pooling (a hidden Dense layer, a non-average pooling) is refused with the
reason: CAM would not be exact there, and a Grad-CAM would need gradients the ONNX graph does not have.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

CAM_OUTPUT = "cam"
#: Nodes that are the identity at inference and may sit between the pooling and the head (Keras' dropout, a
#: flatten/squeeze of the pooled vector, tf2onnx's casts of float16-stored weights).
_PASS_THROUGH = {"Identity", "Dropout", "Squeeze", "Reshape", "Flatten"}


class CamError(ValueError):
    """The graph does not end in a linear head after global average pooling (CAM would not be exact)."""


def _constant(name: str, inits: dict, producers: dict) -> bool:
    """A tensor that does not depend on the input: an initializer, a Constant, or a Cast of one (float16 storage)."""
    if name in inits:
        return True
    node = producers.get(name)
    if node is None:
        return False
    if node.op_type == "Constant":
        return True
    return node.op_type == "Cast" and _constant(node.input[0], inits, producers)


def _const_array(name: str, inits: dict, producers: dict) -> np.ndarray:
    from onnx import numpy_helper

    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float32)
    node = producers[name]
    if node.op_type == "Constant":
        return numpy_helper.to_array(node.attribute[0].t).astype(np.float32)
    return _const_array(node.input[0], inits, producers)


def find_head(model, output: str = "logit") -> dict:
    """The CAM-relevant tensors of ``model``'s ``output``: feature map, its layout, head weight and bias names.

    Walks back from the output: [Sigmoid] <- Add(bias) <- MatMul/Gemm(weight) <- pass-through nodes <-
    GlobalAveragePool (NCHW) or ReduceMean over the spatial axes (NHWC).  Raises :class:`CamError` with the
    reason when the head is anything else."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    if output not in {o.name for o in g.output}:
        raise CamError(f"the graph has no output {output!r}")
    node = producers.get(output)
    if node is not None and node.op_type == "Sigmoid":  # a model that outputs a probability: CAM of its logit
        node = producers.get(node.input[0])
    bias, node = _bias(node, inits, producers)
    weight, w, pooled, bias = _dense(node, inits, producers, bias)
    pool, layout = _pooling(pooled, inits, producers)
    if bias is not None and _const_array(bias, inits, producers).size != 1:
        raise CamError("the head's bias is not one value")
    return {
        "feature_map": pool.input[0],
        "layout": layout,
        "weight": weight,
        "bias": bias,
        "pool_node": pool.name,
        "channels": int(w.shape[0]),
    }


def _bias(node, inits: dict, producers: dict):
    """(the bias name or None, the node before it): an Add of a constant to the Dense head's output."""
    if node is None or node.op_type != "Add":
        return None, node
    a, b = node.input
    bias, nxt = (b, a) if _constant(b, inits, producers) else (a, b) if _constant(a, inits, producers) else (None, None)
    if bias is None:
        raise CamError(f"the output's Add ({node.name}) has no constant bias")
    return bias, producers.get(nxt)


def _dense(node, inits: dict, producers: dict, bias):
    """(weight name, weight (C, 1), the pooled input's name, bias name): a MatMul or untransposed Gemm, one logit."""
    if node is None or node.op_type not in ("MatMul", "Gemm"):
        raise CamError(f"the head is not a Dense layer (found {node.op_type if node else 'the graph input'})")
    if node.op_type == "Gemm":
        attrs = {a.name: a for a in node.attribute}
        if attrs.get("transA") and attrs["transA"].i or attrs.get("transB") and attrs["transB"].i:
            raise CamError("a transposed Gemm head is not supported")
        if len(node.input) > 2:
            bias = node.input[2]
    pooled, weight = node.input[0], node.input[1]
    if not _constant(weight, inits, producers):
        raise CamError("the head's weight is not a constant")
    w = _const_array(weight, inits, producers)
    if w.ndim != 2 or w.shape[1] != 1:
        raise CamError(f"the head has {w.shape} weights: CAM needs one logit (a Dense(1) after pooling)")
    return weight, w, pooled, bias


def _pooling(pooled: str, inits: dict, producers: dict):
    """(the pooling node, the layout of the map it pools): global average pooling behind pass-through nodes."""
    node = producers.get(pooled)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = producers.get(node.input[0])
    if node is None:
        raise CamError("no pooling before the head")
    if node.op_type == "GlobalAveragePool":
        return node, "NCHW"
    if node.op_type == "ReduceMean":
        axes = _reduce_axes(node, inits)
        if sorted(axes) != [1, 2]:
            raise CamError(f"the pooling averages over axes {axes}, not the spatial axes of an NHWC map")
        return node, "NHWC"
    raise CamError(f"the head is not linear after global average pooling (found {node.op_type} before it)")


def _reduce_axes(node, inits) -> list[int]:
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "axes":
            return list(a.ints)
    if len(node.input) > 1 and node.input[1] in inits:  # opset 18+: axes as an input
        return numpy_helper.to_array(inits[node.input[1]]).astype(int).tolist()
    return []


def add_cam_graph(model, output: str = "logit"):
    """Add output ``cam`` (N x H x W: the head applied at every position, bias included) to ``model`` in place.
    Returns the :func:`find_head` facts.  Idempotent: a graph that has ``cam`` already is left as it is."""
    from onnx import TensorProto, helper

    g = model.graph
    if CAM_OUTPUT in {o.name for o in g.output}:
        return find_head(model, output)
    head = find_head(model, output)
    nodes = []
    fmap = head["feature_map"]
    if head["layout"] == "NCHW":
        nodes.append(helper.make_node("Transpose", [fmap], ["cam__nhwc"], perm=[0, 2, 3, 1], name="cam__nhwc"))
        fmap = "cam__nhwc"
    nodes.append(helper.make_node("MatMul", [fmap, head["weight"]], ["cam__dot"], name="cam__dot"))
    last = "cam__dot"
    if head["bias"] is not None:
        nodes.append(helper.make_node("Add", [last, head["bias"]], ["cam__biased"], name="cam__bias"))
        last = "cam__biased"
    axes = helper.make_tensor("cam__axes", TensorProto.INT64, [1], [3])
    g.initializer.append(axes)
    nodes.append(helper.make_node("Squeeze", [last, "cam__axes"], [CAM_OUTPUT], name="cam__squeeze"))
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info(CAM_OUTPUT, TensorProto.FLOAT, ["batch", "cam_h", "cam_w"]))
    return head


def add_cam_output(onnx_path: str | Path, output: str = "logit") -> dict:
    """Add the ``cam`` output to the ONNX file at ``onnx_path`` (rewritten atomically; a file that has it already
    is not touched).  Returns the head facts.  Update the card's ``sha256`` afterwards (:func:`update_card_sha256`)."""
    import onnx

    from engine.fileio import atomic_open

    path = Path(onnx_path)
    model = onnx.load(str(path))
    if CAM_OUTPUT in {o.name for o in model.graph.output}:
        return find_head(model, output)
    head = add_cam_graph(model, output)
    onnx.checker.check_model(model)
    with atomic_open(path, mode="wb", public=True) as fh:
        fh.write(model.SerializeToString())
    return head


def update_card_sha256(card_path: str | Path) -> str:
    """Set the card's ``sha256`` to its ONNX file's (after :func:`add_cam_output` changed the file); the rest of
    the card keeps its bytes.  Returns the new digest."""
    import json
    import re

    from engine.card import sha256_file
    from engine.fileio import write_text

    card_path = Path(card_path)
    text = card_path.read_text(encoding="utf-8")
    data = json.loads(text)
    digest = sha256_file(card_path.parent / data["onnx_file"])
    new, n = re.subn(r'("sha256"\s*:\s*")[0-9a-fA-F]{64}(")', lambda m: m.group(1) + digest + m.group(2), text, count=1)
    if n != 1 or json.loads(new)["sha256"] != digest:
        raise ValueError(f"{card_path}: could not find the top-level sha256 field")
    write_text(card_path, new, public=True)
    return digest


def check_logits_unchanged(before: str | Path, after: str | Path, x: np.ndarray, output: str = "logit") -> dict:
    """Run ``x`` (float32 NHWC) through both files requesting ``output`` only, and through ``after`` requesting
    ``cam`` as well; returns the largest differences: the logits must be bit-identical, the map's spatial mean
    must equal the logit (exact CAM, up to float32 rounding)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    a = ort.InferenceSession(str(before), so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(after), so, providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    za = a.run([output], {name: x})[0]
    zb = b.run([output], {name: x})[0]
    zc, cam = b.run([output, CAM_OUTPUT], {name: x})
    return {
        "n_cells": int(len(x)),
        "logits_bit_identical": bool(np.array_equal(za, zb) and np.array_equal(za, zc)),
        "max_abs_logit_diff": float(np.max(np.abs(za.astype(np.float64) - zb))),
        "max_abs_cam_mean_minus_logit": float(np.max(np.abs(cam.mean(axis=(1, 2)) - zc[:, 0]))),
        "cam_shape": list(cam.shape[1:]),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m training.cam resources/models/NAME.onnx ...``: add the map to exported models and update their
    cards' sha256, checking that the logits stay bit-identical on the bundled sample cells."""
    import shutil
    import tempfile

    from . import files

    ap = argparse.ArgumentParser(prog="python -m training.cam", description=main.__doc__)
    ap.add_argument("onnx", nargs="+", type=Path, help="ONNX files beside their cards (NAME.onnx + NAME.json)")
    args = ap.parse_args(argv)
    from engine.card import load_card
    from engine.preprocess import preprocess_file

    samples = sorted(
        p
        for p in (Path(__file__).resolve().parents[1] / "resources" / "samples").iterdir()
        if p.suffix.lower() in (".png", ".bmp", ".webp")
    )
    for path in args.onnx:
        card_path = path.with_suffix(".json")
        card = load_card(card_path)
        with tempfile.TemporaryDirectory() as tmp:
            before = Path(tmp) / path.name
            shutil.copy2(path, before)
            head = add_cam_output(path, card.output_name or "logit")
            x = np.stack([preprocess_file(s, card.preprocessing) for s in samples]).astype(np.float32)
            check = check_logits_unchanged(before, path, x, card.output_name or "logit")
            if not check["logits_bit_identical"]:
                files.copy_file(before, path)  # whole or not at all, like every write of training code
                print(f"{path}: logits changed, file restored: {check}", file=sys.stderr)
                return 1
        digest = update_card_sha256(card_path)
        print(
            f"{path}: cam {check['cam_shape']} from {head['feature_map']} ({head['layout']}, {head['channels']} "
            f"channels); logits bit-identical on {check['n_cells']} cells; |mean(cam) - logit| <= "
            f"{check['max_abs_cam_mean_minus_logit']:.1e}; {card_path.name} sha256 {digest[:16]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
