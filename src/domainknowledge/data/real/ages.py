"""The age-estimation data sets of Kobs 2023, Ch. 14: UTKFace and AFAD, read from ``data_root``.

Neither can be downloaded without a sign-up, so the ``paper`` profile expects them unpacked under the run's
``data_root``:

* **UTKFace** (Zhang et al. 2017), the "Aligned & Cropped Faces": ``<data_root>/UTKFace/`` holding
  ``<age>_<gender>_<race>_<date&time>.jpg`` files (often ``.jpg.chip.jpg``); more than 20,000 faces, ages
  1-116. Only the age field is read, so names with a missing field still load.
* **AFAD** (Niu et al. 2016), AFAD-Full: ``<data_root>/AFAD-Full/<age>/<gender code>/*.jpg``; more than
  160,000 Asian faces, ages 15-72.

Both are returned as ``uint8`` RGB arrays ``(N, S, S, 3)`` resized to ``image_size`` (60 in the thesis)
with PIL, and ``int64`` ages ``(N,)``. :func:`domainknowledge.data.splits.random_split` draws the thesis'
random 60/20/20 split.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["AFAD_FOLDER", "AFAD_GENDER_CODES", "AFAD_SOURCE", "AGE_DATASETS", "UTKFACE_FOLDER", "UTKFACE_SOURCE",
           "find_afad", "find_utkface", "load_afad", "load_age_dataset", "load_utkface", "read_images"]

#: The folders the published archives unpack to, and where each data set comes from.
UTKFACE_FOLDER = "UTKFace"
UTKFACE_SOURCE = "https://susanqq.github.io/UTKFace/ (UTKFace.tar.gz, 'Aligned & Cropped Faces')"
AFAD_FOLDER = "AFAD-Full"
AFAD_SOURCE = "https://afad-dataset.github.io/ (AFAD-Full.tar.xz)"
#: AFAD's gender sub-folders: 111 male, 112 female.
AFAD_GENDER_CODES = {"111": "male", "112": "female"}

_UTKFACE_NAME = re.compile(r"^(\d+)_")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _require_folder(data_root, folder: str, what: str, layout: str, source: str) -> Path:
    if data_root is None:
        raise DataNotFoundError(f"{what} needs a data_root (run with --data-root DIR); expected {layout}; "
                                f"get it from {source}")
    path = Path(data_root).expanduser() / folder
    if not path.is_dir():
        raise DataNotFoundError(f"{what} was not found: expected the folder {path} holding {layout}; get it from "
                                f"{source}")
    return path


def find_utkface(data_root) -> tuple[list[Path], np.ndarray]:
    """List the UTKFace files under ``<data_root>/UTKFace`` and their ages: ``(paths, ages int64 (N,))``."""
    layout = "UTKFace/<age>_<gender>_<race>_<date>.jpg[.chip.jpg] files (UTKFace 'Aligned & Cropped Faces')"
    folder = _require_folder(data_root, UTKFACE_FOLDER, "UTKFace", layout, UTKFACE_SOURCE)
    paths, ages = [], []
    for path in sorted(folder.iterdir()):
        match = _UTKFACE_NAME.match(path.name)
        if match and ".jpg" in path.name.lower():
            paths.append(path)
            ages.append(int(match.group(1)))
    if not paths:
        raise DataNotFoundError(f"{folder} holds no UTKFace images; expected {layout} from {UTKFACE_SOURCE}")
    return paths, np.asarray(ages, dtype=np.int64)


def find_afad(data_root) -> tuple[list[Path], np.ndarray]:
    """List the AFAD-Full files under ``<data_root>/AFAD-Full/<age>/<gender>/`` and their ages."""
    layout = "AFAD-Full/<age>/<gender code 111 or 112>/<id>.jpg (the AFAD-Full archive, unpacked)"
    folder = _require_folder(data_root, AFAD_FOLDER, "AFAD", layout, AFAD_SOURCE)
    paths, ages = [], []
    for age_folder in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()):
        for path in sorted(p for code in AFAD_GENDER_CODES for p in (age_folder / code).glob("*")):
            if path.suffix.lower() in _IMAGE_SUFFIXES:
                paths.append(path)
                ages.append(int(age_folder.name))
    if not paths:
        raise DataNotFoundError(f"{folder} holds no AFAD images; expected {layout} from {AFAD_SOURCE}")
    return paths, np.asarray(ages, dtype=np.int64)


def read_images(paths, image_size: int) -> np.ndarray:
    """Read image files as RGB, resized to ``image_size`` x ``image_size`` (bilinear): ``uint8 (N, S, S, 3)``."""
    from PIL import Image

    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            images[index] = np.asarray(resized)
    return images


def _load(finder, data_root, image_size: int, max_images: int | None, seed: int):
    paths, ages = finder(data_root)
    if max_images is not None and max_images < len(paths):
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False))
        paths, ages = [paths[i] for i in keep], ages[keep]
    return read_images(paths, image_size), ages


def load_utkface(data_root, *, image_size: int = 60, max_images: int | None = None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """UTKFace faces and ages: ``(uint8 (N, S, S, 3), int64 (N,))``; ``max_images`` draws a seeded subset."""
    return _load(find_utkface, data_root, image_size, max_images, seed)


def load_afad(data_root, *, image_size: int = 60, max_images: int | None = None,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """AFAD-Full faces and ages: ``(uint8 (N, S, S, 3), int64 (N,))``; ``max_images`` draws a seeded subset."""
    return _load(find_afad, data_root, image_size, max_images, seed)


AGE_DATASETS = {"utkface": load_utkface, "afad": load_afad}


def load_age_dataset(name: str, data_root, *, image_size: int = 60, max_images: int | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load ``"utkface"`` or ``"afad"`` by name (see :func:`load_utkface`)."""
    if name not in AGE_DATASETS:
        raise ValueError(f"unknown age data set {name!r}; choose one of {sorted(AGE_DATASETS)}")
    return AGE_DATASETS[name](data_root, image_size=image_size, max_images=max_images, seed=seed)
