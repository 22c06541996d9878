"""The published-layout fixtures are read by the library's own readers, as the real data sets are."""

from __future__ import annotations

import numpy as np
import pytest

from domainknowledge.fixtures import FIXTURES, _discover, write_fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixtures(tmp_path_factory.mktemp("published"))


def test_every_fixture_is_written_into_its_own_folder(root):
    _discover()
    assert FIXTURES
    for fixture in FIXTURES.values():
        assert (root / fixture.folder).is_dir(), fixture.name
        assert fixture.source, f"{fixture.name} does not say where the real data set comes from"
    assert not list(root.rglob(".*.tmp*")), "a temporary folder was left behind"


def test_cifar_pickles_read_as_published(root):
    from domainknowledge.data.real.cifar10 import load_cifar10
    from domainknowledge.data.real.cifar100 import load_cifar100

    images, labels = load_cifar10("train", data_root=root)
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(10))
    data = load_cifar100(root, train_per_class=2, validation_per_class=1)
    assert len(data.class_names) == 96 and "aquarium_fish" not in data.class_names
    assert len(data.superclass_names) == 20


def test_an_unknown_fixture_or_scale_is_refused(tmp_path):
    with pytest.raises(KeyError, match="no published fixture named nope"):
        write_fixtures(tmp_path, ["nope"])
    with pytest.raises(ValueError, match="positive integer"):
        write_fixtures(tmp_path, scale=0)


def test_a_missing_cifar_batch_is_named(root, tmp_path):
    import shutil

    from domainknowledge.data.bundled import DataNotFoundError
    from domainknowledge.data.real.cifar10 import load_cifar10

    shutil.copytree(root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3 is missing"):
        load_cifar10("train", data_root=tmp_path)
