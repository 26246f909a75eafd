"""Turn a finished run folder into shipped files: ONNX + card (+ plots in docs/img), ensemble (int8: training.quantize_run)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from engine.card import load_card
from engine.heldout import held_out_block
from engine.preprocess import Preprocessing, preprocess_file

from . import provenance
from .data import subject_halves
from .export import (
    export_onnx,
    parity,
    storage_parity,
    store_weights_fp16,
    time_onnx,
    versions,
    write_card,
    write_ensemble_card,
)
from .files import copy_file
from .metrics import (
    REVIEW_RULE,
    best_threshold,
    calibrated,
    compute,
    compute_cross_fitted,
    donor_summary,
    fit_platt,
    plot_all,
    review_margin,
    write_json,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DISPLAY = {"inceptionv3": ("InceptionV3", "InceptionV3"), "vgg19": ("VGG19", "VGG19")}
TARGETS = {"inceptionv3": 0.88, "vgg19": 0.85, "ensemble": 0.90}
#: float16 weight storage is shipped only when it moves no P(ALL) by this much (and no decision) on real cells.
#: (P(ALL) is shown with 2 decimals; the review band is +-0.2.)
FP16_MAX_P_DIFF = 5e-3
STORAGE_CHECK_CELLS = 256


def _load_run(run_dir: Path):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    pre = metrics["preprocessing"]
    spec = Preprocessing.from_dict(pre, int(pre["height"]), int(pre["width"]))
    return metrics, spec


def _real_cells(run_dir: Path, spec: Preprocessing, n: int) -> tuple[np.ndarray, list[str]]:
    """``n`` validation cells of the run, spread over classes/subjects, through the engine's preprocess_file."""
    d = np.load(run_dir / "oof.npz")
    paths = d["paths"].tolist()
    idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
    chosen = [paths[i] for i in idx]
    return np.stack([preprocess_file(p, spec) for p in chosen]), chosen


def _summary(m: dict) -> dict:
    keep = (
        "n_cells",
        "weighted_f1",
        "macro_f1",
        "accuracy",
        "auroc",
        "ece",
        "brier",
        "per_class",
        "confusion_matrix",
        "subject_accuracy_min",
        "subject_accuracy_median",
        "per_subject_accuracy",
        "review_margin",
        "needs_review_fraction",
        "accuracy_outside_review_band",
        "errors_flagged_for_review",
        "threshold",
        "reliability",
    )  # reliability: the card's diagram in the app (ECE bins, training.metrics)
    return {k: m[k] for k in keep if k in m}


def recalibrate_run(run_dir: Path, log=print) -> dict:
    """(Re)compute calibration (temperature + logit shift), threshold, review margin, honest cross-fitted metrics and
    plots from the run's saved validation logits; update metrics.json.  Idempotent."""
    metrics, _ = _load_run(run_dir)
    d = np.load(run_dir / "oof.npz")
    z, y, folds, subjects = d["logits"], d["labels"].astype(int), d["folds"], d["subjects"].tolist()
    cal = dict(metrics.get("calibration", {}))
    rule = cal.get("threshold_rule_id", "weighted_f1")  # the run's own rule (training.metrics.THRESHOLD_RULES)
    t, shift = fit_platt(z, y)
    p = calibrated(z, t, shift)
    th = best_threshold(p, y, rule)
    mg = review_margin(p, y, th)
    honest = compute_cross_fitted(z, y, folds, subjects, rule=rule)
    op = compute(p, y, th, subjects, mg)
    cal.update(
        {
            "temperature": t,
            "logit_shift": shift,
            "threshold": th,
            "review_margin": mg,
            "review_margin_rule": REVIEW_RULE,
            "calibration_rule": "Platt scaling on the validation logits, stored as temperature + a shift that "
            "the exporter adds to the model's output bias",
        }
    )
    metrics["calibration"] = cal
    key = "oof" if "oof_cross_fitted" in metrics else "validation"
    metrics[f"{key}_cross_fitted"] = honest
    metrics[f"{key}_at_shipped_operating_point"] = op
    if "donors_cross_fitted" in metrics:  # the held-out-donor recipes' decisive table follows the numbers above
        metrics["donors_cross_fitted"] = donor_summary(honest["per_subject_accuracy"])
        metrics["donors_at_shipped_operating_point"] = donor_summary(op["per_subject_accuracy"])
    write_json(run_dir / "metrics.json", metrics)
    arch = metrics["arch"]
    hist = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").exists() else None
    if hist and "vgg19" in hist:
        hist = {"VGG19": hist["vgg19"]}
    elif hist and "inceptionv3" in hist and "val_weighted_f1_view0" in hist["inceptionv3"]:
        h = hist["inceptionv3"]
        hist = {"InceptionV3": {"loss": h["loss"], "val_weighted_f1": h["val_weighted_f1_view0"]}}
    label = {"inceptionv3": "InceptionV3", "vgg19": "VGG19"}.get(arch, arch)
    title = (
        f"{label}, out-of-fold ({len(set(subjects))} subjects)"
        if key == "oof"
        else f"{label}, held-out fold ({len(set(subjects))} subjects)"
    )
    plot_all(run_dir, arch, p, y, th, hist, title)
    log(
        f"{arch}: T={t:.3f} shift={shift:+.3f} threshold={th:.2f} margin={mg:.2f}; honest weighted F1 "
        f"{honest['weighted_f1']:.4f} AUROC {honest['auroc']:.4f} ECE {honest['ece']:.4f}"
    )
    return metrics


def _shipped_model_text(metrics: dict, is_cv: bool, model_from: Path | None) -> str:
    kind = metrics.get("recipe_kind")
    n = metrics.get("data", {}).get("subjects", 40)
    if model_from is not None:
        return (
            f"{kind or 'the same recipe'}, refit on all subjects (run {model_from.name}); the metrics are those of "
            "the same recipe trained without the held-out subjects"
        )
    if kind and is_cv:
        return f"{kind}; head refit on all {n} subjects with the cross-validated choices"
    if kind:
        return f"{kind}; the model trained without the held-out subjects (no refit), fixed epoch count"
    if is_cv:
        return f"refit on all {n} subjects with the cross-validated recipe and epoch count"
    return "the model trained on the other folds' subjects (no refit), epoch chosen by held-out F1"


def export_run(
    run_dir: Path,
    out_dir: Path,
    log=print,
    name: str | None = None,
    version: str = "1.0.0",
    recommended: bool = False,
    model_from: Path | None = None,
) -> Path:
    """``model_from``: a run folder (e.g. ``e2e --all-subjects``) whose ``final.keras`` ships instead of this
    run's; this run's held-out predictions still give the calibration, threshold and every reported number."""
    recalibrate_run(run_dir, log)
    metrics, spec = _load_run(run_dir)
    arch = metrics["arch"]
    name = name or arch
    display, architecture = DISPLAY[arch]
    cal = metrics["calibration"]
    model = _shifted_model((model_from or run_dir) / "final.keras", float(cal.get("logit_shift", 0.0)))
    onnx_path = out_dir / f"{name}.onnx"
    par, x = _convert(model, run_dir, onnx_path, spec, cal, log)
    size_mb = onnx_path.stat().st_size / 1e6
    if size_mb > 100:
        raise RuntimeError(f"{onnx_path} is {size_mb:.0f} MB (> 100 MB)")
    speed = time_onnx(onnx_path, x, threads=2, repeats=2)
    tta = tuple(metrics.get("test_time_augmentation", {}).get("views", [0]))
    is_cv = "oof_cross_fitted" in metrics
    card = write_card(
        out_dir,
        name,
        display,
        architecture,
        onnx_path,
        spec,
        cal["threshold"],
        cal["temperature"],
        cal["review_margin"],
        _card_metrics(metrics, par, speed, tta, is_cv),
        _training_block(metrics, is_cv, model_from),
        _notes(metrics, is_cv, model_from),
        tta_views=tta,
        version=version,
        recommended=recommended,
        provenance=provenance.card_block(metrics),
    )
    log(f"wrote {card}")
    img = REPO_ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for png in run_dir.glob(f"{arch}_*.png"):  # named after the shipped model: another model's plots stay
        copy_file(png, img / png.name.replace(arch, name, 1))
    _donor_chart(card, img)
    return card


def _shifted_model(path: Path, shift: float):
    """The run's Keras model with the calibration's logit shift folded into the head's bias (and its map's)."""
    import keras

    from . import models, probe  # noqa: F401  (register the Normalize and the probe layers)

    model = keras.models.load_model(path, compile=False)
    if shift:
        names = {layer.name: layer for layer in model.layers}
        out_layer = names.get("head_logit", model.layers[-1])
        if "head_cam" in names:  # the model's own class-activation map averages to the logit: shift it too
            cam_w, cam_b = names["head_cam"].get_weights()
            names["head_cam"].set_weights([cam_w, cam_b + np.float32(shift)])
        if not isinstance(out_layer, keras.layers.Dense) or out_layer.units != 1:
            raise RuntimeError("the model's last layer is not the one-logit Dense head")
        k, b = out_layer.get_weights()
        out_layer.set_weights([k, b + np.float32(shift)])  # logit + shift: the card keeps sigmoid(logit / T)
    return model


def _convert(model, run_dir: Path, onnx_path: Path, spec: Preprocessing, cal: dict, log):
    """ONNX at ``onnx_path``, parity-checked against Keras on real cells; weights stored as float16 when no P(ALL)
    moves by :data:`FP16_MAX_P_DIFF` and no decision changes.  Returns (the parity record, the parity cells)."""
    fp32_path = run_dir / f"{onnx_path.stem}.fp32.onnx"
    t0 = time.time()
    export_onnx(model, fp32_path)
    log(f"exported {fp32_path} ({fp32_path.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f}s")
    x, _ = _real_cells(run_dir, spec, 48)
    par = parity(model, fp32_path, x, cal["temperature"])
    par["cells"] = "real validation cells through engine.preprocess.preprocess_file"
    log(f"parity on {par['n_cells']} real cells: max |P keras - P onnx| = {par['max_abs_p_diff']:.2e}")
    if not par["pass"]:
        raise RuntimeError(f"ONNX parity failed: {par}")
    # Weights stored as float16 (computed in float32): half the size, so the bundle stays within its budget.
    store_weights_fp16(fp32_path, onnx_path)
    x_check, _ = _real_cells(run_dir, spec, STORAGE_CHECK_CELLS)
    storage = storage_parity(fp32_path, onnx_path, x_check, cal["temperature"], cal["threshold"])
    storage["weights"] = "float16 storage, float32 compute (Cast at load)"
    if storage["max_abs_p_diff_vs_fp32"] >= FP16_MAX_P_DIFF or storage["decision_agreement"] < 1.0:
        copy_file(fp32_path, onnx_path)  # float16 storage would change results: ship float32
        storage["weights"] = "float32 (float16 storage rejected)"
        storage["size_mb"] = storage["size_mb_fp32"]
    par["weight_storage"] = storage
    log(
        f"weights: {storage['weights']}, {storage['size_mb']} MB, max |dP| vs float32 "
        f"{storage['max_abs_p_diff_vs_fp32']:.1e}"
    )
    return par, x


#: metrics.json keys a card carries as they are, where the run has them
_CARRIED = (
    "donor_cv",
    "layers_compared",
    "validation_cross_fitted_without_tta",
    "bn_reestimate",
    "fold1_cross_fitted",
    "cell_area_auroc_training_views",
    "per_epoch_held_out_donors_view0",
    "test_time_views",
)


def _card_metrics(metrics: dict, par: dict, speed: float, tta: tuple, is_cv: bool) -> dict:
    """The card's ``metrics``: held-out numbers (cross-fitted and at the card's threshold), parity, speed, donors."""
    arch = metrics["arch"]
    val = metrics["oof_cross_fitted"] if is_cv else metrics["validation_cross_fitted"]
    op = metrics["oof_at_shipped_operating_point"] if is_cv else metrics["validation_at_shipped_operating_point"]
    card_metrics = {
        "data": metrics["validation"],
        "weighted_f1": val["weighted_f1"],
        "auroc": val["auroc"],
        "ece": val["ece"],
        "target_weighted_f1": TARGETS[arch],
        "meets_targets": bool(val["weighted_f1"] >= TARGETS[arch] and val["auroc"] >= 0.94 and val["ece"] <= 0.05),
        "meets_targets_note": "on the development donors held out above; the release targets are for patients "
        "outside the development data (docs/models.md)",
        "validation_honest": _summary(val),
        "validation_at_card_threshold": _summary(op),
        "onnx_parity": par,
        "onnx_cpu_images_per_s_2_threads": round(speed, 1),
        "onnx_cpu_cells_per_s_2_threads": round(speed / len(tta), 1),
        "held_out": held_out_block(
            val["per_subject_accuracy"],
            val["per_class"],
            metrics["validation"],
            metrics.get("donor_cv", {}).get("large_celled_healthy", ()),
        ),
    }
    if "recipe_kind" in metrics:
        card_metrics["recipe_kind"] = metrics["recipe_kind"]
    if "donors_cross_fitted" in metrics:  # the numbers that decide: per donor, beside the size-only baseline
        card_metrics["held_out"]["donors"] = metrics["donors_cross_fitted"]
    if "cell_area_baseline" in metrics:
        card_metrics["held_out"]["cell_area_baseline"] = metrics["cell_area_baseline"]
    card_metrics.update({key: metrics[key] for key in _CARRIED if key in metrics})
    if len(tta) > 1:
        card_metrics["test_time_augmentation"] = {"views": list(tta)}
        if "oof_cross_fitted_without_tta" in metrics:
            card_metrics["test_time_augmentation"]["without_tta"] = metrics["oof_cross_fitted_without_tta"]
    if "phase1_head_only_cross_fitted" in metrics:
        p1 = metrics["phase1_head_only_cross_fitted"]
        card_metrics["phase1_head_only"] = {k: p1[k] for k in ("weighted_f1", "auroc", "ece")}
    return card_metrics


def _training_block(metrics: dict, is_cv: bool, model_from: Path | None) -> dict:
    """The card's ``training``: data, weights, recipe, calibration, versions, timing and how the model was fitted."""
    training = {
        "data": metrics["data"],
        "dataset": "C-NMC 2019 training_data (development subset in ../shared/data: fold_0, fold_1 and part of fold_2)",
        "initial_weights": metrics.get("weights"),
        "recipe": metrics["recipe"],
        "calibration": metrics["calibration"],
        "versions": versions(),
        "timing_s": metrics.get("timing_s"),
    }
    if is_cv:
        training.update(
            {
                "epochs_chosen_by_cv": metrics["epochs_chosen"],
                "mean_fold_weighted_f1_by_epoch": metrics["mean_fold_weighted_f1_by_epoch"],
                "folds": metrics["folds"],
                "shipped_model": _shipped_model_text(metrics, True, model_from),
            }
        )
    else:
        training.update(
            {
                "best_epoch": metrics["best_epoch"],
                "train_subjects": metrics["train_subjects"],
                "val_subjects": metrics["val_subjects"],
                "teacher": metrics.get("teacher"),
                "shipped_model": _shipped_model_text(metrics, False, model_from),
            }
        )
    return training


def _notes(metrics: dict, is_cv: bool, model_from: Path | None) -> str:
    n_subjects = metrics.get("data", {}).get("subjects", 40)
    return (
        "Research tool, not a diagnostic device. Metrics are on subjects the model never saw "
        + (
            "(5-fold cross-validation by subject, out-of-fold predictions; temperature and threshold cross-fitted). "
            if is_cv
            else "(one held-out subject fold; temperature and threshold cross-fitted between its halves). "
        )
        + (
            f"Trained on {len(metrics['train_subjects'])} subjects of the {n_subjects}-subject development subset of "
            "C-NMC 2019 (the held-out ones excluded) only; see docs/models.md."
            if metrics.get("train_subjects") and model_from is None
            else f"Trained on the {n_subjects}-subject development subset of C-NMC 2019 only; see docs/models.md."
        )
    )


def _donor_chart(card_path: Path, img: Path) -> None:
    """docs/img/<name>_donors.png from the new card (training.donor_charts), as docs/models.md shows it."""
    from .donor_charts import draw

    card = load_card(card_path)
    members = []
    for p in card_path.parent.glob("*.json"):  # an ensemble's members (which donors they saw)
        try:
            members.append(load_card(p))
        except Exception:  # another, unreadable card: its chart is not this export's business
            continue
    draw(card, members, img / f"{card.name}_donors.png")


def ensemble(run_dirs: list[Path], out_dir: Path, log=print, version: str = "1.0.0", recommended: bool = False) -> Path:
    """Ensemble card: mean of the members' calibrated P(ALL) on the cells every member was validated on (held-out
    subjects for all members); threshold and margin fitted there, metrics cross-fitted between subject halves."""
    members = []
    raw_logits: list[dict] = []
    common = None
    per = []
    for rd in run_dirs:
        metrics, _ = _load_run(rd)
        d = np.load(rd / "oof.npz")
        cal = metrics["calibration"]
        mp = dict(zip(d["paths"].tolist(), calibrated(d["logits"], cal["temperature"], cal.get("logit_shift", 0.0))))
        raw_logits.append(dict(zip(d["paths"].tolist(), d["logits"].tolist())))
        lab = dict(zip(d["paths"].tolist(), d["labels"].tolist()))
        sub = dict(zip(d["paths"].tolist(), d["subjects"].tolist()))
        members.append(metrics["arch"])
        per.append((mp, lab, sub))
        common = set(mp) if common is None else common & set(mp)
    paths = sorted(common)
    if not paths:
        raise ValueError("the runs share no validation cells")
    p_members = np.stack([[mp[p] for p in paths] for mp, _, _ in per])
    y = np.asarray([per[0][1][p] for p in paths])
    subjects = [per[0][2][p] for p in paths]
    p = p_members.mean(0)
    # subject-disjoint halves for cross-fitting the threshold (no temperature: members are calibrated already)
    subs = sorted(set(subjects))
    halves = subject_halves(subjects, 0)
    # Honest: each member's Platt calibration AND the threshold fitted on the other half only (the shipped members'
    # own calibrations were fitted on cells that include these)
    z_raw = np.stack([[rl[q] for q in paths] for rl in raw_logits])
    p_honest = np.zeros(len(paths))
    for k in (0, 1):
        fit, use = halves != k, halves == k
        p_honest[use] = np.mean([calibrated(zr[use], *fit_platt(zr[fit], y[fit])) for zr in z_raw], axis=0)
    z_honest = np.log(np.clip(p_honest, 1e-7, 1 - 1e-7) / np.clip(1 - p_honest, 1e-7, 1))
    honest = compute_cross_fitted(z_honest, y, halves, subjects, fit_t=False)
    th = best_threshold(p, y)
    mg = review_margin(p, y, th)
    op = compute(p, y, th, subjects, mg)
    member_only = {}
    for name, zr in zip(members, z_raw):  # each member alone, calibrated and thresholded the same honest way
        member_only[name] = {
            k: v
            for k, v in compute_cross_fitted(zr, y, halves, subjects, fit_t=True).items()
            if k in ("weighted_f1", "auroc", "ece")
        }
    metrics = {
        "data": f"{len(paths):,} cells of {len(subs)} subjects held out of the training of every member's fold "
        "model; each member's calibration and the threshold cross-fitted between two subject-disjoint "
        "halves",
        "weighted_f1": honest["weighted_f1"],
        "auroc": honest["auroc"],
        "ece": honest["ece"],
        "target_weighted_f1": TARGETS["ensemble"],
        "meets_targets": bool(honest["weighted_f1"] >= 0.90 and honest["auroc"] >= 0.94 and honest["ece"] <= 0.05),
        "validation_honest": _summary(honest),
        "validation_at_card_threshold": _summary(op),
        "members_on_same_cells": member_only,
        "beats_best_member": bool(
            all(honest["weighted_f1"] > m["weighted_f1"] and honest["auroc"] > m["auroc"] for m in member_only.values())
        ),
    }
    metrics["held_out"] = held_out_block(honest["per_subject_accuracy"], honest["per_class"], metrics["data"])
    training = {
        "combination": "mean of the members' calibrated P(ALL)",
        "threshold_rule": "maximises weighted F1 on the shared held-out cells",
        "review_margin_rule": REVIEW_RULE + "; the engine also flags cells on which the members disagree",
    }
    notes = (
        "Research tool, not a diagnostic device. Measured on the subjects held out of every member (few "
        "healthy donors: the numbers are uncertain); see docs/models.md."
    )
    card = write_ensemble_card(
        out_dir,
        members,
        th,
        mg,
        metrics,
        training,
        notes,
        version=version,
        recommended=recommended,
        provenance=provenance.card_block({}, recipe="ensemble of " + " + ".join(members)),
    )
    write_json(run_dirs[-1] / "ensemble_metrics.json", metrics)
    log(
        f"ensemble: weighted F1 {honest['weighted_f1']:.4f} AUROC {honest['auroc']:.4f} ECE {honest['ece']:.4f} "
        f"-> {card}"
    )
    _donor_chart(card, REPO_ROOT / "docs" / "img")
    return card
