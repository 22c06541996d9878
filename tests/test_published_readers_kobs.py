"""The published-layout fixtures of Kobs' data sets (UTKFace, AFAD, GoogleNews Word2Vec, AVA, TID2013, the
pretraining photos) are read by the library's readers as the real data sets are, and the readers stream."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real.image_files import ImageFiles, fit_and_pad
from domainknowledge.fixtures import write_fixtures

NAMES = ["utkface", "afad", "word2vec_googlenews", "ava", "tid2013", "pexels_photos", "cifar100"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixtures(tmp_path_factory.mktemp("kobs-published"), NAMES)


def test_utkface_and_afad_ages_come_from_the_published_names_and_folders(root):
    from domainknowledge.data.real.ages import find_afad, find_utkface, load_age_dataset
    from domainknowledge.fixtures.ages import AFAD_AGES, PER_AGE, UTKFACE_AGES

    paths, ages = find_utkface(root)
    assert all(p.name.endswith(".jpg.chip.jpg") and len(p.name.split("_")[3].split(".")[0]) == 17 for p in paths)
    assert sorted(set(ages.tolist())) == list(UTKFACE_AGES) and len(ages) == PER_AGE * len(UTKFACE_AGES)
    paths, ages = find_afad(root)
    assert {p.parent.name for p in paths} == {"111", "112"} and sorted(set(ages.tolist())) == list(AFAD_AGES)
    images, ages = load_age_dataset("afad", root, image_size=60)
    assert images.shape == (len(ages), 60, 60, 3) and images.dtype == np.uint8


def test_afad_reads_only_the_gender_folders_and_names_its_source(root, tmp_path):
    from domainknowledge.data.real.ages import find_afad

    shutil.copytree(root / "AFAD-Full", tmp_path / "AFAD-Full")
    stray = tmp_path / "AFAD-Full" / "20" / "thumbnails"
    stray.mkdir()
    shutil.copy(next((tmp_path / "AFAD-Full" / "20" / "111").glob("*.jpg")), stray / "x.jpg")
    paths, _ = find_afad(tmp_path)
    assert not any(p.parent.name == "thumbnails" for p in paths)
    with pytest.raises(DataNotFoundError, match="afad-dataset.github.io"):
        find_afad(tmp_path / "nowhere")


def test_word2vec_fixture_holds_every_kept_cifar100_name(root, tmp_path):
    from domainknowledge.data.real.cifar100 import DROPPED_CLASSES, load_cifar100
    from domainknowledge.fixtures.word2vec import write_word2vec_binary
    from domainknowledge.models.text import load_word2vec, word2vec_embeddings

    names = [name.replace("_", " ") for name in load_cifar100(root, train_per_class=2,
                                                                validation_per_class=1).class_names]
    vectors = word2vec_embeddings(names, root)
    assert vectors.shape == (96, 300) and np.isfinite(vectors).all()
    with pytest.raises(KeyError, match="aquarium fish"):
        word2vec_embeddings([DROPPED_CLASSES[0].replace("_", " ")], root)
    # Google's own file name at the data root, in the plain binary format
    write_word2vec_binary(tmp_path / "GoogleNews-vectors-negative300.bin", {"apple": np.ones(300), "pear": -np.ones(300)})
    assert load_word2vec(str(tmp_path))["pear"][0] == -1.0
    with pytest.raises(DataNotFoundError, match="gensim.downloader"):
        word2vec_embeddings(["apple"], tmp_path / "nowhere")


def test_cifar100_validation_share_splits_any_copy_the_thesis_way(root):
    from domainknowledge.data.real.cifar100 import load_cifar100

    data = load_cifar100(root, train_per_class=None, validation_per_class=0.1, test_per_class=None)
    counts = {name: np.bincount(labels, minlength=96) for name, (_, labels) in data.splits.items()}
    assert (counts["validation"] == 1).all() and (counts["train"] == 2).all() and (counts["test"] == 1).all()
    with pytest.raises(ValueError, match="train_per_class=None"):
        load_cifar100(root, train_per_class=2, validation_per_class=0.1)


def test_ava_reader_skips_missing_photos_and_reads_the_standard_partition(root, tmp_path):
    from domainknowledge.data.real.ava import AVA_TEST_LIST, read_ava, standard_test_mask
    from domainknowledge.fixtures.aesthetics import AVA_MISSING, AVA_PHOTOS

    ratings = read_ava(root)
    assert len(ratings) == AVA_PHOTOS and ratings.votes.shape == (AVA_PHOTOS, 10)
    assert np.allclose(ratings.distributions.sum(axis=1), 1) and ((ratings.mean_scores > 1) & (ratings.mean_scores < 10)).all()
    listed = np.loadtxt(root / "AVA" / AVA_TEST_LIST, dtype=np.int64)
    mask = standard_test_mask(ratings)
    assert set(ratings.image_ids[mask]) == set(listed) - set(np.loadtxt(root / "AVA" / "AVA.txt", dtype=np.int64)
                                                             [:AVA_MISSING, 1])
    shutil.copytree(root / "AVA", tmp_path / "AVA")
    (tmp_path / "AVA" / AVA_TEST_LIST).unlink()
    with pytest.raises(DataNotFoundError, match="generic_test.jpgl is missing.*academictorrents"):
        standard_test_mask(read_ava(tmp_path))
    rows = np.loadtxt(tmp_path / "AVA" / "AVA.txt", dtype=np.int64)
    np.savetxt(tmp_path / "AVA" / "AVA.txt", rows[:, :12], fmt="%d")
    with pytest.raises(ValueError, match="has 12 columns; the published AVA.txt has 15"):
        read_ava(tmp_path)


def test_tid2013_reader_matches_names_without_case_and_names_a_missing_file(root, tmp_path):
    from domainknowledge.data.real.tid2013 import read_tid2013

    paths, mos = read_tid2013(root)
    assert len(paths) == len(mos) == 6 and all(p.suffix == ".bmp" for p in paths)
    shutil.copytree(root / "TID2013", tmp_path / "TID2013")
    first = tmp_path / "TID2013" / "distorted_images" / "i01_01_1.bmp"
    first.rename(first.with_name("I01_01_1.BMP"))
    assert read_tid2013(tmp_path)[0][0].name == "I01_01_1.BMP"
    first.with_name("I01_01_1.BMP").unlink()
    with pytest.raises(DataNotFoundError, match="i01_01_1.bmp is listed .* but missing; .*ponomarenko"):
        read_tid2013(tmp_path)


def test_image_files_index_like_an_array_and_subset_lazily(root):
    paths = sorted((root / "pexels").glob("*.jpeg"))
    files = ImageFiles(paths, fit_and_pad(32), 32)
    assert files.shape == (len(paths), 32, 32, 3) and files[0].shape == (32, 32, 3)
    batch = files[np.array([2, 0])]
    assert batch.shape == (2, 32, 32, 3) and np.array_equal(batch[1], files[0])
    assert np.array_equal(files[torch.tensor([2, 0])], batch) and np.array_equal(files[1:3], files[np.array([1, 2])])
    view = files.subset(slice(2, 5))
    assert isinstance(view, ImageFiles) and len(view) == 3 and np.array_equal(view[0], files[2])
    tensors = ImageFiles(paths, fit_and_pad(32), 32, channels_first=True)
    assert tensors[0:2].shape == (2, 3, 32, 32) and tensors[0:2].dtype == torch.uint8
    assert sum(len(b) for b in files.batches(4)) == len(files)


def test_table_16_4_streams_chunks_and_counts_every_prediction(root, monkeypatch):
    from domainknowledge.chapters import multitask_aesthetics as M
    from domainknowledge.models.backbones import PretextNetwork, mobilenet_v2_backbone
    from domainknowledge.principles import distortions

    # one distortion per aspect keeps the test short; the streaming does not depend on which
    first_of_each = tuple(next(d for d in distortions.CATALOGUE if d.aspect == a) for a in distortions.ASPECTS)
    monkeypatch.setattr(distortions, "CATALOGUE", first_of_each)
    torch.manual_seed(0)
    network = PretextNetwork(mobilenet_v2_backbone(0.35), ("classification", "regression")).eval()
    files = ImageFiles(sorted((root / "pexels").glob("*.jpeg"))[:3], fit_and_pad(32), 32)
    whole = M.distortion_classification_accuracy(network, files[:], seed=3)
    monkeypatch.setattr(M, "ANALYSIS_CHUNK", 8)              # one chunk: the same draws as the array
    assert whole.equals(M.distortion_classification_accuracy(network, files, seed=3))
    monkeypatch.setattr(M, "ANALYSIS_CHUNK", 1)              # one image at a time
    streamed = M.distortion_classification_accuracy(network, files, seed=3)
    levels = [len([v for v in spec.levels if v != 0]) for spec in first_of_each]
    assert streamed["predictions"].tolist() == [3 * n for n in levels]
    capped = M.distortion_classification_accuracy(network, files, seed=3, levels_per_sign=1)  # a paper dry run
    assert capped["predictions"].tolist() == [3 * len([v for v in spec.levels if abs(v) == 1]) for spec in first_of_each]
    outputs = M.regression_outputs(network, files, seed=3)
    assert len(outputs) == 2 * 3 * len(distortions.distortion_levels("brightness"))
    assert M.first_images(files, 2).paths == files.paths[:2] and isinstance(M.first_images(files, None), ImageFiles)


def test_clip_aesthetics_reads_ava_lazily_on_its_standard_partition(root):
    from domainknowledge.chapters import clip_aesthetics as chapter

    config = dataclasses.replace(chapter.CONFIGS["paper"], image_size=32)
    task = chapter.load_task(config, seed=0, data_root=root)
    assert isinstance(task.images, ImageFiles) and task.images[0].shape == (32, 32, 3)
    train, test = chapter.split_indices(task, config, 0)
    assert np.array_equal(test, np.flatnonzero(task.standard_test)) and np.array_equal(
        (train, test)[1], chapter.split_indices(task, config, 5)[1])
    assert not set(train) & set(test) and len(train) + len(test) == len(task)


def test_dhog_views_use_the_same_draws_on_any_device():
    from domainknowledge.chapters.hierarchical_grouping import clustering_views

    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    first = clustering_views(images, 3, 0.625, torch.Generator().manual_seed(1))
    again = clustering_views(images, 3, 0.625, torch.Generator().manual_seed(1))
    assert all(a.shape == (6, 3, 20, 20) and torch.equal(a, b) for a, b in zip(first, again))
    if torch.cuda.is_available():
        on_gpu = clustering_views(images.cuda(), 3, 0.625, torch.Generator().manual_seed(1))
        assert all(v.is_cuda and torch.allclose(v.cpu(), a, atol=1e-3) for v, a in zip(on_gpu, first))
