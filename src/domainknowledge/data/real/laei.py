"""LAEI 2013 NO2 grid values with rendered OpenStreetMap tiles, for the ``paper`` profile of Kobs 2023, Ch. 6.

The thesis samples 3,000 training and 1,500 test cells of the London Atmospheric Emissions Inventory 2013
(annual mean NO2 on a 20 m grid, Central London, no overlapping images) and renders the OSM map of the
80 m x 80 m around each cell without labels (Secs. 3.1.2 and 6). Neither can be fetched here, so the
``paper`` profile expects them under ``<data_root>/laei2013/``:

* ``no2_grid.csv``: UTF-8 CSV with a header and the columns ``id`` (the tile's file name without
  ``.png``) and ``no2`` (ug/m3); optionally ``split`` (``train``, ``validation`` or ``test``) to fix the
  thesis' split; without it the cells are split at random;
* ``osm_tiles/<id>.png``: the OSM render of the cell's surroundings, RGB (or RGBA), any square size; it is
  resized to the model's input size.

:func:`load_laei_tiles` raises :class:`~domainknowledge.data.bundled.DataNotFoundError` naming the missing
path and this layout.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, data_root_folder

__all__ = ["LAEI_LAYOUT", "LaeiTiles", "laei_folder", "load_laei_tiles"]

LAEI_LAYOUT = ("<data_root>/laei2013/no2_grid.csv (columns id,no2[,split]; split is train, validation or test) "
               "and <data_root>/laei2013/osm_tiles/<id>.png (the OSM render of the 80 m x 80 m around each cell)")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class LaeiTiles:
    """Real tiles: ``images`` ``(N, S, S, 3)`` uint8 resized to ``S``, ``no2`` ``(N,)``, ``ids`` and ``split``
    (one of :data:`SPLITS` per tile, or ``None`` when the CSV has no split column)."""

    images: np.ndarray
    no2: np.ndarray
    ids: tuple[str, ...]
    split: tuple[str, ...] | None


def laei_folder(data_root) -> Path:
    """``<data_root>/laei2013``, or a :class:`DataNotFoundError` that says what to put where."""
    return data_root_folder(data_root, "laei2013", "the LAEI 2013 tiles", LAEI_LAYOUT)


def load_laei_tiles(data_root, image_size: int, max_tiles: int | None = None) -> LaeiTiles:
    """Read the grid values and their tiles (the module docstring gives the layout); resize to ``image_size``."""
    from PIL import Image

    folder = laei_folder(data_root)
    table = folder / "no2_grid.csv"
    if not table.is_file():
        raise DataNotFoundError(f"{table} is missing; expected {LAEI_LAYOUT}")
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"id", "no2"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{table} lacks the columns {sorted(missing)}; its header is {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{table} holds no rows")
    rows = rows[:max_tiles] if max_tiles else rows
    has_split = "split" in rows[0]
    images, values, ids, splits = [], [], [], []
    for number, row in enumerate(rows, start=2):
        path = folder / "osm_tiles" / f"{row['id']}.png"
        if not path.is_file():
            raise DataNotFoundError(f"{path} is missing (row {number} of {table}); expected {LAEI_LAYOUT}")
        try:
            value = float(row["no2"])
        except ValueError:
            raise ValueError(f"{table} line {number}: no2 {row['no2']!r} is not a number") from None
        if has_split and row["split"] not in SPLITS:
            raise ValueError(f"{table} line {number}: split {row['split']!r} is not one of {SPLITS}")
        with Image.open(path) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
            images.append(np.asarray(image, dtype=np.uint8))
        values.append(value)
        ids.append(row["id"])
        splits.append(row.get("split"))
    return LaeiTiles(np.stack(images), np.asarray(values, dtype=np.float64), tuple(ids),
                     tuple(splits) if has_split else None)
