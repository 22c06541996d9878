"""Ordinal faces: a seeded, offline stand-in for the age-estimation data sets UTKFace and AFAD.

Each image is a schematic grey-scale face (``image_size`` x ``image_size``, default 32 x 32, one channel)
whose appearance changes smoothly, and noisily, with an integer age label ``a`` in ``0 .. max_age``. The
generating function, per image:

* **age prior** (:func:`age_distribution`): shaped like UTKFace's histogram: a spike at infancy (ages 0-4,
  most at 1), a peak in the mid-twenties, a long tail into old age.
* **age cues** (:func:`age_cues`), each a smooth function of ``a`` plus Gaussian noise, so neighbouring ages
  overlap and the exact age is ambiguous (as it is for a face):

  ===============  ========================================================  ==========
  cue              mean as a function of age ``a``                           noise s.d.
  ===============  ========================================================  ==========
  head size        ``0.58 + 0.42 (1 - exp(-a / 6))`` (of the full size)      0.05
  face length      ``1.00 + 0.22 (1 - exp(-a / 10))`` (height / width)       0.05
  eye height       ``0.18 exp(-a / 9) - 0.05`` (below the centre, in radii)  0.04
  wrinkles         ``clip((a - 22) / 55, 0, 1) ** 1.1`` (stripe contrast)      0.08
  grey hair        ``sigmoid((a - 52) / 7)`` (0 dark ... 1 white)            0.12
  ===============  ========================================================  ==========

  Childhood is read mainly from size, proportions and eye height; adulthood from wrinkles (their stripes
  also get denser with age) and greying hair. Ages 20-40 carry the weakest cues, as in real faces.
* **nuisance** (independent of age): position jitter (up to 2.5 px), skin tone, hair darkness, background
  level and gradient, global contrast, pixel noise (s.d. 0.05 of the intensity range).

Everything is vectorised with NumPy and drawn from one ``numpy.random.Generator``, so a seed fixes the data
set: the same seed gives byte-identical arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CUE_NAMES", "age_cues", "age_distribution", "make_ordinal_faces", "render_faces", "sample_ages"]

CUE_NAMES = ("head_size", "face_length", "eye_height", "wrinkles", "grey_hair")
_CUE_NOISE = {"head_size": 0.05, "face_length": 0.05, "eye_height": 0.04, "wrinkles": 0.08, "grey_hair": 0.12}


def age_distribution(max_age: int = 79) -> np.ndarray:
    """The age prior ``P(a)`` for ``a = 0 .. max_age``, a ``(max_age + 1,)`` float64 vector summing to 1.

    A mixture shaped like UTKFace's age histogram: 9 % infants (ages 0-4, most at age 1), 5 % children
    (5-16, flat), 59 % young adults (log-normal around 26), 27 % a long tail that rises after 18 and decays
    slowly towards ``max_age``.
    """
    if max_age < 20:
        raise ValueError(f"max_age must be at least 20 for a face-like age prior, got {max_age}")
    ages = np.arange(max_age + 1, dtype=np.float64)
    infants = np.zeros_like(ages)
    infants[:5] = [0.22, 0.45, 0.15, 0.10, 0.08]
    children = ((ages >= 5) & (ages < 17)).astype(np.float64)
    adults = np.exp(-0.5 * ((np.log(np.maximum(ages, 1.0)) - np.log(26.0)) / 0.22) ** 2)
    tail = (1.0 - np.exp(-np.maximum(ages - 18.0, 0.0) / 8.0)) * np.exp(-(ages - 18.0) / 20.0)
    parts = [(0.09, infants), (0.05, children), (0.59, adults), (0.27, tail)]
    prior = sum(weight * part / part.sum() for weight, part in parts)
    return prior / prior.sum()


def sample_ages(n: int, rng: np.random.Generator, max_age: int = 79) -> np.ndarray:
    """Draw ``n`` ages from :func:`age_distribution`: an ``(n,)`` int64 array."""
    return rng.choice(max_age + 1, size=n, p=age_distribution(max_age)).astype(np.int64)


def age_cues(ages: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The latent appearance cues of each age (table in the module docstring): ``{name: (N,) float64}``.

    Each cue is its mean curve at the age plus Gaussian noise; all are clipped to a drawable range.
    """
    a = np.asarray(ages, dtype=np.float64)
    means = {
        "head_size": 0.58 + 0.42 * (1.0 - np.exp(-a / 6.0)),
        "face_length": 1.0 + 0.22 * (1.0 - np.exp(-a / 10.0)),
        "eye_height": 0.18 * np.exp(-a / 9.0) - 0.05,
        "wrinkles": np.clip((a - 22.0) / 55.0, 0.0, 1.0) ** 1.1,
        "grey_hair": 1.0 / (1.0 + np.exp(-(a - 52.0) / 7.0)),
    }
    cues = {name: mean + _CUE_NOISE[name] * rng.standard_normal(a.shape) for name, mean in means.items()}
    cues["head_size"] = np.clip(cues["head_size"], 0.45, 1.1)
    cues["face_length"] = np.clip(cues["face_length"], 0.9, 1.4)
    cues["wrinkles"] = np.clip(cues["wrinkles"], 0.0, 1.2)
    cues["grey_hair"] = np.clip(cues["grey_hair"], 0.0, 1.0)
    return cues


def _soft_inside(value: np.ndarray, sharpness: float) -> np.ndarray:
    """Anti-aliased indicator of ``value > 0`` (a logistic edge about one pixel wide)."""
    return 1.0 / (1.0 + np.exp(-np.clip(value * sharpness, -30, 30)))


def render_faces(cues: dict[str, np.ndarray], rng: np.random.Generator, image_size: int = 32) -> np.ndarray:
    """Draw one face per cue vector: ``uint8`` images of shape ``(N, image_size, image_size)``.

    Painted in order: background (level + gradient), head ellipse (skin tone), hair cap (its grey level from
    ``grey_hair``), forehead and cheek wrinkles (horizontal stripes, contrast ``wrinkles``, denser when
    stronger), eyes (at ``eye_height``), mouth, then contrast and pixel noise.
    """
    n = cues["head_size"].shape[0]
    scale = image_size / 32.0
    grid = (np.arange(image_size, dtype=np.float64) + 0.5)
    y, x = grid[None, :, None], grid[None, None, :]                         # (1, H, 1), (1, 1, W)

    def per_image(values):                                                  # (N,) -> (N, 1, 1)
        return np.asarray(values, dtype=np.float64)[:, None, None]

    center_x = per_image(image_size / 2 + rng.uniform(-2.5, 2.5, n) * scale)
    center_y = per_image(image_size / 2 + 1.0 * scale + rng.uniform(-2.5, 2.5, n) * scale)
    radius_x = per_image(cues["head_size"] * 9.5 * scale / np.sqrt(cues["face_length"]))
    radius_y = radius_x * per_image(cues["face_length"])
    u, v = (x - center_x) / radius_x, (y - center_y) / radius_y            # face coordinates, (N, H, W)

    background = per_image(rng.uniform(0.1, 0.9, n)) + per_image(rng.uniform(-0.25, 0.25, n)) * (x / image_size - 0.5)
    skin = per_image(rng.uniform(0.45, 0.85, n))
    head = _soft_inside(1.0 - u ** 2 - v ** 2, 3.0 * radius_x)
    image = background * (1.0 - head) + skin * head

    hairline = per_image(-0.35 + 0.08 * rng.standard_normal(n))
    hair = _soft_inside(1.08 - u ** 2 - (v + 0.08) ** 2, 3.0 * radius_x) * _soft_inside(hairline - v, radius_y)
    dark_hair = per_image(rng.uniform(0.05, 0.3, n))
    hair_tone = dark_hair + (0.92 - dark_hair) * per_image(cues["grey_hair"])
    image = image * (1.0 - hair) + hair_tone * hair

    wrinkles = per_image(cues["wrinkles"])
    stripes_per_radius = 5.0 + 6.0 * np.clip(wrinkles, 0.0, 1.0)
    stripes = 0.5 + 0.5 * np.cos(2 * np.pi * stripes_per_radius * v)
    wrinkle_zone = head * (1.0 - hair) * _soft_inside(0.8 - np.abs(u), 4.0)
    image = image - 0.35 * wrinkles * stripes * wrinkle_zone

    eye_y = per_image(cues["eye_height"])
    eye_sigma = 0.13
    eyes = sum(np.exp(-(((u - side) / eye_sigma) ** 2 + ((v - eye_y) / eye_sigma) ** 2) / 2) for side in (-0.38, 0.38))
    image = image * (1.0 - 0.85 * eyes * head)
    mouth = np.exp(-((u / 0.28) ** 2 + ((v - 0.55) / 0.07) ** 2) / 2)
    image = image * (1.0 - 0.6 * mouth * head)

    contrast = per_image(rng.uniform(0.75, 1.15, n))
    image = 0.5 + contrast * (image - 0.5) + 0.05 * rng.standard_normal(image.shape)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def make_ordinal_faces(n: int, *, seed: int, image_size: int = 32,
                       max_age: int = 79) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` ordinal faces: ``(images uint8 (n, image_size, image_size), ages int64 (n,))``.

    Ages follow :func:`age_distribution`; images are drawn by :func:`render_faces` from :func:`age_cues`.
    The same ``seed`` gives identical arrays.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 px to draw a face, got {image_size}")
    rng = np.random.default_rng(seed)
    ages = sample_ages(n, rng, max_age)
    images = render_faces(age_cues(ages, rng), rng, image_size)
    return images, ages
