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


def test_random_weights_load_through_the_paper_loaders(tmp_path, monkeypatch):
    """A torchvision checkpoint written under its published name is what the encoder registry loads."""
    import torch

    from domainknowledge.fixtures import dry_run_environment
    from domainknowledge.fixtures.weights import torchvision_checkpoint
    from domainknowledge.models.encoders.registry import load_encoder

    for variable, value in dry_run_environment(tmp_path).items():
        monkeypatch.setenv(variable, value)
    path = torchvision_checkpoint(tmp_path / "cache", "squeezenet1_0", seed=3)
    assert path.name.startswith("squeezenet1_0-") and path.parent == tmp_path / "cache/torch/hub/checkpoints"
    encoder = load_encoder("torchvision-squeezenet1_0-imagenet")
    saved = torch.load(path, weights_only=True)
    first = next(k for k in saved if k.endswith("weight"))
    loaded = dict(encoder.network.named_parameters()) if hasattr(encoder, "network") else {}
    assert any(torch.allclose(v.float(), saved[first].float()) for v in loaded.values()), "weights not loaded"
