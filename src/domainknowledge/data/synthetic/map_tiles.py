"""OpenStreetMap-style map tiles with a hidden, documented NO2 function: the stand-in for Kobs 2023, Ch. 6.

MapLUR (Kobs 2023, Ch. 6; Steininger et al. 2020) estimates the annual mean NO2 concentration of a 20 m grid
cell of the London Atmospheric Emissions Inventory from a rendered OpenStreetMap (OSM) image of the 80 m x
80 m around it. Neither the inventory nor the renders are offline, so the ``smoke`` and ``cpu`` profiles
draw tiles from this generator. A tile is a *scene* (a vector description) rendered to pixels:

* **land use**: the tile is cut into Voronoi cells around 1-6 random sites, each cell one of
  :data:`LAND_USES` (``neutral`` is OSM's plain land colour: no particular land use). Built-up cells
  (residential, commercial, industrial) carry building footprints, which are drawn but, like OSM's
  buildings, do not change the cell's land use;
* **roads**: 0-3 straight roads across the tile, each of one of :data:`ROAD_TYPES`, with the type's
  width (:data:`ROAD_WIDTH_M`) and OSM-like fill and casing colours (:data:`PALETTE`, :data:`CASING`).
  A road is the set of points ``p`` (metres from the tile centre) with ``|p . n(angle) - offset| <=
  width / 2``; higher road classes are drawn over lower ones.

Rendering returns the RGB image ``(S, S, 3)`` uint8 and the *label map* ``(S, S)`` int8 of classes
:data:`CLASSES` (land uses first, then road types), at any pixel size ``S`` (the tile always spans
:data:`TILE_METRES`).

The hidden NO2 function (:class:`NO2Function`) reads the label map only, so it gives the truth for every
image the generator can draw, including the probes of Sec. 6.1.1. With pixel centres ``p`` at distance
``d_p`` (metres) from the tile centre and the normalised exponential proximity weights
``w_p = exp(-d_p / l) / sum_q exp(-d_q / l)`` (length ``l``, :func:`proximity_weights`; a Gaussian kernel
is available for comparison):

* land-use shares ``F_c = sum_p w_p [label_p = c]`` and their share among non-road pixels
  ``G_c = F_c / sum_{c' land use} F_c'``;
* traffic exposure ``T = sum_p w_p e(label_p)`` with the road emission ``e`` of the pixel's road type
  (0 for land use): large when wide, heavily used roads lie near the centre;
* the concentration::

      NO2 = b0 + sum_c beta_c F_c + R (1 - exp(-T / tau)) (1 + sum_c gamma_c G_c) + noise.

  The first two terms are the urban background, which land use shifts by a few ug/m3. The road term
  saturates (``1 - exp(-T / tau)``), so the response to a road's width is concave, like a logarithm.
  The exponential weights make the response to a road's distance from the centre fall steeply while the
  road still covers the centre and then level off towards the edge: a convex decay, as concentrations
  fall off with the distance from a road, which a parabola fits clearly better than a line (with the
  defaults the truth's line R2 is about 0.85 against 0.99 for a parabola, on a trunk road moved from the
  centre to the edge). A Gaussian kernel instead gives a nearly straight, sigmoid fall (line R2 0.98),
  too little curvature for the thesis' finding to be told from a model's wiggles. The factor
  ``(1 + sum gamma_c G_c)`` makes land use and roads interact: built-up surroundings trap traffic
  exhaust (street canyons, ``gamma > 0``), open land, parks and water dilute it (``gamma < 0``), so the
  same road adds more NO2 in a commercial street than in a park. ``noise`` is Gaussian, ``noise_sd``.

Every number of the function is a field of :class:`NO2Function` with its default shown in the chapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BIG_ROADS", "CASING", "CLASSES", "LAND_USES", "LUR_RADII_M", "MapTiles", "NO2Function", "PALETTE",
           "FEATURE_SETS", "ROAD_TYPES", "ROAD_WIDTH_M", "Road", "Scene", "TILE_METRES", "class_fractions", "decode_labels",
           "distance_probe_scenes", "entity_probe_scenes", "lur_features", "make_map_tiles", "render_scene",
           "PROXIMITY_KERNELS", "proximity_weights", "render_scenes", "sample_scene", "uniform_scene", "width_probe_scenes"]

TILE_METRES = 80.0                       # a tile covers 80 m x 80 m around the grid cell (Sec. 6)
LAND_USES = ("neutral", "industrial", "residential", "commercial", "park", "forest", "water")
ROAD_TYPES = ("motorway", "trunk", "primary", "secondary", "residential_street")
CLASSES = LAND_USES + ROAD_TYPES
BIG_ROADS = ("motorway", "trunk", "primary")       # the "big streets" of the LUR features; the rest are local
LUR_RADII_M = (10.0, 20.0, 30.0, 40.0)

# OSM Carto-like colours (RGB). Land use: fill colour of the area; roads: fill colour of the carriageway.
PALETTE: dict[str, tuple[int, int, int]] = {
    "neutral": (242, 239, 233), "industrial": (235, 219, 232), "residential": (224, 223, 223),
    "commercial": (242, 218, 217), "park": (200, 250, 204), "forest": (173, 209, 158), "water": (170, 211, 223),
    "motorway": (232, 146, 162), "trunk": (249, 178, 156), "primary": (252, 214, 164),
    "secondary": (247, 250, 191), "residential_street": (255, 255, 255),
}
CASING: dict[str, tuple[int, int, int]] = {
    "motorway": (220, 42, 103), "trunk": (200, 78, 47), "primary": (160, 107, 0), "secondary": (112, 125, 5),
    "residential_street": (187, 187, 187),
}
BUILDING_COLOUR = (217, 208, 201)
ROAD_WIDTH_M: dict[str, float] = {"motorway": 16.0, "trunk": 13.0, "primary": 10.0, "secondary": 8.0,
                                  "residential_street": 6.0}
# sampling probabilities of the random scenes
_LAND_USE_PROBABILITIES = (0.22, 0.10, 0.24, 0.14, 0.12, 0.08, 0.10)
_ROAD_TYPE_PROBABILITIES = (0.10, 0.15, 0.20, 0.22, 0.33)
_ROAD_COUNT_PROBABILITIES = (0.25, 0.40, 0.25, 0.10)    # 0, 1, 2, 3 roads
_BUILT_UP = ("industrial", "residential", "commercial")


@dataclass(frozen=True)
class Road:
    """A straight road across the tile: points ``p`` (metres, centre = 0, x right, y down) with
    ``|p . (cos angle, sin angle) - offset| <= width / 2``. ``angle`` is the direction of the road's normal
    in radians (0: a vertical road, pi/2: a horizontal road); ``offset`` the signed distance of its
    centre line from the tile centre in metres."""

    type: str
    angle: float
    offset: float
    width: float

    def __post_init__(self):
        if self.type not in ROAD_TYPES:
            raise ValueError(f"road type must be one of {ROAD_TYPES}, got {self.type!r}")
        if not self.width > 0:
            raise ValueError(f"road width must be positive (metres), got {self.width}")


@dataclass(frozen=True)
class Scene:
    """A tile's vector description: land-use Voronoi sites ``(K, 2)`` metres with their land uses, roads,
    and building rectangles ``(x0, y0, x1, y1)`` in metres (drawn only, land use unchanged). A scene whose
    ``fill`` names a class of :data:`CLASSES` is covered by that class entirely (the uniform probes of
    Table 6.2, including a tile that is all motorway or all trunk)."""

    sites: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    site_land_uses: tuple[str, ...] = ("neutral",)
    roads: tuple[Road, ...] = ()
    buildings: tuple[tuple[float, float, float, float], ...] = ()
    fill: str | None = None

    def __post_init__(self):
        if len(self.sites) != len(self.site_land_uses) or not self.sites:
            raise ValueError("a scene needs at least one land-use site and one land use per site")
        unknown = set(self.site_land_uses) - set(LAND_USES)
        if unknown:
            raise ValueError(f"unknown land uses {sorted(unknown)}; choose from {LAND_USES}")
        if self.fill is not None and self.fill not in CLASSES:
            raise ValueError(f"fill must be one of {CLASSES}, got {self.fill!r}")


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres, ``x`` (columns) and ``y`` (rows), each ``(S, S)``."""
    if size < 4:
        raise ValueError(f"tile size must be at least 4 px, got {size}")
    step = TILE_METRES / size
    centres = (np.arange(size) + 0.5) * step - TILE_METRES / 2
    return np.meshgrid(centres, centres)


def render_scene(scene: Scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render ``scene`` at ``size`` x ``size`` px: RGB image ``(S, S, 3)`` uint8 and labels ``(S, S)`` int8
    (indices into :data:`CLASSES`). Road casings count as road in the label map."""
    x, y = _pixel_grid(size)
    metres_per_pixel = TILE_METRES / size
    image = np.empty((size, size, 3), dtype=np.uint8)
    if scene.fill is not None:
        labels = np.full((size, size), CLASSES.index(scene.fill), dtype=np.int8)
        image[:] = PALETTE[scene.fill]
    else:
        sites = np.asarray(scene.sites, dtype=float)
        distances = (x[None] - sites[:, 0, None, None]) ** 2 + (y[None] - sites[:, 1, None, None]) ** 2
        nearest = distances.argmin(axis=0)
        site_labels = np.asarray([CLASSES.index(name) for name in scene.site_land_uses], dtype=np.int8)
        labels = site_labels[nearest]
        colours = np.asarray([PALETTE[name] for name in CLASSES], dtype=np.uint8)
        image[:] = colours[labels]
        for x0, y0, x1, y1 in scene.buildings:
            inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            image[inside] = BUILDING_COLOUR
    # lower road classes first, so that motorways lie on top
    for road in sorted(scene.roads, key=lambda r: -ROAD_TYPES.index(r.type)):
        across = np.abs(x * np.cos(road.angle) + y * np.sin(road.angle) - road.offset)
        half = road.width / 2
        on_road = across <= max(half, metres_per_pixel / 2)
        casing = max(metres_per_pixel, 0.12 * road.width)
        fill = on_road & (across <= half - casing) if half - casing >= metres_per_pixel / 2 else on_road
        labels = np.where(on_road, np.int8(CLASSES.index(road.type)), labels).astype(np.int8)
        image[on_road] = CASING[road.type]
        image[fill] = PALETTE[road.type]
    return image, labels


def render_scenes(scenes: Sequence[Scene], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render many scenes: images ``(N, S, S, 3)`` uint8 and labels ``(N, S, S)`` int8."""
    rendered = [render_scene(scene, size) for scene in scenes]
    return (np.stack([image for image, _ in rendered]).astype(np.uint8),
            np.stack([labels for _, labels in rendered]).astype(np.int8))


def _buildings(rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Building rectangles on a jittered street-block grid over the whole tile (kept only in built-up cells
    by :func:`sample_scene`)."""
    rectangles = []
    pitch = rng.uniform(14.0, 24.0)
    start = -TILE_METRES / 2 - rng.uniform(0, pitch)
    for gx in np.arange(start, TILE_METRES / 2, pitch):
        for gy in np.arange(start, TILE_METRES / 2, pitch):
            if rng.random() < 0.75:
                w, h = rng.uniform(0.45, 0.8, size=2) * pitch
                rectangles.append((gx, gy, gx + w, gy + h))
    return rectangles


def sample_scene(rng: np.random.Generator) -> Scene:
    """One random scene: 1-6 land-use cells, buildings in built-up cells, 0-3 roads (module docstring)."""
    count = int(rng.integers(1, 7))
    sites = rng.uniform(-TILE_METRES * 0.7, TILE_METRES * 0.7, size=(count, 2))
    land_uses = tuple(LAND_USES[i] for i in rng.choice(len(LAND_USES), size=count, p=_LAND_USE_PROBABILITIES))
    kept = []
    for rectangle in _buildings(rng):
        cx, cy = (rectangle[0] + rectangle[2]) / 2, (rectangle[1] + rectangle[3]) / 2
        owner = int(np.argmin(((sites - (cx, cy)) ** 2).sum(axis=1)))
        if land_uses[owner] in _BUILT_UP:
            kept.append(tuple(float(v) for v in rectangle))
    roads = []
    for _ in range(int(rng.choice(4, p=_ROAD_COUNT_PROBABILITIES))):
        road_type = ROAD_TYPES[int(rng.choice(len(ROAD_TYPES), p=_ROAD_TYPE_PROBABILITIES))]
        # street grids: 40 % of roads run (nearly) horizontally or vertically
        angle = (rng.integers(0, 2) * np.pi / 2 + rng.normal(0, 0.03)) if rng.random() < 0.4 else rng.uniform(0, np.pi)
        width = ROAD_WIDTH_M[road_type] * rng.uniform(0.85, 1.15)
        offset = rng.uniform(-TILE_METRES / 2 - width / 2, TILE_METRES / 2 + width / 2)
        roads.append(Road(road_type, float(angle), float(offset), float(width)))
    return Scene(tuple(map(tuple, sites.tolist())), land_uses, tuple(roads), tuple(kept))


# --- the hidden NO2 function ------------------------------------------------------------------------------


def _default_land_use_levels() -> dict[str, float]:
    return {"neutral": 2.0, "industrial": 10.0, "residential": 4.0, "commercial": 7.0, "park": -2.0,
            "forest": -4.0, "water": 0.0}


def _default_emissions() -> dict[str, float]:
    return {"motorway": 1.0, "trunk": 1.3, "primary": 0.8, "secondary": 0.45, "residential_street": 0.15}


def _default_dispersion() -> dict[str, float]:
    return {"neutral": 0.0, "industrial": 0.25, "residential": 0.1, "commercial": 0.35, "park": -0.25,
            "forest": -0.35, "water": -0.3}


PROXIMITY_KERNELS = ("exponential", "gaussian")


def proximity_weights(size: int, length_m: float, kernel: str = "exponential") -> np.ndarray:
    """Weights ``(S, S)`` of each pixel by its distance ``d`` (metres) from the tile centre, summing to 1:
    ``exp(-d / length_m)`` (``exponential``) or ``exp(-d^2 / (2 length_m^2))`` (``gaussian``)."""
    if kernel not in PROXIMITY_KERNELS:
        raise ValueError(f"kernel must be one of {PROXIMITY_KERNELS}, got {kernel!r}")
    x, y = _pixel_grid(size)
    distance = np.sqrt(x ** 2 + y ** 2)
    weights = np.exp(-distance / length_m) if kernel == "exponential" else np.exp(-distance ** 2 / (2 * length_m ** 2))
    return weights / weights.sum()


@dataclass(frozen=True)
class NO2Function:
    """The hidden NO2 concentration (ug/m3) of a label map (the module docstring gives the formula).

    ``base`` (b0), ``land_use_levels`` (beta_c), ``road_emissions`` (e per road type), ``road_scale`` (R),
    ``saturation`` (tau), ``dispersion`` (gamma_c), ``length_m`` (the proximity kernel's length, metres) and
    ``kernel`` (its shape, :data:`PROXIMITY_KERNELS`), ``noise_sd`` (the measurement noise added by
    :meth:`sample`)."""

    base: float = 30.0
    land_use_levels: dict[str, float] = field(default_factory=_default_land_use_levels)
    road_emissions: dict[str, float] = field(default_factory=_default_emissions)
    road_scale: float = 40.0
    saturation: float = 0.6
    dispersion: dict[str, float] = field(default_factory=_default_dispersion)
    length_m: float = 5.0
    kernel: str = "exponential"
    noise_sd: float = 4.0

    def __post_init__(self):
        if set(self.land_use_levels) != set(LAND_USES) or set(self.dispersion) != set(LAND_USES):
            raise ValueError(f"land_use_levels and dispersion need exactly the land uses {LAND_USES}")
        if set(self.road_emissions) != set(ROAD_TYPES):
            raise ValueError(f"road_emissions needs exactly the road types {ROAD_TYPES}")
        if self.length_m <= 0 or self.saturation <= 0 or self.noise_sd < 0:
            raise ValueError("length_m and saturation must be positive and noise_sd non-negative")
        if self.kernel not in PROXIMITY_KERNELS:
            raise ValueError(f"kernel must be one of {PROXIMITY_KERNELS}, got {self.kernel!r}")

    def components(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """The function's parts for label maps ``(N, S, S)`` (or one ``(S, S)``): ``shares`` ``(N, classes)``,
        ``exposure`` T ``(N,)``, ``background`` ``(N,)``, ``road`` ``(N,)`` and ``truth`` ``(N,)``."""
        labels = np.asarray(labels)
        single = labels.ndim == 2
        labels = labels[None] if single else labels
        if labels.ndim != 3 or labels.shape[1] != labels.shape[2]:
            raise ValueError(f"label maps must have shape (N, S, S) or (S, S), got {labels.shape}")
        shares = class_fractions(labels, proximity_weights(labels.shape[-1], self.length_m, self.kernel))
        land = shares[:, :len(LAND_USES)]
        emissions = np.asarray([self.road_emissions[name] for name in ROAD_TYPES])
        exposure = shares[:, len(LAND_USES):] @ emissions
        background = self.base + land @ np.asarray([self.land_use_levels[name] for name in LAND_USES])
        land_total = land.sum(axis=1, keepdims=True)
        surroundings = np.divide(land, land_total, out=np.zeros_like(land), where=land_total > 0)
        trapping = 1.0 + surroundings @ np.asarray([self.dispersion[name] for name in LAND_USES])
        road = self.road_scale * (1.0 - np.exp(-exposure / self.saturation)) * trapping
        parts = {"shares": shares, "exposure": exposure, "background": background, "road": road,
                 "truth": background + road}
        return {k: (v[0] if single else v) for k, v in parts.items()}

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        """The noise-free concentration of label maps ``(N, S, S)``: ``(N,)`` (a float for one map)."""
        return self.components(labels)["truth"]

    def sample(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy "measurements" ``(N,)``: the truth plus Gaussian noise of sd ``noise_sd``."""
        truth = np.atleast_1d(self(labels))
        return truth + rng.normal(0.0, self.noise_sd, size=truth.shape)


def class_fractions(labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted share of each class of :data:`CLASSES` in label maps ``(N, S, S)``: ``(N, len(CLASSES))``.
    Without ``weights`` every pixel counts the same (the plain area fractions)."""
    labels = np.asarray(labels)
    size = labels.shape[-1]
    weights = np.full((size, size), 1.0 / size ** 2) if weights is None else np.asarray(weights, dtype=float)
    count, classes = labels.shape[0], len(CLASSES)
    index = labels.reshape(count, -1).astype(np.int64) + classes * np.arange(count)[:, None]
    sums = np.bincount(index.ravel(), weights=np.tile(weights.ravel(), count), minlength=count * classes)
    return sums.reshape(count, classes)


# --- the data set -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapTiles:
    """Generated tiles: ``images`` ``(N, S, S, 3)`` uint8, ``labels`` ``(N, S, S)`` int8, ``no2`` ``(N,)``
    (truth + noise, the training target), ``truth`` ``(N,)`` (noise-free) and the ``scenes``."""

    images: np.ndarray
    labels: np.ndarray
    no2: np.ndarray
    truth: np.ndarray
    scenes: tuple[Scene, ...]


def make_map_tiles(count: int, *, seed: int, size: int = 64, function: NO2Function | None = None) -> MapTiles:
    """``count`` random tiles of ``size`` px with their NO2 values; the same seed gives the same tiles."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    function = function or NO2Function()
    rng = np.random.default_rng(seed)
    scenes = tuple(sample_scene(rng) for _ in range(count))
    images, labels = render_scenes(scenes, size)
    truth = np.atleast_1d(function(labels))
    no2 = function.sample(labels, rng)
    return MapTiles(images, labels, no2, truth, scenes)


def decode_labels(images: np.ndarray) -> np.ndarray:
    """Label maps ``(N, S, S)`` int8 from OSM-style renders ``(N, S, S, 3)``: each pixel's nearest colour of
    :data:`PALETTE` or :data:`CASING` (buildings count as ``residential``, the commonest built-up use).
    Used to compute LUR features from real renders, which come without a label map."""
    images = np.asarray(images)          # uint8; each chunk is widened below, never the whole array
    colours = np.asarray(list(PALETTE.values()) + list(CASING.values()) + [BUILDING_COLOUR], dtype=np.int32)
    classes = np.asarray([CLASSES.index(n) for n in PALETTE] + [CLASSES.index(n) for n in CASING]
                         + [CLASSES.index("residential")], dtype=np.int8)
    pixels = images.reshape(-1, 3)
    out = np.empty(pixels.shape[0], dtype=np.int8)
    for start in range(0, pixels.shape[0], 1 << 18):       # bounded memory: 2^18 pixels x colours at a time
        chunk = pixels[start:start + (1 << 18)].astype(np.int32)
        distance = ((chunk[:, None, :] - colours[None]) ** 2).sum(axis=-1)
        out[start:start + (1 << 18)] = classes[distance.argmin(axis=1)]
    return out.reshape(images.shape[:-1])


FEATURE_SETS = ("thesis", "extended")


def lur_features(labels: np.ndarray, radii_m: Sequence[float] = LUR_RADII_M, feature_set: str = "thesis", *,
                 chunk_size: int = 256) -> tuple[np.ndarray, list[str]]:
    """Classic LUR features of label maps ``(N, S, S)``, computed within ``radii_m`` of the tile centre.

    ``feature_set="thesis"`` follows the list of Sec. 6 (after the ESCAPE studies): areas (m2) of
    commercial, industrial and residential land use (``area:<use>@<r>m``); lengths (m) of big (motorway,
    trunk, primary) and local streets (``length:big@<r>m``, ``length:local@<r>m``, road area divided by the
    type's standard width); distances (m) from the centre to the nearest motorway, to the nearest trunk or
    primary road, and to industrial land (``distance:...``, :data:`TILE_METRES` when there is none). The
    thesis' distance to the next traffic signal has no counterpart: the tiles have no signals.

    ``feature_set="extended"`` knows more of the generator: the areas of all seven land uses, the road
    length of each road type per radius, and the distance to the nearest road of each type and of any type.

    Returns ``(N, F)`` float64 and the ``F`` feature names. The features of a tile depend on that tile alone;
    they are computed ``chunk_size`` tiles at a time, so the per-pixel float64 intermediates (0.4 MiB a tile at
    224 px) never exist for the whole data set.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"label maps must have shape (N, S, S), got {labels.shape}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    parts = [_lur_feature_chunk(labels[start:start + chunk_size], radii_m, feature_set)
             for start in range(0, max(len(labels), 1), chunk_size)]
    return np.concatenate([part[0] for part in parts]), parts[0][1]


def _lur_feature_chunk(labels: np.ndarray, radii_m: Sequence[float], feature_set: str) -> tuple[np.ndarray, list[str]]:
    """:func:`lur_features` of the label maps ``(n, S, S)`` of one chunk."""
    size = labels.shape[-1]
    x, y = _pixel_grid(size)
    distance = np.hypot(x, y)
    pixel_area = (TILE_METRES / size) ** 2
    land_uses = LAND_USES if feature_set == "extended" else ("commercial", "industrial", "residential")
    columns, names = [], []
    for radius in radii_m:
        areas = class_fractions(labels, (distance <= radius) * pixel_area)      # m2 per class
        lengths = {name: areas[:, CLASSES.index(name)] / ROAD_WIDTH_M[name] for name in ROAD_TYPES}
        for name in land_uses:
            columns.append(areas[:, CLASSES.index(name)])
            names.append(f"area:{name}@{radius:g}m")
        if feature_set == "extended":
            for name in ROAD_TYPES:
                columns.append(lengths[name])
                names.append(f"length:{name}@{radius:g}m")
        else:
            columns += [sum(lengths[n] for n in BIG_ROADS), sum(lengths[n] for n in ROAD_TYPES if n not in BIG_ROADS)]
            names += [f"length:big@{radius:g}m", f"length:local@{radius:g}m"]
    flat_distance = distance.ravel()
    flat = labels.reshape(labels.shape[0], -1)

    def nearest(kinds: Sequence[str]) -> np.ndarray:
        mask = np.isin(flat, [CLASSES.index(kind) for kind in kinds])
        return np.where(mask, flat_distance, TILE_METRES).min(axis=1)

    if feature_set == "extended":
        targets = {f"distance:{name}": (name,) for name in ROAD_TYPES}
        targets.update({"distance:any_road": ROAD_TYPES, "distance:industrial": ("industrial",)})
    else:
        targets = {"distance:motorway": ("motorway",), "distance:trunk_or_primary": ("trunk", "primary"),
                   "distance:industrial": ("industrial",)}
    for name, kinds in targets.items():
        columns.append(nearest(kinds))
        names.append(name)
    return np.stack(columns, axis=1).astype(np.float64), names


# --- the probes of Sec. 6.1.1 -----------------------------------------------------------------------------


def uniform_scene(entity: str, overlay: str | None = None, *, overlay_width: float | None = None) -> Scene:
    """A tile covered by one entity (a land use, or ``motorway``/``trunk``), optionally with a road of type
    ``overlay`` through the centre, vertically, at its standard width (Table 6.2)."""
    if entity not in CLASSES:
        raise ValueError(f"entity must be one of {CLASSES}, got {entity!r}")
    roads = ()
    if overlay is not None:
        if entity in ROAD_TYPES:
            raise ValueError("a road overlay on a road entity is not defined (Table 6.2 omits these cells)")
        roads = (Road(overlay, 0.0, 0.0, overlay_width or ROAD_WIDTH_M[overlay]),)
    return Scene(fill=entity if entity in ROAD_TYPES else None, sites=((0.0, 0.0),),
                 site_land_uses=(entity if entity in LAND_USES else "neutral",), roads=roads)


def entity_probe_scenes(entities: Sequence[str] = LAND_USES + ("motorway", "trunk"),
                        overlays: Sequence[str | None] = (None, "trunk", "motorway")) -> dict[tuple, Scene]:
    """The scenes of Table 6.2: ``{(overlay or "no road", entity): scene}``; road-on-road cells are left out."""
    scenes = {}
    for overlay in overlays:
        for entity in entities:
            if overlay is not None and entity in ROAD_TYPES:
                continue
            scenes[(overlay or "no road", entity)] = uniform_scene(entity, overlay)
    return scenes


def _axis_angle(orientation: str) -> float:
    if orientation not in ("vertical", "horizontal"):
        raise ValueError(f"orientation must be 'vertical' or 'horizontal', got {orientation!r}")
    return 0.0 if orientation == "vertical" else np.pi / 2


def width_probe_scenes(widths_m: Sequence[float], orientation: str = "vertical", road_type: str = "trunk",
                       background: str = "neutral") -> list[Scene]:
    """Fig. 6.2: one road of ``road_type`` through the centre on a uniform ``background``, per width (metres)."""
    angle = _axis_angle(orientation)
    return [Scene(site_land_uses=(background,), roads=(Road(road_type, angle, 0.0, float(w)),)) for w in widths_m]


def distance_probe_scenes(distances_m: Sequence[float], orientation: str = "vertical", road_type: str = "trunk",
                          width_m: float | None = None, background: str = "neutral") -> list[Scene]:
    """Fig. 6.3: one road of fixed width whose centre line lies ``distance`` metres from the tile centre."""
    angle = _axis_angle(orientation)
    width = float(width_m or ROAD_WIDTH_M[road_type])
    return [Scene(site_land_uses=(background,), roads=(Road(road_type, angle, float(d), width),)) for d in distances_m]
