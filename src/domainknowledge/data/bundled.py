"""Real data that works offline: Fashion-MNIST, scikit-learn's digits and sample photos, scikit-image photos.

Fashion-MNIST is looked for, in order, in ``data_root`` (the ``--data-root`` of a run, which may hold the
four idx files directly or in a ``fashion-mnist/`` folder), in the Debian package's folder
``/usr/share/datasets/fashion-mnist``, and in ``$DK_DATA_DIR/fashion-mnist``. Only a profile that allows
downloads fetches it with torchvision; otherwise a missing copy is an error that names the command to
install it.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32,
               0x0E: np.float64}


class DataNotFoundError(FileNotFoundError):
    """A data set is not where it was looked for; the message says where and how to get it."""


def data_root_folder(data_root, folder: str, what: str, layout: str) -> Path:
    """``<data_root>/<folder>`` for a real data set of the ``paper`` profile, or a :class:`DataNotFoundError`
    naming ``what`` is missing and the expected ``layout`` (no data root given, or no such folder)."""
    if data_root is None:
        raise DataNotFoundError(f"{what} need a data_root (run with --data-root DIR); expected {layout}")
    path = Path(data_root).expanduser() / folder
    if not path.is_dir():
        raise DataNotFoundError(f"{what} were not found (no folder {path}); expected {layout}")
    return path


def cache_dir() -> Path:
    """The directory for downloaded data and weights: ``$DK_DATA_DIR``, else ``~/.cache/domainknowledge``."""
    return Path(os.environ.get("DK_DATA_DIR", Path.home() / ".cache" / "domainknowledge")).expanduser()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format, gzipped or not) into an array of its stored dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]]).newbyteorder(">")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(raw) - offset} data bytes for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _fashion_candidates(data_root: str | Path | None) -> list[Path]:
    candidates = []
    if data_root is not None:
        root = Path(data_root)
        candidates += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    candidates += [DEBIAN_FASHION_MNIST, cache_dir() / "fashion-mnist", cache_dir() / "FashionMNIST" / "raw"]
    return candidates


def load_fashion_mnist(split: str = "train", *, data_root: str | Path | None = None,
                       allow_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (Xiao et al. 2017), 60,000 training and 10,000 test images.

    Returns ``(images, labels)``: ``uint8`` of shape ``(N, 28, 28)`` and ``int64`` of shape ``(N,)``, class
    names in :data:`FASHION_MNIST_CLASSES`.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_file, label_file = _FASHION_FILES[split]
    for folder in _fashion_candidates(data_root):
        if (folder / image_file).is_file() and (folder / label_file).is_file():
            images = read_idx(folder / image_file)
            labels = read_idx(folder / label_file).astype(np.int64)
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
            return images, labels
    if allow_download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(cache_dir()), train=(split == "train"), download=True)
        return load_fashion_mnist(split, data_root=data_root, allow_download=False)
    looked = ", ".join(str(p) for p in _fashion_candidates(data_root))
    raise DataNotFoundError(
        f"Fashion-MNIST ({split}) was not found (looked in: {looked}). Install it with "
        "`sudo apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), or put the four idx .gz files "
        "in a folder and pass it as --data-root.")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits: ``float32`` images ``(N, 8, 8)`` in [0, 1], ``int64`` labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "page", "clock",
                  "text", "hubble_deep_field", "immunohistochemistry", "retina")
SKIMAGE_TEXTURES = ("brick", "grass", "gravel")


def load_photos(names=SKIMAGE_PHOTOS + SKIMAGE_TEXTURES) -> dict[str, np.ndarray]:
    """Real photos bundled with scikit-image and scikit-learn, as ``uint8`` RGB arrays ``(H, W, 3)``.

    Grey images are repeated over three channels. scikit-learn contributes ``china`` and ``flower``.
    """
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {}
    for name in names:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype != np.uint8:
            image = (255 * (image.astype(np.float64) / max(image.max(), 1))).astype(np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photos[name] = image[..., :3]
    sample = load_sample_images()
    for filename, image in zip(sample.filenames, sample.images):
        photos[Path(filename).stem] = image
    return photos
