"""A seeded world of captioned images: the stand-in for web image-text pairs on which CLIP is trained.

No CLIP weights and no image-caption corpus can be had offline, so the stand-in CLIP of the encoder registry
(:mod:`domainknowledge.models.encoders`) is trained here on this world. Every image shows **one object** on a
background, photographed in some style; the generating factors (all drawn independently and uniformly) are

============  ==========================================================================================
factor        values
============  ==========================================================================================
shape         circle, square, triangle, star, cross, ring
colour        red, green, blue, yellow, purple, orange (each RGB jittered by up to +-20 per channel)
size          small, medium, large (radius 0.14, 0.22, 0.32 of the side, times U(0.9, 1.1))
texture       plain, striped, dotted, checkered (a pattern in the object's own frame, half-brightness)
pose          upright (0 +- 6 deg), tilted (+-25..65 deg), upside down (180 +- 6 deg)
background    light (grey ~225), dark (grey ~35), grass (smoothed green noise), sky (blue vertical gradient)
exposure      underexposed (EV -1.6 +- 0.3), well exposed (EV 0 +- 0.15), overexposed (EV +1.3 +- 0.3)
blur          sharp (none), blurry (Gaussian, sigma U(1.0, 1.6) px at 32 px, scaled with the side)
noise         clean (sigma 0.004), grainy (Gaussian, sigma U(0.07, 0.11) of the full range)
============  ==========================================================================================

Pose is partly invisible by design: a circle or a ring looks the same in every pose, a square or a cross the
same upright and upside down (only the triangle and the star show all three poses), so at most 2/3 of the
pose labels can be read from the pixels. The object's centre lies uniformly in the middle 40 % of each axis. The scene is drawn at twice the size in
linear light and box-downsampled (anti-aliasing); exposure multiplies linear light by ``2 ** EV``; blur, then
noise, are applied in display space (gamma 2.2); the result is clipped and rounded to ``uint8``.

**Captions** describe an image the way people do: partly. Each factor is mentioned with its own probability
(:data:`MENTION_PROBABILITY`; a factor at its unremarkable default, "well exposed", "sharp", "clean",
"plain", "upright", "medium", is mentioned half as often), each mentioned value is worded by a synonym drawn
from :data:`SYNONYMS`, and one of several sentence templates puts them together, e.g. "a blurry photo of a
small red striped circle on grass." An unmentioned shape becomes "object" or "shape". Which factors a caption
mentions is kept in the factor table (``mentions_<factor>`` columns), so a reader can ask what the captions
leave out.

**What it preserves** of real image-text data: captions name content (shape, colour) more often than
photographic style, use synonyms and varied templates, and omit the obvious; several factors compete for
the same pixels. **What it cannot**: the open vocabulary, the long tail of concepts and the compositional
scenes of web data. A model trained on it knows only the words of :data:`SYNONYMS` and the templates.

:func:`zero_shot_prompts` gives, per factor, the canonical class phrases and prompt templates that the
chapters use for zero-shot classification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = ["DEFAULTS", "FACTORS", "MENTION_PROBABILITY", "SYNONYMS", "CaptionedWorld", "caption_for",
           "generate_captioned_world", "zero_shot_prompts"]

FACTORS: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle", "star", "cross", "ring"),
    "colour": ("red", "green", "blue", "yellow", "purple", "orange"),
    "size": ("small", "medium", "large"),
    "texture": ("plain", "striped", "dotted", "checkered"),
    "pose": ("upright", "tilted", "upside down"),
    "background": ("light", "dark", "grass", "sky"),
    "exposure": ("underexposed", "well exposed", "overexposed"),
    "blur": ("sharp", "blurry"),
    "noise": ("clean", "grainy"),
}
DEFAULTS = {"size": "medium", "texture": "plain", "pose": "upright", "exposure": "well exposed",
            "blur": "sharp", "noise": "clean"}
MENTION_PROBABILITY = {"shape": 0.85, "colour": 0.8, "size": 0.5, "texture": 0.55, "pose": 0.45,
                       "background": 0.55, "exposure": 0.5, "blur": 0.5, "noise": 0.5}

# How a caption words each value; the first entry is the canonical phrase used by the zero-shot prompts.
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "shape": {"circle": ("circle", "disc", "round shape"), "square": ("square", "box"),
              "triangle": ("triangle",), "star": ("star",), "cross": ("cross", "plus sign"),
              "ring": ("ring", "hoop", "donut")},
    "colour": {"red": ("red", "crimson"), "green": ("green",), "blue": ("blue",), "yellow": ("yellow", "golden"),
               "purple": ("purple", "violet"), "orange": ("orange",)},
    "size": {"small": ("small", "tiny", "little"), "medium": ("medium-sized", "mid-sized"),
             "large": ("large", "big", "huge")},
    "texture": {"plain": ("plain", "solid", "uniform"), "striped": ("striped", "stripy"),
                "dotted": ("dotted", "spotted", "polka-dot"), "checkered": ("checkered", "chequered")},
    "pose": {"upright": ("standing upright", "upright"), "tilted": ("tilted", "at an angle", "rotated"),
             "upside down": ("upside down", "flipped")},
    "background": {"light": ("on a light background", "on white"), "dark": ("on a dark background", "on black"),
                   "grass": ("on grass", "on a lawn"), "sky": ("against the sky", "against a blue sky")},
    "exposure": {"underexposed": ("underexposed", "dim"), "well exposed": ("well exposed", "correctly exposed"),
                 "overexposed": ("overexposed", "washed-out")},
    "blur": {"sharp": ("sharp", "crisp", "in-focus"), "blurry": ("blurry", "out-of-focus")},
    "noise": {"clean": ("clean", "noise-free"), "grainy": ("grainy", "noisy")},
}

_PALETTE = {"red": (210, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
            "purple": (140, 50, 180), "orange": (245, 140, 30)}
_RADIUS = {"small": 0.14, "medium": 0.22, "large": 0.32}
_PHOTO_NOUNS = ("photo", "picture", "image", "snapshot")
_GAMMA = 2.2

# Zero-shot prompts: (templates, phrase of each value); "{}" takes the canonical phrase.
_PROMPT_TEMPLATES = {
    "shape": ("a photo of a {}.", "a picture of a {}."),
    "colour": ("a photo of a {} object.", "a picture of a {} shape."),
    "size": ("a photo of a {} object.", "a picture of a {} shape."),
    "texture": ("a photo of a {} object.", "a picture of a {} shape."),
    "pose": ("a photo of an object {}.", "a picture of a shape {}."),
    "background": ("a photo of an object {}.", "a picture of a shape {}."),
    "exposure": ("a {} photo of an object.", "an {} picture of a shape."),
    "blur": ("a {} photo of an object.", "a {} picture of a shape."),
    "noise": ("a {} photo of an object.", "a {} picture of a shape."),
}


def zero_shot_prompts(factor: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(class_phrases, templates)`` for zero-shot classification of ``factor``.

    ``class_phrases[i]`` is the canonical wording of ``FACTORS[factor][i]``; each template holds one ``{}``.
    Use with :func:`domainknowledge.models.encoders.zero_shot_classifier`.
    """
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}; the factors are {', '.join(FACTORS)}")
    phrases = tuple(SYNONYMS[factor][value][0] for value in FACTORS[factor])
    return phrases, _PROMPT_TEMPLATES[factor]


@dataclass
class CaptionedWorld:
    """Images, their captions and the factors that generated them.

    ``images``: ``uint8`` array ``(N, S, S, 3)``; ``captions``: ``N`` strings; ``factors``: a DataFrame with one
    row per image, a column per factor of :data:`FACTORS` (the value's name), the continuous parameters
    (``x``, ``y``, ``radius``, ``angle``, ``exposure_ev``, ``blur_sigma``, ``noise_sigma``) and booleans
    ``mentions_<factor>``.
    """

    images: np.ndarray
    captions: list[str]
    factors: pd.DataFrame
    seed: int
    split: str

    def __len__(self) -> int:
        return len(self.captions)

    def labels(self, factor: str) -> np.ndarray:
        """Class indices ``(N,)`` of ``factor`` in the order of ``FACTORS[factor]``."""
        if factor not in FACTORS:
            raise ValueError(f"unknown factor {factor!r}; the factors are {', '.join(FACTORS)}")
        index = {value: i for i, value in enumerate(FACTORS[factor])}
        return self.factors[factor].map(index).to_numpy(np.int64)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_for(values: dict[str, str], mentioned: set[str], rng: np.random.Generator) -> str:
    """Word one caption for the factor ``values`` of an image, mentioning only the factors in ``mentioned``."""
    def say(factor):
        options = SYNONYMS[factor][values[factor]]
        return options[rng.integers(len(options))]

    style = [say(f) for f in ("exposure", "blur", "noise") if f in mentioned]
    adjectives = [say(f) for f in ("size", "colour", "texture") if f in mentioned]
    noun = say("shape") if "shape" in mentioned else ("object", "shape")[rng.integers(2)]
    phrase = " ".join(adjectives + [noun])
    phrase = f"{_article(phrase)} {phrase}"
    for factor in ("pose", "background"):
        if factor in mentioned:
            phrase += " " + say(factor)
    photo = _PHOTO_NOUNS[rng.integers(len(_PHOTO_NOUNS))]
    template = rng.integers(3)
    if template == 0 or (template == 2 and not style):
        head = ", ".join(style) + (" " if style else "") + photo
        return f"{_article(head)} {head} of {phrase}."
    if template == 1:
        tail = f", {' and '.join(style)}" if style else ""
        return f"{phrase}{tail}."
    return f"{phrase}, in {_article(style[0])} {', '.join(style)} {photo}."


def _sample_factors(n: int, rng: np.random.Generator) -> pd.DataFrame:
    table = {factor: np.asarray(values, dtype=object)[rng.integers(len(values), size=n)]
             for factor, values in FACTORS.items()}
    frame = pd.DataFrame(table)
    frame["x"] = rng.uniform(0.3, 0.7, n)
    frame["y"] = rng.uniform(0.3, 0.7, n)
    frame["radius"] = frame["size"].map(_RADIUS).to_numpy(float) * rng.uniform(0.9, 1.1, n)
    tilt = rng.uniform(25, 65, n) * rng.choice([-1.0, 1.0], n)
    base = {"upright": 0.0, "upside down": 180.0}
    frame["angle"] = np.where(frame["pose"] == "tilted", tilt,
                              frame["pose"].map(base).fillna(0.0).to_numpy(float) + rng.uniform(-6, 6, n))
    ev = {"underexposed": (-1.6, 0.3), "well exposed": (0.0, 0.15), "overexposed": (1.3, 0.3)}
    centre = frame["exposure"].map(lambda v: ev[v][0]).to_numpy(float)
    spread = frame["exposure"].map(lambda v: ev[v][1]).to_numpy(float)
    frame["exposure_ev"] = centre + spread * rng.uniform(-1, 1, n)
    frame["blur_sigma"] = np.where(frame["blur"] == "blurry", rng.uniform(1.0, 1.6, n), 0.0)
    frame["noise_sigma"] = np.where(frame["noise"] == "grainy", rng.uniform(0.07, 0.11, n), 0.004)
    frame["colour_jitter"] = list(rng.integers(-20, 21, size=(n, 3)))
    frame["background_seed"] = rng.integers(0, 2**31 - 1, n)
    return frame


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in the object's frame (unit radius, ``v`` up)."""
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= 1.0
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangle":
        return (v >= -0.55) & (v <= 1.0 - 1.75 * np.abs(u))
    if shape == "star":
        theta = np.arctan2(u, v)
        return r <= 0.42 + 0.58 * ((1 + np.cos(5 * theta)) / 2) ** 2
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """1 where the object shows its colour, 0.45 where the pattern darkens it."""
    if texture == "plain":
        return np.ones_like(u)
    if texture == "striped":
        dark = np.floor((u + 2) / 0.4) % 2 == 0
    elif texture == "dotted":
        du, dv = (u + 2) % 0.55 - 0.275, (v + 2) % 0.55 - 0.275
        dark = np.hypot(du, dv) <= 0.15
    elif texture == "checkered":
        dark = (np.floor((u + 2) / 0.45) + np.floor((v + 2) / 0.45)) % 2 == 0
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return np.where(dark, 0.45, 1.0)


def _background(kind: str, size: int, seed: int) -> np.ndarray:
    """Background in display space, float ``(size, size, 3)`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    if kind == "light":
        return np.full((size, size, 3), rng.uniform(0.82, 0.94)) + rng.uniform(-0.03, 0.03, 3)
    if kind == "dark":
        return np.full((size, size, 3), rng.uniform(0.1, 0.18)) + rng.uniform(-0.02, 0.02, 3)
    if kind == "grass":
        blades = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), sigma=(size / 16, size / 64))
        blades = blades / (np.abs(blades).max() + 1e-9)
        base = np.array([0.25, 0.5, 0.18]) * rng.uniform(0.85, 1.15)
        return base[None, None] * (1 + 0.35 * blades[..., None])
    if kind == "sky":
        t = np.linspace(0, 1, size)[:, None, None]
        top, bottom = np.array([0.3, 0.55, 0.9]), np.array([0.72, 0.83, 0.96])
        return np.broadcast_to(top + (bottom - top) * t, (size, size, 3)) * rng.uniform(0.92, 1.05)
    raise ValueError(f"unknown background {kind!r}")


def _render(row, size: int) -> np.ndarray:
    big = 2 * size
    grid = (np.arange(big) + 0.5) / big
    px, py = np.meshgrid(grid, grid)                      # py grows downwards
    dx, dy = (px - row.x) / row.radius, (row.y - py) / row.radius
    angle = np.deg2rad(row.angle)
    u = np.cos(angle) * dx + np.sin(angle) * dy            # rotate the image frame into the object's frame
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    inside = _shape_mask(row.shape, u, v)
    colour = np.clip(np.asarray(_PALETTE[row.colour]) + row.colour_jitter, 0, 255) / 255.0
    shade = _texture(row.texture, u, v)
    linear = np.clip(_background(row.background, big, int(row.background_seed)), 0, 1) ** _GAMMA
    obj = (colour[None, None] ** _GAMMA) * (shade[..., None] ** _GAMMA)
    linear = np.where(inside[..., None], obj, linear)
    linear = linear.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    linear = linear * 2.0 ** row.exposure_ev
    display = np.clip(linear, 0, 1) ** (1 / _GAMMA)
    if row.blur_sigma > 0:
        sigma = row.blur_sigma * size / 32
        display = ndimage.gaussian_filter(display, sigma=(sigma, sigma, 0))
    return display


def generate_captioned_world(n: int, *, seed: int = 0, split: str = "train", image_size: int = 32,
                             mention_probability: dict[str, float] | None = None) -> CaptionedWorld:
    """Draw ``n`` captioned images of the synthetic world (see the module docstring for the generator).

    ``split`` selects an independent random stream (``train``, ``validation``, ``test`` or any name): the same
    ``seed`` and ``split`` always give the same images, captions and factors; different splits never share a
    draw. ``mention_probability`` overrides :data:`MENTION_PROBABILITY` per factor (1.0 everywhere gives full
    descriptions). Returns a :class:`CaptionedWorld` with ``images`` ``uint8 (n, image_size, image_size, 3)``.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be an int of at least 8 px, got {image_size!r}")
    probabilities = dict(MENTION_PROBABILITY)
    for factor, p in (mention_probability or {}).items():
        if factor not in FACTORS or not 0.0 <= p <= 1.0:
            raise ValueError(f"mention_probability must map factors of {list(FACTORS)} to [0, 1], got {factor}: {p}")
        probabilities[factor] = p
    stream = int.from_bytes(split.encode(), "little") % (2**32)
    rng = np.random.default_rng([int(seed), stream])
    factors = _sample_factors(int(n), rng)
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    captions = []
    mentions = {f: np.zeros(n, bool) for f in FACTORS}
    for i, row in enumerate(factors.itertuples(index=False)):
        image = _render(row, image_size)
        image = image + rng.normal(0, row.noise_sigma, image.shape)
        images[i] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        values = {f: getattr(row, f) for f in FACTORS}
        mentioned = set()
        for factor, p in probabilities.items():
            if values[factor] == DEFAULTS.get(factor) and p < 1.0:
                p = p / 2                                   # defaults go unsaid more often (1.0 still says all)
            if rng.random() < p:
                mentioned.add(factor)
                mentions[factor][i] = True
        captions.append(caption_for(values, mentioned, rng))
    for factor, flags in mentions.items():
        factors[f"mentions_{factor}"] = flags
    factors = factors.drop(columns=["colour_jitter", "background_seed"])
    return CaptionedWorld(images=images, captions=captions, factors=factors, seed=int(seed), split=split)
