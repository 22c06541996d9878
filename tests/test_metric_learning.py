"""The shared metric-learning trainer (Kobs 2023, Ch. 7, 9 and 11): every loss learns, batches, hooks, embeddings."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge import metric_learning as ml

TINY = ml.EmbeddingConfig(backbone="small_cnn", image_size=16, embedding_dim=16, head_hidden=32, epochs=12,
                          batch_size=16, m_per_class=4, head_learning_rate=3e-3)


def separable_features(classes=8, per_class=8, dim=128, seed=0):
    """Features whose classes are separable (class centres plus noise) and placeholder images for them."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    features = rng.normal(size=(classes, dim))[labels] * 2 + rng.normal(size=(len(labels), dim))
    images = torch.zeros(len(labels), 3, 16, 16, dtype=torch.uint8)
    return images, labels, torch.tensor(features, dtype=torch.float32)


def test_table_7_1_losses_with_families_and_distances():
    trained = [name for name, spec in ml.LOSSES.items() if spec.family != "none"]
    assert {"contrastive", "triplet", "multi_similarity", "margin", "normalized_softmax", "arcface", "cosface",
            "proxy_nca", "soft_triple"} <= set(trained)
    assert ml.LOSSES["none"].family == "none"
    assert {spec.family for spec in ml.LOSSES.values()} <= set(ml.FAMILIES)
    assert {spec.distance for spec in ml.LOSSES.values()} <= set(ml.DISTANCES)
    assert ml.LOSSES["contrastive"].family == "ranking" and ml.LOSSES["arcface"].family == "classification"


@pytest.mark.parametrize("loss_name", [name for name in ml.LOSSES if name != "none"])
def test_every_loss_lowers_its_training_loss(loss_name):
    images, labels, features = separable_features()
    _, history = ml.train_embedding_model(loss_name, images, labels, config=TINY, seed=0, features=features)
    assert len(history.epoch_losses) == TINY.epochs
    assert np.mean(history.epoch_losses[-3:]) < np.mean(history.epoch_losses[:2])


def test_a_proxy_loss_clusters_the_training_classes():
    """ProxyNCA learns its proxies with its own optimiser; afterwards same-class embeddings are neighbours."""
    from domainknowledge import metrics

    images, labels, features = separable_features()
    network, _ = ml.train_embedding_model("proxy_nca", images, labels, config=TINY, seed=0, features=features)
    embeddings = ml.embed(network, features=features)
    assert metrics.r_precision(labels, metrics.neighbour_order(embeddings)) > 0.9


def test_batch_transform_is_applied_to_every_batch():
    images = torch.randint(0, 255, (32, 3, 16, 16), dtype=torch.uint8)
    labels = np.repeat(np.arange(4), 8)
    calls = []

    def transform(batch, indices):
        calls.append((batch.shape, np.asarray(indices).copy()))
        return 255 - batch                                   # any image-to-image map

    for train_backbone in (True, False):
        calls.clear()
        config = dataclasses.replace(TINY, epochs=2, batch_size=8, m_per_class=4, train_backbone=train_backbone)
        ml.train_embedding_model("contrastive", images, labels, config=config, seed=0, batch_transform=transform)
        assert len(calls) == 2 * (32 // 8)                   # every batch of every epoch, frozen backbone or not
        for shape, indices in calls:
            assert shape == (8, 3, 16, 16)
            assert sorted(np.bincount(labels[indices], minlength=4)[np.unique(labels[indices])]) == [4, 4]
    with pytest.raises(ValueError, match="batch_transform"):
        ml.train_embedding_model("contrastive", images, labels, config=config, seed=0,
                                 batch_transform=lambda batch, indices: batch[:2])


def test_m_per_class_sampler_is_seeded_and_balanced():
    labels = np.repeat(np.arange(10), 7)
    sampler = ml.MPerClassBatchSampler(labels, batch_size=12, m=3, seed=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 70 // 12
    for batch in batches:
        counts = np.bincount(labels[batch])
        assert sorted(counts[counts > 0]) == [3, 3, 3, 3] and len(set(batch)) == 12
    again = ml.MPerClassBatchSampler(labels, batch_size=12, m=3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, sampler))   # the next pass differs
    with pytest.raises(ValueError, match="classes"):
        ml.MPerClassBatchSampler(np.repeat(np.arange(2), 8), batch_size=12, m=3, seed=0)


def test_training_is_deterministic_and_embeddings_are_normalised():
    images = torch.randint(0, 255, (24, 3, 16, 16), dtype=torch.uint8)
    labels = np.repeat(np.arange(3), 8)
    config = dataclasses.replace(TINY, epochs=1, batch_size=8, m_per_class=4, train_backbone=True)
    first, history = ml.train_embedding_model("triplet", images, labels, config=config, seed=1)
    second, _ = ml.train_embedding_model("triplet", images, labels, config=config, seed=1)
    a, b = ml.embed(first, images), ml.embed(second, images)
    assert a.shape == (24, 16) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b) and history.seconds > 0
    frozen = dataclasses.replace(config, train_backbone=False)
    network, _ = ml.train_embedding_model("none", images, labels, config=frozen, seed=0)
    assert np.allclose(ml.embed(network, images),
                       ml.embed(network, features=ml.backbone_features(network, images)), atol=1e-5)


def test_lite0_backbone_cut_and_pooled():
    config = ml.EmbeddingConfig(backbone_blocks=11, pool_grid=2, image_size=64)
    network = ml.build_embedding_network(config, seed=0)
    features = ml.backbone_features(network, torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert features.shape == (2, network.backbone.feature_dim) and network.backbone.feature_dim == 112 * 4
    assert not any(p.requires_grad for p in network.backbone.parameters())


def test_bad_input_says_what_is_wrong():
    images, labels, _ = separable_features()
    with pytest.raises(ValueError, match="unknown loss"):
        ml.train_embedding_model("hinge", images, labels, config=TINY, seed=0)
    with pytest.raises(ValueError, match="labels must have shape"):
        ml.train_embedding_model("triplet", images, labels[:-1], config=TINY, seed=0)
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        ml.EmbeddingConfig(batch_size=30, m_per_class=4)


def test_cached_features_must_match_the_backbone():
    images, labels, features = separable_features()
    with pytest.raises(ValueError, match="features must have shape"):
        ml.train_embedding_model("triplet", images, labels, config=TINY, seed=0, features=features[:, :10])
