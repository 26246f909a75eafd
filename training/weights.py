"""Where a run's initial weights come from (no TensorFlow import: any Keras backend)."""

from __future__ import annotations

from pathlib import Path

#: Offline ImageNet copies (../shared/weights/README.md); Keras' own "imagenet" download needs the internet.
OFFLINE_IMAGENET = {
    "inceptionv3": "../shared/weights/inception_v3_imagenet_notop.fp16.weights.h5",
    "vgg19": "../shared/weights/vgg19_imagenet_normalised_notop.fp16.weights.h5",
}


def default_weights(arch: str) -> str:
    return OFFLINE_IMAGENET[arch]


def resolve_weights(weights: str | None, repo_root: Path | None = None) -> str | None:
    """``imagenet`` (Keras download), ``none``/None (random init), or a path to a weights file."""
    if weights is None or str(weights).lower() in ("none", "random", "scratch"):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    p = Path(weights)
    if not p.is_absolute() and repo_root is not None and not p.exists():
        p = repo_root / p
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    return str(p)
