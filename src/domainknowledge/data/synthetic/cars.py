"""Procedurally rendered cars with independent, controllable properties: the stand-in for Kobs 2023, Ch. 7.

The thesis renders 100,000 photo-realistic cars in Blender from licensed 3D models (Table 7.2); neither the
models nor Blender are available here. This module draws cars with a small painter's-algorithm renderer in
NumPy: each car is a low-poly solid (a side profile extruded over the car's width, Sec. "Geometry" below)
seen by a perspective camera, lit by a directional sun, with a cast shadow on the ground plane. It keeps
the structure the chapter's analysis needs (every Table 7.2 property changes the picture in the way its
name says, and all properties are drawn independently) and gives up photo-realism: there are no
reflections, textures on the car, or detailed parts.

Properties (Table 7.2; :data:`ANALYSIS_GRID` holds the values):

=====================  ===================================================================================
``model``              body type: sedan, hatchback, SUV, pickup, van, sports car (:data:`BODY_TYPES`)
``rotation``           the car's yaw in degrees, 0 = side view with the front to the right, 90 = front view
``car_hue/saturation/value``  paint colour in HSV. As in the thesis' Blender node, saturation and value are
                       *factors* in [0, 2] on a mid-tone (0.5) base, clipped to [0, 1]: factor 0 gives grey
                       (saturation) or black (value), factor 2 full saturation or brightness
``background_*``       the same for the solid background (analysis set)
``camera_height``      metres above the ground (0.5-3.5); the camera stays 9 m away and aims at the car, so
                       a higher camera looks down on the roof and foreshortens the sides
``sun_elevation``      degrees above the horizon; low sun: dimmer, warmer light and a long shadow
``sun_rotation``       the sun's azimuth in degrees (world frame, independent of the car's rotation):
                       which faces are lit and where the shadow falls
=====================  ===================================================================================

Geometry. A body type is a closed side profile ``(x, z)`` in metres (x along the car, z up) with a length,
width, wheel radius and wheel positions. The solid is the profile extruded over ``y in [-W/2, W/2]``: two
side faces plus one quad per profile edge (hood, windscreen, roof, ...). Quads above the belt line that
are steeper than 35 degrees are glass (windscreen, rear window), and the side faces carry window polygons
(the profile above the belt line, shrunk). Wheels are dark 12-gons on both sides. Faces that point away
from the camera are culled and the rest are drawn far to near (painter's algorithm). Each face is shaded
``paint * (ambient + diffuse * sun_strength * max(0, n . s))`` with the sun direction ``s``.

Two sets (both seeded, both with the property table and the car's foreground mask):

* :func:`make_analysis_set`: solid backgrounds; every property drawn independently and uniformly from
  :data:`ANALYSIS_GRID`; the car models are the six *canonical* body types, whose proportions no training
  class has (like the thesis, whose renders are not Cars196 cars);
* :func:`make_training_set`: "photo-like" renders, the Cars196 analogue. A class is a car *model*: a body
  type with one of ``variants_per_type`` variants that change its proportions (length, height, roof and
  wheel size, belt line) and its favourite paint hue. Rotation, camera height and the sun are continuous
  and drawn from photo-like ranges (camera mostly at eye level, sun mostly high); the background is a sky
  gradient over a textured ground plane whose horizon follows the camera, with random clutter (buildings,
  trees); the car's scale and position jitter. With probability ``favourite_colour_rate`` a car wears its
  class's favourite hue (as Ferraris are often red), otherwise a random colour.

``render_cars(properties, ...)`` draws any property table, so a chapter can sweep one property and keep
the others fixed (Fig. 7.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ANALYSIS_GRID", "BODY_TYPES", "PROPERTIES", "CarRenders", "CarShape", "body_shape", "hsv_factors_to_rgb",
           "make_analysis_set", "make_training_set", "render_cars", "sample_analysis_properties",
           "sample_training_properties"]

BODY_TYPES = ("sedan", "hatchback", "suv", "pickup", "van", "sports")

# Table 7.2: every property and its values (the analysis set draws each independently and uniformly).
ANALYSIS_GRID: dict[str, tuple] = {
    "model": BODY_TYPES,
    "rotation": tuple(range(0, 360, 45)),
    "car_hue": tuple(round(0.1 * i, 1) for i in range(10)),
    "car_saturation": tuple(0.25 * i for i in range(9)),
    "car_value": tuple(0.25 * i for i in range(9)),
    "background_hue": tuple(round(0.1 * i, 1) for i in range(10)),
    "background_saturation": tuple(0.25 * i for i in range(9)),
    "background_value": tuple(0.25 * i for i in range(9)),
    "camera_height": (0.5, 1.5, 2.5, 3.5),
    "sun_elevation": (0, 45, 90),
    "sun_rotation": tuple(range(0, 360, 45)),
}
PROPERTIES = tuple(ANALYSIS_GRID)

CAMERA_DISTANCE = 9.0          # metres from the car's centre, horizontally
CAMERA_TARGET_HEIGHT = 0.7     # the camera aims at this height above the car's centre
FOCAL = 1.55                   # pinhole focal length; the image half-width spans 0.25 of the view (zoom)
AMBIENT = 0.38
GLASS_RGB = np.array([0.10, 0.13, 0.17])
TYRE_RGB = np.array([0.06, 0.06, 0.06])
SHADOW_FACTOR = 0.5

# Side profiles (x as a fraction of the half-length, z in metres), counter-clockwise from the rear bottom.
_PROFILES = {
    "sedan": dict(length=4.7, width=1.8, wheel=0.33, wheels=(-0.62, 0.63), belt=0.88,
                  profile=[(-1.0, 0.25), (1.0, 0.25), (1.0, 0.62), (0.93, 0.80), (0.45, 0.88), (0.18, 1.40),
                           (-0.30, 1.43), (-0.62, 0.95), (-0.98, 0.90), (-1.0, 0.62)]),
    "hatchback": dict(length=4.0, width=1.75, wheel=0.31, wheels=(-0.66, 0.64), belt=0.86,
                      profile=[(-1.0, 0.25), (1.0, 0.25), (1.0, 0.60), (0.92, 0.78), (0.50, 0.88), (0.15, 1.42),
                               (-0.78, 1.44), (-0.97, 1.05), (-1.0, 0.62)]),
    "suv": dict(length=4.6, width=1.9, wheel=0.40, wheels=(-0.63, 0.64), belt=1.10,
                profile=[(-1.0, 0.35), (1.0, 0.35), (1.0, 0.85), (0.95, 1.05), (0.55, 1.12), (0.30, 1.70),
                         (-0.90, 1.72), (-1.0, 1.35)]),
    "pickup": dict(length=5.3, width=1.95, wheel=0.40, wheels=(-0.66, 0.66), belt=1.08,
                   profile=[(-1.0, 0.40), (1.0, 0.40), (1.0, 0.90), (0.95, 1.08), (0.55, 1.12), (0.35, 1.80),
                            (-0.05, 1.82), (-0.10, 1.08), (-1.0, 1.06)]),
    "van": dict(length=4.9, width=1.95, wheel=0.36, wheels=(-0.68, 0.70), belt=1.15,
                profile=[(-1.0, 0.30), (1.0, 0.30), (1.0, 0.85), (0.88, 1.15), (0.66, 1.95), (-1.0, 1.98)]),
    "sports": dict(length=4.4, width=1.95, wheel=0.34, wheels=(-0.64, 0.62), belt=0.80,
                   profile=[(-1.0, 0.18), (1.0, 0.18), (1.0, 0.45), (0.90, 0.60), (0.30, 0.78), (0.02, 1.15),
                            (-0.35, 1.16), (-0.80, 0.85), (-1.0, 0.78)]),
}


@dataclass(frozen=True)
class CarShape:
    """One car model: profile ``(V, 2)`` in metres (x along the car, z up), width, wheel radius and wheel
    centres' x (metres), belt line height (metres) and the favourite paint hue of its class."""

    body_type: str
    profile: np.ndarray
    width: float
    wheel_radius: float
    wheel_x: tuple[float, float]
    belt: float
    favourite_hue: float


def body_shape(body_type: str, variant: int | None = None) -> CarShape:
    """The shape of ``body_type``; ``variant=None`` is the canonical model of the analysis set, an integer
    variant a training model whose proportions (length and height 0.88-1.12x, roof length, wheel size, belt
    line) and favourite hue are drawn from a generator seeded by ``(body_type, variant)``."""
    if body_type not in _PROFILES:
        raise ValueError(f"unknown body type {body_type!r}; choose one of {BODY_TYPES}")
    spec = _PROFILES[body_type]
    points = np.asarray(spec["profile"], dtype=float)
    length, height_scale, roof_shift, wheel_scale, belt_shift, hue = spec["length"], 1.0, 0.0, 1.0, 0.0, 0.0
    if variant is not None:
        if variant < 0:
            raise ValueError(f"variant must be a non-negative integer or None, got {variant}")
        rng = np.random.default_rng([BODY_TYPES.index(body_type), int(variant), 7])
        length *= rng.uniform(0.88, 1.12)
        height_scale = rng.uniform(0.88, 1.12)
        roof_shift = rng.uniform(-0.12, 0.12)
        wheel_scale = rng.uniform(0.85, 1.2)
        belt_shift = rng.uniform(-0.08, 0.08)
        hue = float(rng.integers(0, 10)) / 10
    x = points[:, 0].copy()
    z = points[:, 1] * height_scale
    roof = z > spec["belt"] * height_scale + 0.15
    x[roof] = np.clip(x[roof] + roof_shift, -1.0, 1.0)
    profile = np.stack([x * length / 2, z], axis=1)
    wheel = spec["wheel"] * wheel_scale
    wheel_x = tuple(float(f * length / 2) for f in spec["wheels"])
    return CarShape(body_type, profile, spec["width"], wheel, wheel_x, spec["belt"] * height_scale + belt_shift, hue)


def hsv_factors_to_rgb(hue, saturation_factor, value_factor) -> np.ndarray:
    """RGB ``(..., 3)`` in [0, 1] of Table 7.2's colour grid: ``hue`` in [0, 1), saturation and value as
    factors in [0, 2] on a 0.5 base, clipped to [0, 1]."""
    from matplotlib.colors import hsv_to_rgb

    hue = np.asarray(hue, dtype=float) % 1.0
    saturation = np.clip(0.5 * np.asarray(saturation_factor, dtype=float), 0, 1)
    value = np.clip(0.5 * np.asarray(value_factor, dtype=float), 0, 1)
    return hsv_to_rgb(np.stack(np.broadcast_arrays(hue, saturation, value), axis=-1))


# --- geometry and rasterisation ------------------------------------------------------------------------


def _shrink(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(axis=0)
    return centre + factor * (points - centre)


def _clip_above(points: np.ndarray, level: float) -> np.ndarray:
    """The part of polygon ``points (V, 2)`` with ``z >= level`` (Sutherland-Hodgman against one line)."""
    out = []
    for i in range(len(points)):
        current, following = points[i], points[(i + 1) % len(points)]
        inside_current, inside_following = current[1] >= level, following[1] >= level
        if inside_current:
            out.append(current)
        if inside_current != inside_following:
            t = (level - current[1]) / (following[1] - current[1])
            out.append(current + t * (following - current))
    return np.asarray(out)


def _faces(shape: CarShape) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Faces of the solid in the car frame: ``(vertices (V, 3), outward normal (3,), material)``."""
    profile = shape.profile
    half_width = shape.width / 2
    faces = []
    for sign in (1.0, -1.0):
        side = np.column_stack([profile[:, 0], np.full(len(profile), sign * half_width), profile[:, 1]])
        faces.append((side, np.array([0.0, sign, 0.0]), "paint"))
        window = _clip_above(profile, shape.belt)
        if len(window) >= 3:
            window = _shrink(window, 0.82)
            faces.append((np.column_stack([window[:, 0], np.full(len(window), sign * (half_width + 0.005)),
                                           window[:, 1]]), np.array([0.0, sign, 0.0]), "glass"))
        angles = np.linspace(0, 2 * np.pi, 13)[:-1]
        for wheel_x in shape.wheel_x:
            for radius, material in ((shape.wheel_radius, "tyre"), (0.55 * shape.wheel_radius, "hub")):
                disc = np.column_stack([wheel_x + radius * np.cos(angles),
                                        np.full(angles.size, sign * (half_width + 0.01 + 0.005 * (material == "hub"))),
                                        shape.wheel_radius + radius * np.sin(angles)])
                faces.append((disc, np.array([0.0, sign, 0.0]), material))
    for i in range(len(profile)):
        a, b = profile[i], profile[(i + 1) % len(profile)]
        dx, dz = b - a
        normal = np.array([dz, 0.0, -dx]) / np.hypot(dx, dz)          # outward for a counter-clockwise profile
        quad = np.array([[a[0], half_width, a[1]], [b[0], half_width, b[1]],
                         [b[0], -half_width, b[1]], [a[0], -half_width, a[1]]])
        steep = abs(normal[0]) > np.sin(np.radians(35))
        glass = steep and min(a[1], b[1]) >= shape.belt - 1e-6 and normal[2] > 0
        faces.append((quad, normal, "glass" if glass else "paint"))
    return faces


def _rotation_z(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])


class _Camera:
    """A pinhole camera ``CAMERA_DISTANCE`` m in front of the car (on -y), ``height`` m up, aimed at the car."""

    def __init__(self, height: float, size: int, scale: float = 1.0, offset=(0.0, 0.0)):
        self.position = np.array([0.0, -CAMERA_DISTANCE, height])
        forward = np.array([0.0, 0.0, CAMERA_TARGET_HEIGHT]) - self.position
        self.forward = forward / np.linalg.norm(forward)
        right = np.cross(self.forward, [0.0, 0.0, 1.0])
        self.right = right / np.linalg.norm(right)
        self.up = np.cross(self.right, self.forward)
        self.size, self.pixels_per_unit, self.offset = size, size / 2 / 0.25 * scale / FOCAL, offset

    def depth(self, points: np.ndarray) -> np.ndarray:
        return (points - self.position) @ self.forward

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel ``(row, col)`` ``(V, 2)`` of world points ``(V, 3)``."""
        relative = points - self.position
        depth = relative @ self.forward
        u = FOCAL * (relative @ self.right) / depth
        v = FOCAL * (relative @ self.up) / depth
        centre = self.size / 2
        return np.column_stack([centre - v * self.pixels_per_unit + self.offset[0] * self.size,
                                centre + u * self.pixels_per_unit + self.offset[1] * self.size])

    def horizon_row(self) -> float:
        """Pixel row of the horizon (directions parallel to the ground)."""
        far = self.position + np.array([0.0, 1e6, 0.0])
        return float(self.project(far[None])[0, 0])


def _fill(canvas: np.ndarray, mask: np.ndarray | None, pixels: np.ndarray, colour, alpha: float = 1.0) -> None:
    from skimage.draw import polygon

    rows, cols = polygon(pixels[:, 0], pixels[:, 1], shape=canvas.shape[:2])
    if alpha >= 1.0:
        canvas[rows, cols] = colour
    else:
        canvas[rows, cols] *= alpha
    if mask is not None:
        mask[rows, cols] = True


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull ``(H, 2)`` of 2-d points ``(N, 2)`` (Qhull through SciPy)."""
    from scipy.spatial import ConvexHull

    return points[ConvexHull(points).vertices]


def _sun(elevation: float, rotation: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Direction towards the sun, its strength and its tint: a low sun is dimmer and warmer."""
    e, a = np.radians(elevation), np.radians(rotation)
    direction = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    height = np.sin(e)
    strength = 0.55 + 0.45 * height
    tint = np.array([1.0, 0.80 + 0.20 * height, 0.62 + 0.38 * height])
    return direction, strength, tint


def _render_one(shape: CarShape, row: dict, background: np.ndarray, size: int, scale: float, offset
                ) -> tuple[np.ndarray, np.ndarray]:
    canvas = background.copy()
    mask = np.zeros((size, size), dtype=bool)
    camera = _Camera(float(row["camera_height"]), size, scale, offset)
    rotation = _rotation_z(float(row["rotation"]))
    sun, strength, tint = _sun(float(row["sun_elevation"]), float(row["sun_rotation"]))
    paint = hsv_factors_to_rgb(row["car_hue"], row["car_saturation"], row["car_value"])
    faces = [(vertices @ rotation.T, rotation @ normal, material) for vertices, normal, material in _faces(shape)]

    # cast shadow: every vertex projected along the sun onto the ground (a sun on the horizon still gets a
    # finite shadow: the projection uses at least 10 degrees of elevation)
    shadow_sun = sun.copy()
    shadow_sun[2] = max(shadow_sun[2], np.sin(np.radians(10)))
    corners = np.concatenate([vertices for vertices, _, material in faces if material == "paint"])
    ground = corners - (corners[:, 2:3] / shadow_sun[2]) * shadow_sun[None]
    hull = _convex_hull(ground[:, :2])
    hull = np.column_stack([hull, np.zeros(len(hull))])
    _fill(canvas, None, camera.project(hull), None, alpha=SHADOW_FACTOR + 0.25 * (1 - strength))

    visible = []
    for vertices, normal, material in faces:
        towards_camera = camera.position - vertices.mean(axis=0)
        if material in ("tyre", "hub") or normal @ towards_camera > 0:
            visible.append((camera.depth(vertices).mean(), vertices, normal, material))
    visible.sort(key=lambda item: -item[0] + (0.0 if item[3] in ("paint",) else -0.02))
    for _, vertices, normal, material in visible:
        light = AMBIENT + (1 - AMBIENT) * strength * max(0.0, float(normal @ sun))
        base = {"paint": paint, "glass": GLASS_RGB, "tyre": TYRE_RGB, "hub": np.array([0.55, 0.55, 0.58])}[material]
        colour = np.clip(base * light * tint, 0, 1)
        _fill(canvas, mask, camera.project(vertices), colour)
    return canvas, mask


# --- backgrounds ---------------------------------------------------------------------------------------


def _solid_background(row: dict, size: int) -> np.ndarray:
    colour = hsv_factors_to_rgb(row["background_hue"], row["background_saturation"], row["background_value"])
    return np.broadcast_to(colour, (size, size, 3)).astype(float).copy()


_TEXTURES: dict[str, np.ndarray] = {}


def _texture(name: str) -> np.ndarray:
    if name not in _TEXTURES:
        import skimage.data

        image = np.asarray(getattr(skimage.data, name)(), dtype=float)
        image = image.mean(axis=2) if image.ndim == 3 else image
        _TEXTURES[name] = (image - image.mean()) / (image.std() + 1e-6)
    return _TEXTURES[name]


def _photo_background(rng: np.random.Generator, horizon: float, size: int) -> np.ndarray:
    """A sky gradient above ``horizon`` (pixel row), a tinted bundled texture (grass, gravel, brick) below,
    and 0-4 clutter objects (buildings, trees) standing on the horizon."""
    rows = np.arange(size, dtype=float)[:, None, None]
    sky_top = hsv_factors_to_rgb(rng.uniform(0.5, 0.7), rng.uniform(0.3, 1.4), rng.uniform(1.2, 2.0))
    sky_low = hsv_factors_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.6), rng.uniform(1.4, 2.0))
    t = np.clip(rows / max(horizon, 1.0), 0, 1)
    canvas = np.broadcast_to((1 - t) * sky_top + t * sky_low, (size, size, 3)).copy()
    texture = _texture(str(rng.choice(["grass", "gravel", "brick"])))
    top, left = rng.integers(0, texture.shape[0] - size), rng.integers(0, texture.shape[1] - size)
    patch = texture[top:top + size, left:left + size][..., None]
    ground = hsv_factors_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 1.4), rng.uniform(0.5, 1.6))
    ground_pixels = np.clip(ground + 0.12 * patch, 0, 1)
    below = (rows[..., 0] >= horizon)[..., None]
    canvas = np.where(below, ground_pixels, canvas)
    for _ in range(int(rng.integers(0, 5))):
        colour = hsv_factors_to_rgb(rng.uniform(0, 1), rng.uniform(0, 1.6), rng.uniform(0.4, 1.8))
        width, height = rng.uniform(0.08, 0.3) * size, rng.uniform(0.1, 0.45) * size
        left = rng.uniform(-0.1, 1.0) * size
        base = min(horizon, size - 1)
        r0, r1 = int(max(0, base - height)), int(max(0, base))
        c0, c1 = int(max(0, left)), int(min(size, left + width))
        if rng.random() < 0.5:
            canvas[r0:r1, c0:c1] = colour
        else:                                                             # a round tree crown
            rr, cc = np.ogrid[:size, :size]
            crown = ((rr - (r0 + r1) / 2) / max(height / 2, 1)) ** 2 + ((cc - (c0 + c1) / 2) / max(width / 2, 1)) ** 2 <= 1
            canvas[crown] = colour
    return canvas


# --- the public API ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarRenders:
    """Rendered cars: ``images`` ``(N, S, S, 3)`` uint8, ``masks`` ``(N, S, S)`` bool (the car's pixels),
    ``properties`` (one row per image; the Table 7.2 columns of :data:`PROPERTIES`, plus ``label`` and
    ``variant`` for training sets) and ``labels`` ``(N,)`` int64 (training class; the model index for the
    analysis set)."""

    images: np.ndarray
    masks: np.ndarray
    properties: pd.DataFrame
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def render_cars(properties: pd.DataFrame, *, image_size: int = 64, background: str = "solid", seed: int = 0,
                supersample: int = 2, out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one car per row of ``properties``; returns images ``(N, S, S, 3)`` uint8 and masks ``(N, S, S)``.

    ``properties`` needs the columns of :data:`PROPERTIES` (``model`` a body type). Optional columns:
    ``variant`` (int, or missing/NaN for the canonical model), ``scale`` and ``shift_row``/``shift_col``
    (fractions of the image). ``background`` is ``"solid"`` (the ``background_*`` colour) or ``"photo"``
    (sky, textured ground and clutter, drawn from ``seed``). The scene is drawn at ``supersample`` times the
    size and averaged down (anti-aliasing); a pixel is in the mask when the car covers at least half of it.
    ``out``: arrays of those shapes to render into (e.g. memory-mapped files, for sets larger than memory).
    """
    missing = [name for name in PROPERTIES if name not in properties.columns]
    if missing:
        raise ValueError(f"properties lacks the columns {missing}; build it with sample_analysis_properties() "
                         "or sample_training_properties()")
    if background not in ("solid", "photo"):
        raise ValueError(f"background must be 'solid' or 'photo', got {background!r}")
    if image_size < 16 or supersample < 1:
        raise ValueError(f"image_size must be at least 16 and supersample at least 1, got {image_size}, {supersample}")
    big = image_size * supersample
    rng = np.random.default_rng(seed)
    if out is None:
        images = np.empty((len(properties), image_size, image_size, 3), dtype=np.uint8)
        masks = np.empty((len(properties), image_size, image_size), dtype=bool)
    else:
        images, masks = out
        if images.shape != (len(properties), image_size, image_size, 3) or masks.shape != images.shape[:3]:
            raise ValueError(f"out must hold arrays of shapes {(len(properties), image_size, image_size, 3)} and "
                             f"{(len(properties), image_size, image_size)}, got {images.shape} and {masks.shape}")
    shapes: dict = {}
    for index, row in enumerate(properties.to_dict("records")):
        variant = row.get("variant")
        variant = None if variant is None or (isinstance(variant, float) and np.isnan(variant)) else int(variant)
        key = (row["model"], variant)
        if key not in shapes:
            shapes[key] = body_shape(row["model"], variant)
        scale = float(row.get("scale", 1.0))
        offset = (float(row.get("shift_row", 0.0)), float(row.get("shift_col", 0.0)))
        if background == "solid":
            canvas = _solid_background(row, big)
        else:
            horizon = _Camera(float(row["camera_height"]), big, scale, offset).horizon_row()
            canvas = _photo_background(rng, horizon, big)
        canvas, mask = _render_one(shapes[key], row, canvas, big, scale, offset)
        if supersample > 1:
            canvas = canvas.reshape(image_size, supersample, image_size, supersample, 3).mean(axis=(1, 3))
            mask = mask.reshape(image_size, supersample, image_size, supersample).mean(axis=(1, 3)) >= 0.5
        images[index] = np.round(255 * np.clip(canvas, 0, 1)).astype(np.uint8)
        masks[index] = mask
    return images, masks


def sample_analysis_properties(n: int, *, seed: int) -> pd.DataFrame:
    """``n`` property rows drawn independently and uniformly from :data:`ANALYSIS_GRID` (Sec. 7.1.3)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: np.asarray(values, dtype=object if name == "model" else float)[
        rng.integers(0, len(values), size=n)] for name, values in ANALYSIS_GRID.items()}).astype({"model": str})


def sample_training_properties(n: int, *, seed: int, variants_per_type: int = 8,
                               favourite_colour_rate: float = 0.5) -> pd.DataFrame:
    """``n`` photo-like training rows: class ``label = type * variants_per_type + variant``, continuous
    rotation (0-360), camera height (lognormal around 1.4 m, clipped to 0.4-3.6), sun elevation (20-90 degrees)
    and rotation, random paint (the class's favourite hue with probability ``favourite_colour_rate``) and a
    scale (0.8-1.1) and shift (+-6 % of the image) jitter."""
    if n < 1 or variants_per_type < 1 or not 0 <= favourite_colour_rate <= 1:
        raise ValueError("n and variants_per_type must be positive and favourite_colour_rate in [0, 1]")
    rng = np.random.default_rng(seed)
    types = rng.integers(0, len(BODY_TYPES), size=n)
    variants = rng.integers(0, variants_per_type, size=n)
    favourite = np.array([[body_shape(t, v).favourite_hue for v in range(variants_per_type)] for t in BODY_TYPES])
    use_favourite = rng.random(n) < favourite_colour_rate
    hue = np.where(use_favourite, favourite[types, variants] + rng.normal(0, 0.02, n), rng.uniform(0, 1, n)) % 1.0
    return pd.DataFrame({
        "model": np.asarray(BODY_TYPES, dtype=object)[types].astype(str),
        "variant": variants,
        "label": types * variants_per_type + variants,
        "rotation": rng.uniform(0, 360, n),
        "car_hue": hue,
        "car_saturation": rng.uniform(0.2, 2.0, n),
        "car_value": rng.uniform(0.3, 2.0, n),
        "background_hue": np.nan, "background_saturation": np.nan, "background_value": np.nan,
        "camera_height": np.clip(rng.lognormal(np.log(1.4), 0.35, n), 0.4, 3.6),
        "sun_elevation": rng.uniform(20, 90, n),
        "sun_rotation": rng.uniform(0, 360, n),
        "scale": rng.uniform(0.8, 1.1, n),
        "shift_row": rng.uniform(-0.06, 0.06, n),
        "shift_col": rng.uniform(-0.06, 0.06, n),
    })


def make_analysis_set(n: int, *, seed: int, image_size: int = 64, supersample: int = 2,
                      out: tuple[np.ndarray, np.ndarray] | None = None) -> CarRenders:
    """The analysis set: ``n`` solid-background renders of the six canonical models with every Table 7.2
    property independent and uniform; ``labels`` is the model index. ``out``: arrays to render into (see
    :func:`render_cars`)."""
    properties = sample_analysis_properties(n, seed=seed)
    images, masks = render_cars(properties, image_size=image_size, background="solid", seed=seed,
                                supersample=supersample, out=out)
    labels = np.asarray([BODY_TYPES.index(m) for m in properties["model"]], dtype=np.int64)
    return CarRenders(images, masks, properties, labels)


def make_training_set(n: int, *, seed: int, image_size: int = 64, variants_per_type: int = 8,
                      favourite_colour_rate: float = 0.5, supersample: int = 2) -> CarRenders:
    """The photo-like training set (the Cars196 analogue): ``len(BODY_TYPES) * variants_per_type`` classes."""
    properties = sample_training_properties(n, seed=seed, variants_per_type=variants_per_type,
                                            favourite_colour_rate=favourite_colour_rate)
    images, masks = render_cars(properties, image_size=image_size, background="photo", seed=seed + 1,
                                supersample=supersample)
    return CarRenders(images, masks, properties, properties["label"].to_numpy(dtype=np.int64))
