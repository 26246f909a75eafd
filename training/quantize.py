"""int8 that keeps the calls: static QDQ quantisation of a shipped ONNX model, and the gate it must pass.

Why a gate and not a tolerance on weighted F1: a quantised model ships only if it makes the same calls as the
float32 one, donor by donor.  :func:`gate_figures` compares the two models' logits on out-of-fold cells of many
donors: AUROC within :data:`GATE_AUROC` of float32, every donor's share of cells called right within
:data:`GATE_DONOR`, and the calls (calibrated P(ALL) at the card's threshold) agreeing on >= :data:`GATE_AGREE`
of the cells.  Only the ``logit`` output is compared (a model's ``cam`` output is quantised with it).

The usual causes of an int8 model that loses its calls, and what is done about each:

- weights stored as float16 (``training.export.store_weights_fp16``: an fp16 initializer + Cast) are not seen as
  weights by the quantiser, which then quantises them per tensor as activations: :func:`fold_fp16_weights`
  turns them back into float32 initializers first, so every Conv/MatMul gets per-channel weights;
- activation ranges set by a few outliers (MinMax): Percentile or Entropy calibration, chosen by measurement;
- calibration cells from one donor or one class: :func:`spread_by_subject` picks them across every donor;
- the first convolution (it sees raw 0-255 pixels), the last one (its output is averaged into the features a
  linear head on standardised features weighs by 1/std: a small rounding error there is multiplied) or the head
  losing accuracy: ``nodes_to_exclude`` (``first``, ``last``, ``head`` name them, :func:`resolve_nodes`) keeps them
  in float; ``op_types`` quantises only the op types named (e.g. Conv).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .files import saving

INPUT_NAME = "image"
OUTPUT_NAME = "logit"
GATE_AUROC = 0.005  # |AUROC int8 - AUROC float32| at most
GATE_DONOR = 0.02  # |share called right, int8 - float32| of every donor at most
GATE_AGREE = 0.99  # share of cells whose call is the same, at least
METHODS = ("minmax", "percentile", "entropy")
#: The ops whose weights carry the network's cost (and its quantisation error): "first" and "head" are chosen among them.
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm", "ConvTranspose")


# ------------------------------------------------------------------------------------------ the graph


def fold_fp16_weights(proto) -> int:
    """Replace every ``float16 initializer -> Cast(to=float)`` pair by a float32 initializer (in place); the count.

    The quantiser finds a Conv's weights only as an initializer feeding it directly; behind a Cast they look like an
    activation and get one per-tensor scale calibrated like one."""
    from onnx import TensorProto, numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    consumers: dict[str, int] = {}
    for n in g.node:
        for name in n.input:
            consumers[name] = consumers.get(name, 0) + 1
    folded, keep_nodes = 0, []
    for n in g.node:
        src = inits.get(n.input[0]) if n.op_type == "Cast" and n.input else None
        to = next((a.i for a in n.attribute if a.name == "to"), None)
        if src is not None and src.data_type == TensorProto.FLOAT16 and to == TensorProto.FLOAT:
            g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(src).astype(np.float32), n.output[0]))
            consumers[src.name] -= 1
            folded += 1
            continue
        keep_nodes.append(n)
    del g.node[:]
    g.node.extend(keep_nodes)
    unused = [i for i in g.initializer if consumers.get(i.name, 0) == 0 and i.data_type == TensorProto.FLOAT16]
    for i in unused:
        g.initializer.remove(i)
    return folded


def resolve_nodes(proto, names: Iterable[str]) -> list[str]:
    """Node names to keep in float: ``first`` is the first weighted op (:data:`WEIGHTED_OPS`) in graph order, ``last``
    the last Conv (the one whose output is pooled into the features), ``head`` the last weighted op the ``logit``
    output depends on; any other word must be a node's name (ValueError otherwise)."""
    g = proto.graph
    weighted = [n for n in g.node if n.op_type in WEIGHTED_OPS]
    by_name = {n.name for n in g.node}
    out: list[str] = []
    for word in names:
        if word == "first":
            if not weighted:
                raise ValueError("the graph has no Conv/MatMul/Gemm node to call 'first'")
            out.append(weighted[0].name)
        elif word == "head":
            out.append(_head_node(g, weighted))
        elif word == "last":
            convs = [n for n in weighted if n.op_type == "Conv"]
            if not convs:
                raise ValueError("the graph has no Conv node to call 'last'")
            out.append(convs[-1].name)
        elif word in by_name:
            out.append(word)
        else:
            raise ValueError(f"no node named {word!r} in the graph (use 'first', 'head' or a node name)")
    if any(not n for n in out):
        raise ValueError("a node to keep in float has no name in the graph (export it with names)")
    return list(dict.fromkeys(out))


def _head_node(g, weighted) -> str:
    producer = {o: n for n in g.node for o in n.output}
    wanted, stack, seen = {n.name for n in weighted}, [OUTPUT_NAME], set()
    while stack:  # breadth from the logit back to the first weighted op met
        t = stack.pop(0)
        n = producer.get(t)
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if n.name in wanted:
            return n.name
        stack.extend(n.input)
    raise ValueError(f"no Conv/MatMul/Gemm node computes the {OUTPUT_NAME!r} output")


# ------------------------------------------------------------------------------------------ quantise


class _Reader:
    """Calibration batches, preprocessed only when asked for; ``set_range`` lets onnxruntime collect a few at a
    time (``CalibStridedMinMax``): a histogram calibrator otherwise holds every activation of every cell at once."""

    def __init__(self, batches: Sequence[Callable[[], np.ndarray]]):
        self.batches = batches
        self.start, self.end = 0, len(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, end_index

    def get_next(self):
        if self.start >= self.end:
            return None
        x = self.batches[self.start]()
        self.start += 1
        return {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}

    def rewind(self) -> None:  # the interface onnxruntime's readers have
        self.start = 0


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calib: np.ndarray | Sequence[Callable[[], np.ndarray]],
    *,
    method: str = "percentile",
    nodes_to_exclude: Iterable[str] = (),
    op_types: Sequence[str] | None = None,
    percentile: float = 99.999,
    batch: int = 8,
) -> dict:
    """Static int8 QDQ model of ``fp32_path`` at ``out_path``: per-channel int8 weights, int8 activations calibrated
    with ``method`` (:data:`METHODS`) on ``calib`` (0-255 NHWC cells, or callables each returning one batch of them),
    ``nodes_to_exclude`` (names, ``first``, ``head``) kept in float, only ``op_types`` quantised (default: every op
    type onnxruntime quantises).  Returns what was done (for the card)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(calib, np.ndarray):
        arr = calib
        calib = [lambda i=i: arr[i : i + batch] for i in range(0, len(arr), batch)]
    if not calib:
        raise ValueError("no calibration cells")
    proto = onnx.load(str(fp32_path))
    folded = fold_fp16_weights(proto)
    with tempfile.TemporaryDirectory(prefix="leukoscan-int8-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        onnx.save_model(proto, str(src))
        pre = Path(tmp) / "pre.onnx"
        try:  # shape inference + graph optimisation: the quantiser then sees BatchNorm folded into its Conv
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # an optimisation only; quantise the folded graph as it is
            pre = src
        excluded = resolve_nodes(onnx.load(str(pre)), nodes_to_exclude)
        extra: dict = {"CalibStridedMinMax": 1}  # one batch at a time (see _Reader)
        if method == "percentile":
            extra["CalibPercentile"] = percentile
        with saving(Path(out_path)) as out:
            quantize_static(
                str(pre),
                str(out),
                _Reader(list(calib)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "percentile": CalibrationMethod.Percentile,
                    "entropy": CalibrationMethod.Entropy,
                }[method],
                nodes_to_exclude=excluded,
                op_types_to_quantize=list(op_types) if op_types else None,
                extra_options=extra,
            )
    return {
        "format": "QDQ, int8 activations and per-channel int8 weights (onnxruntime.quantization.quantize_static)",
        "calibration_method": method,
        **({"percentile": percentile} if method == "percentile" else {}),
        "nodes_kept_in_float": excluded,
        "op_types_quantized": list(op_types) if op_types else "onnxruntime's default",
        "fp16_weights_folded": folded,
    }


def shift_logit(path: str | Path, shift: float) -> None:
    """Add ``shift`` to the model's ``logit`` output (in place; a final Add node), leaving the ``cam`` output as it is.

    Bias correction: rounding activations to int8 moves the mean of what a linear head sums over (features pooled
    over thousands of positions), so the int8 logits come out shifted by about the same amount for every cell; the
    order of the cells (AUROC) survives, the calls at the card's threshold do not.  The shift is measured on the
    calibration cells (:func:`quantize_run`), never on the gate's."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    g = proto.graph
    raw = OUTPUT_NAME + "__before_bias_correction"
    for n in g.node:
        n.output[:] = [raw if o == OUTPUT_NAME else o for o in n.output]
        n.input[:] = [raw if i == OUTPUT_NAME else i for i in n.input]
    g.initializer.append(numpy_helper.from_array(np.array([shift], np.float32), OUTPUT_NAME + "__bias_correction"))
    g.node.append(
        helper.make_node("Add", [raw, OUTPUT_NAME + "__bias_correction"], [OUTPUT_NAME], name="bias_correction")
    )
    onnx.checker.check_model(proto)
    with saving(Path(path)) as tmp:
        onnx.save_model(proto, str(tmp))


# ------------------------------------------------------------------------------------------ the gate


def view_logits(path: str | Path, batches: Iterable[np.ndarray], views: Sequence[int] = (0,), threads: int = 0):
    """The ``logit`` output of the model at ``path`` per cell, the mean over the dihedral ``views`` (as the engine
    combines a card's test-time views), float64."""
    import onnxruntime as ort

    from engine.preprocess import dihedral

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    out = []
    for x in batches:
        z = np.zeros(len(x))
        for k in views:
            xv = np.ascontiguousarray(x if k == 0 else dihedral(x, k), dtype=np.float32)
            z += sess.run([OUTPUT_NAME], {INPUT_NAME: xv})[0].reshape(len(x), -1)[:, 0]
        out.append(z / len(views))
    return np.concatenate(out) if out else np.zeros(0)


def gate_figures(
    z32: np.ndarray,
    z8: np.ndarray,
    y: np.ndarray,
    subjects: Sequence,
    temperature: float,
    threshold: float,
) -> dict:
    """What int8 changes on labelled cells (``y`` 1 = ALL), from the two models' logits: AUROC of each, every donor's
    share called right with each (calls: sigmoid(logit / temperature) >= threshold), the share of cells whose call
    agrees; ``pass`` when AUROC moved <= :data:`GATE_AUROC`, no donor <= :data:`GATE_DONOR`, agreement >= :data:`GATE_AGREE`."""
    from sklearn.metrics import roc_auc_score

    from .metrics import sigmoid

    z32, z8, y = np.asarray(z32, float), np.asarray(z8, float), np.asarray(y, int)
    subjects = np.asarray([str(s) for s in subjects])
    if not (len(z32) == len(z8) == len(y) == len(subjects)) or len(y) == 0:
        raise ValueError("the logits, labels and subjects must be of the same non-zero length")
    c32 = sigmoid(z32 / temperature) >= threshold
    c8 = sigmoid(z8 / temperature) >= threshold
    both = len(set(y.tolist())) == 2
    a32 = float(roc_auc_score(y, z32)) if both else float("nan")
    a8 = float(roc_auc_score(y, z8)) if both else float("nan")
    donors = {}
    for s in sorted(set(subjects.tolist())):
        m = subjects == s
        r32, r8 = float(np.mean(c32[m] == (y[m] == 1))), float(np.mean(c8[m] == (y[m] == 1)))
        donors[s] = {"cells": int(m.sum()), "right_fp32": r32, "right_int8": r8, "diff": r8 - r32}
    worst = max(donors, key=lambda s: abs(donors[s]["diff"]))
    agree = float(np.mean(c32 == c8))
    checks = {
        "auroc": bool(both and abs(a8 - a32) <= GATE_AUROC),
        "every_donor": bool(abs(donors[worst]["diff"]) <= GATE_DONOR),
        "agreement": bool(agree >= GATE_AGREE),
    }
    return {
        "n_cells": int(len(y)),
        "n_donors": len(donors),
        "auroc_fp32": a32,
        "auroc_int8": a8,
        "auroc_diff": a8 - a32,
        "call_agreement": agree,
        "max_abs_logit_diff": float(np.max(np.abs(z8 - z32))),
        "worst_donor": worst,
        "worst_donor_diff": donors[worst]["diff"],
        "donors": donors,
        "limits": {"auroc": GATE_AUROC, "every_donor": GATE_DONOR, "agreement": GATE_AGREE},
        "checks": checks,
        "pass": all(checks.values()),
    }


def int8_gate(
    fp32_path: str | Path,
    int8_path: str | Path,
    batches: Sequence[np.ndarray] | Callable[[], Iterable[np.ndarray]],
    y: np.ndarray,
    subjects: Sequence,
    temperature: float,
    threshold: float,
    views: Sequence[int] = (0,),
) -> dict:
    """:func:`gate_figures` of the two ONNX models on ``batches`` (0-255 NHWC cells, in the order of ``y``; or a
    function returning a fresh iterable of them, so that thousands of cells are never all in memory), each cell's
    logit the mean over ``views`` as the engine computes it."""
    fresh = batches if callable(batches) else (lambda: batches)
    z32 = view_logits(fp32_path, fresh(), views)
    z8 = view_logits(int8_path, fresh(), views)
    return {**gate_figures(z32, z8, y, subjects, temperature, threshold), "views": list(views)}


def spread_by_subject(subjects: Sequence, n: int, seed: int = 0, exclude: Iterable[int] = ()) -> np.ndarray:
    """Up to ``n`` indices spread over every subject as evenly as they allow (round robin over the subjects, cells in
    a random order within each), none of ``exclude``; sorted."""
    rng = np.random.default_rng(seed)
    subjects = np.asarray([str(s) for s in subjects])
    skip = set(int(i) for i in exclude)
    pools = []
    for s in sorted(set(subjects.tolist())):
        idx = [int(i) for i in np.flatnonzero(subjects == s) if int(i) not in skip]
        rng.shuffle(idx)
        pools.append(idx)
    out: list[int] = []
    depth = 0
    while len(out) < n and any(depth < len(p) for p in pools):
        for p in pools:
            if depth < len(p) and len(out) < n:
                out.append(p[depth])
        depth += 1
    return np.sort(np.asarray(out, dtype=int))
