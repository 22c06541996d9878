"""The DDTL chapter's drivers (Darlow 2022, Ch. 3): one network for every method, training and evaluation."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge.chapters import decision_tree_hashing as ch

TINY = dataclasses.replace(ch.CONFIGS["smoke"], channels=(4, 8, 8), feature_dim=16, tree_depth=4, epochs=3,
                           batch_size=32, learning_rate=3e-3, map_k=20)


@pytest.fixture(scope="module")
def task():
    """Two easy classes: bright squares in the top-left or the bottom-right corner, with noise."""
    generator = torch.Generator().manual_seed(0)

    def images(n):
        labels = torch.arange(n) % 2
        x = torch.randint(0, 60, (n, 1, 16, 16), generator=generator)
        for i, label in enumerate(labels.tolist()):
            if label:
                x[i, 0, 9:15, 9:15] += 180
            else:
                x[i, 0, 1:7, 1:7] += 180
        return x.to(torch.uint8), labels

    train, query = images(128), images(32)
    return ch.HashingTask("toy", *train, *query, ("top-left", "bottom-right"))


@pytest.mark.parametrize("method", ch.METHODS)
def test_every_method_trains_and_gives_codes_of_one_length(task, method):
    trained = ch.train_hasher(method, task, TINY, seed=0)
    encoded = ch.encode(trained, task.query_images)
    assert encoded["codes"].shape == (32, 2 + TINY.tree_depth)        # floor(log2 2) + 1 = 2 class bits
    assert encoded["features"].shape == (32, TINY.feature_dim)
    assert set(np.unique(encoded["codes"])) <= {0, 1}
    assert all(np.isfinite(trained.losses))


def test_ddtl_learns_the_classes_and_its_class_bits_come_first(task):
    trained = ch.train_hasher("ddtl", task, dataclasses.replace(TINY, epochs=12), seed=0)
    assert trained.losses[-1] < trained.losses[0]
    database, queries = ch.encode(trained, task.train_images), ch.encode(trained, task.query_images)
    # class bits are the binary code of the predicted class, least significant first: class 1 -> (1, 0)
    predicted = queries["codes"][:, 0]
    assert (predicted == task.query_labels.numpy()).mean() > 0.9
    scores = ch.evaluate_retrieval("ddtl", database, task.train_labels, queries, task.query_labels, TINY.map_k)
    assert scores["map_at_k"] > 0.9 and scores["nearest_neighbour_accuracy"] > 0.9
    assert 0 < scores["entropy_bits"] <= np.log2(len(task.train_labels))


def test_training_is_seeded(task):
    first = ch.train_hasher("dsh", task, TINY, seed=3)
    second = ch.train_hasher("dsh", task, TINY, seed=3)
    assert first.losses == second.losses


def test_augment_keeps_shape_and_is_seeded():
    images = torch.rand(5, 1, 28, 28)
    a = ch.augment(images, torch.Generator().manual_seed(1))
    b = ch.augment(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, ch.augment(images, torch.Generator().manual_seed(2)))


def test_config_rejects_unknown_methods():
    with pytest.raises(ValueError, match="methods"):
        dataclasses.replace(TINY, methods=("ddtl", "lsh"))
    with pytest.raises(ValueError, match="method must be one of"):
        ch.HashingNetwork("lsh", standardize=None, num_classes=2, channels=(4, 4, 4), feature_dim=4, tree_depth=2)
