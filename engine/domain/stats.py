"""Confidence intervals for a case's share of blasts.

"% blasts = 3/8" and "% blasts = 300/800" read the same (37.5 %) but mean very different things: the interval
says how far the share measured on these cells may be from the share of the sample.  Wilson's score interval
is used instead of the textbook normal one because it stays inside 0-100 % and is still sensible for few cells
and for 0 or all blasts (the normal interval collapses to 0..0 there).
"""

from __future__ import annotations

import math

Z_95 = 1.959964  # two-sided 95 % quantile of the standard normal


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``k / n`` as (low, high) in 0..1; ``None`` when ``n == 0``.

    The cells are treated as independent draws from the sample, which is all a per-cell classifier can
    claim; the classifier's own errors are not in it (see the model card for those).
    """
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be whole numbers, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
