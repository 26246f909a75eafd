"""What the model looked at: the class-activation map (CAM) of one cell, for the preview's overlay.

A model exported by ``leukoscan-train`` (or updated with ``python -m training.cam``) has a second ONNX output,
``cam``: its Dense head applied at every position of the last convolution's map, so that the map's mean is the
model's logit (exact for the shipped heads: linear after global average pooling).  This module requests that
output, and only that output, for ONE cell: batch classification never asks for it and pays nothing.

The map is returned on a grid over the whole image in **decision units**: ``cam / temperature - logit(threshold)``,
averaged over the card's test-time views (each view's map turned back first), so that regions above 0 pushed
the cell towards ALL and regions below 0 towards HEM, and the map's mean over the model's window has the sign of
the model's decision.  For an ensemble it is the mean of the members' maps on their calibrated-logit scale minus
the ensemble threshold's logit: a guide, since the ensemble averages probabilities, not logits.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .card import ModelError
from .preprocess import crop_box, dihedral, open_rgb, preprocess_image

CAM_OUTPUT = "cam"
#: The longer side of the grid the map is returned on (the preview scales it smoothly onto the image).
GRID = 128
#: A pixel belongs to the cell when its brightest channel is above this (the cells lie on a black background).
FOREGROUND_MIN = 10

__all__ = ["CAM_OUTPUT", "CamResult", "CamUnavailable", "cam_available", "cell_cam", "member_cam"]


class CamUnavailable(ModelError):
    """The model has no ``cam`` output (exported before it existed, or a head CAM cannot be exact for)."""


@dataclass(frozen=True)
class CamResult:
    """``values``: float32 (gh, gw) over the whole image, decision units (> 0 towards ALL), NaN where no member's
    window reaches.  ``image_size``: (width, height) of the decoded image; ``resolution``: the coarsest member
    map's (h, w) (5 x 5 for InceptionV3: blocks of about 45 input pixels)."""

    values: np.ndarray
    image_size: tuple[int, int]
    resolution: tuple[int, int]
    model: str
    cell: np.ndarray | None = None  # (gh, gw): the fraction of each grid square that is cell (not background)
    square_px: float = 0.0  # image pixels per square of the coarsest map (what one square of evidence covers)

    @property
    def on_cell(self) -> np.ndarray:
        """The map where the image is cell (at least half of a grid square), NaN on the black background: a map
        square that straddles the cell's edge says nothing about the empty frame, so it is never painted there."""
        if self.cell is None:
            return self.values
        return np.where(self.cell >= 0.5, self.values, np.nan).astype(np.float32)

    @property
    def cell_scale(self) -> float:
        """:attr:`scale` over the cell only (the background never sets the colour scale)."""
        finite = np.abs(self.on_cell[np.isfinite(self.on_cell)])
        return float(np.percentile(finite, 98)) if finite.size else 0.0

    @property
    def scale(self) -> float:
        """The overlay's colour scale: the 98th percentile of |value|, so that a few extreme positions (VGG19's
        convolutions light up the edge of its window) do not wash out the rest; larger values are drawn at full
        strength."""
        finite = np.abs(self.values[np.isfinite(self.values)])
        return float(np.percentile(finite, 98)) if finite.size else 0.0


def cam_available(classifier) -> str:
    """'' when every member of ``classifier`` has the ``cam`` output, else why not (for the toggle's tooltip)."""
    missing = [m.card.name for m in classifier.members if CAM_OUTPUT not in {o.name for o in m.session.get_outputs()}]
    if not missing:
        return ""
    return (
        f"{', '.join(missing)} has no class-activation output (exported before it existed); "
        "python -m training.cam adds it"
    )


def _undo_view(m: np.ndarray, k: int) -> np.ndarray:
    """The map of dihedral view ``k`` turned back to the cell's own orientation (inverse of ``dihedral``)."""
    if k >= 4:
        m = m[:, ::-1]
    return np.rot90(m, -(k % 4))


def member_cam(member, rgb) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """One member's map for one cell (a Pillow RGB image): (``cam / temperature``, the calibrated-logit scale,
    averaged over the card's views, each turned back to the cell's orientation; the window it covers in image
    pixels)."""
    if CAM_OUTPUT not in {o.name for o in member.session.get_outputs()}:
        raise CamUnavailable(f"{member.card.onnx_file}: no '{CAM_OUTPUT}' output")
    x = preprocess_image(rgb, member.spec)[None].astype(np.float32)
    views = []
    for k in member.card.tta_views:
        xv = x if k == 0 else dihedral(x, k)
        if member.fixed_batch and member.fixed_batch > 1:
            xv = np.concatenate([xv, np.zeros((member.fixed_batch - 1,) + xv.shape[1:], np.float32)])
        (cam,) = member.session.run([CAM_OUTPUT], {member.input_name: xv})
        views.append(_undo_view(np.asarray(cam, np.float64)[0], k))
    mean = np.mean(np.stack(views), axis=0)
    return mean / float(member.card.temperature), crop_box(rgb, member.spec)


def _resample(m: np.ndarray, box, size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Bilinear samples of map ``m`` (covering ``box`` in image pixels) at the centres of a ``grid`` (gh, gw) over
    an image of ``size`` (w, h); NaN outside the box."""
    (w, h), (gh, gw) = size, grid
    left, top, right, bottom = box
    xs = (np.arange(gw) + 0.5) * w / gw
    ys = (np.arange(gh) + 0.5) * h / gh
    u = (xs - left) / (right - left) * m.shape[1] - 0.5  # map coordinates of the sample points
    v = (ys - top) / (bottom - top) * m.shape[0] - 0.5
    inside = ((xs >= left) & (xs < right))[None, :] & ((ys >= top) & (ys < bottom))[:, None]
    u = np.clip(u, 0, m.shape[1] - 1)
    v = np.clip(v, 0, m.shape[0] - 1)
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    u1, v1 = np.minimum(u0 + 1, m.shape[1] - 1), np.minimum(v0 + 1, m.shape[0] - 1)
    fu, fv = (u - u0)[None, :], (v - v0)[:, None]
    top_row = m[v0][:, u0] * (1 - fu) + m[v0][:, u1] * fu
    bottom_row = m[v1][:, u0] * (1 - fu) + m[v1][:, u1] * fu
    out = top_row * (1 - fv) + bottom_row * fv
    return np.where(inside, out, np.nan)


def foreground(rgb, grid: tuple[int, int]) -> np.ndarray:
    """The fraction of each square of a ``grid`` (gh, gw) over the image that is cell: pixels whose brightest
    channel is above :data:`FOREGROUND_MIN` on the original image, averaged per square."""
    from PIL import Image

    mask = (np.asarray(rgb.convert("RGB")).max(axis=2) > FOREGROUND_MIN).astype(np.uint8) * 255
    gh, gw = grid
    small = Image.fromarray(mask, mode="L").resize((gw, gh), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255.0


def cell_cam(classifier, path: str | Path, data: bytes | None = None, grid: int = GRID) -> CamResult:
    """The overlay of one cell's file (see the module docstring).  Slow work (decode + one inference per view and
    member): call it off the GUI thread.  Raises :class:`CamUnavailable` or ``ImageDecodeError``."""
    why = cam_available(classifier)
    if why:
        raise CamUnavailable(why)
    rgb = open_rgb(path, data)
    w, h = rgb.size
    gw, gh = (grid, max(1, round(grid * h / w))) if w >= h else (max(1, round(grid * w / h)), grid)
    maps, res = [], []
    for member in classifier.members:
        m, box = member_cam(member, rgb)
        maps.append(_resample(m, box, (w, h), (gh, gw)))
        res.append((m.shape, (box[2] - box[0]) / m.shape[1]))  # the map's size is read from the model's output
    t = min(max(float(classifier.threshold), 1e-6), 1 - 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points outside every member's window
        values = np.nanmean(np.stack(maps), axis=0) - math.log(t / (1 - t))
    coarse, square = min(res, key=lambda r: r[0][0] * r[0][1])
    return CamResult(
        values.astype(np.float32),
        (w, h),
        (int(coarse[0]), int(coarse[1])),
        classifier.name,
        foreground(rgb, (gh, gw)),
        float(square),
    )
