"""Adapters for the thesis' data sets (paper profile), tested on tiny fakes written in the real formats."""

import pickle

import numpy as np
import pytest
from PIL import Image

from domainknowledge.data import DataNotFoundError
from domainknowledge.data.real.ages import find_afad, find_utkface, load_afad, load_age_dataset, load_utkface
from domainknowledge.data.real.cifar100 import DROPPED_CLASSES, load_cifar100
from domainknowledge.data.splits import per_class_split, random_split


def write_jpeg(path, value, size=(48, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def fake_utkface(tmp_path):
    names = ["1_0_0_20161219140623097.jpg.chip.jpg", "26_1_2_20170116174525125.jpg.chip.jpg",
             "80_0_1_20170110182418864.jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg"]
    for index, name in enumerate(names):
        write_jpeg(tmp_path / "UTKFace" / name, 40 * index)
    (tmp_path / "UTKFace" / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.fixture
def fake_afad(tmp_path):
    for age, value in [(15, 10), (15, 20), (40, 30), (72, 40)]:
        gender = "111" if value % 20 else "112"
        write_jpeg(tmp_path / "AFAD-Full" / str(age) / gender / f"{value}-0.jpg", value)
    return tmp_path


def test_utkface_reads_ages_from_names_and_resizes(fake_utkface):
    paths, ages = find_utkface(fake_utkface)
    assert sorted(ages.tolist()) == [1, 26, 39, 80]
    images, ages = load_utkface(fake_utkface, image_size=12)
    assert images.shape == (4, 12, 12, 3) and images.dtype == np.uint8 and ages.dtype == np.int64
    assert images[ages.tolist().index(26)].mean() == pytest.approx(40, abs=2)   # pixel values kept


def test_afad_reads_ages_from_folders(fake_afad):
    images, ages = load_age_dataset("afad", fake_afad, image_size=8)
    assert images.shape == (4, 8, 8, 3)
    assert sorted(ages.tolist()) == [15, 15, 40, 72]
    subset_images, subset_ages = load_afad(fake_afad, image_size=8, max_images=2, seed=0)
    assert subset_images.shape[0] == 2 and set(subset_ages) <= {15, 40, 72}


def test_missing_age_folders_name_what_is_expected(tmp_path):
    with pytest.raises(DataNotFoundError, match="UTKFace"):
        find_utkface(tmp_path)
    with pytest.raises(DataNotFoundError, match="AFAD-Full/<age>/<gender"):
        find_afad(tmp_path)
    with pytest.raises(DataNotFoundError, match="data_root"):
        load_utkface(None)


def write_cifar100(root, per_class_train=6, per_class_test=3):
    """A fake cifar-100-python folder: 100 fine classes in 20 coarse ones (5 each), pickled like the real one."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names = [f"class_{i:02d}" for i in range(100)]
    for position, name in zip((1, 57, 39, 58), DROPPED_CLASSES):            # the real indices
        fine_names[position] = name
    coarse_names = [f"super_{i:02d}" for i in range(20)]
    coarse_of = np.arange(100) % 20
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": fine_names, "coarse_label_names": coarse_names}, handle)
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        fine = np.repeat(np.arange(100), count)
        data = np.zeros((fine.size, 3072), dtype=np.uint8)
        data[:, :1024] = fine[:, None]                                        # red channel = class index
        data[:, 1024] = np.arange(fine.size) // 256                           # green (0, 0) and (0, 1):
        data[:, 1025] = np.arange(fine.size) % 256                            # the image's position
        batch = {b"data": data, b"fine_labels": fine.tolist(), b"coarse_labels": coarse_of[fine].tolist()}
        with open(folder / split, "wb") as handle:
            pickle.dump(batch, handle)
    return fine_names, coarse_of


def test_cifar100_drops_four_classes_and_splits_per_class(tmp_path):
    fine_names, coarse_of = write_cifar100(tmp_path)
    data = load_cifar100(tmp_path, train_per_class=4, validation_per_class=2, seed=0)
    assert len(data.class_names) == 96 and not set(DROPPED_CLASSES) & set(data.class_names)
    assert len(data.superclass_names) == 20
    for split, per_class in (("train", 4), ("validation", 2), ("test", 3)):
        images, labels = data.splits[split]
        assert images.shape == (96 * per_class, 32, 32, 3) and images.dtype == np.uint8
        assert np.all(np.bincount(labels, minlength=96) == per_class)
        original = np.array([fine_names.index(data.class_names[label]) for label in labels])
        assert np.array_equal(images[:, 0, 0, 0], original)                  # each image kept its label
    expected_super = [coarse_of[fine_names.index(name)] for name in data.class_names]
    assert np.array_equal(data.superclass_of, expected_super)


def image_ids(images):
    return set((images[:, 0, 0, 1].astype(int) * 256 + images[:, 0, 1, 1]).tolist())


def test_cifar100_train_and_validation_are_disjoint_and_seeded(tmp_path):
    write_cifar100(tmp_path, per_class_train=5)
    data = load_cifar100(tmp_path, train_per_class=3, validation_per_class=2, seed=1)
    train, validation = image_ids(data.splits["train"][0]), image_ids(data.splits["validation"][0])
    assert len(train) == 96 * 3 and len(validation) == 96 * 2 and not train & validation
    again = load_cifar100(tmp_path, train_per_class=3, validation_per_class=2, seed=1)
    assert image_ids(again.splits["train"][0]) == train
    with pytest.raises(ValueError, match="too few"):
        load_cifar100(tmp_path, train_per_class=4, validation_per_class=2, seed=1)


def test_cifar100_missing_files_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path / "cache"))
    (tmp_path / "cifar-100-python").mkdir()
    with pytest.raises(DataNotFoundError, match="meta"):
        load_cifar100(tmp_path)


def test_random_split_is_a_seeded_partition():
    split = random_split(101, seed=3)
    assert [len(split[name]) for name in ("train", "validation", "test")] == [60, 20, 21]
    together = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(together), np.arange(101))
    assert all(np.array_equal(split[k], random_split(101, seed=3)[k]) for k in split)


def test_per_class_split_counts():
    labels = np.repeat(np.arange(3), 10)
    split = per_class_split(labels, {"a": 4, "b": None}, seed=0)
    assert np.all(np.bincount(labels[split["a"]]) == 4) and np.all(np.bincount(labels[split["b"]]) == 6)
    assert not set(split["a"]) & set(split["b"])


def test_word2vec_class_embeddings_from_a_googlenews_style_file(tmp_path):
    from gensim.models import KeyedVectors

    from domainknowledge.models.text import word2vec_embeddings

    vectors = KeyedVectors(vector_size=4)
    words = ["maple_tree", "oak", "tree", "lawn", "mower"]
    vectors.add_vectors(words, np.eye(5, 4, dtype=np.float32) + 0.1)
    vectors.save_word2vec_format(str(tmp_path / "GoogleNews-vectors-negative300.bin"), binary=True)
    embeddings = word2vec_embeddings(["maple tree", "oak", "lawn mower"], tmp_path)
    assert embeddings.shape == (3, 4)
    np.testing.assert_allclose(embeddings[0], vectors["maple_tree"])                 # a GoogleNews phrase
    np.testing.assert_allclose(embeddings[2], (vectors["lawn"] + vectors["mower"]) / 2)  # mean of the words
    with pytest.raises(KeyError, match="sweet pepper"):
        word2vec_embeddings(["oak", "sweet pepper"], tmp_path)
    with pytest.raises(DataNotFoundError, match="GoogleNews"):
        word2vec_embeddings(["oak"], tmp_path / "elsewhere")
