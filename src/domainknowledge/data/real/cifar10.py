"""CIFAR-10 (Krizhevsky 2009), the main data set of Darlow 2022, Ch. 3, read from ``data_root``.

Expected layout: ``<data_root>/cifar-10-batches-py/`` (the "CIFAR-10 python version" archive, unpacked); the
cache directory is searched too, and a profile that allows downloads fetches the archive there with
torchvision, which verifies its MD5.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, cache_dir

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "read_cifar10_batches"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


def read_cifar10_batches(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The pickled batches of ``split`` in an unpacked ``cifar-10-batches-py`` folder, read as published:
    ``(images uint8 (N, 32, 32, 3), labels int64 (N,))``; a missing batch is named in the error."""
    images, labels = [], []
    for name in _BATCHES[split]:
        path = Path(folder) / name
        if not path.is_file():
            raise DataNotFoundError(f"CIFAR-10 is incomplete: {path} is missing (the 'CIFAR-10 python version' "
                                    "archive unpacks data_batch_1..5 and test_batch into cifar-10-batches-py/)")
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def load_cifar10(split: str = "train", *, data_root=None, allow_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 32, 32, 3), labels int64 (N,))`` of the 50,000 training or 10,000 test images."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    roots = ([Path(data_root).expanduser()] if data_root is not None else []) + [cache_dir()]
    for root in roots:
        if (root / "cifar-10-batches-py").is_dir():
            return read_cifar10_batches(root / "cifar-10-batches-py", split)
    if allow_download:
        from torchvision.datasets import CIFAR10   # verifies the archive's MD5

        CIFAR10(str(cache_dir()), train=(split == "train"), download=True)
        return read_cifar10_batches(cache_dir() / "cifar-10-batches-py", split)
    raise DataNotFoundError(
        f"CIFAR-10 was not found: expected cifar-10-batches-py/ (the 'CIFAR-10 python version' archive, unpacked) "
        f"in {' or '.join(str(r) for r in roots)}; pass --data-root DIR, or run the paper profile, which downloads it")
