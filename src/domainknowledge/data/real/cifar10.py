"""CIFAR-10 (Krizhevsky 2009), the main data set of Darlow 2022, Ch. 3, read from ``data_root``.

Expected layout: ``<data_root>/cifar-10-batches-py/`` (the "CIFAR-10 python version" archive, unpacked); the
cache directory is searched too, and a profile that allows downloads fetches the archive there with
torchvision, which verifies its MD5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, cache_dir

__all__ = ["CIFAR10_CLASSES", "load_cifar10"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(split: str = "train", *, data_root=None, allow_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 32, 32, 3), labels int64 (N,))`` of the 50,000 training or 10,000 test images."""
    from torchvision.datasets import CIFAR10

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    roots = ([Path(data_root).expanduser()] if data_root is not None else []) + [cache_dir()]
    for root in roots:
        if (root / "cifar-10-batches-py").is_dir():
            data = CIFAR10(str(root), train=(split == "train"), download=False)
            return np.asarray(data.data, dtype=np.uint8), np.asarray(data.targets, dtype=np.int64)
    if allow_download:
        data = CIFAR10(str(cache_dir()), train=(split == "train"), download=True)
        return np.asarray(data.data, dtype=np.uint8), np.asarray(data.targets, dtype=np.int64)
    raise DataNotFoundError(
        f"CIFAR-10 was not found: expected cifar-10-batches-py/ (the 'CIFAR-10 python version' archive, unpacked) "
        f"in {' or '.join(str(r) for r in roots)}; pass --data-root DIR, or run the paper profile, which downloads it")
