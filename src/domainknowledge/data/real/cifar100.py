"""CIFAR-100 (Krizhevsky 2009) as used for SimLoss in Kobs 2023, Sec. 14.2, read from ``data_root``.

Expected layout: ``<data_root>/cifar-100-python/{train,test,meta}``, the pickles of the "CIFAR-100 python
version" archive (the cache directory is searched too, and a profile that allows downloads fetches the
archive there with torchvision). As in the thesis:

* four classes whose names have no GoogleNews Word2Vec vector are dropped (:data:`DROPPED_CLASSES`:
  aquarium fish, sweet pepper, keyboard, pickup truck), leaving 96 classes;
* each class keeps 450 training and 50 validation images (drawn with a seed from its 500 training images)
  and its 100 test images;
* the 20 coarse labels are kept as superclasses for SA and FSA (Eqs. 2.22-2.23).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, cache_dir
from domainknowledge.data.splits import per_class_split

__all__ = ["DROPPED_CLASSES", "Cifar100", "load_cifar100", "read_cifar100_split"]

DROPPED_CLASSES = ("aquarium_fish", "sweet_pepper", "keyboard", "pickup_truck")
_FILES = ("train", "test", "meta")


@dataclass(frozen=True)
class Cifar100:
    """CIFAR-100 without the dropped classes.

    ``splits[name] = (images uint8 (N, 32, 32, 3), labels int64 (N,))`` for ``train``, ``validation`` and
    ``test``; labels index ``class_names`` (96 names, CIFAR's order); ``superclass_of`` ``(96,)`` maps a
    class to its index in ``superclass_names`` (20 names).
    """

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    class_names: tuple[str, ...]
    superclass_names: tuple[str, ...]
    superclass_of: np.ndarray


_LAYOUT = "cifar-100-python/{train,test,meta} (the 'CIFAR-100 python version' archive, unpacked)"


def _candidates(data_root) -> list[Path]:
    roots = [Path(data_root).expanduser()] if data_root is not None else []
    return [root / "cifar-100-python" for root in roots + [cache_dir()]]


def _folder(data_root, allow_download: bool = False) -> Path:
    """The first complete ``cifar-100-python`` folder in ``data_root`` or the cache; download it if allowed."""
    for folder in _candidates(data_root):
        if all((folder / name).is_file() for name in _FILES):
            return folder
    if allow_download:
        from torchvision.datasets import CIFAR100   # verifies the archive's MD5

        CIFAR100(str(cache_dir()), train=True, download=True)
        return _folder(data_root, allow_download=False)
    looked = ", ".join(str(folder) for folder in _candidates(data_root))
    raise DataNotFoundError(f"CIFAR-100 was not found (looked for {', '.join(_FILES)} in: {looked}); expected "
                            f"{_LAYOUT} under --data-root DIR, or run at the paper profile, which downloads it")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def read_cifar100_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pickle of ``folder``, all 100 classes: ``(images uint8 (N, 32, 32, 3), fine int64, coarse int64)``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    batch = _unpickle(Path(folder) / split)
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return (np.ascontiguousarray(images), np.asarray(batch["fine_labels"], dtype=np.int64),
            np.asarray(batch["coarse_labels"], dtype=np.int64))


def _names(values) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def load_cifar100(data_root, *, seed: int = 0, train_per_class: int | None = 450,
                  validation_per_class: int | float = 50, test_per_class: int | None = None,
                  allow_download: bool = False) -> Cifar100:
    """Load CIFAR-100 with the thesis' 96 classes and 450/50/100 split per class (Sec. 14.2).

    Looks in ``<data_root>/cifar-100-python``, then in the cache (:func:`~domainknowledge.data.cache_dir`);
    ``allow_download`` fetches it there with torchvision. Smaller ``*_per_class`` values draw seeded subsets
    (``test_per_class=None`` keeps all 100). ``train_per_class=None`` with a float ``validation_per_class``
    states the split as shares, whatever the copy's size: that share of each class' training images
    (at least one) validates and the rest trains (0.1 is the thesis' 450 / 50 of CIFAR-100's 500).
    """
    folder = _folder(data_root, allow_download)
    meta = _unpickle(folder / "meta")
    fine_names, coarse_names = _names(meta["fine_label_names"]), _names(meta["coarse_label_names"])
    unknown = set(DROPPED_CLASSES) - set(fine_names)
    if unknown:
        raise ValueError(f"the meta file lacks the classes {sorted(unknown)}; is this CIFAR-100?")
    kept = [index for index, name in enumerate(fine_names) if name not in DROPPED_CLASSES]
    new_index = np.full(len(fine_names), -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))

    train_images, train_fine, train_coarse = read_cifar100_split(folder, "train")
    test_images, test_fine, _ = read_cifar100_split(folder, "test")
    superclass_of = np.zeros(len(kept), dtype=np.int64)
    superclass_of[new_index[train_fine[np.isin(train_fine, kept)]]] = train_coarse[np.isin(train_fine, kept)]

    def keep(images, fine):
        mask = new_index[fine] >= 0
        return images[mask], new_index[fine[mask]]

    train_images, train_labels = keep(train_images, train_fine)
    test_images, test_labels = keep(test_images, test_fine)
    if isinstance(validation_per_class, float):
        if train_per_class is not None or not 0 < validation_per_class < 1:
            raise ValueError("a validation share (a float in (0, 1)) needs train_per_class=None (the rest trains); "
                             f"got {validation_per_class} with train_per_class={train_per_class}")
        smallest = int(np.bincount(train_labels).min())
        validation_count = min(smallest - 1, max(1, round(validation_per_class * smallest)))
        from_train = per_class_split(train_labels, {"validation": validation_count, "train": None}, seed=seed)
    else:
        from_train = per_class_split(train_labels, {"train": train_per_class, "validation": validation_per_class},
                                     seed=seed)
    test_index = per_class_split(test_labels, {"test": test_per_class}, seed=seed)["test"]
    splits = {name: (train_images[index], train_labels[index]) for name, index in from_train.items()}
    splits["test"] = (test_images[test_index], test_labels[test_index])
    return Cifar100(splits=splits, class_names=tuple(fine_names[i] for i in kept),
                    superclass_names=coarse_names, superclass_of=superclass_of)
