"""Keras layers written in ``keras.ops`` only, so that training runs on the TensorFlow, JAX or PyTorch backend.

``Normalize`` is the first layer of every exported model; ``CellAugment`` is the training-time augmentation of
the end-to-end recipe (``training/e2e.py``): identity at inference, never part of an exported model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
from keras import ops

# VGG19 ImageNet BGR channel means (caffe-style preprocessing used by keras.applications.vgg19).
VGG_MEAN_BGR = (103.939, 116.779, 123.68)

#: foreground = any channel above this (0-255); the C-NMC background is black (engine.preprocess.FOREGROUND_LEVEL).
FG_LEVEL = 10.0


@keras.saving.register_keras_serializable(package="leukoscan")
class Normalize(keras.layers.Layer):
    """0-255 RGB -> the backbone's input scale.  ``mode``: 'inception' ((x/127.5)-1) or 'vgg' (BGR - mean)."""

    def __init__(self, mode: str = "inception", **kw):
        super().__init__(**kw)
        if mode not in ("inception", "vgg"):
            raise ValueError(mode)
        self.mode = mode

    def call(self, x):
        if self.mode == "inception":
            return x / 127.5 - 1.0
        x = ops.flip(x, axis=-1)  # RGB -> BGR
        return x - ops.convert_to_tensor(VGG_MEAN_BGR, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@dataclass(frozen=True)
class CellAugmentation:
    """Per cell and step.  Geometry: any rotation, a mirror, a zoom and a shift; size: with probability
    ``size_equalise`` the zoom maps the cell's area to one drawn from the same range for every cell (so the
    apparent size no longer tells the classes apart), otherwise a log-uniform zoom in [1/(1+scale), 1+scale].
    Colour (cell pixels only, the black background stays black): brightness, contrast, saturation, hue; then a
    slight blur with probability ``blur`` and low Gaussian noise."""

    rotation: bool = True
    flip: float = 0.5
    scale: float = 0.30
    size_equalise: float = 0.75
    target_area: tuple[float, float] = (
        0.22,
        0.55,
    )  # share of the input square covered by the cell (288-px window: the development cells cover 0.25-0.55)
    translate: float = 0.05
    brightness: float = 0.10
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 10.0
    blur: float = 0.2
    noise: float = 3.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_area"] = list(self.target_area)
        return d


NO_AUGMENTATION = CellAugmentation(
    rotation=False,
    flip=0.0,
    scale=0.0,
    size_equalise=0.0,
    translate=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue=0.0,
    blur=0.0,
    noise=0.0,
)

#: The 2.0 recipes' augmentation (``frozen``; the 2.0 InceptionV3 fine-tune, now in git history, had it too): no
#: size equalisation, zoom +-15 %.
RECIPE_2_AUGMENTATION = CellAugmentation(scale=0.15, size_equalise=0.0)

_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _inv3(m):
    import numpy as np

    return np.linalg.inv(np.asarray(m, dtype="float64")).tolist()


_RGB = _inv3(_YIQ)


@keras.saving.register_keras_serializable(package="leukoscan")
class CellAugment(keras.layers.Layer):
    """A new random view of each cell of a float 0-255 NHWC batch when ``training``; identity otherwise."""

    def __init__(self, augmentation: CellAugmentation | dict | None = None, seed: int = 0, **kw):
        super().__init__(**kw)
        if isinstance(augmentation, dict):
            a = dict(augmentation)
            a["target_area"] = tuple(a.get("target_area", (0.22, 0.55)))
            augmentation = CellAugmentation(**a)
        self.aug = augmentation or CellAugmentation()
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def get_config(self):
        return {**super().get_config(), "augmentation": self.aug.to_dict(), "seed": self.seed}

    def call(self, x, training=None):
        if not training:
            return x
        return self.augment(x)

    def augment(self, x, seed: int | None = None):
        """A new random view of each cell of ``x``.  ``seed``: draw from a fresh stream of that seed (eager calls
        only), so the same seed gives the same views: a cache of augmented features is reproducible and
        resumable; without it, the layer's own stream (training steps)."""
        return self._augment(x, self.seed_generator if seed is None else keras.random.SeedGenerator(int(seed)))

    def _augment(self, x, gen):
        """Geometry, then colour, blur and noise on the cell only; the parameters are drawn from ``gen`` in that
        order (the same order as ever: a seeded feature cache stays valid)."""
        a = self.aug

        def u(n, lo, hi):  # per-cell parameters from the call's stream
            return keras.random.uniform((n,), minval=lo, maxval=hi, seed=gen)

        x = ops.cast(x, "float32")
        x = self._geometry(x, u)
        fg = ops.cast(ops.max(x, axis=3, keepdims=True) > FG_LEVEL, "float32")
        if a.brightness or a.contrast or a.saturation or a.hue:
            x = self._colour(x, fg, u)
        if a.blur:
            x = self._blur(x, u)
        if a.noise:
            std = ops.reshape(u(ops.shape(x)[0], 0.0, a.noise), (-1, 1, 1, 1))
            x = x + std * keras.random.normal(ops.shape(x), seed=gen)
        return ops.clip(x, 0.0, 255.0) * fg

    def _geometry(self, x, u):
        """One affine warp per cell about the image centre: rotation, zoom (or size equalisation), mirror, shift."""
        a = self.aug
        n, h, w = ops.shape(x)[0], x.shape[1], x.shape[2]
        fg = ops.cast(ops.max(x, axis=3, keepdims=True) > FG_LEVEL, "float32")
        theta = u(n, 0.0, 2 * math.pi) if a.rotation else ops.zeros((n,))
        s = ops.exp(u(n, -math.log1p(a.scale), math.log1p(a.scale))) if a.scale else ops.ones((n,))
        if a.size_equalise:
            area = ops.maximum(ops.mean(fg, axis=(1, 2, 3)), 1e-3)
            lo, hi = a.target_area
            target = ops.exp(u(n, math.log(lo), math.log(hi)))
            equal = ops.sqrt(target / area)
            s = ops.where(u(n, 0.0, 1.0) < a.size_equalise, equal, s)
        s = ops.clip(s, 0.4, 2.5)
        mirror = ops.where(u(n, 0.0, 1.0) < a.flip, -1.0, 1.0)
        tx = u(n, -a.translate, a.translate) * w
        ty = u(n, -a.translate, a.translate) * h
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        # output pixel p' samples the input at c + M (p' - c - t), M = mirror * R(theta) / s
        c, si = ops.cos(theta) / s, ops.sin(theta) / s
        a0, a1 = c * mirror, -si
        b0, b1 = si * mirror, c
        ox, oy = -cx - tx, -cy - ty
        a2 = cx + a0 * ox + a1 * oy
        b2 = cy + b0 * ox + b1 * oy
        z = ops.zeros((n,))
        return ops.image.affine_transform(
            x,
            ops.stack([a0, a1, a2, b0, b1, b2, z, z], axis=1),
            interpolation="bilinear",
            fill_mode="constant",
            fill_value=0,
        )

    def _colour(self, x, fg, u):
        """Contrast about the cell's mean colour, brightness, then saturation and hue (a rotation in YIQ)."""
        a = self.aug
        n = ops.shape(x)[0]
        cnt = ops.maximum(ops.sum(fg, axis=(1, 2, 3), keepdims=True), 1.0)
        mean = ops.sum(x * fg, axis=(1, 2), keepdims=True) / cnt
        k = ops.reshape(u(n, 1 - a.contrast, 1 + a.contrast), (-1, 1, 1, 1))
        b = ops.reshape(u(n, -a.brightness, a.brightness) * 255.0, (-1, 1, 1, 1))
        x = (x - mean) * k + mean + b
        sat = u(n, 1 - a.saturation, 1 + a.saturation)
        hue = u(n, -a.hue, a.hue) * (math.pi / 180)
        ch, sh = ops.cos(hue) * sat, ops.sin(hue) * sat
        one, zero = ops.ones((n,)), ops.zeros((n,))
        rot = ops.reshape(ops.stack([one, zero, zero, zero, ch, -sh, zero, sh, ch], axis=1), (-1, 3, 3))
        yiq = ops.convert_to_tensor(_YIQ, "float32")
        rgb = ops.convert_to_tensor(_RGB, "float32")
        m = ops.einsum("ij,njk,kl->nil", rgb, rot, yiq)
        return ops.einsum("nhwc,ndc->nhwd", x, m)

    def _blur(self, x, u):
        """A 3x3 Gaussian (sigma 0.5-1) on a share ``blur`` of the cells."""
        n, h, w = ops.shape(x)[0], x.shape[1], x.shape[2]
        sigma = u(n, 0.5, 1.0)
        t = ops.convert_to_tensor([-1.0, 0.0, 1.0])
        g = ops.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        g = g / ops.sum(g, axis=1, keepdims=True)
        pad = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
        hs = sum(g[:, i, None, None, None] * pad[:, :, i : i + w, :] for i in range(3))
        out = sum(g[:, i, None, None, None] * hs[:, i : i + h, :, :] for i in range(3))
        on = ops.reshape(ops.cast(u(n, 0.0, 1.0) < self.aug.blur, "float32"), (-1, 1, 1, 1))
        return x + on * (out - x)

    def compute_output_shape(self, input_shape):
        return input_shape
