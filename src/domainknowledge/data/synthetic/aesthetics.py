"""A seeded stand-in for an image-aesthetics data set like AVA, and a generator of well-composed scenes.

AVA (Murray et al. 2012) gives each photo the histogram of about 200 votes on a 1-10 scale; models are scored
on the mean vote. We cannot ship AVA, so this module draws *scenes* (sky, horizon, ground and one subject)
whose aesthetic score is a documented function of visible properties, and simulates the votes.

**The scene.** A sky gradient and a ground band meet at a horizon (height ``horizon``, tilted by ``tilt``
degrees); a ``subject`` (``sun``, ``tree`` or ``house``) of size ``subject_size`` stands at
(``subject_x``, ``subject_y``); the colours come from a palette around a base hue ``hue`` whose other hues
sit ``harmony * 180`` degrees away at most (``harmony = 0``: analogous colours; 1: clashing hues). The ground
has a soft texture. The scene is drawn at twice the size and downsampled (anti-aliased).

**The photographic properties** are then applied in this order: ``exposure`` (EV, linear light),
``contrast`` (deviations from the mean luma scaled by ``3 ** contrast``), ``saturation`` (grey blend factor
``1 + saturation``), ``blur`` (Gaussian, sigma ``2 * blur`` px at 64 px, scaled with the size), ``noise``
(Gaussian, sigma ``0.12 * noise``).

**The hidden mean score** (:func:`hidden_score`) is

    score = BASE_SCORE
            - 0.8 |exposure| - 0.9 |contrast| - 0.6 |saturation| - 0.9 harmony      (style, colour harmony)
            - 1.0 blur - 1.4 noise                                                  (technical quality)
            - 4.0 thirds_offset - 2.0 horizon_offset - 0.05 |tilt|                  (composition)
            + content_bonus[subject] + content_noise                                (content)

clipped to [1.5, 9.0], where ``thirds_offset`` is the distance of the subject from the nearest
rule-of-thirds point and ``horizon_offset`` that of the horizon from the nearest third line (fractions of the
side), ``content_bonus`` is +0.25 for a sun, 0 for a tree and -0.15 for a house, and ``content_noise`` is
N(0, 0.3), a part of the score that no pixel shows (taste). The score falls monotonically as any property moves
away from its ideal (0, or a thirds position).

**The votes.** Each image gets ``votes`` voters who vote ``k in 1..10`` with probability proportional to
``exp(-(k - score)^2 / (2 * 1.5^2))``; the histogram is AVA's label, and its mean the ground-truth mean
score (which differs a little from the hidden score, as a sampled mean would).

:func:`generate_well_composed_scenes` draws the same scenes with ideal properties (horizon and subject on
thirds, harmonious colours, correct exposure, sharp, no noise): the "highly aesthetic" images that the
pretext tasks of Kobs (2023), Ch. 16 distort.

**Real photos** (:func:`generate_photo_aesthetics`). The same photographic properties, drawn from the same
distributions, are applied to square crops of the real photos bundled with scikit-image and scikit-learn
(:data:`STAND_IN_PHOTOS`). A crop covers ``crop_scale`` in [0.45, 1] of the photo's shorter side, with its
centre anywhere the crop fits; these photos centre their subject, so a crop far from the centre cuts it and
counts as poor framing. The hidden score of a photo crop (:func:`hidden_photo_score`) is

    score = PHOTO_BASE_SCORE
            - 0.8 |exposure| - 0.9 |contrast| - 0.6 |saturation|                   (style)
            - 1.0 blur - 1.4 noise                                                  (technical quality)
            - 3.0 crop_offset                                                       (framing)
            + content_noise                                                         (taste, N(0, 0.3))

clipped to [1.5, 9.0], where ``crop_offset`` is the distance of the crop's centre from the photo's centre as a
fraction of the shorter side. ``PHOTO_BASE_SCORE`` is set so that about 70 % of the crops score above 5, as
for the scenes and AVA. :func:`generate_mixed_aesthetics` draws both kinds, shuffled, with a ``source``
column (``scene`` or ``photo``) in the properties.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy import ndimage

from domainknowledge.principles import distortions

__all__ = ["BASE_SCORE", "CONTENT_BONUS", "PHOTO_BASE_SCORE", "PHOTO_PROPERTIES", "PROPERTIES", "SCORES", "STAND_IN_PHOTOS",
           "AestheticsData", "apply_photographic_properties", "distortion_penalty", "generate_aesthetics",
           "generate_mixed_aesthetics", "generate_photo_aesthetics", "generate_well_composed_scenes", "hidden_photo_score", "hidden_score",
           "render_scene", "sample_photo_properties", "sample_properties", "vote_histograms"]

SCORES = np.arange(1, 11)
BASE_SCORE = 8.3
VOTE_SPREAD = 1.5
CONTENT_BONUS = {"sun": 0.25, "tree": 0.0, "house": -0.15}
SUBJECTS = tuple(CONTENT_BONUS)
PROPERTIES = ("exposure", "contrast", "saturation", "harmony", "blur", "noise", "horizon", "tilt", "subject",
              "subject_x", "subject_y", "subject_size", "hue", "content_noise")
THIRDS = (1 / 3, 2 / 3)
PHOTO_BASE_SCORE = 7.55
STAND_IN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "china", "flower")
PHOTO_PROPERTIES = ("exposure", "contrast", "saturation", "blur", "noise", "photo", "crop_scale", "crop_x", "crop_y",
                    "crop_offset", "content_noise")


@dataclass(frozen=True)
class AestheticsData:
    """A labelled aesthetics set: ``images`` ``(N, H, W, 3)`` uint8, ``votes`` ``(N, 10)`` int counts for scores
    1..10, ``properties`` (one row per image, the columns of :data:`PROPERTIES` and the offsets), the
    ``hidden_score`` ``(N,)`` and the ground-truth ``mean_score`` ``(N,)`` of the votes."""

    images: np.ndarray
    votes: np.ndarray
    properties: pd.DataFrame
    hidden_score: np.ndarray
    mean_score: np.ndarray

    @property
    def distributions(self) -> np.ndarray:
        """``(N, 10)`` float32: each image's vote histogram normalised to sum to one (the EMD target)."""
        return (self.votes / self.votes.sum(axis=1, keepdims=True)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.images)


def _nearest_third_distance(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.min(np.abs(values[..., None] - np.array(THIRDS)), axis=-1)


def thirds_offset(subject_x, subject_y) -> np.ndarray:
    """Distance of the subject's centre from the nearest rule-of-thirds point (fractions of the side)."""
    dx = _nearest_third_distance(subject_x)
    dy = _nearest_third_distance(subject_y)
    return np.sqrt(dx ** 2 + dy ** 2)


def hidden_score(properties: pd.DataFrame) -> np.ndarray:
    """The hidden mean aesthetic score ``(N,)`` of the module docstring's formula, clipped to [1.5, 9]."""
    missing = set(PROPERTIES) - set(properties.columns)
    if missing:
        raise ValueError(f"properties lack the column(s) {sorted(missing)}")
    p = properties
    score = (BASE_SCORE
             - 0.8 * np.abs(p["exposure"]) - 0.9 * np.abs(p["contrast"]) - 0.6 * np.abs(p["saturation"])
             - 0.9 * p["harmony"]
             - 1.0 * p["blur"] - 1.4 * p["noise"]
             - 4.0 * thirds_offset(p["subject_x"], p["subject_y"]) - 2.0 * _nearest_third_distance(p["horizon"])
             - 0.05 * np.abs(p["tilt"])
             + p["subject"].map(CONTENT_BONUS).to_numpy() + p["content_noise"])
    return np.clip(np.asarray(score, dtype=np.float64), 1.5, 9.0)


def distortion_penalty(properties: pd.DataFrame) -> np.ndarray:
    """The terms of :func:`hidden_score` ``(N,)`` that the pretext distortions of Kobs (2023), Table 16.1 change:
    exposure, contrast and saturation (style filters), blur and noise (technical), and the thirds, horizon and
    tilt offsets (crops and rotations); not colour harmony, content or taste. Larger is worse."""
    missing = set(PROPERTIES) - set(properties.columns)
    if missing:
        raise ValueError(f"properties lack the column(s) {sorted(missing)}")
    p = properties
    penalty = (0.8 * np.abs(p["exposure"]) + 0.9 * np.abs(p["contrast"]) + 0.6 * np.abs(p["saturation"])
               + 1.0 * p["blur"] + 1.4 * p["noise"]
               + 4.0 * thirds_offset(p["subject_x"], p["subject_y"]) + 2.0 * _nearest_third_distance(p["horizon"])
               + 0.05 * np.abs(p["tilt"]))
    return np.asarray(penalty, dtype=np.float64)


def sample_properties(n: int, rng: np.random.Generator, *, well_composed: bool = False) -> pd.DataFrame:
    """Draw the properties of ``n`` scenes: varied ones (the labelled set) or ideal ones (``well_composed``)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    subject = rng.choice(SUBJECTS, size=n)
    hue = rng.uniform(0, 1, n)
    size = rng.uniform(0.10, 0.22, n)
    if well_composed:
        jitter = lambda: rng.normal(0, 0.015, n)  # noqa: E731
        return pd.DataFrame({
            "exposure": np.zeros(n), "contrast": np.zeros(n), "saturation": np.zeros(n),
            "harmony": rng.uniform(0, 0.1, n), "blur": np.zeros(n), "noise": np.zeros(n),
            "horizon": rng.choice(THIRDS, n) + jitter(), "tilt": np.zeros(n), "subject": subject,
            "subject_x": rng.choice(THIRDS, n) + jitter(), "subject_y": rng.choice(THIRDS, n) + jitter(),
            "subject_size": size, "hue": hue, "content_noise": np.zeros(n)})
    return pd.DataFrame({
        "exposure": rng.normal(0, 0.6, n), "contrast": rng.normal(0, 0.35, n),
        "saturation": np.clip(rng.normal(0, 0.35, n), -0.9, 1.0), "harmony": rng.uniform(0, 1, n),
        "blur": rng.uniform(0, 1, n) ** 2, "noise": rng.uniform(0, 1, n) ** 2,
        "horizon": rng.uniform(0.2, 0.8, n), "tilt": rng.normal(0, 4, n), "subject": subject,
        "subject_x": rng.uniform(0.15, 0.85, n), "subject_y": rng.uniform(0.15, 0.85, n),
        "subject_size": size, "hue": hue, "content_noise": rng.normal(0, 0.3, n)})


def _palette(hue: float, harmony: float, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Four colours: sky top, sky bottom, ground, subject; hues within ``harmony * 180`` degrees of ``hue``."""
    offsets = rng.uniform(-1, 1, 4) * harmony * 0.5
    offsets[0] = 0.0
    specs = ((0.45, 0.85), (0.25, 0.95), (0.55, 0.55), (0.75, 0.9))   # (saturation, value)
    colours = []
    for offset, (sat, val) in zip(offsets, specs):
        r, g, b = colorsys.hsv_to_rgb((hue + offset) % 1.0, sat, val)
        colours.append((int(255 * r), int(255 * g), int(255 * b)))
    return colours


def render_scene(row, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one scene ``(size, size, 3)`` uint8 from a row of :func:`sample_properties` (see module docstring)."""
    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    big = 2 * size
    sky_top, sky_bottom, ground, subject_colour = _palette(float(row["hue"]), float(row["harmony"]), rng)
    t = np.linspace(0, 1, big)[:, None, None]
    canvas = ((1 - t) * np.array(sky_top) + t * np.array(sky_bottom)) * np.ones((1, big, 1))
    image = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    horizon = float(row["horizon"]) * big
    slope = np.tan(np.deg2rad(float(row["tilt"])))
    left_y, right_y = horizon - slope * big / 2, horizon + slope * big / 2
    draw.polygon([(0, left_y), (big, right_y), (big, big), (0, big)], fill=ground)
    cx, cy = float(row["subject_x"]) * big, float(row["subject_y"]) * big
    radius = float(row["subject_size"]) * big / 2
    kind = row["subject"]
    if kind == "sun":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=subject_colour)
    elif kind == "tree":
        draw.rectangle([cx - radius * 0.18, cy, cx + radius * 0.18, cy + radius], fill=(90, 60, 35))
        draw.polygon([(cx, cy - 1.3 * radius), (cx - radius, cy + 0.2 * radius), (cx + radius, cy + 0.2 * radius)],
                     fill=subject_colour)
    elif kind == "house":
        draw.rectangle([cx - radius, cy - 0.2 * radius, cx + radius, cy + radius], fill=subject_colour)
        draw.polygon([(cx - 1.2 * radius, cy - 0.2 * radius), (cx + 1.2 * radius, cy - 0.2 * radius),
                      (cx, cy - 1.1 * radius)], fill=(150, 50, 40))
    else:
        raise ValueError(f"unknown subject {kind!r}; choose one of {SUBJECTS}")
    array = np.asarray(image).astype(np.float32)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (big, big)), big / 40)
    ys = np.arange(big)[:, None]
    below = ys > (horizon + slope * (np.arange(big)[None, :] - big / 2))
    array += (12 * texture / (texture.std() + 1e-6) * below)[..., None]
    small = np.asarray(Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).resize((size, size), Image.LANCZOS))
    return apply_photographic_properties(small, row, rng)


def apply_photographic_properties(image: np.ndarray, row, rng: np.random.Generator) -> np.ndarray:
    """Apply ``exposure``, ``contrast``, ``saturation``, ``blur`` and ``noise`` of ``row``, in that order (module
    docstring), to a square ``(size, size, 3)`` uint8 image; the blur's sigma scales with ``size / 64``."""
    size = image.shape[0]
    out = distortions.exposure(image, float(row["exposure"]))
    out = distortions.contrast(out, float(row["contrast"]))
    out = distortions.saturation(out, float(row["saturation"]))
    sigma = 2.0 * float(row["blur"]) * size / 64
    if sigma > 0.05:
        out = np.clip(np.rint(ndimage.gaussian_filter(out.astype(np.float32), (sigma, sigma, 0))), 0, 255).astype(np.uint8)
    if float(row["noise"]) > 0:
        out = distortions.gaussian_noise(out, 0.12 * float(row["noise"]), rng=rng)
    return out


def vote_histograms(scores, votes: int, rng: np.random.Generator) -> np.ndarray:
    """Simulated votes ``(N, 10)`` (int counts over 1..10) for hidden scores ``(N,)``, ``votes`` voters each."""
    scores = np.asarray(scores, dtype=np.float64)
    if votes < 1:
        raise ValueError(f"votes must be at least 1, got {votes}")
    logits = -((SCORES[None, :] - scores[:, None]) ** 2) / (2 * VOTE_SPREAD ** 2)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return np.stack([rng.multinomial(votes, p) for p in probabilities]).astype(np.int64)


def generate_aesthetics(n: int, size: int = 64, *, seed: int, votes: int = 100) -> AestheticsData:
    """``n`` labelled scenes of ``size`` px with their vote histograms; the same ``seed`` gives the same data."""
    rng = np.random.default_rng(seed)
    properties = sample_properties(n, rng)
    images = np.stack([render_scene(row, size, rng) for _, row in properties.iterrows()])
    score = hidden_score(properties)
    counts = vote_histograms(score, votes, rng)
    mean = (counts * SCORES).sum(axis=1) / counts.sum(axis=1)
    properties = properties.assign(thirds_offset=thirds_offset(properties["subject_x"], properties["subject_y"]),
                                   horizon_offset=_nearest_third_distance(properties["horizon"]))
    return AestheticsData(images, counts, properties, score, mean.astype(np.float64))


def generate_well_composed_scenes(n: int, size: int = 64, *, seed: int) -> np.ndarray:
    """``n`` ideal ("highly aesthetic") scenes ``(n, size, size, 3)`` uint8 for the pretext tasks."""
    rng = np.random.default_rng(seed)
    properties = sample_properties(n, rng, well_composed=True)
    return np.stack([render_scene(row, size, rng) for _, row in properties.iterrows()])


def sample_photo_properties(n: int, rng: np.random.Generator, photos=STAND_IN_PHOTOS) -> pd.DataFrame:
    """Draw the properties of ``n`` photo crops: the photographic properties as :func:`sample_properties` draws
    them for scenes, a photo name, and the crop (``crop_scale``; ``crop_x``, ``crop_y`` the crop centre's position
    in [0, 1] of the free range, 0.5 = centred)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not photos:
        raise ValueError("photos must name at least one bundled photo")
    return pd.DataFrame({
        "exposure": rng.normal(0, 0.6, n), "contrast": rng.normal(0, 0.35, n),
        "saturation": np.clip(rng.normal(0, 0.35, n), -0.9, 1.0),
        "blur": rng.uniform(0, 1, n) ** 2, "noise": rng.uniform(0, 1, n) ** 2,
        "photo": rng.choice(list(photos), size=n), "crop_scale": rng.uniform(0.45, 1.0, n),
        "crop_x": rng.uniform(0, 1, n), "crop_y": rng.uniform(0, 1, n), "content_noise": rng.normal(0, 0.3, n)})


def _crop_box(shape, row) -> tuple[int, int, int]:
    """``(top, left, side)`` of the crop of ``row`` in a photo of ``shape`` ``(H, W, 3)``."""
    height, width = shape[:2]
    side = max(8, int(round(float(row["crop_scale"]) * min(height, width))))
    top = int(round(float(row["crop_y"]) * (height - side)))
    left = int(round(float(row["crop_x"]) * (width - side)))
    return top, left, side


def crop_offset(shape, row) -> float:
    """Distance of the crop's centre from the photo's centre, as a fraction of the photo's shorter side."""
    top, left, side = _crop_box(shape, row)
    height, width = shape[:2]
    return float(np.hypot(top + side / 2 - height / 2, left + side / 2 - width / 2) / min(height, width))


def hidden_photo_score(properties: pd.DataFrame) -> np.ndarray:
    """The hidden mean score ``(N,)`` of photo crops (module docstring), clipped to [1.5, 9]."""
    missing = set(PHOTO_PROPERTIES) - set(properties.columns)
    if missing:
        raise ValueError(f"photo properties lack the column(s) {sorted(missing)}")
    p = properties
    score = (PHOTO_BASE_SCORE
             - 0.8 * np.abs(p["exposure"]) - 0.9 * np.abs(p["contrast"]) - 0.6 * np.abs(p["saturation"])
             - 1.0 * p["blur"] - 1.4 * p["noise"] - 3.0 * p["crop_offset"] + p["content_noise"])
    return np.clip(np.asarray(score, dtype=np.float64), 1.5, 9.0)


def generate_photo_aesthetics(n: int, size: int = 64, *, seed: int, votes: int = 100,
                              photos=STAND_IN_PHOTOS) -> AestheticsData:
    """``n`` labelled crops of the bundled real photos (module docstring) of ``size`` px with their votes."""
    from domainknowledge.data.bundled import load_photos

    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    rng = np.random.default_rng(seed)
    library = load_photos(tuple(name for name in photos if name not in ("china", "flower")))
    unknown = set(photos) - set(library)
    if unknown:
        raise ValueError(f"unknown bundled photo(s) {sorted(unknown)}; choose from {sorted(library)}")
    properties = sample_photo_properties(n, rng, photos)
    images, offsets = [], []
    for _, row in properties.iterrows():
        photo = library[row["photo"]]
        top, left, side = _crop_box(photo.shape, row)
        crop = Image.fromarray(np.ascontiguousarray(photo[top:top + side, left:left + side]))
        images.append(apply_photographic_properties(np.asarray(crop.resize((size, size), Image.LANCZOS)), row, rng))
        offsets.append(crop_offset(photo.shape, row))
    properties["crop_offset"] = offsets
    score = hidden_photo_score(properties)
    counts = vote_histograms(score, votes, rng)
    mean = (counts * SCORES).sum(axis=1) / counts.sum(axis=1)
    return AestheticsData(np.stack(images), counts, properties, score, mean.astype(np.float64))


def generate_mixed_aesthetics(n: int, size: int = 64, *, seed: int, votes: int = 100,
                              photo_fraction: float = 0.5) -> AestheticsData:
    """``n`` labelled images, a ``photo_fraction`` of them photo crops and the rest scenes, shuffled (seeded).
    ``properties`` holds the union of both property sets (missing ones NaN) and a ``source`` column."""
    if not 0 <= photo_fraction <= 1:
        raise ValueError(f"photo_fraction must lie in [0, 1], got {photo_fraction}")
    n_photos = int(round(photo_fraction * n))
    parts = []
    if n - n_photos:
        parts.append((generate_aesthetics(n - n_photos, size, seed=seed, votes=votes), "scene"))
    if n_photos:
        parts.append((generate_photo_aesthetics(n_photos, size, seed=seed + 7919, votes=votes), "photo"))
    order = np.random.default_rng(seed + 1).permutation(n)
    properties = pd.concat([data.properties.assign(source=source) for data, source in parts], ignore_index=True)
    join = lambda field: np.concatenate([getattr(data, field) for data, _ in parts])[order]  # noqa: E731
    return AestheticsData(join("images"), join("votes"), properties.iloc[order].reset_index(drop=True),
                          join("hidden_score"), join("mean_score"))
