"""AVA (Murray et al. 2012), the aesthetics data set of Kobs 2023, Ch. 12 and 16, read from ``data_root``.

Published layout, under ``<data_root>/AVA/`` (the ``AVA_dataset`` package with the images beside it):

* ``AVA.txt``: one row per photo, 15 space-separated integers: index, image id, the counts of the votes for
  the scores 1..10, two semantic tag ids (0 = none) and the challenge id;
* ``aesthetics_image_lists/generic_test.jpgl``: the image ids of the standard test partition (one per line),
  the ~20,000 photos that RAPID (Lu et al. 2014), A-LAMP (Ma et al. 2017) and MP_ada (Sheng et al. 2018)
  test on, all others training (:func:`standard_test_mask`);
* ``images/<image id>.jpg``: the photos (about 255,000; a few are missing or broken in every copy, so rows
  whose file is absent are skipped).

:func:`read_ava` reads the table and lists the files; the images stay on disk
(:class:`~domainknowledge.data.real.image_files.ImageFiles` decodes a batch at a time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["AVA_COLUMNS", "AVA_FOLDER", "AVA_IMAGES", "AVA_LAYOUT", "AVA_SOURCE", "AVA_TABLE", "AVA_TEST_LIST",
           "AvaRatings", "read_ava", "standard_test_mask"]

AVA_FOLDER = "AVA"
AVA_TABLE = "AVA.txt"
AVA_IMAGES = "images"
AVA_TEST_LIST = "aesthetics_image_lists/generic_test.jpgl"
AVA_COLUMNS = 15
AVA_SOURCE = ("the AVA_dataset package (AVA.txt, aesthetics_image_lists/) and the images, e.g. "
              "https://academictorrents.com/details/71631f83b11d3d79d8f84efe0a7e12f0ac001460")
AVA_LAYOUT = (f"DATA_ROOT/{AVA_FOLDER}/{AVA_TABLE} (15 columns: index, image id, 10 vote counts for scores 1..10, "
              f"two semantic tags, challenge id), DATA_ROOT/{AVA_FOLDER}/{AVA_TEST_LIST} and "
              f"DATA_ROOT/{AVA_FOLDER}/{AVA_IMAGES}/<image id>.jpg")


@dataclass(frozen=True)
class AvaRatings:
    """The AVA photos present on disk: ``image_ids`` ``(N,)``, ``votes`` ``(N, 10)`` counts for scores 1..10,
    ``paths`` to the JPEG files, in the order of ``AVA.txt``; ``folder`` is ``<data_root>/AVA``."""

    folder: Path
    image_ids: np.ndarray
    votes: np.ndarray
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def distributions(self) -> np.ndarray:
        """Normalised vote histograms ``(N, 10)`` float32."""
        return (self.votes / self.votes.sum(axis=1, keepdims=True)).astype(np.float32)

    @property
    def mean_scores(self) -> np.ndarray:
        """Mean score ``sum_k k p_k`` ``(N,)`` float64."""
        return (self.votes * np.arange(1, 11)).sum(axis=1) / self.votes.sum(axis=1)


def _missing(path: Path, what: str) -> DataNotFoundError:
    return DataNotFoundError(f"AVA: {path} is missing ({what}); expected {AVA_LAYOUT}; get it from {AVA_SOURCE}")


def read_ava(data_root) -> AvaRatings:
    """The rows of ``AVA.txt`` whose image is in ``images/`` (module docstring); a missing folder, table or
    image set is an error naming the file and the data set's source."""
    if data_root is None:
        raise DataNotFoundError(f"AVA needs a data_root (run with --data-root DIR); expected {AVA_LAYOUT}")
    folder = Path(data_root).expanduser() / AVA_FOLDER
    table, images = folder / AVA_TABLE, folder / AVA_IMAGES
    if not table.is_file():
        raise _missing(table, "the vote table")
    if not images.is_dir():
        raise _missing(images, "the folder of photos")
    rows = np.loadtxt(table, dtype=np.int64, ndmin=2)
    if rows.shape[1] != AVA_COLUMNS:
        raise ValueError(f"{table} has {rows.shape[1]} columns; the published AVA.txt has {AVA_COLUMNS} "
                         f"({AVA_LAYOUT})")
    on_disk = {entry.name for entry in os.scandir(images) if entry.name.endswith(".jpg")}
    keep = np.asarray([f"{image_id}.jpg" in on_disk for image_id in rows[:, 1]], dtype=bool)
    keep &= rows[:, 2:12].sum(axis=1) > 0
    if not keep.any():
        raise DataNotFoundError(f"{table} lists {len(rows):,} photos but none is in {images}; expected {AVA_LAYOUT}")
    ids = rows[keep, 1]
    return AvaRatings(folder, ids, rows[keep, 2:12], [images / f"{image_id}.jpg" for image_id in ids])


def standard_test_mask(ratings: AvaRatings) -> np.ndarray:
    """``(N,)`` bool: the photo is in the standard test partition (``aesthetics_image_lists/generic_test.jpgl``)."""
    path = ratings.folder / AVA_TEST_LIST
    if not path.is_file():
        raise _missing(path, "the standard test partition")
    test_ids = np.loadtxt(path, dtype=np.int64, ndmin=1)
    mask = np.isin(ratings.image_ids, test_ids)
    if not mask.any() or mask.all():
        raise ValueError(f"{path} leaves no {'test' if not mask.any() else 'training'} photo among the "
                         f"{len(ratings):,} on disk; is it the list of the same AVA copy?")
    return mask
