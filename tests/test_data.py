"""Offline data: the idx reader, Fashion-MNIST's search path and its error, the bundled images."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from domainknowledge import data
from domainknowledge.data import bundled


def write_idx(path, array: np.ndarray, dtype_code: int = 0x08) -> None:
    """Write ``array`` in the idx format (big-endian header), gzipped, exactly as Fashion-MNIST ships."""
    header = struct.pack(">BBBB", 0, 0, dtype_code, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(">u1").tobytes())


@pytest.fixture
def tiny_fashion_mnist(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    splits = {}
    for split, count in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
        splits[split] = (images, labels)
    return tmp_path, splits


@pytest.fixture
def no_system_copy(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-copy")
    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path / "empty-cache"))


def test_fashion_mnist_from_data_root(tiny_fashion_mnist, no_system_copy):
    root, splits = tiny_fashion_mnist
    images, labels = data.load_fashion_mnist("test", data_root=root)
    assert images.dtype == np.uint8 and images.shape == (5, 28, 28)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, splits["t10k"][0])
    np.testing.assert_array_equal(labels, splits["t10k"][1])
    assert data.load_fashion_mnist("train", data_root=root)[0].shape == (12, 28, 28)


def test_missing_fashion_mnist_names_the_install_command(no_system_copy, tmp_path):
    with pytest.raises(data.DataNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        data.load_fashion_mnist("train", data_root=tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="split must be"):
        data.load_fashion_mnist("validation")


def test_idx_reader_rejects_bad_files(tmp_path):
    bad_magic = tmp_path / "bad.gz"
    with gzip.open(bad_magic, "wb") as handle:
        handle.write(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(bad_magic)
    truncated = tmp_path / "short.gz"
    with gzip.open(truncated, "wb") as handle:
        handle.write(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\0" * 3)
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(truncated)


def test_digits_and_photos_are_bundled():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8) and 0.0 <= images.min() and images.max() <= 1.0
    assert set(labels.tolist()) == set(range(10))
    photos = data.load_photos(("chelsea", "camera"))
    assert photos["chelsea"].shape == (300, 451, 3) and photos["chelsea"].dtype == np.uint8
    assert photos["camera"].shape[-1] == 3  # grey photos come as three channels
    assert {"china", "flower"} <= set(photos)  # scikit-learn's sample photos


def test_data_root_folder_names_what_is_missing_and_the_layout(tmp_path):
    from domainknowledge.data.bundled import DataNotFoundError, data_root_folder

    with pytest.raises(DataNotFoundError, match="the demo set need a data_root .*expected demo/x.csv"):
        data_root_folder(None, "demo", "the demo set", "demo/x.csv")
    with pytest.raises(DataNotFoundError, match=f"no folder {tmp_path / 'demo'}"):
        data_root_folder(tmp_path, "demo", "the demo set", "demo/x.csv")
    (tmp_path / "demo").mkdir()
    assert data_root_folder(tmp_path, "demo", "the demo set", "demo/x.csv") == tmp_path / "demo"
