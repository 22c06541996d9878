"""A seeded world of side-view military vehicles with noisy Norwegian keywords: the stand-in for Bynke's FFI set.

Bynke (2022, Sec. 3.1.1) classifies about 130 000 proprietary images of military vehicles and equipment, each
tagged by hand with Norwegian keywords that are fine-grained ("treakslet", three axle vehicle), domain-specific
("sambandskjøretøy") and inconsistent (the generic "lastebil", truck, is mostly left out; absence means
"maybe"). None of it can be shared, so this module renders a world with the same structure.

**Images** (``image_size`` px, drawn at twice the size and box-downsampled). Every image shows one object of a
``body`` type (:data:`BODIES`, drawn with Zipf-like frequencies): wheeled trucks (plain, tank, crane,
communication box, radar dish, surface-to-air missile launcher, maintenance), a tracked main battle tank, a
trailer, a helicopter or an aircraft. Wheeled vehicles have 2-8 **axles**, visible as wheels, and a
**manufacturer** cabin silhouette (Kamaz: flat cab-over; Ural: bonnet in front of the cab; ZiL: sloped rounded
cab). Optional roof **antennas**. Nuisances: background (sky over grass, snow, desert, forest, or plain),
lighting (exposure), scale and horizontal position (crops at the border), body colour, and a **drawing**
style (black outlines on white paper) for a fraction of the images. **Near-duplicates**: a fraction of the
images are re-renders of an earlier vehicle with slightly jittered nuisances; their keyword sets are drawn
independently, as Bynke's duplicates carry different labels.

**Keywords** (:func:`true_keywords` then :func:`noisy_keywords`): every visible property has a Norwegian
keyword (:data:`KEYWORDS`); each is recorded with its own probability (:data:`RECORD_PROBABILITY`): axle counts
and manufacturers are usually tagged, the generic "lastebil" only with probability 0.2. Junk keywords (dates,
"????", place names) are added from a Zipf-distributed pool, so most of them occur once, like Bynke's 151
single-use keywords. An image whose keywords all go unrecorded is unlabelled (Bynke drops those).

**Label languages** (Table 3.1): :data:`MANUAL_TRANSLATION` (expert English) and :data:`AUTOMATIC_TRANSLATION`
(machine translation with Table 3.1's errors: "tilhenger" -> "supporter", "stridsvogn" -> "trailer",
"sambandspanservogn" -> "community travel", axle counts left untranslated).

What it preserves: fine-grained classes that share most pixels (axle counts), manufacturer cues in a small
part of the image, nuisances that dominate a generic encoder's similarity, Zipf-like label frequencies,
omitted generic labels and near-duplicates with different labels. What it cannot: the real variety of
vehicles, viewpoints and photographs, and the real keyword vocabulary (570 keywords; here about 30 real ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["AUTOMATIC_TRANSLATION", "AXLE_KEYWORDS", "BODIES", "BODY_FREQUENCY", "KEYWORDS", "MANUAL_TRANSLATION",
           "MANUFACTURERS", "RECORD_PROBABILITY", "VehicleWorld", "generate_vehicle_world", "noisy_keywords",
           "render_vehicle", "true_keywords"]

BODIES = ("truck", "tank_truck", "communication", "radar", "sam", "crane", "maintenance", "battle_tank", "trailer",
          "helicopter", "aircraft")
BODY_FREQUENCY = dict(zip(BODIES, (1 / np.arange(1, len(BODIES) + 1) ** 0.8)))
WHEELED = ("truck", "tank_truck", "communication", "radar", "sam", "crane", "maintenance", "trailer")
MANUFACTURERS = ("kamaz", "ural", "zil")
MANUFACTURER_FREQUENCY = (0.5, 0.3, 0.2)
AXLE_FREQUENCY = {2: 0.22, 3: 0.36, 4: 0.2, 5: 0.08, 6: 0.06, 7: 0.04, 8: 0.04}
AXLE_KEYWORDS = {2: "toakslet", 3: "treakslet", 4: "fireakslet", 5: "femakslet", 6: "seksakslet", 7: "syvakslet",
                 8: "åtteakslet"}
BODY_KEYWORDS = {"truck": (), "tank_truck": ("tankbil",), "communication": ("sambandskjøretøy",),
                 "radar": ("radar",), "sam": ("missil bakke-til-luft (SAM)",), "crane": ("kranbil",),
                 "maintenance": ("vedlikeholdskjøretøy",), "battle_tank": ("stridsvogn",),
                 "trailer": ("tilhenger",), "helicopter": ("helikopter",), "aircraft": ("fly",)}
MANUFACTURER_KEYWORDS = {"kamaz": "Kamaz", "ural": "Ural", "zil": "ZiL"}
KEYWORDS = (*AXLE_KEYWORDS.values(), "Kamaz", "Ural", "ZiL", "lastebil", "tankbil", "sambandskjøretøy", "radar",
            "missil bakke-til-luft (SAM)", "kranbil", "vedlikeholdskjøretøy", "stridsvogn", "sambandspanservogn",
            "tilhenger", "helikopter", "fly", "antenne", "tegning", "beltekjøretøy")
# the probability that an annotator records a keyword that is true of the image (Sec. 3.1.1: "truck" is rare)
RECORD_PROBABILITY = {**{k: 0.85 for k in AXLE_KEYWORDS.values()}, "Kamaz": 0.8, "Ural": 0.75, "ZiL": 0.7,
                      "lastebil": 0.2, "tankbil": 0.7, "sambandskjøretøy": 0.8, "radar": 0.8,
                      "missil bakke-til-luft (SAM)": 0.8, "kranbil": 0.6, "vedlikeholdskjøretøy": 0.6,
                      "stridsvogn": 0.85, "sambandspanservogn": 0.7, "tilhenger": 0.7, "helikopter": 0.85,
                      "fly": 0.85, "antenne": 0.6, "tegning": 0.4, "beltekjøretøy": 0.3}
MANUAL_TRANSLATION = {
    "toakslet": "two axle vehicle", "treakslet": "three axle vehicle", "fireakslet": "four axle vehicle",
    "femakslet": "five axle vehicle", "seksakslet": "six axle vehicle", "syvakslet": "seven axle vehicle",
    "åtteakslet": "eight axle vehicle", "Kamaz": "Kamaz", "Ural": "Ural Automotive Plant (UralAZ)",
    "ZiL": "Zavod imeni Likhachyova (ZiL)", "lastebil": "truck", "tankbil": "tank truck",
    "sambandskjøretøy": "communication vehicle", "radar": "radar", "missil bakke-til-luft (SAM)":
    "surface-to-air missile (SAM)", "kranbil": "crane truck", "vedlikeholdskjøretøy": "maintenance vehicle",
    "stridsvogn": "main battle tank", "sambandspanservogn": "armoured communication vehicle",
    "tilhenger": "trailer", "helikopter": "helicopter", "fly": "aircraft", "antenne": "antenna",
    "tegning": "drawing", "beltekjøretøy": "tracked vehicle"}
# Table 3.1's machine translation, errors included; keywords the table does not list get plausible ones
AUTOMATIC_TRANSLATION = {
    **{k: k for k in AXLE_KEYWORDS.values()}, "Kamaz": "Kamaz", "Ural": "Ural", "ZiL": "ZiL", "lastebil": "truck",
    "tankbil": "tank car", "sambandskjøretøy": "communication vehicle", "radar": "radar",
    "missil bakke-til-luft (SAM)": "missil ground-to-air (SAM)", "kranbil": "crane car",
    "vedlikeholdskjøretøy": "maintenance vehicle", "stridsvogn": "trailer", "sambandspanservogn": "community travel",
    "tilhenger": "supporter", "helikopter": "helicopter", "fly": "fly", "antenne": "antenna",
    "tegning": "drawing", "beltekjøretøy": "belt vehicle"}
JUNK_POOL = 400
BACKGROUNDS = ("sky-grass", "snow", "desert", "forest", "plain")
PALETTE = {"olive": (85, 95, 55), "green": (60, 80, 50), "sand": (170, 150, 100), "grey": (110, 112, 110),
           "white": (215, 215, 210), "camouflage": (70, 85, 45)}


def _zipf_choice(rng, n_items: int, exponent: float, size: int) -> np.ndarray:
    p = 1 / np.arange(1, n_items + 1) ** exponent
    return rng.choice(n_items, size=size, p=p / p.sum())


def _draw_scene(factors: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one vehicle: ``uint8 (size, size, 3)``. ``factors`` as in :func:`generate_vehicle_world`; the
    scene's own details (tree positions, paint tint) follow ``factors["scene_seed"]``, pixel noise ``rng``."""
    from PIL import Image, ImageDraw

    scene = np.random.default_rng(int(factors.get("scene_seed", 0)))

    s = 2 * size
    drawing = factors["style"] == "drawing"
    background = factors["background"]
    image = Image.new("RGB", (s, s), (245, 245, 240) if drawing else (200, 200, 200))
    draw = ImageDraw.Draw(image)
    ground_y = int(s * (0.62 + 0.08 * factors["ground"]))
    if not drawing:
        sky = {"sky-grass": (140, 175, 215), "snow": (200, 205, 215), "desert": (190, 200, 220),
               "forest": (120, 150, 120), "plain": (160, 160, 160)}[background]
        ground = {"sky-grass": (80, 120, 60), "snow": (235, 238, 240), "desert": (200, 170, 120),
                  "forest": (50, 80, 45), "plain": (160, 160, 160)}[background]
        draw.rectangle([0, 0, s, ground_y], fill=sky)
        draw.rectangle([0, ground_y, s, s], fill=ground)
        if background == "forest":
            for x in np.linspace(0, s, 7)[:-1] + scene.uniform(0, s / 7):
                draw.polygon([(x, ground_y - s * 0.35), (x - s * 0.07, ground_y), (x + s * 0.07, ground_y)],
                             fill=(35, 65, 35))
    colour = (255, 255, 255) if drawing else tuple(int(c) for c in np.clip(
        np.array(PALETTE[factors["colour"]]) * scene.uniform(0.9, 1.1, 3), 0, 255))
    outline = (0, 0, 0) if drawing else None
    dark = (20, 20, 20)
    width = max(1, s // 64)
    scale = factors["scale"]
    length = s * 0.8 * scale
    x0 = s * factors["position"] - length / 2
    body = factors["body"]

    def box(x_a, y_a, x_b, y_b, fill=colour):
        draw.rectangle([x0 + x_a * length, ground_y - y_b * length, x0 + x_b * length, ground_y - y_a * length],
                       fill=fill, outline=outline, width=width)

    def poly(points, fill=colour):
        draw.polygon([(x0 + px * length, ground_y - py * length) for px, py in points], fill=fill,
                     outline=outline)

    wheel_r = 0.055
    if body in WHEELED:
        axles = factors["axles"]
        cab = body != "trailer"
        start = 0.28 if cab else 0.05
        box(start, 0.07, 1.0, 0.12)                                   # chassis
        xs = np.linspace(0.12 if cab else 0.12, 0.92, axles) if axles > 1 else np.array([0.5])
        if cab:
            maker = factors["manufacturer"]
            if maker == "kamaz":                                       # flat-front cab-over
                box(0.0, 0.07, 0.26, 0.36)
                box(0.03, 0.24, 0.2, 0.33, fill=(150, 190, 220) if not drawing else (255, 255, 255))
            elif maker == "ural":                                      # bonnet in front of the cab
                box(0.0, 0.07, 0.12, 0.2)
                box(0.1, 0.07, 0.27, 0.36)
                box(0.14, 0.24, 0.24, 0.33, fill=(150, 190, 220) if not drawing else (255, 255, 255))
            else:                                                      # ZiL: sloped, rounded cab
                poly([(0.0, 0.07), (0.0, 0.2), (0.12, 0.34), (0.27, 0.34), (0.27, 0.07)])
                poly([(0.05, 0.22), (0.13, 0.31), (0.22, 0.31), (0.22, 0.22)],
                     fill=(150, 190, 220) if not drawing else (255, 255, 255))
        if body in ("truck", "maintenance"):
            box(0.3, 0.12, 1.0, 0.34 if body == "truck" else 0.38)
            if body == "maintenance":
                box(0.55, 0.38, 0.75, 0.45)
        elif body == "tank_truck":
            draw.rounded_rectangle([x0 + 0.3 * length, ground_y - 0.34 * length, x0 + 1.0 * length,
                                    ground_y - 0.12 * length], radius=0.1 * length, fill=colour, outline=outline,
                                   width=width)
        elif body == "communication":
            box(0.3, 0.12, 1.0, 0.4)
        elif body == "radar":
            box(0.35, 0.12, 0.9, 0.25)
            box(0.6, 0.25, 0.64, 0.42)
            draw.ellipse([x0 + 0.48 * length, ground_y - 0.62 * length, x0 + 0.78 * length,
                          ground_y - 0.4 * length], fill=colour, outline=outline or dark, width=width)
        elif body == "sam":
            box(0.3, 0.12, 1.0, 0.18)
            for k in range(2):
                poly([(0.35, 0.2 + 0.07 * k), (0.95, 0.38 + 0.07 * k), (0.95, 0.43 + 0.07 * k),
                      (0.35, 0.25 + 0.07 * k)], fill=(230, 230, 225) if not drawing else (255, 255, 255))
        elif body == "crane":
            box(0.3, 0.12, 1.0, 0.2)
            poly([(0.45, 0.2), (1.05, 0.55), (1.05, 0.6), (0.45, 0.26)], fill=(200, 170, 40) if not drawing
                 else (255, 255, 255))
        elif body == "trailer":
            box(0.05, 0.12, 1.0, 0.32)
            box(-0.05, 0.08, 0.05, 0.1)
        for x in xs:
            draw.ellipse([x0 + (x - wheel_r) * length, ground_y - 2 * wheel_r * length, x0 + (x + wheel_r) * length,
                          ground_y], fill=dark if not drawing else (255, 255, 255), outline=outline, width=width)
    elif body == "battle_tank":
        draw.rounded_rectangle([x0 + 0.05 * length, ground_y - 0.12 * length, x0 + 0.95 * length, ground_y],
                               radius=0.06 * length, fill=dark if not drawing else (255, 255, 255), outline=outline,
                               width=width)
        box(0.02, 0.12, 0.98, 0.22)
        box(0.3, 0.22, 0.7, 0.32)
        box(0.68, 0.26, 1.15, 0.29)
    elif body == "helicopter":
        draw.ellipse([x0 + 0.1 * length, ground_y - 0.45 * length, x0 + 0.5 * length, ground_y - 0.2 * length],
                     fill=colour, outline=outline, width=width)
        box(0.45, 0.3, 1.0, 0.35)
        box(0.92, 0.3, 0.97, 0.45)
        box(0.0, 0.48, 0.7, 0.5, fill=dark)
        box(0.28, 0.45, 0.32, 0.48, fill=dark)
        box(0.15, 0.15, 0.45, 0.17, fill=dark)
    else:                                                             # aircraft
        poly([(0.0, 0.3), (0.08, 0.36), (0.95, 0.36), (1.0, 0.3), (0.95, 0.26), (0.08, 0.26)])
        poly([(0.4, 0.3), (0.62, 0.3), (0.45, 0.16)], fill=colour)
        poly([(0.85, 0.34), (0.98, 0.34), (1.0, 0.5), (0.93, 0.5)], fill=colour)
        box(0.3, 0.08, 0.32, 0.26, fill=dark)
    if factors["antenna"]:
        for k in range(factors["antenna"]):
            x = 0.4 + 0.25 * k
            draw.line([(x0 + x * length, ground_y - 0.36 * length), (x0 + (x + 0.04) * length,
                                                                      ground_y - 0.95 * length)],
                      fill=dark, width=max(1, width))
    array = np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    if not drawing:
        array = array * factors["exposure"]
    array = array + rng.normal(0, 3.0, array.shape)
    return np.clip(array, 0, 255).round().astype(np.uint8)


def render_vehicle(factors: dict, image_size: int = 64, seed: int = 0) -> np.ndarray:
    """Render one vehicle from a factor dictionary (a row of :attr:`VehicleWorld.factors`): ``uint8 (S, S, 3)``."""
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 px to show the wheels, got {image_size}")
    return _draw_scene(dict(factors), image_size, np.random.default_rng(seed))


def true_keywords(factors: dict) -> list[str]:
    """The Norwegian keywords that are true of a vehicle (what a perfect annotator would record)."""
    body = factors["body"]
    words = list(BODY_KEYWORDS[body])
    if body in WHEELED:
        words.append(AXLE_KEYWORDS[int(factors["axles"])])
        if body != "trailer":
            words.append(MANUFACTURER_KEYWORDS[factors["manufacturer"]])
            words.append("lastebil")
    if body == "battle_tank":
        words.append("beltekjøretøy")
    if factors["antenna"]:
        words.append("antenne")
        if body == "battle_tank":
            words.append("sambandspanservogn")
    if factors["style"] == "drawing":
        words.append("tegning")
    return words


def noisy_keywords(words, rng: np.random.Generator, junk_rate: float = 0.15, junk_exponent: float = 1.1,
                   record_probability: dict | None = None) -> list[str]:
    """What an annotator records: each true keyword with :data:`RECORD_PROBABILITY`, plus, with probability
    ``junk_rate``, a junk keyword drawn from a Zipf(``junk_exponent``) pool of dates, codes and place names."""
    record_probability = RECORD_PROBABILITY if record_probability is None else record_probability
    kept = [w for w in words if rng.random() < record_probability.get(w, 0.8)]
    if rng.random() < junk_rate:
        index = int(_zipf_choice(rng, JUNK_POOL, junk_exponent, 1)[0])
        kept.append("????" if index == 0 else f"øvelse {index}" if index % 3 else f"2019-{1 + index % 12:02d}-{index % 28 + 1:02d}")
    return kept


@dataclass
class VehicleWorld:
    """A rendered vehicle world.

    ``images``: ``uint8 (N, S, S, 3)``; ``factors``: a DataFrame of N rows (body, axles, manufacturer, antenna,
    style, background, colour, scale, position, exposure, ground, scene_seed, and ``duplicate_of``: the index of the
    image this one re-renders, or -1); ``keywords``: N lists of recorded Norwegian keywords (possibly empty);
    ``true``: N lists of the keywords that are true of the image.
    """

    images: np.ndarray
    factors: pd.DataFrame
    keywords: list[list[str]]
    true: list[list[str]]
    seed: int

    def __len__(self) -> int:
        return len(self.images)


def _draw_factors(rng: np.random.Generator) -> dict:
    p = np.array(list(BODY_FREQUENCY.values()))
    body = BODIES[rng.choice(len(BODIES), p=p / p.sum())]
    axles = int(rng.choice(list(AXLE_FREQUENCY), p=np.array(list(AXLE_FREQUENCY.values())) /
                           sum(AXLE_FREQUENCY.values()))) if body in WHEELED else 0
    if body in ("sam", "radar") and axles < 3:
        axles = 3 + int(rng.random() < 0.5)
    maker = MANUFACTURERS[rng.choice(3, p=MANUFACTURER_FREQUENCY)] if body in WHEELED and body != "trailer" else ""
    antenna_probability = {"communication": 0.9, "battle_tank": 0.25, "radar": 0.3}.get(body, 0.08)
    antenna = int(rng.random() < antenna_probability) * (1 + int(rng.random() < 0.3))
    return {"body": body, "axles": axles, "manufacturer": maker, "antenna": antenna,
            "style": "drawing" if rng.random() < 0.08 else "photo",
            "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
            "colour": list(PALETTE)[rng.integers(len(PALETTE))], "scale": float(rng.uniform(0.75, 1.1)),
            "position": float(rng.uniform(0.4, 0.6)), "exposure": float(2 ** rng.normal(0, 0.35)),
            "ground": float(rng.uniform(0, 1))}


def generate_vehicle_world(n_images: int, image_size: int = 64, seed: int = 0, duplicate_rate: float = 0.08,
                           junk_rate: float = 0.15) -> VehicleWorld:
    """Render ``n_images`` vehicles with noisy keywords (see the module docstring), seeded by ``seed``.

    ``duplicate_rate``: the fraction of images that re-render an earlier one with jittered nuisances
    (position +-0.02, scale +-3 %, exposure +-5 %, other pixel noise) and independently recorded keywords.
    ``factors.scene_seed`` fixes a scene's details, so a re-render keeps its trees and paint.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be positive, got {n_images}")
    if not 0 <= duplicate_rate < 1 or not 0 <= junk_rate <= 1:
        raise ValueError("duplicate_rate must lie in [0, 1) and junk_rate in [0, 1]")
    rng = np.random.default_rng(seed)
    rows, images, keywords, true = [], [], [], []
    for index in range(n_images):
        if index > 0 and rng.random() < duplicate_rate:
            source = int(rng.integers(index))
            factors = dict(rows[source])
            factors["position"] += rng.uniform(-0.02, 0.02)
            factors["scale"] *= rng.uniform(0.97, 1.03)
            factors["exposure"] *= rng.uniform(0.95, 1.05)
            factors["duplicate_of"] = source if rows[source]["duplicate_of"] < 0 else rows[source]["duplicate_of"]
        else:
            factors = {**_draw_factors(rng), "duplicate_of": -1, "scene_seed": int(rng.integers(2**31))}
        rows.append(factors)
        images.append(_draw_scene(factors, image_size, np.random.default_rng([factors["scene_seed"], index])))
        words = true_keywords(factors)
        true.append(words)
        keywords.append(noisy_keywords(words, rng, junk_rate=junk_rate))
    return VehicleWorld(np.stack(images), pd.DataFrame(rows), keywords, true, seed)
