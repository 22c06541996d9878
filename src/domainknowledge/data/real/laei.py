"""LAEI 2013 NO2 grid values with rendered OpenStreetMap tiles, for the ``paper`` profile of Kobs 2023, Ch. 6.

The thesis samples 3,000 training and 1,500 test cells of the London Atmospheric Emissions Inventory 2013
(annual mean NO2 on a 20 m grid, Central London) such that no two images overlap, and renders the OSM map of
the 80 m x 80 m around each cell without labels (Secs. 3.1.2 and 6). The ``paper`` profile expects, under
``<data_root>/laei2013/``:

* the LAEI 2013 Update concentrations as the London Datastore publishes them, the archive
  ``4.1. Concentrations LAEI 2013 Update.zip`` unpacked, of which the reader uses
  ``4.1. Concentrations LAEI 2013 Update/2013/CSV/PostLAEI2013_2013_NO2.csv``: a CSV with a header and the
  columns ``x``, ``y`` (British National Grid easting and northing of the 20 m cell, metres), ``year`` and
  ``conct`` (annual mean NO2, ug/m3), one row per cell of Greater London (:data:`GRID_CSV`);
* ``osm_tiles/<x>_<y>.png``: the OSM render of the 80 m x 80 m around the cell at easting ``x`` and
  northing ``y`` (written as integers, e.g. ``osm_tiles/530010_180010.png``), RGB or RGBA, any square size
  (resized to the model's input). The thesis' renders are not published; render them from OSM (e.g. the
  standard OSM Carto style without labels, 80 m across) for the cells to study. The cells used are those
  with a tile; the grid file is streamed, so its millions of other rows are never held in memory.

:func:`non_overlapping_split` splits the cells so that no training or validation tile overlaps a test tile
(and no training tile a validation tile), as the thesis requires. :func:`load_laei_tiles` raises
:class:`~domainknowledge.data.bundled.DataNotFoundError` naming the missing path, the layout and the source.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, data_root_folder

__all__ = ["GRID_COLUMNS", "GRID_CSV", "LAEI_LAYOUT", "SOURCE", "SPLITS", "TILE_FOLDER", "TILE_METRES", "LaeiTiles",
           "laei_folder", "load_laei_tiles", "non_overlapping_split", "resize_tile", "tile_name"]

SOURCE = "https://data.london.gov.uk/dataset/london-atmospheric-emissions-inventory-2013"
ARCHIVE_FOLDER = "4.1. Concentrations LAEI 2013 Update"
GRID_CSV = f"{ARCHIVE_FOLDER}/2013/CSV/PostLAEI2013_2013_NO2.csv"
GRID_COLUMNS = ("x", "y", "year", "conct")
TILE_FOLDER = "osm_tiles"
TILE_METRES = 80.0                       # a tile covers 80 m x 80 m around its cell (Sec. 6)
SPLITS = ("train", "validation", "test")
LAEI_LAYOUT = (f"<data_root>/laei2013/{GRID_CSV} (the London Datastore's LAEI 2013 Update concentrations, "
               f"columns {','.join(GRID_COLUMNS)}; {SOURCE}) and <data_root>/laei2013/{TILE_FOLDER}/<x>_<y>.png "
               "(the OSM render of the 80 m x 80 m around each cell to use, x and y its easting and northing)")


@dataclass(frozen=True)
class LaeiTiles:
    """Real tiles: ``images`` ``(N, S, S, 3)`` uint8 resized to ``S`` (an array, or the lazy
    :class:`~domainknowledge.data.real.image_files.ImageFiles` indexed like it), ``no2`` ``(N,)`` ug/m3, and the cells'
    ``easting`` and ``northing`` ``(N,)`` metres (British National Grid), in the grid file's order."""

    images: np.ndarray
    no2: np.ndarray
    easting: np.ndarray
    northing: np.ndarray


def laei_folder(data_root) -> Path:
    """``<data_root>/laei2013``, or a :class:`DataNotFoundError` that says what to put where."""
    return data_root_folder(data_root, "laei2013", "the LAEI 2013 tiles", LAEI_LAYOUT)


def tile_name(easting: float, northing: float) -> str:
    """The file name of the tile of the cell at ``(easting, northing)``: ``"<x>_<y>.png"`` in whole metres."""
    return f"{int(round(easting))}_{int(round(northing))}.png"


def _number(table: Path, number: int, text: str, column: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{table} line {number}: {column} {text!r} is not a number") from None


def resize_tile(image_size: int):
    """``prepare`` for :class:`~domainknowledge.data.real.image_files.ImageFiles`: an RGB render ``(h, w, 3)``
    resized to ``(image_size, image_size, 3)`` uint8 (bilinear), as :func:`load_laei_tiles` reads a tile."""
    from PIL import Image

    return lambda image: np.asarray(Image.fromarray(image).resize((image_size, image_size),
                                                                  Image.Resampling.BILINEAR), dtype=np.uint8)


def load_laei_tiles(data_root, image_size: int, max_tiles: int | None = None, *, lazy: bool = False) -> LaeiTiles:
    """Stream the grid file, keep the cells that have a tile (the first ``max_tiles`` of them) and read their
    tiles resized to ``image_size`` (the module docstring gives the layout).

    ``lazy=True`` decodes nothing: ``images`` is an :class:`~domainknowledge.data.real.image_files.ImageFiles`
    of the tiles' files, indexed like the ``(N, S, S, 3)`` array (the same pixels, decoded when a batch is
    read), so memory does not grow with the number of tiles (the paper profile)."""
    from PIL import Image

    from domainknowledge.data.real.image_files import ImageFiles

    folder = laei_folder(data_root)
    table, tiles = folder / GRID_CSV, folder / TILE_FOLDER
    if not table.is_file():
        raise DataNotFoundError(f"{table} is missing: the LAEI 2013 Update concentrations ({SOURCE}, archive "
                                f"'{ARCHIVE_FOLDER}.zip', unpacked); expected {LAEI_LAYOUT}")
    available = {path.name for path in tiles.glob("*.png")} if tiles.is_dir() else set()
    if not available:
        raise DataNotFoundError(f"no tiles in {tiles}: render the OSM map of the 80 m x 80 m around each cell "
                                f"to use as {TILE_FOLDER}/<x>_<y>.png; expected {LAEI_LAYOUT}")
    images, values, eastings, northings = [], [], [], []
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"x", "y", "conct"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{table} lacks the columns {sorted(missing)} of the published header "
                             f"{','.join(GRID_COLUMNS)}; its header is {reader.fieldnames}")
        for number, row in enumerate(reader, start=2):
            easting, northing = _number(table, number, row["x"], "x"), _number(table, number, row["y"], "y")
            name = tile_name(easting, northing)
            if name not in available:
                continue
            values.append(_number(table, number, row["conct"], "conct"))
            eastings.append(easting)
            northings.append(northing)
            if lazy:
                images.append(tiles / name)
            else:
                with Image.open(tiles / name) as image:
                    image = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                    images.append(np.asarray(image, dtype=np.uint8))
            if max_tiles is not None and len(images) >= max_tiles:
                break
    if not images:
        raise ValueError(f"none of the {len(available)} tiles in {tiles} belongs to a cell of {table} "
                         f"(names are <x>_<y>.png, e.g. {sorted(available)[0]})")
    images = ImageFiles(images, resize_tile(image_size), image_size) if lazy else np.stack(images)
    return LaeiTiles(images, np.asarray(values, dtype=np.float64), np.asarray(eastings), np.asarray(northings))


def _overlapping_pairs(easting: np.ndarray, northing: np.ndarray, tile_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, of cells whose ``tile_m`` x ``tile_m`` tiles overlap (centres
    closer than ``tile_m`` in both axes), found through a hash grid of side ``tile_m``: ``O(N)`` for
    spread-out cells, never an ``N x N`` matrix."""
    buckets: dict[tuple[int, int], list[int]] = {}
    keys = np.stack([np.floor(easting / tile_m), np.floor(northing / tile_m)], axis=1).astype(np.int64)
    for index, (bx, by) in enumerate(keys.tolist()):
        buckets.setdefault((bx, by), []).append(index)
    first, second = [], []
    for (bx, by), members in buckets.items():
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in buckets.get((bx + dx, by + dy), ()):
                    for i in members:
                        if i < j and abs(easting[i] - easting[j]) < tile_m and abs(northing[i] - northing[j]) < tile_m:
                            first.append(i)
                            second.append(j)
    return np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)


def non_overlapping_split(easting, northing, *, test_fraction: float = 1 / 3, validation_fraction: float = 0.1,
                          seed: int = 0, tile_m: float = TILE_METRES, block_m: float = 4 * TILE_METRES
                          ) -> dict[str, np.ndarray]:
    """Split cells into train, validation and test so that no two tiles of different splits overlap.

    Cells are grouped into square blocks of side ``block_m`` (metres); whole blocks go to test (about
    ``test_fraction`` of the cells), then to validation (``validation_fraction`` of the rest, the thesis'
    10 %), the rest to training. A cell whose tile (``tile_m`` across) overlaps a tile of another split
    across a block border is dropped, from training before validation before test, so that no image area
    is seen both in training and in testing (the thesis samples "no overlapping images").

    Returns sorted index arrays per split (dropped cells are in none). Raises ``ValueError`` when a split
    ends up with fewer than two cells.
    """
    easting, northing = np.asarray(easting, dtype=float), np.asarray(northing, dtype=float)
    if easting.shape != northing.shape or easting.ndim != 1:
        raise ValueError("easting and northing must be 1-D arrays of the same length")
    if not 0 < test_fraction < 1 or not 0 < validation_fraction < 1:
        raise ValueError("test_fraction and validation_fraction must lie in (0, 1)")
    if block_m < tile_m:
        raise ValueError(f"block_m ({block_m}) must be at least the tile size ({tile_m})")
    blocks = np.stack([np.floor(easting / block_m), np.floor(northing / block_m)], axis=1).astype(np.int64)
    unique, block_of = np.unique(blocks, axis=0, return_inverse=True)
    block_of = block_of.reshape(-1)
    order = np.random.default_rng(seed).permutation(len(unique))
    sizes = np.bincount(block_of, minlength=len(unique))[order]
    cumulative = np.cumsum(sizes) / len(easting)
    test_blocks = order[:max(1, int(np.searchsorted(cumulative, test_fraction)) + 1)]
    rest = order[len(test_blocks):]
    rest_cumulative = np.cumsum(np.bincount(block_of, minlength=len(unique))[rest]) / max(1, len(easting))
    validation_blocks = rest[:max(1, int(np.searchsorted(rest_cumulative, validation_fraction * (1 - test_fraction))) + 1)]
    split = np.zeros(len(easting), dtype=np.int64)                      # 0 train, 1 validation, 2 test
    split[np.isin(block_of, validation_blocks)] = 1
    split[np.isin(block_of, test_blocks)] = 2
    first, second = _overlapping_pairs(easting, northing, tile_m)
    keep = np.ones(len(easting), dtype=bool)
    crossing = split[first] != split[second]
    for i, j in zip(first[crossing].tolist(), second[crossing].tolist()):
        keep[i if split[i] < split[j] else j] = False                    # the lower split gives way
    result = {name: np.flatnonzero(keep & (split == code)) for code, name in enumerate(SPLITS)}
    small = [name for name, index in result.items() if len(index) < 2]
    if small:
        raise ValueError(f"the non-overlapping split left fewer than 2 cells in {small} "
                         f"({ {k: len(v) for k, v in result.items()} }); provide more, or more spread-out, tiles")
    return result
