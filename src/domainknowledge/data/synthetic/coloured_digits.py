"""Colour-biased digit sets of Darlow (2022, Sec. 5.6): a spurious signal tied to the class in training.

Every set is built from grey glyphs ``(N, S, S)`` in [0, 1] (scikit-learn's handwritten digits upsampled,
:func:`digit_glyphs`, at the ``smoke`` and ``cpu`` profiles; MNIST at ``paper``) and a *spurious attribute*
per image, an index in ``0..9``:

* ``background`` (ReBias, Bahng et al. 2020): a white digit on a background of one of the ten
  :data:`REBIAS_COLOURS`;
* ``foreground`` (LfF, Nam et al. 2020): the digit stroke drawn in a colour drawn from
  ``N(class colour, 0.005)`` on black, with ten class colours :data:`FOREGROUND_COLOURS`;
* ``corrupted`` (after LfF's corrupted CIFAR-10): one of ten image corruptions (:data:`CORRUPTIONS`:
  snow, frost, fog, brightness, contrast, spatter, elastic, JPEG, pixelate, saturate) applied to a colour
  image (here a digit drawn in a random colour on a random dark background, independent of the class).

:func:`make_split` gives the three conditions of Table 5.1: ``biased`` (training: attribute = class, a
100 % bias ratio), ``independent`` (attribute = a uniformly drawn *other* class, so that the spurious signal
always points to a wrong class) and ``conditioned`` (the attribute held constant: a white digit on black,
or the uncorrupted image). Images are float32 ``(N, S, S, 3)`` in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["CONDITIONS", "CORRUPTIONS", "FOREGROUND_COLOURS", "KINDS", "REBIAS_COLOURS", "BiasedSet",
           "background_coloured", "corrupt", "digit_glyphs", "foreground_coloured", "make_split",
           "other_class", "random_colour_canvas", "stratified_split"]

# ReBias' colour map (clovaai/rebias, datasets/colour_mnist.py), one colour per class, RGB in [0, 1].
REBIAS_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [225, 225, 0], [225, 0, 225], [0, 255, 255],
                           [255, 128, 0], [255, 0, 128], [128, 0, 255], [128, 128, 128]], dtype=np.float32) / 255
# Ten well-separated stroke colours (LfF draws its ten at random; fixed here so that no two classes share
# a near-identical colour in a small set). The same hues as the tinted digits of Ch. 4.
FOREGROUND_COLOURS = np.array([[0.90, 0.10, 0.10], [0.10, 0.75, 0.15], [0.15, 0.30, 0.95], [0.95, 0.85, 0.10],
                               [0.85, 0.15, 0.85], [0.10, 0.85, 0.85], [0.95, 0.55, 0.10], [0.55, 0.30, 0.95],
                               [0.60, 0.90, 0.30], [0.95, 0.60, 0.70]], dtype=np.float32)
FOREGROUND_SIGMA = 0.005
CORRUPTIONS = ("snow", "frost", "fog", "brightness", "contrast", "spatter", "elastic", "jpeg", "pixelate", "saturate")
KINDS = ("background", "foreground", "corrupted")
CONDITIONS = ("biased", "independent", "conditioned")
UNBIASED = "unbiased"


@dataclass(frozen=True)
class BiasedSet:
    """``images`` float32 ``(N, S, S, 3)`` in [0, 1], ``labels`` ``(N,)`` int64, ``attributes`` ``(N,)`` int64
    (the spurious attribute's index, -1 where it is held constant), ``kind`` and ``condition``."""

    images: np.ndarray
    labels: np.ndarray
    attributes: np.ndarray
    kind: str
    condition: str


def digit_glyphs(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits upsampled (bilinear) to ``size`` px: float32 ``(N, S, S)`` in [0, 1], labels."""
    from PIL import Image

    from domainknowledge.data.bundled import load_digits

    digits, labels = load_digits()
    resized = np.stack([np.asarray(Image.fromarray((255 * d).astype(np.uint8)).resize((size, size), Image.BILINEAR))
                        for d in digits]).astype(np.float32) / 255
    return resized, labels


def stratified_split(labels: np.ndarray, test_fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with ``test_fraction`` of every class in the test part (seeded)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(test_fraction * len(members)))
        test.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _check_glyphs(glyphs: np.ndarray) -> np.ndarray:
    glyphs = np.asarray(glyphs, dtype=np.float32)
    if glyphs.ndim != 3 or glyphs.min() < 0 or glyphs.max() > 1:
        raise ValueError(f"glyphs must be (N, H, W) in [0, 1], got shape {glyphs.shape}")
    return glyphs


def background_coloured(glyphs: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """ReBias: white glyphs on backgrounds ``colours`` ``(N, 3)``; the glyph's grey level blends the two
    (ReBias binarises MNIST; our upsampled glyphs keep their anti-aliased edges). ``(N, H, W, 3)``."""
    glyphs = _check_glyphs(glyphs)[..., None]
    return glyphs * 1.0 + (1 - glyphs) * np.asarray(colours, dtype=np.float32)[:, None, None, :]


def foreground_coloured(glyphs: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """LfF: glyph strokes in ``colours`` ``(N, 3)`` on black: ``glyph * colour``, ``(N, H, W, 3)``."""
    glyphs = _check_glyphs(glyphs)[..., None]
    return np.clip(glyphs * np.asarray(colours, dtype=np.float32)[:, None, None, :], 0, 1)


def random_colour_canvas(glyphs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clean images of the corrupted set: each glyph in a random bright colour on a random dark
    background, both drawn independently of the class. ``(N, H, W, 3)``."""
    glyphs = _check_glyphs(glyphs)[..., None]
    stroke = rng.uniform(0.45, 1.0, size=(len(glyphs), 1, 1, 3)).astype(np.float32)
    ground = rng.uniform(0.0, 0.35, size=(len(glyphs), 1, 1, 3)).astype(np.float32)
    return glyphs * stroke + (1 - glyphs) * ground


def _low_frequency(rng, shape, cells: int) -> np.ndarray:
    """Smooth noise ``(H, W)`` in [0, 1]: a ``cells x cells`` random grid upsampled (cubic)."""
    grid = rng.random((cells, cells))
    zoomed = ndimage.zoom(grid, (shape[0] / cells, shape[1] / cells), order=3)[:shape[0], :shape[1]]
    return np.clip((zoomed - zoomed.min()) / max(np.ptp(zoomed), 1e-6), 0, 1)


def corrupt(image: np.ndarray, corruption: str, rng: np.random.Generator) -> np.ndarray:
    """One of :data:`CORRUPTIONS` applied to a float image ``(H, W, 3)`` in [0, 1] at a fixed, clearly visible
    severity (our simplified versions of Hendrycks and Dietterich's corruptions). Returns ``(H, W, 3)``."""
    from domainknowledge.principles import distortions

    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; choose one of {CORRUPTIONS}")
    height, width = image.shape[:2]
    x = image.astype(np.float32)
    if corruption == "snow":
        flakes = ndimage.gaussian_filter((rng.random((height, width)) < 0.10).astype(np.float32), 0.5) * 3
        out = 0.75 * x + 0.2 + np.clip(flakes, 0, 1)[..., None]
    elif corruption == "frost":
        ice = _low_frequency(rng, (height, width), 6)[..., None] * np.array([0.75, 0.9, 1.0], dtype=np.float32)
        out = 0.6 * x + 0.5 * ice
    elif corruption == "fog":
        out = 0.55 * x + 0.45 * _low_frequency(rng, (height, width), 3)[..., None]
    elif corruption == "brightness":
        out = x + 0.4
    elif corruption == "contrast":
        out = x.mean() + 0.3 * (x - x.mean())
    elif corruption == "spatter":
        blobs = _low_frequency(rng, (height, width), 5) > 0.7
        out = np.where(blobs[..., None], np.array([0.35, 0.2, 0.1], dtype=np.float32), x)
    elif corruption == "elastic":
        sigma, strength = max(1.0, height / 8), height / 5
        dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (height, width)), sigma) * strength / 0.1
        dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (height, width)), sigma) * strength / 0.1
        scale = strength / max(np.abs(np.stack([dy, dx])).max(), 1e-6)
        y, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        coords = [y + dy * scale, xx + dx * scale]
        out = np.stack([ndimage.map_coordinates(x[..., c], coords, order=1, mode="reflect") for c in range(3)], -1)
    elif corruption == "jpeg":
        out = distortions.jpeg_compression(np.round(255 * np.clip(x, 0, 1)).astype(np.uint8), 8) / 255.0
    elif corruption == "pixelate":
        out = distortions.pixelate(np.round(255 * np.clip(x, 0, 1)).astype(np.uint8), 0.34) / 255.0
    else:                                                                  # saturate
        grey = x.mean(axis=2, keepdims=True)
        out = grey + 2.5 * (x - grey)
    return np.clip(out, 0, 1).astype(np.float32)


def other_class(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """For every label a uniformly drawn *different* class: ``(labels + U{1..K-1}) mod K``."""
    return (np.asarray(labels) + rng.integers(1, num_classes, size=len(labels))) % num_classes


def make_split(kind: str, condition: str, glyphs: np.ndarray, labels: np.ndarray, *, seed: int,
               base_images: np.ndarray | None = None) -> BiasedSet:
    """One condition of Table 5.1 for glyphs ``(N, S, S)`` and labels ``(N,)`` (10 classes).

    ``biased``: attribute = class (100 % bias); ``independent``: attribute = another class, drawn uniformly;
    ``conditioned``: attribute held constant (white on black; for ``corrupted``, the clean image);
    ``unbiased``: attribute drawn uniformly, independently of the class (a reference training set, 0 % bias).
    ``base_images`` ``(N, S, S, 3)``: the clean colour images of the ``corrupted`` kind (CIFAR-10 at the
    ``paper`` profile); by default :func:`random_colour_canvas` of the glyphs.
    """
    if kind not in KINDS or condition not in CONDITIONS + (UNBIASED,):
        raise ValueError(f"kind must be one of {KINDS} and condition one of {CONDITIONS}, got {kind!r}, {condition!r}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    attributes = {"biased": labels.copy(), "independent": other_class(labels, 10, rng),
                  "conditioned": np.full(len(labels), -1, dtype=np.int64),
                  UNBIASED: rng.integers(0, 10, size=len(labels))}[condition]
    if kind == "background":
        colours = np.where(attributes[:, None] >= 0, REBIAS_COLOURS[attributes.clip(0)], 0.0)
        images = background_coloured(glyphs, colours)
    elif kind == "foreground":
        colours = FOREGROUND_COLOURS[attributes.clip(0)] + rng.normal(0, FOREGROUND_SIGMA, (len(labels), 3))
        colours = np.where(attributes[:, None] >= 0, colours, 1.0)
        images = foreground_coloured(glyphs, colours)
    else:
        clean = random_colour_canvas(glyphs, rng) if base_images is None else np.asarray(base_images, np.float32)
        if clean.shape[0] != len(labels):
            raise ValueError(f"base_images hold {clean.shape[0]} images for {len(labels)} labels")
        images = np.stack([image if a < 0 else corrupt(image, CORRUPTIONS[a], rng) for image, a in zip(clean, attributes)])
    return BiasedSet(images.astype(np.float32), labels, attributes, kind, condition)
