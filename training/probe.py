"""Frozen ImageNet features for the donor-level cross-validation (issue 25): one network pass per cell and view,
several layers at once, each pooled four ways.

Why pooled four ways: the C-NMC frame is a cell on black.  A plain global average over the frame is
``area * mean(cell) + (1 - area) * mean(background)``, so it carries the cell's size, the cue that made every
earlier model call large healthy cells leukemic.  ``mmean``/``mstd`` pool over the cell only (the foreground mask,
brought to the feature map's grid), which removes the area term; ``gap``/``gstd`` are the plain pools, kept so that
the cross-validation shows what the mask changes.

The trunk (:func:`pooled_trunk`) is the exported model's front end too (training/probe_recipe.py adds the linear
head), so the features the head is fitted on are the ones the app computes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import save_npz
from .layers import FG_LEVEL, Normalize
from .models import keras, tf
from .progress import Progress

#: Pools computed for each layer; a recipe picks some of them.
POOLS = ("gap", "gstd", "mmean", "mstd")


@dataclass(frozen=True)
class Backbone:
    arch: str  # "vgg19" | "inceptionv3"
    size: int  # input side (pixels), centre crop ``crop`` of the frame
    crop: float
    layers: tuple[str, ...]


BACKBONES = {
    "vgg19": Backbone("vgg19", 160, 0.85, ("block3_conv4", "block4_conv2")),
    "inceptionv3": Backbone("inceptionv3", 224, 0.85, ("mixed2", "mixed5", "mixed7")),
    # the lower VGG19 blocks (added once block3 had beaten block4 and every InceptionV3 layer)
    "vgg19lo": Backbone("vgg19", 160, 0.85, ("block2_conv2", "block3_conv4")),
    # the chosen block2 recipe on smaller inputs (issue 29: a smaller input is the speed lever left once int8 failed)
    "vgg19lo128": Backbone("vgg19", 128, 0.85, ("block2_conv2",)),
    "vgg19lo112": Backbone("vgg19", 112, 0.85, ("block2_conv2",)),
}


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of TensorFlow's bilinear resize (half-pixel centres, no antialiasing) along one axis,
    so a resize is two matrix products: tf2onnx writes a TensorFlow resize as an ONNX Resize with rounded scales
    that can land one pixel short (25/28 -> 24)."""
    m = np.zeros((n_out, n_in), np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        x = (i + 0.5) * scale - 0.5
        lo = int(np.floor(x))
        frac = x - lo
        m[i, min(max(lo, 0), n_in - 1)] += 1 - frac
        m[i, min(max(lo + 1, 0), n_in - 1)] += frac
    return m


def resize_bilinear(x, grid: tuple[int, int]):
    """(n, H, W, 1) -> (n, h, w, 1), as ``keras.ops.image.resize(..., interpolation="bilinear")`` on TensorFlow."""
    ops = keras.ops
    mh = ops.convert_to_tensor(bilinear_matrix(int(x.shape[1]), grid[0]))
    mw = ops.convert_to_tensor(bilinear_matrix(int(x.shape[2]), grid[1]).T)
    y = ops.matmul(ops.matmul(mh, x[..., 0]), mw)
    return y[..., None]


@keras.saving.register_keras_serializable(package="leukoscan")
class MaskedPool(keras.layers.Layer):
    """(features (n,h,w,c), mask (n,h,w,1) in [0,1]) -> (n, 4c): global mean, global std, mean and std over the
    mask.  keras.ops only, so the ONNX export sees plain reductions."""

    def call(self, f, m):
        ops = keras.ops
        gap = ops.mean(f, axis=(1, 2))
        # two passes (mean of squared deviations), not E[f^2] - mean^2: the difference of two large float32 numbers
        # moved P(ALL) by 1e-3 between TensorFlow and onnxruntime
        gstd = ops.sqrt(ops.mean(ops.square(f - gap[:, None, None, :]), axis=(1, 2)) + 1e-6)
        w = ops.sum(m, axis=(1, 2)) + 1e-3
        mmean = ops.sum(f * m, axis=(1, 2)) / w
        mvar = ops.sum(m * ops.square(f - mmean[:, None, None, :]), axis=(1, 2)) / w
        return ops.concatenate([gap, gstd, mmean, ops.sqrt(mvar + 1e-6)], axis=-1)

    def compute_output_shape(self, f_shape, m_shape=None):
        return (f_shape[0], 4 * f_shape[-1])


@keras.saving.register_keras_serializable(package="leukoscan")
class CellMask(keras.layers.Layer):
    """0-255 RGB (n,H,W,3) -> soft foreground mask on an (h, w) grid: average-pooled then resized."""

    def __init__(self, grid: tuple[int, int], factor: int = 1, **kw):
        super().__init__(**kw)
        self.grid = tuple(int(g) for g in grid)
        self.factor = int(factor)
        self.pool = keras.layers.AveragePooling2D(self.factor, self.factor) if self.factor > 1 else None

    def call(self, x):
        ops = keras.ops
        fg = ops.cast(ops.max(x, axis=-1, keepdims=True) > FG_LEVEL, "float32")
        if self.pool is not None:
            fg = self.pool(fg)
        if tuple(fg.shape[1:3]) != self.grid:
            fg = resize_bilinear(fg, self.grid)
        return fg

    def get_config(self):
        return {**super().get_config(), "grid": self.grid, "factor": self.factor}


def _base(arch: str, size: int, weights: str | None) -> keras.Model:
    cls = keras.applications.VGG19 if arch == "vgg19" else keras.applications.InceptionV3
    base = cls(weights="imagenet" if weights == "imagenet" else None, include_top=False, input_shape=(size, size, 3))
    if weights and weights != "imagenet":
        base.load_weights(weights)
    return base


def pooled_trunk(
    bb: Backbone, weights: str | None, layers: tuple[str, ...] | None = None, maps: bool = False
) -> keras.Model:
    """0-255 RGB -> Normalize -> the ImageNet network up to the deepest of ``layers`` -> per layer (n, 4c) pools
    in :data:`POOLS` order (``maps``: then also each layer's feature map and cell mask, for :class:`PooledCam`)."""
    layers = tuple(layers or bb.layers)
    base = _base(bb.arch, bb.size, weights)
    inp = keras.Input((bb.size, bb.size, 3), name="image")
    x = Normalize("vgg" if bb.arch == "vgg19" else "inception", name="normalize")(inp)
    sub = keras.Model(base.input, [base.get_layer(n).output for n in layers], name=f"{bb.arch}_trunk")
    outs = sub(x)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    pooled, masks = [], []
    for n, o in zip(layers, outs):
        grid = (int(o.shape[1]), int(o.shape[2]))
        mask = CellMask(grid, max(1, bb.size // grid[0]), name=f"mask_{n}")(inp)
        masks.append(mask)
        pooled.append(MaskedPool(name=f"pool_{n}")(o, mask))
    if maps:
        return keras.Model(inp, [pooled, list(outs), masks], name=f"{bb.arch}_pooled_maps")
    return keras.Model(inp, pooled, name=f"{bb.arch}_pooled")


# ------------------------------------------------------------------ stain augmentation (HED jitter)

# Ruifrok & Johnston's haematoxylin / eosin / DAB stain vectors (the matrix scikit-image's rgb2hed uses).
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)


def hed_jitter(x: np.ndarray, rng: np.random.Generator, sigma: float = 0.05) -> np.ndarray:
    """Tellez et al. (2018) stain augmentation: per image and stain channel, OD_hed * U(1-s, 1+s) + U(-s, s).
    Operates on the cell only: the black background stays black (it is a segmentation, not stain)."""
    x = np.asarray(x, np.float32)
    fg = x.max(axis=-1, keepdims=True) > FG_LEVEL
    od = -np.log(np.clip(x, 1.0, 255.0) / 255.0)  # optical density
    hed = od @ _HED_FROM_RGB
    n = x.shape[0]
    a = rng.uniform(1 - sigma, 1 + sigma, (n, 1, 1, 3)).astype(np.float32)
    b = rng.uniform(-sigma, sigma, (n, 1, 1, 3)).astype(np.float32)
    od2 = np.clip((hed * a + b) @ _RGB_FROM_HED, 0, None)
    y = np.clip(255.0 * np.exp(-od2), 0, 255)
    return np.where(fg, np.round(y), 0.0).astype(np.float32)


def view_pixels(x: np.ndarray, view: str, seed: int, start: int) -> np.ndarray:
    """The pixels of one cached view: ``d0`` identity, ``dK`` dihedral K, ``sN`` HED jitter draw N (with a random
    flip/rotation, which the pooled features hardly see but which keeps the draws apart)."""
    from engine.preprocess import dihedral

    if view.startswith("d"):
        return dihedral(np.asarray(x, np.float32), int(view[1:]))
    rng = np.random.default_rng([seed, int(view[1:]), start])
    y = hed_jitter(x, rng)
    return dihedral(y, int(rng.integers(8)))


def cache_file(cache: Path, bb: Backbone, view: str, px_name: str, weights: str | None) -> Path:
    import hashlib
    import json

    key = json.dumps([px_name, bb.arch, bb.size, bb.crop, list(bb.layers), Path(str(weights)).name, POOLS, view])
    return cache / f"probe_{bb.arch}_{view}_{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"


def extract(px, bb: Backbone, weights, cache: Path, views, log=print, seed: int = 0, batch: int = 32) -> dict:
    """{view: {layer: (n, 4c) float32}}, each view cached and resumable (a ``.partial.npz`` every 8 batches)."""
    cache.mkdir(parents=True, exist_ok=True)
    px_name = Path(str(getattr(px, "filename", "") or "")).name
    out: dict[str, dict[str, np.ndarray]] = {}
    fwd = None
    n = len(px)
    for view in views:
        f = cache_file(cache, bb, view, px_name, weights)
        if f.exists():
            d = np.load(f)
            out[view] = {ln: d[ln] for ln in bb.layers}
            continue
        if fwd is None:
            fwd = tf.function(pooled_trunk(bb, weights), reduce_retracing=True)
        part = f.with_suffix(".partial.npz")
        done = dict(np.load(part)) if part.exists() else {}
        start = int(done.pop("_n", 0))
        feats = {ln: [done[ln][:start]] if start else [] for ln in bb.layers}
        t0 = time.time()
        bar = Progress(n, f"{bb.arch} features, view {view}", start=start, unit="cells")
        for i in range(start, n, batch):
            x = view_pixels(np.asarray(px[i : i + batch]), view, seed, i)
            ys = fwd(tf.constant(x))
            ys = ys if isinstance(ys, (list, tuple)) else [ys]
            for ln, v in zip(bb.layers, ys):
                feats[ln].append(np.asarray(v, np.float32))
            bar.update(len(x))
            if (i // batch) % 8 == 7 or i + batch >= n:
                save_npz(part, _n=np.int64(min(i + batch, n)), **{ln: np.concatenate(feats[ln]) for ln in bb.layers})
        bar.close()
        save_npz(f, **{ln: np.concatenate(feats[ln]) for ln in bb.layers})
        part.unlink(missing_ok=True)
        log(f"{bb.arch} view {view}: {n - start} cells in {time.time() - t0:.0f} s")
        out[view] = {ln: np.concatenate(feats[ln]) for ln in bb.layers}
    return out


def pool_slice(features: np.ndarray, pools) -> np.ndarray:
    """Columns of the named pools from a (n, 4c) block laid out in :data:`POOLS` order."""
    c = features.shape[1] // len(POOLS)
    return np.concatenate([features[:, POOLS.index(p) * c : (POOLS.index(p) + 1) * c] for p in pools], axis=1)


@keras.saving.register_keras_serializable(package="leukoscan")
class PooledCam(keras.layers.Layer):
    """The class-activation map of a linear head over :class:`MaskedPool` features: each position's exact share of
    the logit.  Means and the two standard deviations decompose over positions (a std is the sum of
    ``(f - mean)^2 / (N std)``), so the map, times the grid size, plus the bias, averages to the logit as the
    engine's ``cam`` output requires (engine/cam.py).  Coarser layers are resized onto the first (finest) layer's
    grid.  ``w``/``b`` are the head's weights over every pool (training/probe_ship.full_weights)."""

    def __init__(self, channels: tuple[int, ...], **kw):
        super().__init__(**kw)
        self.channels = tuple(int(c) for c in channels)

    def build(self, *shapes):
        self.w = self.add_weight(shape=(4 * sum(self.channels),), initializer="zeros", trainable=False, name="w")
        self.b = self.add_weight(shape=(), initializer="zeros", trainable=False, name="b")

    def call(self, feats, masks):
        ops = keras.ops
        grid = None
        total = None
        off = 0
        for f, m, c in zip(feats, masks, self.channels):
            wg, ws, wm, wd = (self.w[off + j * c : off + (j + 1) * c] for j in range(4))
            off += 4 * c
            n = float(f.shape[1] * f.shape[2])
            mu = ops.mean(f, axis=(1, 2), keepdims=True)
            sd = ops.sqrt(ops.mean(ops.square(f - mu), axis=(1, 2), keepdims=True) + 1e-6)
            wsum = ops.sum(m, axis=(1, 2), keepdims=True) + 1e-3
            mm = ops.sum(f * m, axis=(1, 2), keepdims=True) / wsum
            msd = ops.sqrt(ops.sum(m * ops.square(f - mm), axis=(1, 2), keepdims=True) / wsum + 1e-6)
            part = (
                f * wg / n
                + ops.square(f - mu) * ws / (n * sd)
                + m * f * wm / wsum
                + m * ops.square(f - mm) * wd / (wsum * msd)
            )
            part = ops.sum(part, axis=-1, keepdims=True)  # (n, h, w, 1)
            if grid is None:
                grid = (int(f.shape[1]), int(f.shape[2]))
            elif (int(f.shape[1]), int(f.shape[2])) != grid:
                part = resize_bilinear(part, grid) * (n / (grid[0] * grid[1]))
            total = part if total is None else total + part
        return total[..., 0] * float(grid[0] * grid[1]) + self.b

    def compute_output_shape(self, feats_shape, masks_shape=None):
        return (feats_shape[0][0], feats_shape[0][1], feats_shape[0][2])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="leukoscan")
class SizeTerm(keras.layers.Layer):
    """0-255 RGB (n,H,W,3) -> (n, 1): ``weight * log(share of the input covered by the cell)``, the term a
    size-adjusted head (training/probe_cv.size_slopes) adds to its logit.  The share is computed exactly as
    ``training.metrics.cell_area`` computes it on the pixel cache."""

    def __init__(self, weight: float = 0.0, **kw):
        super().__init__(**kw)
        self.weight = float(weight)

    def call(self, x):
        ops = keras.ops
        fg = ops.cast(ops.max(x, axis=-1) > FG_LEVEL, "float32")
        area = ops.mean(fg, axis=(1, 2))
        return (self.weight * ops.log(ops.maximum(area, 1e-4)))[:, None]

    def compute_output_shape(self, x_shape):
        return (x_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}
