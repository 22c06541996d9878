"""The metric-learning benchmarks of Kobs 2023, Ch. 9 (Musgrave et al.'s data sets), read from ``data_root``.

Cars196 (Krause et al. 2013), CUB200-2011 (Wah et al. 2011) and Stanford Online Products (Song et al. 2016)
cannot be downloaded here, so the ``paper`` profile expects each as image folders, one folder per class, in
the layout the background-bias chapter (Kobs Ch. 11) reads too, so one copy serves both:

* ``<data_root>/cars196/images/<class>/*.jpg``
* ``<data_root>/cub200/images/<class>/*.jpg``
* ``<data_root>/sop/images/<class>/*.jpg`` (a class is one product)

The metric-learning split is by class: with the class folders in sorted order, the first half trains and the
second half tests (Cars196 98/98, CUB200 100/100; for SOP, name the folders by product id so that the sorted
first half is the ``Ebay_train.txt`` products, give or take one). Images are returned as ``uint8`` RGB arrays
``(N, S, S, 3)``, centre-cropped to a square and resized to ``image_size`` (:func:`read_square_image`), and
``int64`` labels ``(N,)`` in ``0 .. C-1`` within the split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["DML_BENCHMARKS", "class_image_files", "find_dml_benchmark", "image_files", "load_dml_benchmark",
           "read_square_image"]

DML_BENCHMARKS = {"cars196": "Cars196", "cub200": "CUB200-2011", "sop": "Stanford Online Products"}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_square_image(path: Path, size: int, mode: str = "RGB") -> np.ndarray:
    """One image file, converted to the PIL ``mode`` ("RGB" or "L" for a mask), centre-cropped to a square and
    resized to ``size`` (bilinear): ``uint8 (S, S, 3)`` or ``(S, S)``."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert(mode)
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR))


def image_files(folder: Path) -> list[Path]:
    """The image files (.jpg, .jpeg, .png) of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def class_image_files(folder: Path, layout: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """The images of ``folder/<class>/`` over all class folders in sorted order: ``(paths, int64 labels (N,),
    class names)``. Raises :class:`DataNotFoundError` naming ``layout`` if the folder or its images are missing."""
    if not folder.is_dir():
        raise DataNotFoundError(f"the folder {folder} was not found; expected {layout}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(folder / name)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataNotFoundError(f"{folder} holds no class folders with images; expected {layout}")
    return paths, np.asarray(labels, dtype=np.int64), classes


def find_dml_benchmark(data_root, name: str, split: str) -> tuple[list[Path], np.ndarray]:
    """The image files of the ``split`` half of the classes in ``<data_root>/<name>/images/<class>/`` and
    their labels ``(paths, int64 (N,))``, numbered from 0 within the split."""
    if name not in DML_BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(DML_BENCHMARKS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    layout = (f"{name}/images/<class>/*.jpg ({DML_BENCHMARKS[name]}, one folder per class; the first half of the "
              "sorted classes trains, the second half tests)")
    if data_root is None:
        raise DataNotFoundError(f"{DML_BENCHMARKS[name]} needs a data_root (run with --data-root DIR); expected {layout}")
    paths, labels, classes = class_image_files(Path(data_root).expanduser() / name / "images", layout)
    half = len(classes) // 2
    if half < 1:
        raise DataNotFoundError(f"{DML_BENCHMARKS[name]} needs at least two class folders; expected {layout}")
    keep = labels < half if split == "train" else labels >= half
    return [path for path, kept in zip(paths, keep) if kept], labels[keep] - (0 if split == "train" else half)


def load_dml_benchmark(data_root, name: str, *, split: str, image_size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, S, S, 3)`` and labels ``int64 (N,)`` of one split of one benchmark."""
    paths, labels = find_dml_benchmark(data_root, name, split)
    return np.stack([read_square_image(path, image_size) for path in paths]), labels
