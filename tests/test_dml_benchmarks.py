"""Cars196, CUB-200-2011 and SOP read in their published layouts (from the published-layout fixtures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domainknowledge import metric_learning
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real import dml_benchmarks as benchmarks
from domainknowledge.fixtures import cars196, cub200, sop, write_fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixtures(tmp_path_factory.mktemp("dml"), ["cars196", "cub200", "sop"])


@pytest.mark.parametrize("name, train_ids, test_ids", [
    ("cars196", list(range(1, 9)), [99, 196]),                  # classes 1-98 train, 99-196 test
    ("cub200", list(range(3, 11)), [101, 200]),                 # 1-100 train, 101-200 test
    ("sop", list(range(1, 9)), [sop.FIRST_TEST_CLASS, sop.FIRST_TEST_CLASS + 1]),   # as Ebay_*.txt list them
])
def test_standard_class_splits(root, name, train_ids, test_ids):
    train = benchmarks.find_dml_benchmark(root, name, "train")
    test = benchmarks.find_dml_benchmark(root, name, "test")
    assert list(train.class_ids) == train_ids and list(test.class_ids) == test_ids
    assert train.labels.min() == 0 and train.labels.max() == len(train_ids) - 1 and test.labels.max() == 1
    assert not set(train.paths) & set(test.paths) and all(path.is_file() for path in train.paths)


def test_paths_and_labels_follow_the_annotation_files(root):
    train = benchmarks.find_dml_benchmark(root, "cars196", "train")
    names = dict(cars196.image_names(1))
    assert [str(p) for p in train.relative_paths()][:2] == ["car_ims/000001.jpg", "car_ims/000002.jpg"]
    assert all(names[str(p)] == train.class_ids[label] for p, label in zip(train.relative_paths(), train.labels))
    test = benchmarks.find_dml_benchmark(root, "sop", "test")
    assert str(test.relative_paths()[0]).startswith("bicycle_final/") and test.relative_paths()[0].suffix == ".JPG"
    cub = benchmarks.find_dml_benchmark(root, "cub200", "train")
    assert cub.relative_paths()[0].parts[:2] == ("images", cub200.class_folder(3))


def test_natural_order_of_numbered_names():
    assert sorted(["10.b", "9.a", "100.c"], key=benchmarks.natural_key) == ["9.a", "10.b", "100.c"]


def test_missing_files_are_named_with_the_source(root, tmp_path):
    with pytest.raises(DataNotFoundError, match="cars_annos.mat.*car_dataset"):
        benchmarks.find_dml_benchmark(tmp_path, "cars196", "train")
    with pytest.raises(DataNotFoundError, match="image_class_labels.txt.*cub_200_2011"):
        (tmp_path / "CUB_200_2011").mkdir()
        for name in ("images.txt", "train_test_split.txt", "classes.txt"):
            (tmp_path / "CUB_200_2011" / name).write_text("")
        (tmp_path / "CUB_200_2011" / "images").mkdir()
        benchmarks.find_dml_benchmark(tmp_path, "cub200", "test")
    with pytest.raises(DataNotFoundError, match="needs a data_root"):
        benchmarks.find_dml_benchmark(None, "sop", "train")
    broken = tmp_path / "Stanford_Online_Products"
    broken.mkdir()
    (broken / "Ebay_train.txt").write_text("image_id class_id path\n1 1 a.JPG\n")
    (broken / "Ebay_test.txt").write_text("")
    with pytest.raises(DataNotFoundError, match="header line"):
        benchmarks.find_dml_benchmark(tmp_path, "sop", "train")
    listed = benchmarks.find_dml_benchmark(root, "sop", "test").paths[0]
    listed.rename(listed.with_suffix(".moved"))
    try:
        with pytest.raises(DataNotFoundError, match="listed in the annotations but missing"):
            benchmarks.find_dml_benchmark(root, "sop", "test")
    finally:
        listed.with_suffix(".moved").rename(listed)


def test_image_files_decode_a_batch_at_a_time_like_the_whole_set(root):
    found = benchmarks.find_dml_benchmark(root, "cub200", "test")
    files = benchmarks.benchmark_image_files(found.paths, 32)
    whole, _ = benchmarks.load_dml_benchmark(root, "cub200", split="test", image_size=32)
    assert files.shape == (len(found.paths), 3, 32, 32) and whole.shape == (len(found.paths), 32, 32, 3)
    np.testing.assert_array_equal(files[np.array([5, 1])].permute(0, 2, 3, 1).numpy(), whole[[5, 1]])
    # the network sees the same images from the source as from the decoded tensor
    config = metric_learning.EmbeddingConfig(backbone="small_cnn", image_size=32, epochs=0)
    network = metric_learning.build_embedding_network(config, seed=0)
    from_files = metric_learning.embed(network, files, batch_size=3)
    from_tensor = metric_learning.embed(network, torch.from_numpy(whole.transpose(0, 3, 1, 2).copy()), batch_size=3)
    np.testing.assert_allclose(from_files, from_tensor, atol=1e-6)
    arrays = metric_learning.ArrayImages(whole)
    assert torch.equal(arrays[np.array([2, 0])], files[np.array([2, 0])])
