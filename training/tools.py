"""What the data and run-folder commands do with their options: ``prepare``, ``evaluate``, ``export``, ``quantize``
and ``ensemble`` (any recipe's run folder).  Like training/recipes.py: each plan reads every option of its command
and returns the job."""

from __future__ import annotations

import argparse

from . import options as o
from .recipes import Job


def plan_prepare(a: argparse.Namespace) -> Job:
    """Discover, deduplicate, check the subject-wise splits, measure cell extents, optionally cache pixels."""
    if a.size is None and a.crop is not None:
        raise o.UsageError("--crop needs --size (it is the crop of the pixel cache)")
    data, folds, seed = o.DATA.read(a), o.SPLIT.read(a), o.SEED.read(a)
    size, crop = a.size, 0.85 if a.crop is None else a.crop
    return lambda: _prepare(data, folds, seed, size, crop)


def _prepare(data: o.DataSource, folds: int, seed: int, size: int | None, crop: float) -> int:
    import numpy as np

    from engine.preprocess import Preprocessing

    from .data import build_pixel_cache, cell_extent_fraction, subject_folds

    m = data.manifest()
    s = m.summary()
    o.log(
        f"{s['cells']} unique cells ({s['all_cells']} ALL / {s['hem_cells']} HEM) from {s['subjects']} subjects "
        f"({s['all_subjects']} ALL / {s['hem_subjects']} HEM); {s['duplicates_dropped']} pixel duplicates dropped"
    )
    for d in m.dropped[:20]:
        o.log(f"  dropped {d['path']}: {d['reason']}")
    f = cell_extent_fraction(m)
    for c in (0.7, 0.75, 0.8, 0.85, 0.9, 1.0):
        o.log(f"  crop fraction {c:.2f}: {100 * (f <= c).mean():.1f}% of cells entirely inside")
    for k, (_, va) in enumerate(subject_folds(m, folds, seed)):
        subs = sorted(set(np.asarray(m.subjects)[va].tolist()))
        o.log(f"  fold {k}: {len(va)} cells, subjects {subs}")
    if size:
        px = build_pixel_cache(m, Preprocessing(size, size, crop, "bilinear"), data.cache, workers=data.workers)
        o.log(f"pixel cache {px.shape} ready")
    return 0


def plan_evaluate(a: argparse.Namespace) -> Job:
    """Recompute calibration, operating point, metrics.json and plots of a run from its validation predictions."""
    run = o.RUN.read(a)

    def job() -> int:
        from .export_run import recalibrate_run

        recalibrate_run(run, o.log)
        o.log(f"updated {run / 'metrics.json'} and the plots in {run}")
        return 0

    return job


def plan_export(a: argparse.Namespace) -> Job:
    run, out, name, release = o.RUN.read(a), o.MODEL_DIR.read(a), o.MODEL_NAME.read(a), o.RELEASE.read(a)
    model_from = o.repo_path(a.model_from) if a.model_from else None

    def job() -> int:
        from .export_run import export_run

        export_run(
            run,
            out,
            o.log,
            name=name,
            version=release.version,
            recommended=release.recommended,
            model_from=model_from,
        )
        return 0

    return job


def plan_quantize(a: argparse.Namespace) -> Job:
    run, out, name = o.RUN.read(a), o.MODEL_DIR.read(a), o.MODEL_NAME.read(a)
    settings = {
        "n_gate": a.gate_cells,
        "n_calib": a.calibration_cells,
        "methods": o.words(a.calibration),
        "exclude": o.words(a.keep_float),
        "op_types": None if a.op_types.strip() == "all" else o.words(a.op_types) or None,
        "time_cells": a.time_cells,
        "bias_correct": not a.no_bias_correction,
    }

    def job() -> int:
        from .quantize_run import quantize_run

        return 0 if quantize_run(run, out, o.log, name=name, **settings)["pass"] else 1

    return job


def plan_ensemble(a: argparse.Namespace) -> Job:
    runs, out, release = [o.repo_path(r) for r in a.runs], o.MODEL_DIR.read(a), o.RELEASE.read(a)

    def job() -> int:
        from .export_run import ensemble

        ensemble(runs, out, o.log, version=release.version, recommended=release.recommended)
        return 0

    return job
