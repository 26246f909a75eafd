"""The option groups ``leukoscan-train`` commands share, each declared once with the one function that reads it.

A command names the groups it takes in the registry (training/registry.py); its plan reads each group through
the group's reader, so an option is declared in one place and read in one place.  Defaults do not depend on the
working directory: data and weights are found beside the repository (``../shared``), outputs default to the
repository's folders, the cache to the per-user cache folder (``LEUKOSCAN_CACHE_DIR`` moves it).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"  # the data and the offline ImageNet weights, beside the repository
DEFAULT_DATA = str(SHARED / "data" / "C-NMC_Leukemia")
DEFAULT_MODELS = str(REPO_ROOT / "resources" / "models")


class UsageError(ValueError):
    """An option value or combination a command refuses: ``main`` prints it with the command's usage (exit 2)."""


def log(msg: str) -> None:
    """To the console and, once ``main`` has named the run folder, to ``RUN/train.log`` (training.runlog)."""
    from . import runlog

    logger = logging.getLogger(runlog.LOGGER)
    if not logger.handlers:  # called without main() (a script, a test): the console, as before
        runlog.setup(None)
    logger.info(msg)


def repo_path(p: str | Path) -> Path:
    """Relative paths are taken from the current directory, falling back to the repository root."""
    q = Path(p)
    if q.is_absolute() or q.exists():
        return q
    return REPO_ROOT / q


def user_path(p: str | Path) -> Path:
    """A path to write caches to: relative to the working directory, never the source tree (it once wrote 657 MB
    there)."""
    return Path(p).expanduser().absolute()


@dataclass(frozen=True)
class Option:
    """One ``add_argument`` call: the flags and argparse's keyword arguments (``help`` always)."""

    flags: tuple[str, ...]
    kw: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return str(self.kw.get("dest") or self.flags[0].lstrip("-").replace("-", "_"))

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(*self.flags, **self.kw)


def opt(*flags: str, **kw: Any) -> Option:
    if not kw.get("help"):
        raise ValueError(f"{flags[0]} has no help")
    return Option(tuple(flags), kw)


@dataclass(frozen=True)
class Group:
    """Options a command takes together, and the function that reads them into one value."""

    title: str
    options: tuple[Option, ...]
    read: Callable[[argparse.Namespace], Any]

    def add(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(self.title)
        for o in self.options:
            g.add_argument(*o.flags, **o.kw)

    @property
    def dests(self) -> set[str]:
        return {o.dest for o in self.options}


# ------------------------------------------------------------------------------------------------ the data


@dataclass(frozen=True)
class DataSource:
    """Where the cells are, where caches go, and how many decoding processes: what opens the manifest."""

    data: Path
    labels_csv: str | None
    cache: Path
    workers: int
    rescan: bool

    def manifest(self):
        """The cells, deduplicated (cached per data folder and labels CSV; ``rescan`` rebuilds it)."""
        from .data import build_manifest, discover, load_manifest, save_manifest

        key = str(self.data.resolve()) + "|" + str(self.labels_csv or "")
        mpath = self.cache / f"manifest_{hashlib.sha256(key.encode()).hexdigest()[:10]}.json"
        if mpath.exists() and not self.rescan:
            return load_manifest(mpath)
        log(f"discovering cells under {self.data}")
        m = build_manifest(discover(self.data, self.labels_csv), workers=self.workers)
        save_manifest(m, mpath)
        return m


def _default_cache() -> str:
    from engine.paths import user_cache_dir

    return str(user_cache_dir() / "training")


def _read_data(a: argparse.Namespace) -> DataSource:
    return DataSource(repo_path(a.data), a.labels_csv, user_path(a.cache), a.workers, a.rescan)


DATA = Group(
    "data",
    (
        opt("--data", default=DEFAULT_DATA, help="data folder (fold_N/all|hem, all/+hem/, or images + labels CSV)"),
        opt("--labels-csv", default=None, help="labels CSV (Patient_ID,new_names,labels; 1 = ALL)"),
        opt("--cache", default=None, help="cache folder: manifests, pixel and feature caches"),
        opt("--workers", type=int, default=2, help="decoding processes (default 2)"),
        opt("--rescan", action="store_true", help="rebuild the manifest (hashes) even if cached"),
    ),
    _read_data,
)


SPLIT = Group(
    "subject-wise folds",
    (opt("--folds", type=int, default=5, help="subject-wise cross-validation folds, made from --seed (default 5)"),),
    lambda a: a.folds,
)

SEED = Group(
    "randomness",
    (
        opt(
            "--seed",
            type=int,
            default=0,
            help="random seed of the folds, the initialisation and the augmentation, where the command has them "
            "(default 0)",
        ),
    ),
    lambda a: a.seed,
)


def _read_fold_file(a: argparse.Namespace) -> Path:
    return repo_path(a.folds_file)


def _default_fold_file() -> str:
    from .donor_cv import FOLD_FILE

    return str(FOLD_FILE)


FOLD_FILE = Group(
    "donor folds",
    (
        opt(
            "--folds-file",
            default=None,
            help="the donor-level fold file every recipe is scored on (default: the committed "
            "training/folds/donor_cv.json)",
        ),
    ),
    _read_fold_file,
)

# ------------------------------------------------------------------------------------------------ weights


def _read_weights(a: argparse.Namespace) -> str | None:
    return a.weights


WEIGHTS = Group(
    "initial weights",
    (
        opt(
            "--weights",
            default=None,
            help="'imagenet' (Keras download, needs internet), 'none' (random) or a weights file (default: the "
            "offline ImageNet copy of the network in ../shared/weights)",
        ),
    ),
    _read_weights,
)


@dataclass(frozen=True)
class BackboneWeights:
    """The ImageNet weights of both frozen backbones of the 4.0 comparison (files or 'imagenet')."""

    vgg19: str
    inceptionv3: str

    def resolved(self) -> dict[str, str | None]:
        """{backbone key of training.probe.BACKBONES: weights}; missing files raise FileNotFoundError (exit 2)."""
        from .weights import resolve_weights

        vgg = resolve_weights(self.vgg19, REPO_ROOT)
        from .probe import BACKBONES

        inc = resolve_weights(self.inceptionv3, REPO_ROOT)
        return {key: vgg if bb.arch == "vgg19" else inc for key, bb in BACKBONES.items()}


BACKBONE_WEIGHTS = Group(
    "backbone weights",
    (
        opt(
            "--vgg-weights",
            default=str(SHARED / "weights" / "vgg19_imagenet_normalised_notop.fp16.weights.h5"),
            help="VGG19 ImageNet weights: a file, or 'imagenet' (Keras download, needs internet)",
        ),
        opt(
            "--inception-weights",
            default=str(SHARED / "weights" / "inception_v3_imagenet_notop.fp16.weights.h5"),
            help="InceptionV3 ImageNet weights: a file, or 'imagenet' (Keras download, needs internet)",
        ),
    ),
    lambda a: BackboneWeights(a.vgg_weights, a.inception_weights),
)

# ------------------------------------------------------------------------------------------------ run, models

RUN = Group(
    "run folder",
    (opt("--run", required=True, help="the run folder (final.keras, metrics.json, oof.npz, train.log)"),),
    lambda a: repo_path(a.run),
)


MODEL_DIR = Group(
    "model output",
    (opt("--out", default=DEFAULT_MODELS, help="folder the ONNX model and its card go to (default: %(default)s)"),),
    lambda a: repo_path(a.out),
)

MODEL_NAME = Group(
    "model name",
    (opt("--name", default=None, help="the model's name in the card and its file names (default: the network)"),),
    lambda a: a.name,
)


@dataclass(frozen=True)
class Release:
    version: str
    recommended: bool


RELEASE = Group(
    "release",
    (
        opt("--version", default="1.0.0", help="model version written into the card (and every report)"),
        opt("--recommended", action="store_true", help="mark the card as the app's default choice"),
    ),
    lambda a: Release(a.version, a.recommended),
)


def finish_defaults(parser: argparse.ArgumentParser) -> None:
    """Defaults computed when the parser is built (the per-user cache folder and the committed fold file)."""
    for action in parser._actions:
        if action.dest == "cache" and action.default is None:
            action.default = _default_cache()
            action.help = "cache folder: manifests, pixel and feature caches (default: %(default)s)"
        elif action.dest == "folds_file" and action.default is None:
            action.default = _default_fold_file()


def views(text: str) -> tuple[int, ...]:
    """``0,5,2`` -> (0, 5, 2): distinct dihedral views 0-7 starting with the identity."""
    try:
        vs = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise UsageError(f"views must be comma-separated integers 0-7, got {text!r}") from None
    if not vs or vs[0] != 0 or len(set(vs)) != len(vs) or not all(0 <= v <= 7 for v in vs):
        raise UsageError(f"views must be distinct integers 0-7 starting with 0 (the identity), got {text!r}")
    return vs


def words(text: str) -> tuple[str, ...]:
    """``a, b,,c`` -> ("a", "b", "c")."""
    return tuple(w.strip() for w in (text or "").split(",") if w.strip())
