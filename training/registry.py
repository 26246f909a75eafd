"""Every ``leukoscan-train`` command in one table: its name, what it does, the shared option groups it takes
(training/options.py), its own options, the plan that reads them (training/recipes.py, training/tools.py) and two
examples.  ``leukoscan-train --help`` lists exactly these; a recipe that is no longer run leaves the table (the
ones that did are in git history, docs/models.md says where)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from . import options as o
from . import recipes, tools
from .options import Group, Option, opt

#: training.probe.BACKBONES' keys (that module imports Keras; --help does not): a test keeps them equal
BACKBONE_KEYS = ("vgg19", "inceptionv3", "vgg19lo", "vgg19lo128", "vgg19lo112")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    groups: tuple[Group, ...]
    options: tuple[Option, ...]
    plan: Callable[[argparse.Namespace], recipes.Job]
    examples: tuple[str, str]

    @property
    def dests(self) -> set[str]:
        """Every option the command declares (its groups' and its own)."""
        return {d for g in self.groups for d in g.dests} | {x.dest for x in self.options}


_CV = "docs/runs/4.0/cv"

COMMANDS: tuple[Command, ...] = (
    Command(
        "prepare",
        "discover, deduplicate, check the subject-wise splits, measure cell extents, optionally build a pixel cache",
        (o.DATA, o.SPLIT, o.SEED),
        (
            opt("--size", type=int, default=None, help="also cache preprocessed pixels at this input size"),
            opt("--crop", type=float, default=None, help="with --size: fraction of the image kept (default 0.85)"),
        ),
        tools.plan_prepare,
        ("leukoscan-train prepare", "leukoscan-train prepare --data /data/C-NMC_Leukemia --size 192 --workers 4"),
    ),
    Command(
        "cv",
        "donor-level cross-validation of every recipe on frozen ImageNet features over all subjects (the 4.0 "
        "comparison table); --recipe NAME --fold K runs one recipe on one fold",
        (o.DATA, o.FOLD_FILE, o.BACKBONE_WEIGHTS),
        (
            opt("--out", default=str(o.REPO_ROOT / _CV), help="where the table, results.json and oof/ are written"),
            opt("--recipe", default=None, help="run only this recipe (a name of the table) on --fold"),
            opt(
                "--only",
                nargs="*",
                default=None,
                metavar="NAME",
                help="cross-validate only these recipes and read the others back from --out/oof (no names: just "
                "rebuild the table from --out/oof)",
            ),
            opt("--fold", type=int, default=None, help="with --recipe: the held-out fold (0-4, default 0)"),
            opt(
                "--arch",
                nargs="+",
                choices=BACKBONE_KEYS,
                help="only these backbones' features",
            ),
            opt("--extract-only", action="store_true", help="cache the features and stop"),
            opt("--new-folds", action="store_true", help="remake --folds-file from the data before scoring"),
        ),
        recipes.plan_cv,
        ("leukoscan-train cv", "leukoscan-train cv --recipe 'vgg19 b2 gap+std cls' --fold 0"),
    ),
    Command(
        "probe-fit",
        "refit one recipe of the cv table on every subject as a run folder (then: export --run)",
        (o.DATA, o.FOLD_FILE, o.BACKBONE_WEIGHTS, o.RUN),
        (
            opt("--recipe", required=True, help="a recipe name of the cv table (docs/runs/4.0/cv/table.md)"),
            opt("--cv", default=str(o.REPO_ROOT / _CV), help="the cv output folder (its oof/ gives calibration)"),
        ),
        recipes.plan_probe_fit,
        (
            "leukoscan-train probe-fit --recipe 'vgg19 b2 gap+std cls' --run runs/vgg19_40",
            "leukoscan-train probe-fit --recipe 'inception m5+m7 masked donor +stain' --run runs/inceptionv3_40",
        ),
    ),
    Command(
        "e2e",
        "InceptionV3 or VGG19 fine-tuned end to end on a centroid window, validated on held-out donors; any Keras "
        "backend (3.0 recipe)",
        (o.DATA, o.SEED, o.WEIGHTS, o.RUN),
        (
            opt("--arch", choices=("inceptionv3", "vgg19"), default="inceptionv3", help="the network to train"),
            opt("--size", type=int, default=192, help="model input size in pixels (default 192)"),
            opt("--window", type=int, default=288, help="native pixels of the window centred on the cell"),
            opt(
                "--unfreeze-from",
                default="all",
                help="'all' (every layer, stem included) or the first trained layer (VGG19: e.g. block3_conv1)",
            ),
            opt("--epochs", type=int, default=8, help="training epochs (default 8)"),
            opt("--batch", type=int, default=16, help="cells per training batch (default 16)"),
            opt("--lr", type=float, default=6e-5, help="backbone peak learning rate (the head's is 10x)"),
            opt(
                "--holdout",
                default=None,
                help="comma-separated held-out subjects (default: the hard panel H6,H7,H11,H12 + five ALL)",
            ),
            opt("--tta-views", default="0,5,2", help="views averaged at validation and in the app"),
            opt("--all-subjects", action="store_true", help="train on every subject (no held-out donors)"),
            opt("--resume", action="store_true", help="continue from the run folder's (or the portable) checkpoint"),
            opt(
                "--portable-checkpoint",
                default=None,
                help="also write a weights-only float16 checkpoint here after every epoch (commit it to resume "
                "on another machine; delete it when the model ships)",
            ),
        ),
        recipes.plan_e2e,
        (
            "leukoscan-train e2e --run runs/inceptionv3_e2e --epochs 8 --size 192 --window 288 --resume",
            "leukoscan-train e2e --arch vgg19 --run runs/vgg19_e2e --unfreeze-from block3_conv1",
        ),
    ),
    Command(
        "frozen",
        "VGG19 (ImageNet) cut at a mid-level layer, frozen, + logistic head, by subject-wise CV (2.0 recipe)",
        (o.DATA, o.SPLIT, o.SEED, o.WEIGHTS, o.RUN),
        (
            opt("--size", type=int, default=160, help="model input size in pixels (default 160)"),
            opt("--crop", type=float, default=0.85, help="fraction of the image kept around its centre"),
            opt("--layers", default="block3_conv4,block4_conv1", help="pooled layers compared by CV"),
            opt("--cut", default="block3_conv4", help="the layer the shipped model is cut at"),
            opt("--tta-views", default="0,5", help="dihedral views averaged at validation and in the app"),
            opt("--aug-views", type=int, default=1, help="augmented views per cell added to the head's training"),
        ),
        recipes.plan_frozen,
        (
            "leukoscan-train frozen --run runs/vgg19_frozen --tta-views 0 --aug-views 1",
            "leukoscan-train frozen --run runs/vgg19_b4 --cut block4_conv1 --layers block3_conv4,block4_conv1",
        ),
    ),
    Command(
        "evaluate",
        "metrics.json-style evaluation + plots from a run's validation predictions",
        (o.RUN,),
        (),
        tools.plan_evaluate,
        ("leukoscan-train evaluate --run runs/inceptionv3_e2e", "leukoscan-train evaluate --run runs/vgg19_frozen"),
    ),
    Command(
        "export",
        "ONNX + model card from a finished run (parity-checked)",
        (o.RUN, o.MODEL_DIR, o.MODEL_NAME, o.RELEASE),
        (
            opt(
                "--model-from",
                default=None,
                help="ship this run folder's final.keras (e.g. an e2e --all-subjects refit) with --run's held-out "
                "calibration and metrics",
            ),
        ),
        tools.plan_export,
        (
            "leukoscan-train export --run runs/vgg19_40 --name vgg19 --version 4.0.0 --recommended",
            "leukoscan-train export --run runs/vgg19_frozen --out /tmp/models --version 2.0.0",
        ),
    ),
    Command(
        "quantize",
        "int8 QDQ copy of a shipped model, written beside it (<name>.int8.onnx) only when it passes the gate on the "
        "run's out-of-fold cells (docs/speed.md); the card records the gate either way; exit 1 when it fails",
        (o.RUN, o.MODEL_DIR, o.MODEL_NAME),
        (
            opt("--gate-cells", type=int, default=2000, help="out-of-fold cells the gate compares, over every donor"),
            opt(
                "--calibration-cells",
                type=int,
                default=256,
                help="other out-of-fold cells that set the activation ranges",
            ),
            opt(
                "--calibration",
                default="percentile",
                help="calibration method(s), comma-separated, each tried and measured: minmax, percentile, entropy "
                "(default percentile); the one whose calls agree best is kept",
            ),
            opt(
                "--keep-float",
                default="",
                help="nodes left in float, comma-separated: 'first' (the first Conv/MatMul), 'last' (the last Conv, "
                "whose output is pooled into the features), 'head' (the one computing the logit) or node names (as "
                "named after onnxruntime's pre-processing)",
            ),
            opt(
                "--op-types",
                default="Conv",
                help="only these op types quantised, comma-separated (default Conv: on VGG19 2.0 it kept more calls "
                "than every op onnxruntime quantises, docs/speed.md); 'all': onnxruntime's choice",
            ),
            opt(
                "--no-bias-correction",
                action="store_true",
                help="do not shift the int8 logit by its mean difference from float32 on the calibration cells",
            ),
            opt("--time-cells", type=int, default=64, help="cells timed at float32 and int8, one view (0: no timing)"),
        ),
        tools.plan_quantize,
        (
            "leukoscan-train quantize --run runs/vgg19_40 --name vgg19 --calibration minmax,percentile,entropy",
            "leukoscan-train quantize --run runs/x --out /tmp/m --gate-cells 500 --keep-float first,head",
        ),
    ),
    Command(
        "ensemble",
        "ensemble card from runs sharing validation cells",
        (o.MODEL_DIR, o.RELEASE),
        (opt("--runs", nargs="+", required=True, help="the members' run folders (they must share their cells)"),),
        tools.plan_ensemble,
        (
            "leukoscan-train ensemble --runs runs/inceptionv3_e2e runs/vgg19_frozen --out /tmp/models",
            "leukoscan-train ensemble --runs runs/a runs/b --version 2.0.0",
        ),
    ),
)

BY_NAME = {c.name: c for c in COMMANDS}
