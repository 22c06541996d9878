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
``(N, S, S, 3)`` resized to ``image_size`` with PIL and ``int64`` labels ``(N,)`` in ``0 .. C-1`` within the
split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real.ages import read_images

__all__ = ["DML_BENCHMARKS", "find_dml_benchmark", "load_dml_benchmark"]

DML_BENCHMARKS = {"cars196": "Cars196", "cub200": "CUB200-2011", "sop": "Stanford Online Products"}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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
    folder = Path(data_root).expanduser() / name / "images"
    if not folder.is_dir():
        raise DataNotFoundError(f"{DML_BENCHMARKS[name]} was not found: expected the folder {folder} holding {layout}")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    half = len(classes) // 2
    if half < 1:
        raise DataNotFoundError(f"{folder} needs at least two class folders; expected {layout}")
    paths, labels = [], []
    for label, class_folder in enumerate(classes[:half] if split == "train" else classes[half:]):
        for path in sorted(class_folder.iterdir()):
            if path.suffix.lower() in _IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise DataNotFoundError(f"{folder} holds no images; expected {layout}")
    return paths, np.asarray(labels, dtype=np.int64)


def load_dml_benchmark(data_root, name: str, *, split: str, image_size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, S, S, 3)`` and labels ``int64 (N,)`` of one split of one benchmark."""
    paths, labels = find_dml_benchmark(data_root, name, split)
    return read_images(paths, image_size), labels
