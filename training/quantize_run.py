"""``leukoscan-train quantize``: a shipped model's int8 copy, written beside it only when it passes the gate.

The cells are the run's out-of-fold cells (``RUN/oof.npz``: paths, labels, subjects): the gate's on a sample spread
over every donor, the calibration cells a disjoint sample spread the same way.  The shipped model was refit on all
donors, so these were its training cells too: the gate measures what quantisation changes, not generalisation
(the card's held-out figures stay those of the float32 model).  Every calibration method asked for is tried; the
one whose calls agree best with float32 is kept.  The card records the gate's figures under
``metrics.int8_quantization``; ``<name>.int8.onnx`` and the card's ``int8`` field exist only when it passed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.card import ModelError, load_card, sha256_file, verify_onnx_file
from engine.preprocess import preprocess_file

from .files import copy_file, write_json
from .quantize import gate_figures, quantize_int8, shift_logit, spread_by_subject, view_logits

BATCH = 16


def _batches(paths: Sequence[str], spec, batch: int = BATCH):
    """Callables, each preprocessing one batch of ``paths`` when called (memory: one batch at a time)."""
    return [
        lambda chunk=paths[i : i + batch]: np.stack([preprocess_file(p, spec) for p in chunk])
        for i in range(0, len(paths), batch)
    ]


def _rate(path: Path, x: np.ndarray, repeats: int = 2) -> float:
    """Images/s of one view on ``x`` (batch 16, onnxruntime's default threads), best of ``repeats``."""
    view_logits(path, [x[:BATCH]])  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        view_logits(path, [x[i : i + BATCH] for i in range(0, len(x), BATCH)])
        best = max(best, len(x) / (time.perf_counter() - t))
    return round(best, 1)


def _model_name(run_dir: Path, name: str | None) -> str:
    if name:
        return name
    m = run_dir / "metrics.json"
    metrics = json.loads(m.read_text()) if m.exists() else {}
    found = metrics.get("name") or metrics.get("arch")
    if not found:
        raise ModelError(f"{run_dir}: no metrics.json naming the model; give --name")
    return str(found)


def quantize_run(
    run_dir: Path,
    out_dir: Path,
    log=print,
    name: str | None = None,
    n_gate: int = 2000,
    n_calib: int = 256,
    methods: Sequence[str] = ("percentile",),
    exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = ("Conv",),
    time_cells: int = 64,
    bias_correct: bool = True,
) -> dict:
    """Quantise ``out_dir/<name>.onnx`` (its card's preprocessing, temperature, threshold and test-time views), run
    the gate on ``n_gate`` out-of-fold cells of ``run_dir``, record it in the card and write ``<name>.int8.onnx``
    when it passed (removing a stale one when it did not).  ``bias_correct``: shift each candidate's logit by its
    mean difference from float32 on the calibration cells (:func:`training.quantize.shift_logit`).  Returns the
    card's ``int8_quantization`` block."""
    name = _model_name(run_dir, name)
    card_path = out_dir / f"{name}.json"
    card = load_card(card_path)
    if card.is_ensemble:
        raise ModelError(f"{card_path}: an ensemble is quantised member by member")
    verify_onnx_file(card)
    assert card.onnx_file is not None
    d = np.load(run_dir / "oof.npz", allow_pickle=False)
    missing = [k for k in ("paths", "labels", "subjects") if k not in d.files]
    if missing:
        raise ModelError(f"{run_dir / 'oof.npz'} has no {', '.join(missing)} (the gate needs every cell's donor)")
    paths, y, subjects = d["paths"].astype(str).tolist(), d["labels"].astype(int), d["subjects"].astype(str)
    gate = spread_by_subject(subjects, n_gate, seed=0)
    calib = spread_by_subject(subjects, n_calib, seed=1, exclude=gate)
    if len(calib) == 0:
        raise ModelError(f"no cells left for calibration: lower --gate-cells (the run has {len(paths)})")
    gate_paths = [paths[i] for i in gate]
    spec, views = card.preprocessing, card.tta_views
    log(
        f"{name}: gate on {len(gate)} cells of {len(set(subjects[gate]))} donors, calibration on {len(calib)} cells "
        f"of {len(set(subjects[calib]))} donors, views {list(views)}; float32 logits..."
    )
    t0 = time.time()
    z32 = view_logits(card.onnx_file, (b() for b in _batches(gate_paths, spec)), views)
    calib_paths = [paths[i] for i in calib]
    z32_calib = view_logits(card.onnx_file, (b() for b in _batches(calib_paths, spec)), views) if bias_correct else None
    log(f"float32 done in {time.time() - t0:.0f}s")
    tried = []
    for method in methods:
        cand = run_dir / f"{name}.int8.{method}.onnx"
        t0 = time.time()
        how = quantize_int8(
            card.onnx_file,
            cand,
            _batches(calib_paths, spec, 8),
            method=method,
            nodes_to_exclude=exclude,
            op_types=op_types,
        )
        if z32_calib is not None:
            shift = float(np.mean(z32_calib - view_logits(cand, (b() for b in _batches(calib_paths, spec)), views)))
            shift_logit(cand, shift)
            how["bias_correction"] = {"logit_shift": shift, "measured_on": "the calibration cells"}
        z8 = view_logits(cand, (b() for b in _batches(gate_paths, spec)), views)
        fig = {**how, **gate_figures(z8=z8, z32=z32, y=y[gate], subjects=subjects[gate], **_cal(card)), "file": cand}
        log(
            f"{method}: AUROC {fig['auroc_fp32']:.4f} -> {fig['auroc_int8']:.4f}, calls agree on "
            f"{fig['call_agreement']:.2%}, worst donor {fig['worst_donor']} {fig['worst_donor_diff']:+.3f} -> "
            f"{'PASS' if fig['pass'] else 'fail'} ({time.time() - t0:.0f}s)"
        )
        tried.append(fig)
    best = dict(max(tried, key=lambda f: (f["pass"], f["call_agreement"], -abs(f["auroc_diff"]))))
    cand = Path(best.pop("file"))
    x = np.stack([preprocess_file(p, spec) for p in gate_paths[:time_cells]]) if time_cells else None
    result = {
        **best,
        "data": f"{len(gate)} out-of-fold cells of {best['n_donors']} donors (run {run_dir.name}; training cells of "
        "the shipped refit: this measures quantisation, not generalisation), logits the mean over the card's views",
        "n_calibration_cells": int(len(calib)),
        "calibration_cells": f"{len(calib)} other out-of-fold cells of {len(set(subjects[calib]))} donors",
        "tried": [
            {k: f[k] for k in ("calibration_method", "pass", "call_agreement", "auroc_diff", "worst_donor_diff")}
            for f in tried
        ],
        "size_mb_fp32": round(card.onnx_file.stat().st_size / 1e6, 1),
        "size_mb_int8": round(cand.stat().st_size / 1e6, 1),
    }
    if x is not None:
        result["images_per_s_one_view"] = {
            "fp32": _rate(card.onnx_file, x),
            "int8": _rate(cand, x),
            "cells": len(x),
            "load_average": round(os.getloadavg()[0], 1),
        }
    _write(card_path, result, cand, out_dir / f"{name}.int8.onnx", log)
    write_json(run_dir / "quantization.json", result)
    for f in tried:  # the candidates; the shipped copy (if any) is beside the card
        Path(f["file"]).unlink(missing_ok=True)
    return result


def _cal(card) -> dict:
    return {"temperature": card.temperature, "threshold": card.threshold}


def _write(card_path: Path, result: dict, cand: Path, target: Path, log) -> None:
    """The card with the gate's figures (and the int8 file with its sha256 only when it passed)."""
    raw = json.loads(card_path.read_text(encoding="utf-8"))
    raw.setdefault("metrics", {})["int8_quantization"] = result
    if result["pass"]:
        copy_file(cand, target)
        raw["int8"] = {"onnx_file": target.name, "sha256": sha256_file(target)}
        log(f"gate passed: wrote {target} ({result['size_mb_int8']} MB) and its entry in {card_path.name}")
    else:
        raw.pop("int8", None)
        target.unlink(missing_ok=True)  # an older int8 file no longer vouched for
        log(f"gate failed: no int8 file; the figures are in {card_path.name} (metrics.int8_quantization)")
    write_json(card_path, raw)
    card = load_card(card_path)
    verify_onnx_file(card)
