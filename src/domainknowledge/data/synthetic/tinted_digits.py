"""Tinted digits: a clustering data set in which an easy grouping competes with the semantic one.

Darlow (2022, Sec. 4.2.1) argues that a clustering objective such as mutual information between
augmentations is a proxy: it is also maximised by groupings that are easy to compute from pixels (colour,
brightness) and say nothing about the objects. This generator makes that competition explicit. Each of
scikit-learn's 1,797 handwritten digits (8 x 8, upsampled to ``size`` px) is drawn in ``copies`` tints,
chosen from :data:`TINTS` independently of the digit, on a dark background. Two equally clean partitions
exist: by digit (the semantic one) and by tint (the easy one). A clusterer that keeps colour in its input
can score perfectly on mutual information by grouping tints; random greyscale augmentation (p = 0.5, as in
DHOG's pipeline) removes that shortcut from half the views.

:func:`make_tinted_digits` returns uint8 RGB images ``(N, size, size, 3)``, digit labels ``(N,)`` and tint
indices ``(N,)``; the same ``seed`` gives the same set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TINTS", "TintedDigits", "make_tinted_digits", "tint"]

# Ten well-separated hues (RGB in [0, 1]).
TINTS = np.array([[0.90, 0.10, 0.10], [0.10, 0.75, 0.15], [0.15, 0.30, 0.95], [0.95, 0.85, 0.10],
                  [0.85, 0.15, 0.85], [0.10, 0.85, 0.85], [0.95, 0.55, 0.10], [0.55, 0.30, 0.95],
                  [0.60, 0.90, 0.30], [0.95, 0.60, 0.70]])


@dataclass(frozen=True)
class TintedDigits:
    """``images`` ``(N, S, S, 3)`` uint8, ``labels`` ``(N,)`` int64 digits, ``tints`` ``(N,)`` int64."""

    images: np.ndarray
    labels: np.ndarray
    tints: np.ndarray


def tint(grey: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Grey glyphs ``(N, H, W)`` in [0, 1] drawn in ``colours`` ``(N, 3)`` on a dark grey background:
    ``(N, H, W, 3)`` uint8."""
    grey, colours = np.asarray(grey, dtype=np.float64), np.asarray(colours, dtype=np.float64)
    if grey.ndim != 3 or colours.shape != (grey.shape[0], 3):
        raise ValueError(f"grey must be (N, H, W) and colours (N, 3), got {grey.shape} and {colours.shape}")
    background = 0.08
    rgb = background + grey[..., None] * (colours[:, None, None, :] - background)
    return np.round(255 * np.clip(rgb, 0, 1)).astype(np.uint8)


def make_tinted_digits(*, seed: int, size: int = 16, copies: int = 2, num_tints: int = 10) -> TintedDigits:
    """``copies`` tinted versions of each of the 1,797 digits, tints drawn uniformly from the first
    ``num_tints`` of :data:`TINTS` independently of the digit (different tints for the copies of one digit)."""
    from PIL import Image

    from domainknowledge.data.bundled import load_digits

    if not 1 <= copies <= num_tints <= len(TINTS):
        raise ValueError(f"need 1 <= copies <= num_tints <= {len(TINTS)}, got copies={copies}, num_tints={num_tints}")
    digits, labels = load_digits()
    resized = np.stack([np.asarray(Image.fromarray((255 * d).astype(np.uint8)).resize((size, size), Image.BILINEAR))
                        for d in digits]) / 255.0
    rng = np.random.default_rng(seed)
    tints = np.stack([rng.choice(num_tints, size=copies, replace=False) for _ in range(len(labels))])   # (N, copies)
    grey = np.repeat(resized, copies, axis=0)
    tint_index = tints.reshape(-1)
    order = rng.permutation(len(tint_index))
    images = tint(grey, TINTS[tint_index])
    return TintedDigits(images[order], np.repeat(labels, copies)[order], tint_index[order].astype(np.int64))
