"""Frozen-backbone activation cache: run the frozen lower part of InceptionV3 ONCE per augmentation view and
store the activations (float16) so that fine-tuning the top blocks costs a fraction of a full forward pass."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import write_json, write_text
from .models import dihedral, inception_base, keras, tf
from .progress import Progress


def feature_paths(cache_dir: Path, tag: str, layer: str, view: int) -> tuple[Path, Path]:
    base = Path(cache_dir) / f"feat_{tag}_{layer}_v{view}"
    return base.with_suffix(".npy"), base.with_suffix(".done")


def extract(
    pixels: np.ndarray,
    size: int,
    weights: str | None,
    layers: Sequence[str],
    views: Sequence[int],
    cache_dir: Path,
    tag: str,
    batch: int = 32,
    log=print,
) -> dict[tuple[str, int], np.ndarray]:
    """Activations of ``layers`` for every cell under every dihedral ``view``; resumable per view and chunk."""
    base = inception_base(size, weights)
    sub = keras.Model(base.input, [base.get_layer(n).output for n in layers])

    @tf.function(reduce_retracing=True)
    def fwd(x):
        return sub(x / 127.5 - 1.0, training=False)

    n = len(pixels)
    out: dict[tuple[str, int], np.ndarray] = {}
    for v in views:
        paths = {ln: feature_paths(cache_dir, tag, ln, v) for ln in layers}
        if all(p[1].exists() for p in paths.values()):
            for ln in layers:
                out[(ln, v)] = np.load(paths[ln][0], mmap_mode="r")
            continue
        progress_file = Path(cache_dir) / f"feat_{tag}_v{v}.progress"
        start = int(progress_file.read_text()) if progress_file.exists() else 0
        mm = {}
        for ln, o in zip(layers, sub.outputs):
            shape = (n,) + tuple(int(d) for d in o.shape[1:])
            p = paths[ln][0]
            if start > 0 and p.exists():
                mm[ln] = np.load(p, mmap_mode="r+")
            else:
                start = 0
                mm[ln] = np.lib.format.open_memmap(p, mode="w+", dtype=np.float16, shape=shape)
        t0 = time.time()
        bar = Progress(n, f"features of view {v}", start=start, unit="cells")
        for i in range(start, n, batch):
            x = dihedral(np.asarray(pixels[i : i + batch], dtype=np.float32), v)
            ys = fwd(tf.constant(x))
            if not isinstance(ys, (list, tuple)):
                # a Keras 3 model with ONE output returns the tensor itself, not a list of one: iterating over it
                # would walk the batch and give every cell of the batch the first cell's activations
                ys = [ys]
            for ln, y in zip(layers, ys):
                mm[ln][i : i + len(x)] = y.numpy().astype(np.float16)
            bar.update(len(x))
            if (i // batch) % 20 == 0:
                for a in mm.values():
                    a.flush()
                write_text(progress_file, str(i + len(x)))
        bar.close()
        for ln in layers:
            mm[ln].flush()
            del mm[ln]
            write_json(paths[ln][1], {"n": n, "view": v, "layer": ln})  # the .npy counts as written once this exists
            out[(ln, v)] = np.load(paths[ln][0], mmap_mode="r")
        progress_file.unlink(missing_ok=True)
        log(f"view {v} done in {time.time() - t0:.0f}s")
    return out
