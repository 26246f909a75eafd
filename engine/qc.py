"""Input quality check (QC): is this image plausibly one segmented cell on a black background?

The models were trained on C-NMC cells only; anything else (a blank frame, a 1x1 thumbnail, an
unsegmented smear field, a cell cut by the image edge) still gets a confident-looking P(ALL).
:func:`check` returns why such an image fails ("" when it passes); the pipeline stores it as the
result's ``qc`` and :func:`engine.pipeline.decide` then flags the cell for review.  The CLI and the
app both get it from the pipeline, so these rules live only here.

Thresholds measured on 600 random cells (seed 10) of ``../shared/data/C-NMC_Leukemia/training_data``
(all 450x450 px), "non-black" = brightest channel > 20:

- non-black share: min 5.4 %, 0.5th percentile 7.5 %, median 15.7 %, 99.5th percentile 24.6 %, max 24.8 %;
- non-black share of the 2-px border ring: 0 in 598 cells, max 5.6 %;
- grey-level standard deviation inside the cell: min 5.9, median 8.8, max 18.9.

Each limit below sits well outside that range (about half the smallest / twice the largest value), so
all 600 measured cells pass (>= 99.5 % was the target) while a not-a-cell image fails.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MIN_SIDE = 64  #: px; C-NMC cells are 450x450
BLACK_LEVEL = 20  #: a pixel is background when its brightest channel is at most this (JPEG noise ~10)
MIN_FOREGROUND = 0.02  #: non-black share below this: mostly black (cells: >= 5.4 %)
MAX_FOREGROUND = 0.50  #: above this: not a segmented cell on black (cells: <= 24.8 %)
MIN_CELL_STD = 2.0  #: grey-level std of the non-black pixels below this: uniform (cells: >= 5.9)
BORDER_PX = 2  #: width of the edge ring that is checked
MAX_BORDER = 0.10  #: non-black share of the edge ring above this: the cell touches the border (cells: <= 5.6 %)
_ANALYSIS_SIDE = 600  #: larger images are box-reduced to about this before measuring (fast on any size)


def check(im: Image.Image) -> str:
    """The first QC rule the 8-bit RGB image fails, as a reason for the user; "" when it passes."""
    w, h = im.size
    if min(w, h) < MIN_SIDE:
        return f"image too small ({w}x{h} px; a cell image is about 450x450)"
    factor = -(-max(w, h) // _ANALYSIS_SIDE)
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    a = np.asarray(rgb.reduce(factor) if factor > 1 else rgb)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]  # per-channel ops: ~20x faster than reductions over axis 2
    fg = np.maximum(np.maximum(r, g), b) > BLACK_LEVEL
    share = float(fg.mean())
    if share < MIN_FOREGROUND:
        return f"mostly black ({share:.1%} non-black pixels; cells have 5-25%)"
    if float((r.astype(np.uint16) + g + b)[fg].std()) / 3 < MIN_CELL_STD:  # std of the channel mean
        return "uniform image (no detail: not a cell)"
    if share > MAX_FOREGROUND:
        return f"not a segmented cell on black ({share:.0%} non-black pixels; cells have 5-25%)"
    px = BORDER_PX
    ring = np.concatenate([fg[:px].ravel(), fg[-px:].ravel(), fg[px:-px, :px].ravel(), fg[px:-px, -px:].ravel()])
    edge = float(ring.mean())
    if edge > MAX_BORDER:
        return f"the cell touches the image border ({edge:.0%} of the edge is not black)"
    return ""
