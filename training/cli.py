"""leukoscan-train: prepare the C-NMC data, train, evaluate and export LeukoScan's models.

Commands: prepare | e2e | frozen | cv | probe-fit | evaluate | export | quantize | ensemble.
`leukoscan-train COMMAND --help` says what a command does, its exit statuses and two examples; docs/training.md
is the training guide.  Messages go to stderr (and to RUN/train.log); defaults do not depend on the working
directory: the data and weights are found beside the repository (../shared), the caches go to the per-user cache
folder (e.g. ~/.cache/LeukoScan/training; LEUKOSCAN_CACHE_DIR moves it).

Typical use (the 3.0 recipe):

  leukoscan-train prepare
  leukoscan-train e2e      --run runs/inceptionv3_e2e --epochs 8 --size 192 --window 288 --resume
  leukoscan-train evaluate --run runs/inceptionv3_e2e
  leukoscan-train export   --run runs/inceptionv3_e2e --out resources/models --name inceptionv3 --version 3.0.0
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"  # the data and the offline ImageNet weights, beside the repository
DEFAULT_DATA = str(SHARED / "data" / "C-NMC_Leukemia")


def _log(msg: str) -> None:
    """To the console and, once :func:`main` has named the run folder, to ``RUN/train.log`` (training.runlog)."""
    from . import runlog

    logger = logging.getLogger(runlog.LOGGER)
    if not logger.handlers:  # called without main() (a script, a test): the console, as before
        runlog.setup(None)
    logger.info(msg)


def _run_dir(args) -> Path | None:
    """The run folder a command works in (its train.log goes there); None for prepare and ensemble."""
    run = getattr(args, "run", None)
    return _path(run) if run else None


def _path(p: str | Path) -> Path:
    """Relative paths are taken from the current directory, falling back to the repository root."""
    q = Path(p)
    if q.is_absolute() or q.exists():
        return q
    return REPO_ROOT / q


def _manifest(args):
    from .data import build_manifest, discover, load_manifest, save_manifest

    data = _path(args.data)
    cache = _path(args.cache)
    key = str(data.resolve()) + "|" + str(args.labels_csv or "")
    import hashlib

    mpath = cache / f"manifest_{hashlib.sha256(key.encode()).hexdigest()[:10]}.json"
    if mpath.exists() and not getattr(args, "rescan", False):
        return load_manifest(mpath)
    _log(f"discovering cells under {data}")
    items = discover(data, args.labels_csv)
    m = build_manifest(items, workers=args.workers)
    save_manifest(m, mpath)
    return m


def cmd_prepare(args) -> int:
    import numpy as np

    from engine.preprocess import Preprocessing

    from .data import build_pixel_cache, cell_extent_fraction, subject_folds

    m = _manifest(args)
    s = m.summary()
    _log(
        f"{s['cells']} unique cells ({s['all_cells']} ALL / {s['hem_cells']} HEM) from {s['subjects']} subjects "
        f"({s['all_subjects']} ALL / {s['hem_subjects']} HEM); {s['duplicates_dropped']} pixel duplicates dropped"
    )
    for d in m.dropped[:20]:
        _log(f"  dropped {d['path']}: {d['reason']}")
    f = cell_extent_fraction(m)
    for c in (0.7, 0.75, 0.8, 0.85, 0.9, 1.0):
        _log(f"  crop fraction {c:.2f}: {100 * (f <= c).mean():.1f}% of cells entirely inside")
    folds = subject_folds(m, args.folds, args.seed)
    for k, (_, va) in enumerate(folds):
        subs = sorted(set(np.asarray(m.subjects)[va].tolist()))
        _log(f"  fold {k}: {len(va)} cells, subjects {subs}")
    if args.size:
        spec = Preprocessing(args.size, args.size, args.crop, "bilinear")
        px = build_pixel_cache(m, spec, _path(args.cache), workers=args.workers)
        _log(f"pixel cache {px.shape} ready")
    return 0


def cmd_e2e(args) -> int:
    from .e2e import HARD_PANEL, E2ERecipe, run
    from .weights import default_weights, resolve_weights

    weights = resolve_weights(args.weights or str(REPO_ROOT / default_weights(args.arch)), REPO_ROOT)
    holdout = tuple(s.strip() for s in (args.holdout or ",".join(HARD_PANEL)).split(",") if s.strip())
    recipe = E2ERecipe(
        arch=args.arch,
        size=args.size,
        window_px=args.window,
        unfreeze_from=args.unfreeze_from,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        holdout=holdout,
        seed=args.seed,
        tta_views=_views(args.tta_views),
        train_on_all=args.all_subjects,
    )
    m = _manifest(args)
    portable = _path(args.portable_checkpoint) if args.portable_checkpoint else None
    metrics = run(m, recipe, weights, _path(args.run), _path(args.cache), args.resume, _log, args.workers, portable)
    h = metrics.get("validation_cross_fitted") or {}
    if h:
        d = metrics["donors_cross_fitted"]
        _log(
            f"done: held-out weighted F1 {h['weighted_f1']:.4f}, AUROC {h['auroc']:.4f}, ECE {h['ece']:.4f}; "
            f"healthy donors' mean share called HEM {d['healthy_donors']['mean_share_called_right']:.3f} "
            f"(run folder {args.run})"
        )
    return 0


def cmd_frozen(args) -> int:
    from engine.preprocess import Preprocessing

    from .frozen_vgg import FrozenRecipe, run
    from .weights import resolve_weights

    spec = Preprocessing(args.size, args.size, args.crop, "bilinear")
    weights = resolve_weights(args.weights, REPO_ROOT)
    layers = tuple(s.strip() for s in args.layers.split(",") if s.strip())
    if args.cut not in layers:
        raise SystemExit(f"--cut {args.cut} must be one of --layers {','.join(layers)}")
    recipe = FrozenRecipe(
        size=args.size,
        layers=layers,
        cut=args.cut,
        tta_views=_views(args.tta_views),
        n_aug=args.aug_views,
        n_folds=args.folds,
        seed=args.seed,
    )
    m = _manifest(args)
    metrics = run(m, spec, recipe, weights, _path(args.run), _path(args.cache), _log, args.workers)
    h = metrics["oof_cross_fitted"]
    _log(f"done: out-of-fold weighted F1 {h['weighted_f1']:.4f}, AUROC {h['auroc']:.4f}, ECE {h['ece']:.4f}")
    return 0


def _views(text: str) -> tuple[int, ...]:
    try:
        views = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise SystemExit(f"views must be comma-separated integers 0-7, got {text!r}") from None
    if not views or views[0] != 0 or len(set(views)) != len(views) or not all(0 <= v <= 7 for v in views):
        raise SystemExit(f"views must be distinct integers 0-7 starting with 0 (the identity), got {text!r}")
    return views


def _members(names) -> set[str]:
    from . import cv_run

    return {n for r in cv_run.RECIPES if r.name in set(names) for n in r.members}


def cmd_cv(args) -> int:
    """The donor-level cross-validation table (issue 25) or one recipe on one fold."""
    from . import cv_run, donor_cv
    from .weights import resolve_weights

    m = _manifest(args)
    if args.new_folds:
        donor_cv.write_fold_file(donor_cv.make_folds(m.subjects, m.labels), m.subjects, m.labels)
        _log(f"wrote {donor_cv.FOLD_FILE}")
    vgg, inception = resolve_weights(args.vgg_weights, REPO_ROOT), resolve_weights(args.inception_weights, REPO_ROOT)
    weights = {"vgg19": vgg, "vgg19lo": vgg, "inceptionv3": inception}
    names = {r.name: r for r in cv_run.RECIPES}
    if args.recipe is not None:
        if args.recipe not in names:
            raise SystemExit(f"unknown recipe {args.recipe!r}; choose one of: " + "; ".join(names))
        r = names[args.recipe]
        need = cv_run.views_needed([names[n] for n in (r.members or (r.name,))])
        feats = cv_run.load_features(m, _path(args.cache), weights, need, args.workers, _log)
        cv_run.one_fold(feats, r, m, cv_run.cell_areas(m, _path(args.cache), args.workers), args.fold, _log)
        return 0
    need = cv_run.views_needed(
        [r for r in cv_run.RECIPES if args.only is None or r.name in args.only or r.name in _members(args.only)]
    )
    if args.arch:
        need = {a: v for a, v in need.items() if a in args.arch}
    feats = cv_run.load_features(m, _path(args.cache), weights, need, args.workers, _log)
    if args.extract_only:
        return 0
    area = cv_run.cell_areas(m, _path(args.cache), args.workers)
    only = None if args.only is None else set(args.only)
    order = cv_run.run_all(feats, m, area, _path(args.out), only=only, log=_log)
    _log(f"chosen by the rule: {order[0]['recipe']['name']}; table in {_path(args.out) / 'table.md'}")
    return 0


def cmd_probe_fit(args) -> int:
    """A recipe of the cv table refit on every subject, as a run folder for ``export``."""
    from engine.preprocess import Preprocessing

    from . import cv_run, probe_ship
    from .data import build_pixel_cache
    from .probe import BACKBONES
    from .weights import resolve_weights

    names = {r.name: r for r in cv_run.RECIPES}
    r = names.get(args.recipe)
    if r is None or r.arch not in BACKBONES:
        raise SystemExit(
            f"not a single-backbone recipe of the cv table: {args.recipe!r}; choose one of: "
            + "; ".join(n for n, x in names.items() if x.arch in BACKBONES)
        )
    weights = resolve_weights(args.vgg_weights if r.arch.startswith("vgg19") else args.inception_weights, REPO_ROOT)
    m = _manifest(args)
    feats = cv_run.load_features(m, _path(args.cache), {r.arch: weights}, cv_run.views_needed([r]), args.workers, _log)
    bb = BACKBONES[r.arch]
    px = build_pixel_cache(
        m, Preprocessing(bb.size, bb.size, bb.crop, "bilinear"), _path(args.cache), workers=args.workers
    )
    probe_ship.make_run(r, m, feats[r.arch], px, _path(args.cv), _path(args.run), weights, _log)
    return 0


def cmd_evaluate(args) -> int:
    """Recompute calibration, operating point, metrics.json and plots of a run from its validation predictions."""
    from .export_run import recalibrate_run

    run_dir = _path(args.run)
    recalibrate_run(run_dir, _log)
    _log(f"updated {run_dir / 'metrics.json'} and the plots in {run_dir}")
    return 0


def cmd_export(args) -> int:
    from .export_run import export_run

    export_run(
        _path(args.run),
        _path(args.out),
        _log,
        name=args.name,
        version=args.version,
        recommended=args.recommended,
        model_from=_path(args.model_from) if args.model_from else None,
    )
    return 0


def cmd_quantize(args) -> int:
    from .quantize_run import quantize_run

    res = quantize_run(
        _path(args.run),
        _path(args.out),
        _log,
        name=args.name,
        n_gate=args.gate_cells,
        n_calib=args.calibration_cells,
        methods=_words(args.calibration),
        exclude=_words(args.keep_float),
        op_types=None if args.op_types.strip() == "all" else _words(args.op_types) or None,
        time_cells=args.time_cells,
        bias_correct=not args.no_bias_correction,
    )
    return 0 if res["pass"] else 1


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in (text or "").split(",") if w.strip())


def cmd_ensemble(args) -> int:
    from .export_run import ensemble

    ensemble([_path(r) for r in args.runs], _path(args.out), _log, version=args.version, recommended=args.recommended)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    ap = argparse.ArgumentParser(
        prog="leukoscan-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def backbone_weight_args(p):  # the frozen-feature commands (cv, probe-fit) read both networks' weights
        p.add_argument(
            "--vgg-weights",
            default="../shared/weights/vgg19_imagenet_normalised_notop.fp16.weights.h5",
            help="VGG19 ImageNet weights: a file, or 'imagenet' (Keras download, needs internet)",
        )
        p.add_argument(
            "--inception-weights",
            default="../shared/weights/inception_v3_imagenet_notop.fp16.weights.h5",
            help="InceptionV3 ImageNet weights: a file, or 'imagenet' (Keras download, needs internet)",
        )

    def data_args(p):
        p.add_argument(
            "--data", default=DEFAULT_DATA, help="data folder (fold_N/all|hem, all/+hem/, or images + labels CSV)"
        )
        p.add_argument("--labels-csv", default=None, help="labels CSV (Patient_ID,new_names,labels; 1 = ALL)")
        p.add_argument("--cache", default="cache", help="cache folder (manifests, pixel and feature caches)")
        p.add_argument("--workers", type=int, default=2, help="decoding processes")
        p.add_argument("--folds", type=int, default=5, help="subject-wise cross-validation folds")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--rescan", action="store_true", help="rebuild the manifest (hashes) even if cached")

    p = sub.add_parser("prepare", help="discover, deduplicate, check splits, measure cell extents, build a pixel cache")
    data_args(p)
    p.add_argument("--size", type=int, default=None, help="also cache preprocessed pixels at this input size")
    p.add_argument("--crop", type=float, default=0.85)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser(
        "e2e",
        help="InceptionV3 or VGG19 fine-tuned end to end on a centroid window, validated "
        "on held-out donors; any Keras backend (3.0 recipe)",
    )
    data_args(p)
    p.add_argument("--arch", choices=("inceptionv3", "vgg19"), default="inceptionv3")
    p.add_argument("--run", default="runs/inceptionv3_e2e", help="run folder")
    p.add_argument(
        "--weights",
        default=None,
        help="'imagenet' (Keras download, needs internet), 'none' or a weights file (default: the "
        "offline ImageNet copy in ../shared/weights)",
    )
    p.add_argument("--size", type=int, default=192, help="model input size (pixels)")
    p.add_argument("--window", type=int, default=288, help="native pixels of the window centred on the cell")
    p.add_argument(
        "--unfreeze-from",
        default="all",
        help="'all' (every layer, stem included) or the first trained layer (VGG19: e.g. block3_conv1)",
    )
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=6e-5, help="backbone peak learning rate (the head's is 10x)")
    p.add_argument(
        "--holdout",
        default=None,
        help="comma-separated held-out subjects (default: the hard panel H6,H7,H11,H12 + five ALL)",
    )
    p.add_argument("--tta-views", default="0,5,2", help="views averaged at validation and in the app")
    p.add_argument("--all-subjects", action="store_true", help="train on every subject (no held-out donors)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's (or the portable) checkpoint")
    p.add_argument(
        "--portable-checkpoint",
        default=None,
        help="also write a weights-only float16 checkpoint here after every epoch (commit it to resume "
        "on another machine; delete it when the model ships)",
    )
    p.set_defaults(func=cmd_e2e)

    p = sub.add_parser("frozen", help="VGG19 (ImageNet) cut at a mid-level layer, frozen, + logistic head (2.0)")
    data_args(p)
    p.add_argument("--run", default="runs/vgg19_frozen", help="run folder")
    p.add_argument(
        "--weights",
        default="../shared/weights/vgg19_imagenet_normalised_notop.fp16.weights.h5",
        help="'imagenet' (Keras download, needs internet), 'none' or a weights file",
    )
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--crop", type=float, default=0.85)
    p.add_argument("--layers", default="block3_conv4,block4_conv1", help="pooled layers compared by CV")
    p.add_argument("--cut", default="block3_conv4", help="the layer the shipped model is cut at")
    p.add_argument("--tta-views", default="0,5", help="dihedral views averaged at validation and in the app")
    p.add_argument("--aug-views", type=int, default=1, help="augmented views per cell added to the head's training")
    p.set_defaults(func=cmd_frozen)

    p = sub.add_parser(
        "cv",
        help="donor-level cross-validation of every recipe on frozen ImageNet features over all subjects (the "
        "4.0 comparison table); --recipe NAME --fold K runs one recipe on one fold",
    )
    data_args(p)
    p.add_argument("--out", default="docs/runs/4.0/cv", help="where the table, results.json and oof/ are written")
    p.add_argument("--recipe", default=None, help="run only this recipe (a name of the table) on --fold")
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="cross-validate only these recipes and read the others back from --out/oof (no names: just "
        "rebuild the table from --out/oof)",
    )
    p.add_argument("--fold", type=int, default=0, help="with --recipe: the held-out fold (0-4)")
    p.add_argument(
        "--arch", nargs="+", choices=("vgg19", "vgg19lo", "inceptionv3"), help="only these backbones' features"
    )
    p.add_argument("--extract-only", action="store_true", help="cache the features and stop")
    p.add_argument("--new-folds", action="store_true", help="remake training/folds/donor_cv.json from the data")
    backbone_weight_args(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser(
        "probe-fit",
        help="refit one recipe of the cv table on every subject as a run folder (then: export --run)",
    )
    data_args(p)
    p.add_argument("--recipe", required=True, help="a recipe name of the cv table (docs/runs/4.0/cv/table.md)")
    p.add_argument("--cv", default="docs/runs/4.0/cv", help="the cv output folder (its oof/ gives calibration)")
    p.add_argument("--run", required=True, help="run folder to write (final.keras, oof.npz, metrics.json)")
    backbone_weight_args(p)
    p.set_defaults(func=cmd_probe_fit)

    p = sub.add_parser("evaluate", help="metrics.json-style evaluation + plots from a run's validation predictions")
    p.add_argument("--run", required=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="ONNX + model card from a finished run (parity-checked)")
    p.add_argument("--run", required=True)
    p.add_argument("--out", default="resources/models")
    p.add_argument("--name", default=None)
    p.add_argument("--version", default="1.0.0", help="model version written into the card (and every report)")
    p.add_argument("--recommended", action="store_true", help="mark the card as the app's default choice")
    p.add_argument(
        "--model-from",
        default=None,
        help="ship this run folder's final.keras (e.g. a finetune --all-subjects refit) with --run's "
        "held-out calibration and metrics",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "quantize",
        help="int8 QDQ copy of a shipped model, written beside it (<name>.int8.onnx) only when it passes the gate "
        "on the run's out-of-fold cells (docs/speed.md); the card records the gate either way; exit 1 when it fails",
    )
    p.add_argument("--run", required=True)
    p.add_argument("--out", default="resources/models")
    p.add_argument("--name", default=None)
    p.add_argument(
        "--gate-cells", type=int, default=2000, help="out-of-fold cells the gate compares, spread over every donor"
    )
    p.add_argument(
        "--calibration-cells", type=int, default=256, help="other out-of-fold cells that set the activation ranges"
    )
    p.add_argument(
        "--calibration",
        default="percentile",
        help="calibration method(s), comma-separated, each tried and measured: minmax, percentile, entropy "
        "(default percentile); the one whose calls agree best is kept",
    )
    p.add_argument(
        "--keep-float",
        default="",
        help="nodes left in float, comma-separated: 'first' (the first Conv/MatMul), 'last' (the last Conv, whose "
        "output is pooled into the features), 'head' (the one computing the logit) or node names (as named after "
        "onnxruntime's pre-processing)",
    )
    p.add_argument(
        "--op-types",
        default="Conv",
        help="only these op types quantised, comma-separated (default Conv: on VGG19 2.0 it kept more calls than "
        "every op onnxruntime quantises, docs/speed.md); 'all': onnxruntime's choice",
    )
    p.add_argument(
        "--no-bias-correction",
        action="store_true",
        help="do not shift the int8 logit by its mean difference from float32 on the calibration cells",
    )
    p.add_argument(
        "--time-cells", type=int, default=64, help="cells timed at float32 and int8, one view (0: no timing)"
    )
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("ensemble", help="ensemble card from runs sharing validation cells")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--out", default="resources/models")
    p.add_argument("--version", default="1.0.0", help="ensemble version written into its card")
    p.add_argument("--recommended", action="store_true", help="mark the ensemble card as the app's default choice")
    p.set_defaults(func=cmd_ensemble)
    _finish(sub)
    return ap


#: Every command's examples (two each), shown at the end of its --help with the exit statuses.
EXAMPLES = {
    "prepare": (
        "leukoscan-train prepare",
        "leukoscan-train prepare --data /data/C-NMC_Leukemia --size 192 --workers 4",
    ),
    "e2e": (
        "leukoscan-train e2e --run runs/inceptionv3_e2e --epochs 8 --size 192 --window 288 --resume",
        "leukoscan-train e2e --arch vgg19 --run runs/vgg19_e2e --unfreeze-from block3_conv1",
    ),
    "frozen": (
        "leukoscan-train frozen --run runs/vgg19_frozen --tta-views 0 --aug-views 1",
        "leukoscan-train frozen --cut block4_conv1 --layers block3_conv4,block4_conv1",
    ),
    "cv": ("leukoscan-train cv", "leukoscan-train cv --recipe 'vgg19 b3 gap+std cls' --fold 0"),
    "probe-fit": (
        "leukoscan-train probe-fit --recipe 'vgg19 b3 gap+std cls' --run runs/vgg19_probe",
        "leukoscan-train probe-fit --recipe 'inception m2 masked cls' --run runs/inceptionv3_probe --cv /tmp/cv",
    ),
    "evaluate": (
        "leukoscan-train evaluate --run runs/inceptionv3_e2e",
        "leukoscan-train evaluate --run runs/vgg19_frozen",
    ),
    "export": (
        "leukoscan-train export --run runs/inceptionv3_e2e --name inceptionv3 --version 3.0.0",
        "leukoscan-train export --run runs/vgg19_frozen --out /tmp/models --version 2.0.0",
    ),
    "quantize": (
        "leukoscan-train quantize --run runs/vgg19_frozen --calibration minmax,percentile,entropy",
        "leukoscan-train quantize --run runs/x --out /tmp/m --gate-cells 500 --keep-float first,head",
    ),
    "ensemble": (
        "leukoscan-train ensemble --runs runs/inceptionv3_e2e runs/vgg19_frozen --out /tmp/models",
        "leukoscan-train ensemble --runs runs/a runs/b --version 2.0.0",
    ),
}
EXIT_STATUSES = (
    "  0    done",
    "  1    the command failed (the traceback, and in a run folder RUN/train.log, say where)",
    "  2    usage error, a data problem or a missing file (one line on stderr)",
    "  130  Ctrl-C (train.log records where it stopped; --resume continues where the command has it)",
)
#: Help of the options declared without one (by dest), so that every option says what it is.
OPTION_HELP = {
    "seed": "random seed of the folds, the initialisation and the augmentation (default 0)",
    "crop": "fraction of the image kept around its centre before resizing (default: the recipe's)",
    "arch": "the network to train",
    "size": "model input size in pixels (default: the recipe's)",
    "epochs": "training epochs (default: the recipe's)",
    "lr": "peak learning rate (default: the recipe's)",
    "batch": "cells per training batch",
    "run": "the run folder (metrics.json, checkpoints, train.log)",
    "out": "the folder the ONNX model and its card are written to",
    "name": "the model's name in the card and its file names (default: the run's architecture)",
    "runs": "the run folders of the members (they must share their validation cells)",
}


def _finish(sub) -> None:
    """What every command's --help shows: what it does, every option's help, exit statuses and two examples; and
    defaults that do not depend on the working directory (paths from the repository root, the per-user cache)."""
    from engine.paths import user_cache_dir

    for name, parser in sub.choices.items():
        what = next((a.help for a in sub._choices_actions if a.dest == name), "") or ""
        parser.description = what[:1].upper() + what[1:] + "."
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        examples = "\n".join(f"  {e}" for e in EXAMPLES[name])
        parser.epilog = "exit status:\n" + "\n".join(EXIT_STATUSES) + "\n\nexamples:\n" + examples
        for action in parser._actions:
            if action.option_strings and action.help is None:
                action.help = OPTION_HELP.get(action.dest)
            if action.dest == "cache":
                action.default = str(user_cache_dir() / "training")
                action.help = "cache folder: manifests, pixel and feature caches (default: %(default)s)"
            elif action.dest in ("data", "weights", "vgg_weights", "inception_weights", "out") and isinstance(
                action.default, str
            ):
                if action.default.startswith((".", "resources", "docs")):  # relative: from the repository root
                    action.default = str((REPO_ROOT / action.default).resolve())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # an unknown option is the command's error: its usage, not leukoscan-train's, is printed
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.cmd].error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "cache", None):  # a relative --cache is the working directory's, never the source tree's
        args.cache = str(Path(args.cache).expanduser().absolute())
    from . import runlog
    from .data import DataError

    runlog.setup(_run_dir(args), argv)
    file_only = {"extra": {"file_only": True}}  # the console already shows these (stderr, or the traceback)
    logger = logging.getLogger(runlog.LOGGER)
    try:
        return args.func(args)
    except DataError as exc:
        logger.error("data problem: %s", exc, **file_only)
        print(f"leukoscan-train: data problem: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        logger.error("%s", exc, **file_only)
        print(f"leukoscan-train: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a refused option (its message is on the console)
        if exc.code not in (0, None):
            logger.error("%s", exc.code, **file_only)
        raise
    except BaseException as exc:  # a crash or Ctrl-C overnight: its traceback is in train.log too
        logger.error("stopped: %s", type(exc).__name__, exc_info=True, **file_only)
        raise
