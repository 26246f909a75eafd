"""On-the-fly augmentation for end-to-end fine-tuning: donor and acquisition variation, not only orientation.

Every epoch sees new views of every cell.  All of it runs inside the TensorFlow graph of the training step
(per-sample parameters, one batched projective warp), so on a 2-core machine it costs a few percent of a step
instead of a Python loop per cell.  The black background of C-NMC cells stays black: geometry fills with 0 and
the colour changes apply to the cell's pixels only.

Per cell: arbitrary rotation, a mirror with p = 0.5, scale jitter (zoom in/out), a small translation, brightness,
contrast, saturation and hue jitter, and with small probability a slight Gaussian blur; then low Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Augmentation:
    rotation: bool = True  # uniform angle in [0, 360)
    flip: float = 0.5  # probability of a mirror
    scale: float = 0.15  # zoom factor uniform in [1 - scale, 1 + scale]
    translate: float = 0.05  # shift uniform in +- translate * side
    brightness: float = 0.10  # additive, +- fraction of 255
    contrast: float = 0.15  # multiplicative about the cell's mean, 1 +- contrast
    saturation: float = 0.15  # 1 +- saturation
    hue: float = 10.0  # degrees, rotation of the chroma plane (YIQ)
    blur: float = 0.2  # probability of a 3x3 Gaussian blur (sigma 0.5-1.0)
    noise: float = 3.0  # max std of additive Gaussian noise, 0-255 scale

    def to_dict(self) -> dict:
        return asdict(self)


NONE = Augmentation(
    rotation=False,
    flip=0.0,
    scale=0.0,
    translate=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue=0.0,
    blur=0.0,
    noise=0.0,
)

#: foreground = any channel above this (0-255); the C-NMC background is black.
FG_LEVEL = 10.0


def _uniform(n, lo, hi, seed):
    return tf.random.stateless_uniform([n], seed=seed, minval=lo, maxval=hi)


def _warp(x, aug: Augmentation, seeds):
    """One projective warp per cell: rotation, mirror, zoom and shift about the image centre."""
    n = tf.shape(x)[0]
    h = tf.cast(tf.shape(x)[1], tf.float32)
    w = tf.cast(tf.shape(x)[2], tf.float32)
    theta = _uniform(n, 0.0, 2 * math.pi, seeds[0]) if aug.rotation else tf.zeros([n])
    s = _uniform(n, 1 - aug.scale, 1 + aug.scale, seeds[1])
    mirror = tf.where(_uniform(n, 0.0, 1.0, seeds[2]) < aug.flip, -1.0, 1.0)
    tx = _uniform(n, -aug.translate, aug.translate, seeds[3]) * w
    ty = _uniform(n, -aug.translate, aug.translate, seeds[4]) * h
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # Output pixel (x', y') samples the input at c + M (p' - c - t), M = mirror * R(theta) / s.
    c, si = tf.cos(theta) / s, tf.sin(theta) / s
    a0, a1 = c * mirror, -si
    b0, b1 = si * mirror, c
    ox, oy = -cx - tx, -cy - ty
    a2 = cx + a0 * ox + a1 * oy
    b2 = cy + b0 * ox + b1 * oy
    z = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, z, z], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.shape(x)[1:3],
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
        fill_value=0.0,
    )


_YIQ = tf.constant([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], tf.float32)
_RGB = tf.linalg.inv(_YIQ)


def _colour(x, fg, aug: Augmentation, seeds):
    n = tf.shape(x)[0]
    area = tf.maximum(tf.reduce_sum(fg, axis=[1, 2, 3], keepdims=True), 1.0)
    mean = tf.reduce_sum(x * fg, axis=[1, 2], keepdims=True) / area  # per-channel cell mean
    k = tf.reshape(_uniform(n, 1 - aug.contrast, 1 + aug.contrast, seeds[0]), [-1, 1, 1, 1])
    b = tf.reshape(_uniform(n, -aug.brightness, aug.brightness, seeds[1]) * 255.0, [-1, 1, 1, 1])
    x = (x - mean) * k + mean + b
    # saturation and hue: scale and rotate the chroma (I, Q) plane of YIQ
    sat = _uniform(n, 1 - aug.saturation, 1 + aug.saturation, seeds[2])
    hue = _uniform(n, -aug.hue, aug.hue, seeds[3]) * (math.pi / 180)
    ch, sh = tf.cos(hue) * sat, tf.sin(hue) * sat
    one, zero = tf.ones([n]), tf.zeros([n])
    rot = tf.reshape(tf.stack([one, zero, zero, zero, ch, -sh, zero, sh, ch], axis=1), [-1, 3, 3])
    m = tf.einsum("ij,njk,kl->nil", _RGB, rot, _YIQ)  # per cell: RGB -> YIQ -> rotate/scale -> RGB
    return tf.einsum("nhwc,ndc->nhwd", x, m)


def _blur(x, aug: Augmentation, seeds):
    n = tf.shape(x)[0]
    sigma = _uniform(n, 0.5, 1.0, seeds[0])
    t = tf.constant([-1.0, 0.0, 1.0])
    g = tf.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    g = g / tf.reduce_sum(g, axis=1, keepdims=True)  # (n, 3) separable kernel per cell
    pad = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    hsum = sum(g[:, i, None, None, None] * pad[:, :, i : i + tf.shape(x)[2], :] for i in range(3))
    out = sum(g[:, i, None, None, None] * hsum[:, i : i + tf.shape(x)[1], :, :] for i in range(3))
    on = tf.reshape(tf.cast(_uniform(n, 0.0, 1.0, seeds[1]) < aug.blur, tf.float32), [-1, 1, 1, 1])
    return x + on * (out - x)


def augment(x: tf.Tensor, aug: Augmentation, seed: tf.Tensor) -> tf.Tensor:
    """A new random view of each cell of the batch ``x`` (float32 NHWC, 0-255).  ``seed``: int32 [2] tensor
    (stateless: the same seed gives the same views, so a resumed run replays the same augmentation)."""
    x = tf.convert_to_tensor(x, tf.float32)
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 16))
    if aug.rotation or aug.flip or aug.scale or aug.translate:
        x = _warp(x, aug, seeds[0:5])
    fg = tf.cast(tf.reduce_max(x, axis=3, keepdims=True) > FG_LEVEL, tf.float32)
    if aug.brightness or aug.contrast or aug.saturation or aug.hue:
        x = _colour(x, fg, aug, seeds[5:9])
    if aug.blur:
        x = _blur(x, aug, seeds[9:11])
    if aug.noise:
        n = tf.shape(x)[0]
        std = tf.reshape(_uniform(n, 0.0, aug.noise, seeds[11]), [-1, 1, 1, 1])
        x = x + std * tf.random.stateless_normal(tf.shape(x), seed=seeds[12])
    return tf.clip_by_value(x, 0.0, 255.0) * fg
