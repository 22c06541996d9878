"""Captions for every synthetic world of the book: the image-text pairs of the aligned image-text model.

The aligned model (:mod:`domainknowledge.models.encoders.aligned`) learns small heads between two frozen
networks with real weights from pairs of images and captions. No caption corpus can be had offline, so the
pairs come from the book's own generators, whose factors are known. :func:`captioned_set` draws ``n``
images of one world and words a caption for each from its factor table, the way people describe photos:
partly (each factor is mentioned with its own probability), with synonyms and several templates.

==================  ===================================================  ==========================================
world               images (generator)                                   what its captions may mention
==================  ===================================================  ==========================================
``captioned``       one object on a background (:mod:`.captioned_world`)  shape, colour, size, texture, pose,
                                                                         background, exposure, blur, noise
``cars``            rendered cars, half on solid backgrounds (Ch. 7's    body type, paint colour, backdrop colour or
                    analysis set), half photo-like (:mod:`.cars`)        street scene, view, camera height, sun
``vehicles``        military vehicles (:mod:`.vehicles`), in English     vehicle type, axles, maker, antenna,
                                                                         drawing, terrain, paint
``aesthetics``      landscape scenes (:mod:`.aesthetics`)                subject, exposure, blur, grain, contrast,
                                                                         colourfulness, tilt, subject position
``products``        Fashion-MNIST items on scenes (:mod:`.products`)     item, colour
==================  ===================================================  ==========================================

The aesthetic captions never use a word of Kobs' (2023, Sec. 12.2) 39 prompt adjectives
(:data:`~domainknowledge.principles.aesthetic_prompts.POSITIVE_ADJECTIVES` and ``NEGATIVE_ADJECTIVES``), so a
prompt with those adjectives tests transfer through language, not a memorised caption word; a test checks it.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["WORLDS", "CaptionedSet", "basic_colour_names", "captioned_set", "world_seed", "zero_shot_factors"]

WORLDS = ("captioned", "cars", "vehicles", "aesthetics", "products")


@dataclass(frozen=True)
class CaptionedSet:
    """``images`` ``uint8 (N, S, S, 3)``, ``captions`` (N strings) and ``factors`` (one row per image, the
    world's named factors as strings, the ones a fitness check can classify) of one ``world``."""

    world: str
    images: np.ndarray
    captions: list[str]
    factors: pd.DataFrame

    def __len__(self) -> int:
        return len(self.captions)


def world_seed(world: str, split: str, seed: int) -> int:
    """An independent 32-bit seed per (world, split, seed): splits never share a draw."""
    return int.from_bytes(hashlib.sha256(f"{world}|{split}|{seed}".encode()).digest()[:4], "little")


# ------------------------------------------------------------------------------------------------ wording
def _pick(options, rng):
    return options[rng.integers(len(options))] if isinstance(options, tuple) else options


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _mentioned(probabilities: dict[str, float], rng) -> set[str]:
    return {factor for factor, p in probabilities.items() if rng.random() < p}


_COLOUR_WORDS = {"red": ("red", "crimson"), "orange": ("orange",), "yellow": ("yellow", "golden"),
                 "green": ("green",), "turquoise": ("turquoise", "teal"), "blue": ("blue",),
                 "purple": ("purple", "violet"), "pink": ("pink", "magenta"), "brown": ("brown",),
                 "black": ("black",), "grey": ("grey", "silver"), "white": ("white",)}
_HUE_NAMES = ((0.04, "red"), (0.11, "orange"), (0.19, "yellow"), (0.45, "green"), (0.52, "turquoise"),
              (0.71, "blue"), (0.83, "purple"), (0.94, "pink"), (1.01, "red"))


def basic_colour_names(rgb) -> np.ndarray:
    """The basic colour term (one of 12: red, orange, yellow, green, turquoise, blue, purple, pink, brown, black,
    grey, white) of each sRGB colour ``(N, 3)`` in [0, 1], from its hue, saturation and value: ``(N,)`` str."""
    rgb = np.clip(np.asarray(rgb, dtype=float).reshape(-1, 3), 0, 1)
    names = []
    for r, g, b in rgb:
        hue, saturation, value = colorsys.rgb_to_hsv(r, g, b)
        if value < 0.2:
            names.append("black")
        elif saturation < 0.22:
            names.append("white" if value > 0.82 else "grey")
        else:
            name = next(label for bound, label in _HUE_NAMES if hue < bound)
            names.append("brown" if name in ("red", "orange") and value < 0.55 else name)
    return np.asarray(names, dtype=object).astype(str)


# ------------------------------------------------------------------------------------------------- worlds
def _captioned(n, rng_seed, split, image_size):
    from domainknowledge.data.synthetic.captioned_world import FACTORS, generate_captioned_world

    world = generate_captioned_world(n, seed=rng_seed, split=split, image_size=image_size)
    return world.images, list(world.captions), world.factors[list(FACTORS)].astype(str)


_CAR_BODIES = {"sedan": ("sedan", "saloon car", "four-door car"), "hatchback": ("hatchback", "compact hatchback"),
               "suv": ("SUV", "sport utility vehicle", "off-roader"), "pickup": ("pickup truck", "pickup"),
               "van": ("van", "minivan", "people carrier"), "sports": ("sports car", "coupe", "roadster")}
_CAR_NOUNS = ("car", "vehicle", "automobile")


def _car_view(rotation: float) -> str:
    """The car's yaw (0 = side, front to the right; 90 = front) as a phrase."""
    angle = rotation % 180
    if angle < 22.5 or angle >= 157.5:
        return "seen from the side"
    if 67.5 <= angle < 112.5:
        return "seen from the front" if (rotation % 360) < 180 else "seen from behind"
    return "seen at an angle"


def _cars(n, rng_seed, split, image_size):
    from domainknowledge.data.synthetic import cars

    half = n // 2
    analysis = cars.make_analysis_set(n - half, seed=rng_seed, image_size=image_size)
    parts = [analysis]
    if half:
        parts.append(cars.make_training_set(half, seed=rng_seed + 1, image_size=image_size))
    images = np.concatenate([part.images for part in parts])
    properties = pd.concat([part.properties for part in parts], ignore_index=True)
    paint = basic_colour_names(cars.hsv_factors_to_rgb(properties["car_hue"], properties["car_saturation"],
                                                       properties["car_value"]))
    solid = properties["background_hue"].notna().to_numpy()
    backdrop = np.full(len(properties), "street", dtype=object)
    if solid.any():
        rows = properties[solid]
        backdrop[solid] = basic_colour_names(cars.hsv_factors_to_rgb(rows["background_hue"],
                                                                     rows["background_saturation"],
                                                                     rows["background_value"]))
    rng = np.random.default_rng(rng_seed)
    captions = []
    probabilities = {"body": 0.85, "colour": 0.7, "backdrop": 0.5, "view": 0.4, "camera": 0.3, "sun": 0.3}
    for i, row in enumerate(properties.to_dict("records")):
        said = _mentioned(probabilities, rng)
        noun = _pick(_CAR_BODIES[row["model"]], rng) if "body" in said else _pick(_CAR_NOUNS, rng)
        if "colour" in said:
            noun = f"{_pick(_COLOUR_WORDS[paint[i]], rng)} {noun}"
        text = f"{_pick(('a photo of', 'a picture of', 'a rendering of'), rng)} {_article(noun)} {noun}"
        if "view" in said:
            text += " " + _car_view(row["rotation"])
        if "backdrop" in said:
            text += (" parked in a street" if backdrop[i] == "street"
                     else f" in front of {_article(backdrop[i])} {_pick(_COLOUR_WORDS[backdrop[i]], rng)} wall")
        if "camera" in said:
            text += ", " + ("shot from above" if row["camera_height"] > 2.2 else
                            "shot from low down" if row["camera_height"] < 0.9 else "shot at eye level")
        if "sun" in said:
            text += ", " + ("in low evening sun" if row["sun_elevation"] < 30 else "in bright midday sun")
        captions.append(text + ".")
    factors = pd.DataFrame({"body type": properties["model"].astype(str), "paint": paint,
                            "backdrop": backdrop.astype(str)})
    return images, captions, factors


_VEHICLE_BODIES = {"truck": ("truck", "lorry", "cargo truck"), "tank_truck": ("tank truck", "fuel tanker"),
                   "communication": ("communication vehicle", "signals truck"),
                   "radar": ("radar vehicle", "radar truck"),
                   "sam": ("surface-to-air missile launcher", "missile launcher"),
                   "crane": ("crane truck", "mobile crane"), "maintenance": ("maintenance vehicle", "repair truck"),
                   "battle_tank": ("main battle tank", "tank"), "trailer": ("trailer",),
                   "helicopter": ("helicopter",), "aircraft": ("aircraft", "aeroplane", "jet")}
_VEHICLE_TERRAIN = {"sky-grass": ("on grass", "in a meadow"), "snow": ("in the snow", "on snowy ground"),
                    "desert": ("in the desert", "on sand"), "forest": ("by a forest", "among trees"),
                    "plain": ("on a plain", "on open ground")}
_VEHICLE_PAINT = {"olive": ("olive",), "green": ("green", "dark green"), "sand": ("sand-coloured", "tan"),
                  "grey": ("grey",), "white": ("white",), "camouflage": ("camouflaged", "camouflage-painted")}
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def _vehicles(n, rng_seed, split, image_size):
    from domainknowledge.data.synthetic.vehicles import generate_vehicle_world

    world = generate_vehicle_world(n, image_size=image_size, seed=rng_seed)
    rng = np.random.default_rng(rng_seed)
    probabilities = {"body": 0.85, "axles": 0.5, "maker": 0.5, "paint": 0.5, "terrain": 0.5, "antenna": 0.6}
    captions = []
    for row in world.factors.to_dict("records"):
        said = _mentioned(probabilities, rng)
        noun = _pick(_VEHICLE_BODIES[row["body"]], rng) if "body" in said else _pick(("vehicle", "military vehicle"), rng)
        if "axles" in said and row["axles"]:
            noun = f"{_NUMBERS[row['axles']]}-axle {noun}"
        if "paint" in said:
            noun = f"{_pick(_VEHICLE_PAINT[row['colour']], rng)} {noun}"
        kind = "a drawing of" if row["style"] == "drawing" else _pick(("a photo of", "a picture of"), rng)
        text = f"{kind} {_article(noun)} {noun}"
        if "maker" in said and row["manufacturer"]:
            text += f" made by {row['manufacturer'].capitalize() if row['manufacturer'] != 'zil' else 'ZiL'}"
        if "antenna" in said and row["antenna"]:
            text += " with " + ("an antenna" if row["antenna"] == 1 else "two antennas")
        if "terrain" in said:
            text += " " + _pick(_VEHICLE_TERRAIN[row["background"]], rng)
        captions.append(text + ".")
    factors = pd.DataFrame({"body type": world.factors["body"].astype(str),
                            "terrain": world.factors["background"].astype(str)})
    return world.images, captions, factors


def _level(value: float, low: float, high: float) -> int:
    return -1 if value < low else (1 if value > high else 0)


def _aesthetics(n, rng_seed, split, image_size):
    from domainknowledge.data.synthetic.aesthetics import generate_aesthetics

    data = generate_aesthetics(n, image_size, seed=rng_seed, votes=1)
    p = data.properties
    rng = np.random.default_rng(rng_seed)
    words = {"exposure": {-1: ("dark", "underexposed", "dim"), 1: ("overexposed", "washed-out", "bright")},
             "blur": {1: ("blurry", "out-of-focus", "soft-focus"), -1: ("sharp", "crisp")},
             "noise": {1: ("grainy", "noisy"), -1: ("clean", "noise-free")},
             "contrast": {-1: ("flat", "low-contrast"), 1: ("high-contrast", "contrasty")},
             "saturation": {-1: ("muted", "washed-out colour", "desaturated"), 1: ("vivid", "colourful", "saturated")}}
    subjects = {"sun": ("the sun", "a sunset"), "tree": ("a tree", "a lone tree"), "house": ("a house", "a cottage")}
    probabilities = {"subject": 0.85, "exposure": 0.6, "blur": 0.6, "noise": 0.6, "contrast": 0.4,
                     "saturation": 0.4, "tilt": 0.4, "position": 0.3}
    levels = {"exposure": [_level(v, -0.5, 0.5) for v in p["exposure"]],
              "blur": [1 if v > 0.3 else (-1 if v < 0.05 else 0) for v in p["blur"]],
              "noise": [1 if v > 0.3 else (-1 if v < 0.05 else 0) for v in p["noise"]],
              "contrast": [_level(v, -0.3, 0.3) for v in p["contrast"]],
              "saturation": [_level(v, -0.3, 0.3) for v in p["saturation"]]}
    captions = []
    for i, row in enumerate(p.to_dict("records")):
        said = _mentioned(probabilities, rng)
        style = [_pick(words[f][levels[f][i]], rng) for f in ("exposure", "blur", "noise", "contrast", "saturation")
                 if f in said and levels[f][i] in words[f]]
        head = ", ".join(style) + (" " if style else "") + _pick(("photo", "picture", "landscape photo"), rng)
        text = f"{_article(head)} {head} of " + (_pick(subjects[row["subject"]], rng) if "subject" in said
                                                 else _pick(("a landscape", "a scene"), rng))
        if "position" in said:
            text += " " + ("on the left" if row["subject_x"] < 0.4 else "on the right" if row["subject_x"] > 0.6
                           else "in the middle")
        if "tilt" in said and abs(row["tilt"]) > 4:
            text += _pick((" with a tilted horizon", ", crooked"), rng)
        captions.append(text + ".")
    factors = pd.DataFrame({"subject": p["subject"].astype(str),
                            **{f: np.asarray(["low", "medium", "high"], dtype=object)[np.add(levels[f], 1)]
                               for f in ("exposure", "blur", "noise")}})
    return data.images, captions, factors


_ITEMS = {"T-shirt/top": ("t-shirt", "top"), "Trouser": ("pair of trousers", "pair of pants"),
          "Pullover": ("pullover", "sweater", "jumper"), "Dress": ("dress",), "Coat": ("coat", "jacket"),
          "Sandal": ("sandal",), "Shirt": ("shirt",), "Sneaker": ("sneaker", "trainer", "running shoe"),
          "Bag": ("bag", "handbag"), "Ankle boot": ("ankle boot", "boot")}


def _products(n, rng_seed, split, image_size):
    from domainknowledge.data.bundled import FASHION_MNIST_CLASSES
    from domainknowledge.data.synthetic.products import make_product_set

    views = 4
    products = make_product_set(max(2, -(-n // views)), views, split="train" if split == "train" else "test",
                                seed=rng_seed % 100_000, image_size=image_size, random_backgrounds=100)
    images, masks = products.images[:n], products.masks[:n]
    mean = np.stack([image[mask].mean(axis=0) if mask.any() else image.reshape(-1, 3).mean(axis=0)
                     for image, mask in zip(images, masks)]) / 255.0
    colour = basic_colour_names(mean)
    items = np.asarray(FASHION_MNIST_CLASSES, dtype=object)[products.categories[:n]].astype(str)
    rng = np.random.default_rng(rng_seed)
    captions = []
    for item, name in zip(items, colour):
        said = _mentioned({"item": 0.9, "colour": 0.7}, rng)
        noun = _pick(_ITEMS[item], rng) if "item" in said else _pick(("product", "piece of clothing"), rng)
        if "colour" in said:
            noun = f"{_pick(_COLOUR_WORDS[name], rng)} {noun}"
        captions.append(f"{_pick(('a photo of', 'a product photo of', 'a picture of'), rng)} {_article(noun)} {noun}.")
    return images, captions, pd.DataFrame({"item": items, "colour": colour})


def zero_shot_factors(world: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """The factors of ``world`` that a fitness check classifies zero-shot: factor -> ``(values, phrases,
    templates)``, where ``values`` are the factor table's strings (rows with another value, e.g. a medium
    blur, are left out), ``phrases[i]`` words ``values[i]`` and each template holds one ``{}``."""
    from domainknowledge.data.bundled import FASHION_MNIST_CLASSES
    from domainknowledge.data.synthetic.captioned_world import FACTORS, zero_shot_prompts

    if world == "captioned":
        return {factor: (values, *zero_shot_prompts(factor)) for factor, values in FACTORS.items()}
    colours = tuple(_COLOUR_WORDS)
    table = {
        "cars": {"body type": (tuple(_CAR_BODIES), tuple(v[0] for v in _CAR_BODIES.values()),
                               ("a photo of a {}.", "a picture of a {}.")),
                 "paint": (colours, colours, ("a photo of a {} car.", "a picture of a {} vehicle."))},
        "vehicles": {"body type": (tuple(_VEHICLE_BODIES), tuple(v[0] for v in _VEHICLE_BODIES.values()),
                                   ("a photo of a {}.", "a picture of a {}."))},
        "aesthetics": {"exposure": (("low", "high"), ("underexposed", "overexposed"), ("an {} photo.", "a {} picture.")),
                       "blur": (("low", "high"), ("sharp", "blurry"), ("a {} photo.", "a {} picture.")),
                       "noise": (("low", "high"), ("clean", "grainy"), ("a {} photo.", "a {} picture.")),
                       "subject": (("sun", "tree", "house"), ("the sun", "a tree", "a house"),
                                   ("a photo of {}.", "a picture of {}."))},
        "products": {"item": (tuple(FASHION_MNIST_CLASSES), tuple(v[0] for v in _ITEMS.values()),
                              ("a photo of a {}.", "a product photo of a {}."))},
    }
    if world not in table:
        raise ValueError(f"unknown world {world!r}; the worlds are {', '.join(WORLDS)}")
    return table[world]


_GENERATORS = {"captioned": _captioned, "cars": _cars, "vehicles": _vehicles, "aesthetics": _aesthetics,
               "products": _products}


def captioned_set(world: str, n: int, *, seed: int = 0, split: str = "train", image_size: int = 64) -> CaptionedSet:
    """``n`` captioned images of ``world`` (one of :data:`WORLDS`) at ``image_size`` px; the same arguments
    always give the same set, and different ``split`` names never share a draw."""
    if world not in _GENERATORS:
        raise ValueError(f"unknown world {world!r}; the worlds are {', '.join(WORLDS)}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    images, captions, factors = _GENERATORS[world](int(n), world_seed(world, split, seed), split, image_size)
    return CaptionedSet(world, images, captions, factors.reset_index(drop=True))
