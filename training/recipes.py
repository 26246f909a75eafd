"""What the recipe commands do with their options: ``cv`` and ``probe-fit`` (the 4.0 models), ``e2e`` (3.0) and
``frozen`` (VGG19 2.0).

Each ``plan_*`` reads every option of its command (its groups through their readers) and checks them before any
data is opened, then returns the job that does the work: a refused option costs nothing, and a test can check that
no declared option is left unread.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import options as o

Job = Callable[[], int]


def _refuse_with(a: argparse.Namespace, flag: str, others: dict[str, object]) -> None:
    """Exit 2 when an option that ``flag`` makes meaningless was given (no option is accepted and then ignored)."""
    given = [name for name, value in others.items() if value not in (None, False)]
    if given:
        raise o.UsageError(f"{', '.join(given)} cannot be combined with {flag}")


# ------------------------------------------------------------------------------------------------ 4.0: cv


def plan_cv(a: argparse.Namespace) -> Job:
    """The donor-level cross-validation table (issue 25), or one recipe on one fold."""
    from . import cv_run

    data, weights, folds_file = o.DATA.read(a), o.BACKBONE_WEIGHTS.read(a), o.FOLD_FILE.read(a)
    out, new_folds = o.repo_path(a.out), a.new_folds
    names = {r.name: r for r in cv_run.RECIPES}
    if a.recipe is not None:
        if a.recipe not in names:
            raise o.UsageError(f"unknown recipe {a.recipe!r}; choose one of: " + "; ".join(names))
        _refuse_with(a, "--recipe", {"--only": a.only, "--arch": a.arch, "--extract-only": a.extract_only})
        recipe, fold = names[a.recipe], 0 if a.fold is None else a.fold
        return lambda: _cv_one_fold(data, weights, folds_file, new_folds, recipe, fold)
    _refuse_with(a, "without --recipe", {"--fold": a.fold})
    unknown = sorted(set(a.only or ()) - set(names))
    if unknown:
        raise o.UsageError(f"unknown recipe(s) for --only: {unknown}")
    only, arch, extract_only = a.only, a.arch, a.extract_only
    return lambda: _cv_table(data, weights, folds_file, new_folds, out, only, arch, extract_only)


def _fold_file(data: o.DataSource, folds_file, new_folds: bool):
    from . import donor_cv

    m = data.manifest()
    if new_folds:
        donor_cv.write_fold_file(donor_cv.make_folds(m.subjects, m.labels), m.subjects, m.labels, folds_file)
        o.log(f"wrote {folds_file}")
    return m


def _cv_one_fold(data, weights, folds_file, new_folds, recipe, fold) -> int:
    from . import cv_run

    m = _fold_file(data, folds_file, new_folds)
    names = {r.name: r for r in cv_run.RECIPES}
    need = cv_run.views_needed([names[n] for n in (recipe.members or (recipe.name,))])
    feats = cv_run.load_features(m, data.cache, weights.resolved(), need, data.workers, o.log)
    area = cv_run.cell_areas(m, data.cache, data.workers)
    cv_run.one_fold(feats, recipe, m, area, fold, o.log, folds_file)
    return 0


def _cv_table(data, weights, folds_file, new_folds, out, only, arch, extract_only) -> int:
    from . import cv_run

    m = _fold_file(data, folds_file, new_folds)
    members = {n for r in cv_run.RECIPES if r.name in set(only or ()) for n in r.members}
    need = cv_run.views_needed([r for r in cv_run.RECIPES if only is None or r.name in only or r.name in members])
    if arch:
        need = {k: v for k, v in need.items() if k in arch}
    feats = cv_run.load_features(m, data.cache, weights.resolved(), need, data.workers, o.log)
    if extract_only:
        return 0
    area = cv_run.cell_areas(m, data.cache, data.workers)
    order = cv_run.run_all(
        feats, m, area, out, only=None if only is None else set(only), log=o.log, fold_file=folds_file
    )
    o.log(f"chosen by the rule: {order[0]['recipe']['name']}; table in {out / 'table.md'}")
    return 0


# ------------------------------------------------------------------------------------------------ 4.0: probe-fit


def plan_probe_fit(a: argparse.Namespace) -> Job:
    """A recipe of the cv table refit on every subject, as a run folder for ``export``."""
    from . import cv_run
    from .probe import BACKBONES

    names = {r.name: r for r in cv_run.RECIPES}
    r = names.get(a.recipe)
    if r is None or r.arch not in BACKBONES:
        raise o.UsageError(
            f"not a single-backbone recipe of the cv table: {a.recipe!r}; choose one of: "
            + "; ".join(n for n, x in names.items() if x.arch in BACKBONES)
        )
    data, weights, folds_file, run = o.DATA.read(a), o.BACKBONE_WEIGHTS.read(a), o.FOLD_FILE.read(a), o.RUN.read(a)
    cv_dir = o.repo_path(a.cv)
    return lambda: _probe_fit(r, data, weights, folds_file, run, cv_dir)


def _probe_fit(r, data: o.DataSource, weights: o.BackboneWeights, folds_file, run, cv_dir) -> int:
    from engine.preprocess import Preprocessing

    from . import cv_run, probe_ship
    from .data import build_pixel_cache
    from .probe import BACKBONES

    w = weights.resolved()[r.arch]
    m = data.manifest()
    feats = cv_run.load_features(m, data.cache, {r.arch: w}, cv_run.views_needed([r]), data.workers, o.log)
    bb = BACKBONES[r.arch]
    px = build_pixel_cache(m, Preprocessing(bb.size, bb.size, bb.crop, "bilinear"), data.cache, workers=data.workers)
    probe_ship.make_run(r, m, feats[r.arch], px, cv_dir, run, w, o.log, folds_file)
    return 0


# ------------------------------------------------------------------------------------------------ 3.0: e2e


def plan_e2e(a: argparse.Namespace) -> Job:
    """The 3.0 recipe: a whole network fine-tuned on a centroid window, validated on held-out donors."""
    from .e2e import HARD_PANEL, E2ERecipe

    if a.all_subjects:
        _refuse_with(a, "--all-subjects (no donor is held out)", {"--holdout": a.holdout})
    holdout = tuple(s.strip() for s in (a.holdout or ",".join(HARD_PANEL)).split(",") if s.strip())
    recipe = E2ERecipe(
        arch=a.arch,
        size=a.size,
        window_px=a.window,
        unfreeze_from=a.unfreeze_from,
        epochs=a.epochs,
        batch=a.batch,
        lr=a.lr,
        holdout=holdout,
        seed=o.SEED.read(a),
        tta_views=o.views(a.tta_views),
        train_on_all=a.all_subjects,
    )
    data, weights, run, resume = o.DATA.read(a), o.WEIGHTS.read(a), o.RUN.read(a), a.resume
    portable = o.repo_path(a.portable_checkpoint) if a.portable_checkpoint else None
    return lambda: _e2e(recipe, data, weights, run, resume, portable)


def _e2e(recipe, data: o.DataSource, weights, run, resume: bool, portable) -> int:
    from .e2e import run as train
    from .weights import default_weights, resolve_weights

    w = resolve_weights(weights or str(o.REPO_ROOT / default_weights(recipe.arch)), o.REPO_ROOT)
    metrics = train(data.manifest(), recipe, w, run, data.cache, resume, o.log, data.workers, portable)
    h = metrics.get("validation_cross_fitted") or {}
    if h:
        d = metrics["donors_cross_fitted"]
        o.log(
            f"done: held-out weighted F1 {h['weighted_f1']:.4f}, AUROC {h['auroc']:.4f}, ECE {h['ece']:.4f}; "
            f"healthy donors' mean share called HEM {d['healthy_donors']['mean_share_called_right']:.3f} "
            f"(run folder {run})"
        )
    return 0


# ------------------------------------------------------------------------------------------------ 2.0: frozen


def plan_frozen(a: argparse.Namespace) -> Job:
    """VGG19 2.0: ImageNet VGG19 cut at a mid-level layer, frozen, and a logistic head, by subject-wise CV."""
    from engine.preprocess import Preprocessing

    from .frozen_vgg import FrozenRecipe

    layers = tuple(s.strip() for s in a.layers.split(",") if s.strip())
    if a.cut not in layers:
        raise o.UsageError(f"--cut {a.cut} must be one of --layers {','.join(layers)}")
    recipe = FrozenRecipe(
        size=a.size,
        layers=layers,
        cut=a.cut,
        tta_views=o.views(a.tta_views),
        n_aug=a.aug_views,
        n_folds=o.SPLIT.read(a),
        seed=o.SEED.read(a),
    )
    spec = Preprocessing(a.size, a.size, a.crop, "bilinear")
    data, weights, run = o.DATA.read(a), o.WEIGHTS.read(a), o.RUN.read(a)
    return lambda: _frozen(recipe, spec, data, weights, run)


def _frozen(recipe, spec, data: o.DataSource, weights, run) -> int:
    from .frozen_vgg import run as fit
    from .weights import default_weights, resolve_weights

    w = resolve_weights(weights or str(o.REPO_ROOT / default_weights("vgg19")), o.REPO_ROOT)
    metrics = fit(data.manifest(), spec, recipe, w, run, data.cache, o.log, data.workers)
    h = metrics["oof_cross_fitted"]
    o.log(f"done: out-of-fold weighted F1 {h['weighted_f1']:.4f}, AUROC {h['auroc']:.4f}, ECE {h['ece']:.4f}")
    return 0
