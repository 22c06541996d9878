"""Input masking and augmentation (Kobs 2023, Sec. 10.1): change what a model sees in training, using what
it must ignore; and measure whether it ignores it.

Background bias in deep metric learning (Ch. 11) needs, besides the background replacement of Eq. 11.1
(:func:`domainknowledge.data.synthetic.products.replace_background`), a measure of how much of a model's
attribution falls on the foreground object:

* :func:`foreground_share` ``f(M)`` (Eq. 11.2): the share of the image the foreground covers;
* :func:`attribution_share` ``a(M, A)`` (Eq. 11.3): the share of the attribution on the foreground;
* :func:`foreground_score` (Eq. 11.4): ``(a - f) / (1 - f)``, 1 when all attribution is on the foreground,
  0 for a uniform map (whatever the size of the object), negative when the background gets more than its
  share; its range is ``(-inf, 1]`` (the lowest value, all attribution on the background, is
  ``-f / (1 - f)``).

All three take batches: masks ``(N, H, W)`` in ``[0, 1]`` (1 = foreground) and attribution maps ``(N, H, W)``
with non-negative values, and return ``(N,)`` float64 arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["attribution_share", "foreground_score", "foreground_share"]


def _masks(masks) -> np.ndarray:
    m = np.asarray(masks, dtype=np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W) or (H, W), got {m.shape}")
    if not np.isfinite(m).all() or m.min(initial=0.0) < 0 or m.max(initial=0.0) > 1:
        raise ValueError("masks must hold values in [0, 1] (1 = foreground, 0 = background)")
    return m


def _maps(maps, shape) -> np.ndarray:
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.shape != shape:
        raise ValueError(f"attribution maps must have the masks' shape {shape}, got {a.shape}")
    if not np.isfinite(a).all() or a.min(initial=0.0) < 0:
        raise ValueError("attribution maps must be finite and non-negative (Eq. 11.3 takes A in R_+^{h x w}; "
                         "take absolute values first)")
    return a


def foreground_share(masks) -> np.ndarray:
    """Eq. 11.2: ``f(M) = (1 / (w h)) sum_ij M_ij`` per mask; masks ``(N, H, W)`` -> ``(N,)``."""
    m = _masks(masks)
    return m.mean(axis=(1, 2))


def attribution_share(masks, maps) -> np.ndarray:
    """Eq. 11.3: ``a(M, A) = sum_ij M_ij A_ij / sum_ij A_ij`` per image; ``(N, H, W)`` twice -> ``(N,)``.

    A map that is zero everywhere attends to nothing; it gets ``a = f(M)`` (the value of a uniform map), so
    that its :func:`foreground_score` is 0 instead of undefined."""
    m = _masks(masks)
    a = _maps(maps, m.shape)
    total = a.sum(axis=(1, 2))
    on_foreground = (m * a).sum(axis=(1, 2))
    share = m.mean(axis=(1, 2))
    nonzero = total > 0
    share[nonzero] = on_foreground[nonzero] / total[nonzero]
    return share


def foreground_score(masks, maps) -> np.ndarray:
    """Eq. 11.4: ``score = (a(M, A) - f(M)) / (1 - f(M))`` per image; masks and maps ``(N, H, W)`` -> ``(N,)``.

    1: all attribution on the foreground; 0: uniform attribution (or none); negative: the background gets
    more than its share of the image. Masks that cover the whole image (``f = 1``) leave the score
    undefined and raise a ValueError."""
    f = foreground_share(masks)
    if np.any(f >= 1.0):
        raise ValueError("a mask covers the whole image (f(M) = 1), so Eq. 11.4 is undefined; drop such images")
    a = attribution_share(masks, maps)
    return (a - f) / (1.0 - f)
