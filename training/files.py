"""Every file ``leukoscan-train`` writes goes through :mod:`engine.fileio`'s atomic writers.

A run is interrupted often (hours on a CPU, ``--resume`` by design): a checkpoint, card or metrics file must be
either the old one or the new one, never half of each.  The writers here are the only ones training code uses;
they write a temp file beside the target, fsync it and rename it over the target.  Run outputs are made with
the umask's permissions (they are shared and committed), not ``mkstemp``'s owner-only mode.

Not covered, on purpose: the pixel and feature caches filled in place through ``np.lib.format.open_memmap``
(resumable, gigabytes); they count as written only once their ``.done`` marker, written here, exists.  And
``RUN/train.log`` (:mod:`training.runlog`), which is appended to as the run goes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine import fileio


def _parent(path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def saving(path: str | Path) -> Iterator[Path]:
    """A temp name (same suffixes) for writers that want a name (``model.save``, ``save_weights``, h5py, onnx);
    renamed over ``path`` when the block succeeds."""
    with fileio.atomic_path(_parent(path), public=True) as tmp:
        yield tmp


def write_json(path: str | Path, data) -> Path:
    """JSON with two-space indents; numpy scalars and other numbers become floats."""
    return fileio.write_json(_parent(path), data, public=True, default=float)


def write_text(path: str | Path, text: str) -> Path:
    return fileio.write_text(_parent(path), text, public=True)


def save_npz(path: str | Path, *arrays, **named) -> Path:
    """``np.savez`` to exactly ``path`` (numpy adds no second ``.npz`` to a handle)."""
    with fileio.atomic_open(_parent(path), mode="wb", public=True) as fh:
        np.savez(fh, *arrays, **named)
    return Path(path)


def save_held_out(run_dir: str | Path, m, idx, logits, labels, folds, **more) -> Path:
    """``RUN/oof.npz``, the held-out predictions ``leukoscan-train export`` reads: per cell of the manifest ``m`` at
    ``idx``, its logit, label, fold (or subject-disjoint half), subject, path and ``val_idx``; ``more``: extra arrays."""
    idx = np.asarray(idx)
    return save_npz(
        Path(run_dir) / "oof.npz",
        logits=logits,
        labels=labels,
        folds=folds,
        subjects=np.asarray([m.subjects[i] for i in idx]),
        paths=np.asarray([m.paths[i] for i in idx]),
        val_idx=idx,
        **more,
    )


def save_npy(path: str | Path, array) -> Path:
    with fileio.atomic_open(_parent(path), mode="wb", public=True) as fh:
        np.save(fh, array)
    return Path(path)


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    """A matplotlib figure, the format taken from ``path``'s suffix (as ``savefig(path)`` would)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with fileio.atomic_open(_parent(path), mode="wb", public=True) as fh:
        fig.savefig(fh, format=fmt, **kwargs)
    return Path(path)


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """``shutil.copy2`` that never leaves a half-copied model or plot at ``dst``."""
    with open(src, "rb") as inp, fileio.atomic_open(_parent(dst), mode="wb", public=True) as out:
        shutil.copyfileobj(inp, out, 1 << 20)
    shutil.copystat(src, dst)
    return Path(dst)


def publish(tmp: str | Path, dst: str | Path) -> Path:
    """Give a file written in place under a temporary name (a memory-mapped cache) its real name in one step."""
    import os

    os.replace(tmp, dst)
    return Path(dst)
